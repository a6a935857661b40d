"""Hugging Face checkpoints <-> bertkit state dicts: the key tables of every family and head, save.

With the names in each family's entry (`bertkit.families`), a table maps each of our keys to
the checkpoint key(s) it comes from (three keys are concatenated into our fused query/key/value);
keys listed in DROPPED are known and deliberately ignored. Loading fails on any other unused key,
on a missing encoder tensor and on any shape mismatch, naming the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import EncoderConfig
from ..families import ClassifierLayout, FamilySpec
from ..io import atomic_dir, save_json
from .heads import HEADS, BiLstmTagger

log = logging.getLogger(__name__)

WB = ("weight", "bias")
Pairs = list[tuple[str | tuple[str, ...], str]]  # (checkpoint module(s), our module)
KeyPairs = list[tuple[tuple[str, ...], str]]  # (checkpoint key(s), our key)

_EMBEDDINGS = [
    ("embeddings.word_embeddings.weight", "encoder.embeddings.word.weight"),
    ("embeddings.position_embeddings.weight", "encoder.embeddings.position.weight"),
    ("embeddings.token_type_embeddings.weight", "encoder.embeddings.token_type.weight"),
    ("embeddings.LayerNorm.weight", "encoder.embeddings.norm.weight"),
    ("embeddings.LayerNorm.bias", "encoder.embeddings.norm.bias"),
    ("encoder.embedding_hidden_mapping_in.weight", "encoder.project.weight"),
    ("encoder.embedding_hidden_mapping_in.bias", "encoder.project.bias"),
]

# Known checkpoint keys we never load: tied decoders (we reuse the word embeddings), buffers.
DROPPED = re.compile(
    r"(cls\.predictions\.decoder\.(weight|bias)|lm_head\.decoder\.(weight|bias)|vocab_projector\.weight"
    r"|predictions\.decoder\.(weight|bias)|embeddings\.position_ids|embeddings\.token_type_ids)$"
)
# Our keys renamed since earlier releases (old prefix -> new), so their own run folders still load.
RENAMED = (("pair.classifier.", "mlm.pair.classifier."),)


def _expand(pairs: Pairs, suffixes: tuple[str, ...] = WB) -> KeyPairs:
    """Expand (checkpoint module, our module) pairs into key pairs; single tensors stay single."""
    out = []
    for ckpt, ours in pairs:
        if isinstance(ckpt, str) and ckpt.endswith("bias") and ours.endswith("bias"):
            out.append(((ckpt,), ours))
            continue
        names = (ckpt,) if isinstance(ckpt, str) else ckpt
        for s in suffixes:
            out.append((tuple(f"{n}.{s}" for n in names), f"{ours}.{s}"))
    return out


def _mlm(table: FamilySpec) -> KeyPairs:
    transform, norm, bias = table.hf_mlm
    return _expand([(transform, "mlm.transform"), (norm, "mlm.norm"), (bias, "mlm.bias")])


def _pretraining(table: FamilySpec) -> KeyPairs:
    return _mlm(table) + (_expand([(table.hf_pair, "mlm.pair.classifier")]) if table.hf_pair else [])


def _classifier(layout: ClassifierLayout) -> KeyPairs:
    dense = [(layout.hf_dense, "classifier.dense")] if layout.hf_dense else []
    return _expand([*dense, (layout.hf_out, "classifier.out")])


def _own_names(table: FamilySpec) -> KeyPairs:
    """bertkit's own BiLSTM tagger: saved under our names."""
    lstm = [f"lstm.{w}_{m}_l{i}{r}" for i in range(BiLstmTagger.DEPTH) for r in ("", "_reverse")
            for w in ("weight", "bias") for m in ("ih", "hh")]
    return [((f"classifier.{k}",), f"classifier.{k}") for k in [*lstm, "out.weight", "out.bias"]]


# Head name -> its key pairs in one family's checkpoints (without the base-model prefix). A head
# missing here is saved and loaded under our own names.
HEAD_KEYS: dict[str, Callable[[FamilySpec], KeyPairs]] = {
    "mlm": _mlm,
    "pretraining": _pretraining,
    "classification": lambda t: _classifier(t.classifier),
    "multiple_choice": lambda t: _classifier(t.choice_classifier),
    "token_classification": lambda t: _expand([("classifier", "classifier.out")]),
    "qa": lambda t: _expand([("qa_outputs", "classifier.out")]),
    "bilstm_tagger": _own_names,
}


def head_table(table: FamilySpec, head: str | None) -> KeyPairs:
    """Key pairs of one head for one family (checkpoint keys without the base-model prefix)."""
    return HEAD_KEYS[head](table) if head in HEAD_KEYS else []


def key_table(config: EncoderConfig, head: str | None) -> dict[str, tuple[str, ...]]:
    """Our key -> the checkpoint key(s) it is made of, for this family and head."""
    table = config.table
    keys = {ours: (ckpt,) for ckpt, ours in _EMBEDDINGS}
    keys |= {f"encoder.pooler.dense.{s}": (f"{table.hf_pooler}.{s}",) for s in WB}
    for i in range(config.unique_layers):
        for ckpt, ours in _expand(list(table.hf_layer)):
            keys[f"encoder.layers.{i}.{ours}"] = tuple(c.format(i) for c in ckpt)
    for ckpt, ours in head_table(table, head):
        keys[ours] = ckpt
    return keys


def _our_table(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """`key_table` for this model's keys; head keys without a checkpoint name keep ours."""
    table = key_table(model.config, model.head_name)
    return {k: table[k] if k in table or k.startswith("encoder.") else (k,) for k in model.state_dict()}


def known_head_keys(table: FamilySpec) -> set[str]:
    """Every checkpoint key of every head of this family: unused ones are dropped, not errors."""
    return {k for h in HEAD_KEYS for ckpt, _ in head_table(table, h) for k in ckpt}


def normalise_keys(state: dict[str, torch.Tensor], table: FamilySpec) -> dict[str, torch.Tensor]:
    """Strip the base-model prefix and rename TF-era LayerNorm gamma/beta."""
    out = {}
    for key, value in state.items():
        key = key[len(table.prefix):] if key.startswith(table.prefix) else key
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = value
    return out


def rename_legacy(state: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Rename (in place) keys of our own state dicts that an earlier release named differently."""
    for key in list(state):
        for old, new in RENAMED:
            if key.startswith(prefix + old):
                state.setdefault(prefix + new + key[len(prefix + old) :], state.pop(key))


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: unknown, missing or mis-shaped tensors."""


def convert_state(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Checkpoint tensors -> `model`'s state dict (a BertkitModel: it has `config` and `head_name`).
    Returns (state, our keys left freshly initialised)."""
    config, table = model.config, model.config.table
    state = normalise_keys(state, table)
    ours = model.state_dict()
    keys = _our_table(model)
    converted, used, missing = {}, set(), []
    for key, sources in keys.items():
        if not all(s in state for s in sources):
            missing.append(key)
            continue
        tensor = torch.cat([state[s] for s in sources]) if len(sources) > 1 else state[sources[0]]
        if tensor.shape != ours[key].shape:
            raise CheckpointError(
                f"Shape mismatch for {sources[0] if len(sources) == 1 else sources}: checkpoint has "
                f"{tuple(tensor.shape)}, the model expects {tuple(ours[key].shape)} (our key {key}). "
                "Check that config.json matches the weights (and num_labels for a task head)."
            )
        converted[key] = tensor
        used.update(sources)
    optional = set(_head_and_pooler_keys(ours))
    hard_missing = [k for k in missing if k not in optional]
    if hard_missing:
        raise CheckpointError(
            f"The checkpoint lacks {len(hard_missing)} tensor(s) the encoder needs, e.g. "
            f"{list(keys[hard_missing[0]])} (for {hard_missing[0]}). Is it a complete {config.family} checkpoint?"
        )
    droppable = known_head_keys(table) | {k for k in state if k.startswith("pooler.")}
    unused = [k for k in state if k not in used and not DROPPED.search(k) and k not in droppable]
    if unused:
        raise CheckpointError(
            f"The checkpoint has {len(unused)} tensor(s) bertkit does not know for a {config.family} model: "
            f"{unused[:5]}. Is config.json's model_type right for these weights?"
        )
    return converted, missing


def _head_and_pooler_keys(ours: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in ours if not k.startswith("encoder.") or k.startswith("encoder.pooler.")]


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Read model.safetensors, or pytorch_model.bin with torch.load(weights_only=True): never unpickle."""
    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_file))
        except Exception as error:  # SafetensorError: truncated or not a safetensors file
            raise CheckpointError(f"{safetensors_file} is corrupt or truncated ({error})") from error
    if bin_file.is_file():
        try:
            return torch.load(bin_file, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError) as error:  # not unpickling errors: those are refusals
            raise CheckpointError(f"{bin_file} is corrupt or truncated ({error})") from error
    raise FileNotFoundError(
        f"No weights in {folder}: expected model.safetensors or pytorch_model.bin next to config.json."
    )


def load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load checkpoint tensors into `model`; returns the keys left at their fresh initialisation."""
    converted, missing = convert_state(model, state)
    model.load_state_dict(converted, strict=False)
    if missing:
        log.info("Freshly initialised (not in the checkpoint): %s", ", ".join(missing))
    return missing


def to_hf_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict in Hugging Face names (base keys prefixed when a head is present)."""
    prefix = model.config.table.prefix if model.head_name else ""
    keys = _our_table(model)
    out = {}
    for key, tensor in model.state_dict().items():
        sources = keys[key]
        parts = tensor.chunk(len(sources)) if len(sources) > 1 else (tensor,)
        for name, part in zip(sources, parts, strict=True):
            out[prefix + name if key.startswith("encoder.") else name] = part.detach().contiguous().clone()
    return out


def architecture(table: FamilySpec, head: str | None) -> str:
    """The transformers class name of a family's model with this head ("BertForMaskedLM")."""
    if head == "pretraining" and table.pair_head is None:
        head = "mlm"  # without a sentence-pair objective, pre-training is MLM alone
    return table.hf_name + (HEADS[head].architecture if head is not None else "Model")


def write_model_files(model: nn.Module, folder: Path) -> None:
    """Write config.json + model.safetensors (Hugging Face layout) into an existing folder."""
    from safetensors.torch import save_file

    save_json(folder / "config.json", model.config.to_hf(architecture(model.config.table, model.head_name)))
    save_file(to_hf_state(model), str(folder / "model.safetensors"), metadata={"format": "pt"})


def save_model(model: nn.Module, folder: str | Path) -> Path:
    """Save `model` (a BertkitModel) as a Hugging Face-layout folder, replaced whole, atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        write_model_files(model, tmp)
    return folder


def head_from_architectures(hf_config: dict) -> str | None:
    """The head a config.json's `architectures` names (None for a bare encoder)."""
    for arch in hf_config.get("architectures") or []:
        for head, spec in HEADS.items():
            if arch.endswith(spec.architecture):
                return head
    return None


def checkpoint_num_labels(state: dict[str, torch.Tensor], table: FamilySpec, head: str | None) -> int | None:
    """The output size of a labelled head's weights in a checkpoint, if it holds them."""
    if head not in HEADS or not HEADS[head].labelled:
        return None
    for ckpt, ours in head_table(table, head):
        if ours == "classifier.out.weight" and ckpt[0] in state:
            return state[ckpt[0]].shape[0]
    return None
