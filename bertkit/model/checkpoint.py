"""Hugging Face checkpoints <-> bertkit: the key tables of every family and head, load and save.

This is the only module that knows Hugging Face parameter names. A table maps each of our keys to
the checkpoint key(s) it comes from (three keys are concatenated into our fused query/key/value);
keys listed in DROPPED are known and deliberately ignored. Loading fails on any other unused key,
on a missing encoder tensor and on any shape mismatch, naming the key.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..config import EncoderConfig
from ..io import atomic_dir, save_json
from .heads import BiLstmTagger
from .model import BertkitModel

log = logging.getLogger(__name__)

WB = ("weight", "bias")
PREFIX = {"bert": "bert.", "roberta": "roberta.", "distilbert": "distilbert.", "albert": "albert."}

# Per family: (checkpoint template(s), our template) for one layer; {} is the layer index.
_BERT_LAYER = [
    (("encoder.layer.{}.attention.self.query", "encoder.layer.{}.attention.self.key",
      "encoder.layer.{}.attention.self.value"), "attention.qkv"),
    ("encoder.layer.{}.attention.output.dense", "attention.output"),
    ("encoder.layer.{}.attention.output.LayerNorm", "attention_norm"),
    ("encoder.layer.{}.intermediate.dense", "feed_forward.intermediate"),
    ("encoder.layer.{}.output.dense", "feed_forward.output"),
    ("encoder.layer.{}.output.LayerNorm", "output_norm"),
]
_DISTILBERT_LAYER = [
    (("transformer.layer.{}.attention.q_lin", "transformer.layer.{}.attention.k_lin",
      "transformer.layer.{}.attention.v_lin"), "attention.qkv"),
    ("transformer.layer.{}.attention.out_lin", "attention.output"),
    ("transformer.layer.{}.sa_layer_norm", "attention_norm"),
    ("transformer.layer.{}.ffn.lin1", "feed_forward.intermediate"),
    ("transformer.layer.{}.ffn.lin2", "feed_forward.output"),
    ("transformer.layer.{}.output_layer_norm", "output_norm"),
]
# One group holds the shared layer; partially shared models are saved as one group per layer.
_ALBERT = "encoder.albert_layer_groups.{}.albert_layers.0."
_ALBERT_LAYER = [
    ((_ALBERT + "attention.query", _ALBERT + "attention.key", _ALBERT + "attention.value"), "attention.qkv"),
    (_ALBERT + "attention.dense", "attention.output"),
    (_ALBERT + "attention.LayerNorm", "attention_norm"),
    (_ALBERT + "ffn", "feed_forward.intermediate"),
    (_ALBERT + "ffn_output", "feed_forward.output"),
    (_ALBERT + "full_layer_layer_norm", "output_norm"),
]
_LAYERS = {"bert": _BERT_LAYER, "roberta": _BERT_LAYER, "distilbert": _DISTILBERT_LAYER, "albert": _ALBERT_LAYER}

_EMBEDDINGS = [
    ("embeddings.word_embeddings.weight", "encoder.embeddings.word.weight"),
    ("embeddings.position_embeddings.weight", "encoder.embeddings.position.weight"),
    ("embeddings.token_type_embeddings.weight", "encoder.embeddings.token_type.weight"),
    ("embeddings.LayerNorm.weight", "encoder.embeddings.norm.weight"),
    ("embeddings.LayerNorm.bias", "encoder.embeddings.norm.bias"),
    ("encoder.embedding_hidden_mapping_in.weight", "encoder.project.weight"),
    ("encoder.embedding_hidden_mapping_in.bias", "encoder.project.bias"),
    ("pooler.dense.weight", "encoder.pooler.dense.weight"),
    ("pooler.dense.bias", "encoder.pooler.dense.bias"),
    ("pooler.weight", "encoder.pooler.dense.weight"),  # ALBERT's pooler is a bare Linear
    ("pooler.bias", "encoder.pooler.dense.bias"),
]

# Heads: checkpoint module -> our module (weight and bias each), plus single tensors.
_MLM = {
    "bert": [("cls.predictions.transform.dense", "mlm.transform"),
             ("cls.predictions.transform.LayerNorm", "mlm.norm"), ("cls.predictions.bias", "mlm.bias")],
    "roberta": [("lm_head.dense", "mlm.transform"), ("lm_head.layer_norm", "mlm.norm"), ("lm_head.bias", "mlm.bias")],
    "distilbert": [("vocab_transform", "mlm.transform"), ("vocab_layer_norm", "mlm.norm"),
                   ("vocab_projector.bias", "mlm.bias")],
    "albert": [("predictions.dense", "mlm.transform"), ("predictions.LayerNorm", "mlm.norm"),
               ("predictions.bias", "mlm.bias")],
}
_PAIR = {"bert": [("cls.seq_relationship", "pair.classifier")],
         "albert": [("sop_classifier.classifier", "pair.classifier")]}
_OUT = [("classifier", "classifier.out")]
_QA = [("qa_outputs", "classifier.out")]
_CLASSIFIER = {
    "roberta": [("classifier.dense", "classifier.dense"), ("classifier.out_proj", "classifier.out")],
    "distilbert": [("pre_classifier", "classifier.dense"), ("classifier", "classifier.out")],
}

# Known checkpoint keys we never load: tied decoders (we reuse the word embeddings), buffers.
DROPPED = re.compile(
    r"(cls\.predictions\.decoder\.(weight|bias)|lm_head\.decoder\.(weight|bias)|vocab_projector\.weight"
    r"|predictions\.decoder\.(weight|bias)|embeddings\.position_ids|embeddings\.token_type_ids)$"
)

ARCHITECTURES = {
    "bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert", "albert": "Albert",
}
_ARCH_SUFFIX = {
    None: "Model", "mlm": "ForMaskedLM", "pretraining": "ForPreTraining",
    "classification": "ForSequenceClassification", "token_classification": "ForTokenClassification",
    "qa": "ForQuestionAnswering", "multiple_choice": "ForMultipleChoice", "bilstm_tagger": "BiLstmTagger",
}


def _expand(pairs, suffixes=WB):
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


def head_table(family: str, head: str | None) -> list[tuple[tuple[str, ...], str]]:
    """Key pairs of one head for one family (checkpoint keys without the base-model prefix)."""
    if head in ("mlm", "pretraining"):
        pairs = _MLM[family] + (_PAIR.get(family, []) if head == "pretraining" else [])
    elif head in ("classification", "multiple_choice"):
        pairs = _CLASSIFIER.get(family, _OUT) if (head == "classification" or family == "distilbert") else _OUT
    elif head == "token_classification":
        pairs = _OUT
    elif head == "qa":
        pairs = _QA
    elif head == "bilstm_tagger":  # bertkit's own head: saved under its own names
        lstm = [f"lstm.{w}_{m}_l{i}{r}" for i in range(BiLstmTagger.DEPTH) for r in ("", "_reverse")
                for w in ("weight", "bias") for m in ("ih", "hh")]  # fmt: skip
        return [((f"classifier.{k}",), f"classifier.{k}") for k in [*lstm, "out.weight", "out.bias"]]
    else:
        pairs = []
    return _expand(pairs)


def key_table(config: EncoderConfig, head: str | None) -> dict[str, tuple[str, ...]]:
    """Our key -> the checkpoint key(s) it is made of, for this family and head."""
    table = {ours: (ckpt,) for ckpt, ours in _EMBEDDINGS}
    if config.family == "albert":
        table["encoder.pooler.dense.weight"], table["encoder.pooler.dense.bias"] = ("pooler.weight",), ("pooler.bias",)
    else:
        table["encoder.pooler.dense.weight"], table["encoder.pooler.dense.bias"] = ("pooler.dense.weight",), ("pooler.dense.bias",)
    for i in range(config.unique_layers):
        for ckpt, ours in _expand(_LAYERS[config.family]):
            table[f"encoder.layers.{i}.{ours}"] = tuple(c.format(i) for c in ckpt)
    for ckpt, ours in head_table(config.family, head):
        table[ours] = ckpt
    return table


def known_head_keys(family: str) -> set[str]:
    """Every checkpoint key of every head of this family: unused ones are dropped, not errors."""
    heads = ("mlm", "pretraining", "classification", "token_classification", "qa", "multiple_choice",
             "bilstm_tagger")
    return {k for h in heads for ckpt, _ in head_table(family, h) for k in ckpt}


def normalise_keys(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """Strip the base-model prefix and rename TF-era LayerNorm gamma/beta."""
    prefix = PREFIX[family]
    out = {}
    for key, value in state.items():
        key = key[len(prefix):] if key.startswith(prefix) else key
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = value
    return out


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: unknown, missing or mis-shaped tensors."""


def convert_state(model: BertkitModel, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Checkpoint tensors -> our state dict. Returns (state, our keys left freshly initialised)."""
    config = model.config
    state = normalise_keys(state, config.family)
    ours = model.state_dict()
    table = {k: v for k, v in key_table(config, model.head_name).items() if k in ours}
    converted, used, missing = {}, set(), []
    for key, sources in table.items():
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
            f"{list(table[hard_missing[0]])} (for {hard_missing[0]}). Is it a complete {config.family} checkpoint?"
        )
    droppable = known_head_keys(config.family) | {k for k in state if k.startswith("pooler.")}
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


def load_state(model: BertkitModel, state: dict[str, torch.Tensor]) -> list[str]:
    """Load checkpoint tensors into `model`; returns the keys left at their fresh initialisation."""
    converted, missing = convert_state(model, state)
    model.load_state_dict(converted, strict=False)
    if missing:
        log.info("Freshly initialised (not in the checkpoint): %s", ", ".join(missing))
    return missing


def to_hf_state(model: BertkitModel) -> dict[str, torch.Tensor]:
    """Our state dict in Hugging Face names (base keys prefixed when a head is present)."""
    prefix = PREFIX[model.config.family] if model.head_name else ""
    head_keys = {k for ckpt, _ in head_table(model.config.family, model.head_name) for k in ckpt}
    out = {}
    table = key_table(model.config, model.head_name)
    for key, tensor in model.state_dict().items():
        sources = table[key]
        parts = tensor.chunk(len(sources)) if len(sources) > 1 else (tensor,)
        for name, part in zip(sources, parts, strict=True):
            out[name if name in head_keys else prefix + name] = part.detach().contiguous().clone()
    return out


def architecture(family: str, head: str | None) -> str:
    if family == "roberta" and head == "pretraining":
        head = "mlm"  # RoBERTa pre-trains with MLM alone
    return ARCHITECTURES[family] + _ARCH_SUFFIX[head]


def write_model_files(model: BertkitModel, folder: Path) -> None:
    """Write config.json + model.safetensors (Hugging Face layout) into an existing folder."""
    from safetensors.torch import save_file

    save_json(folder / "config.json", model.config.to_hf(architecture(model.config.family, model.head_name)))
    save_file(to_hf_state(model), str(folder / "model.safetensors"), metadata={"format": "pt"})


def save_model(model: BertkitModel, folder: str | Path) -> Path:
    """Save `model` as a Hugging Face-layout folder; the folder is replaced whole, atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        write_model_files(model, tmp)
    return folder


def head_from_architectures(hf_config: dict) -> str | None:
    """The head a config.json's `architectures` names (None for a bare encoder)."""
    for arch in hf_config.get("architectures") or []:
        for head, suffix in _ARCH_SUFFIX.items():
            if head is not None and arch.endswith(suffix):
                return head
    return None


def load_model(name_or_path: str | Path, head: str | None = None, num_labels: int | None = None,
               labels: list[str] | None = None, **config_changes) -> BertkitModel:
    """Load a BERT-family checkpoint (local folder or hub name) into a BertkitModel, in eval mode.

    `head="auto"` takes the head from config.json's `architectures`. Head weights the checkpoint
    lacks (fine-tuning a pre-trained encoder) are freshly initialised; everything else must match.
    """
    from ..config import read_hf_config
    from ..hub import resolve

    folder = resolve(name_or_path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: it is not a model folder.")
    hf_config = read_hf_config(folder / "config.json")
    config = EncoderConfig.from_hf(hf_config)
    state = read_weights(folder)
    if head == "auto":
        head = head_from_architectures(hf_config)
    if labels is not None:
        if not list(labels) and num_labels is None:
            raise ValueError("labels is empty: pass the class names (or num_labels), or leave labels out")
        config_changes["labels"] = list(labels)
    elif num_labels is not None and config.labels and len(config.labels) != num_labels:
        config_changes["labels"] = []  # the checkpoint's label names belong to another head
    if config_changes:
        config = config.replace(**config_changes)
    if num_labels is None and not config.labels:
        num_labels = _checkpoint_num_labels(state, config.family, head)
    model = BertkitModel(config, head=head, num_labels=num_labels)
    load_state(model, state)
    return model.eval()  # like a freshly loaded reference model; training switches to train()


def _checkpoint_num_labels(state: dict[str, torch.Tensor], family: str, head: str | None) -> int | None:
    if head not in ("classification", "token_classification", "bilstm_tagger"):
        return None
    for ckpt, ours in head_table(family, head):
        if ours == "classifier.out.weight" and ckpt[0] in state:
            return state[ckpt[0]].shape[0]
    return None
