"""BertkitModel: an encoder composed with at most one task head; building and loading one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import EncoderConfig, read_hf_config
from .checkpoint import (
    checkpoint_num_labels,
    head_from_architectures,
    load_state,
    read_weights,
    rename_legacy,
)
from .checkpoint import save_model as _save_model
from .encoder import Encoder, Pooler, init_weights
from .heads import HEADS, ModelOutput

__all__ = ["BertkitModel", "ModelOutput", "build", "build_head", "check_labels", "load_model"]


class BertkitModel(nn.Module):
    """An encoder plus at most one head (the pre-training head is MLM + NSP/SOP).

    `BertkitModel(config, head="classification", num_labels=3)` builds both by name (BERT
    initialisation); `BertkitModel(encoder, head_module)` composes modules built elsewhere, as
    they are. The head runs the encoder on its inputs (`heads.TaskHead`) and is held under its
    `slot` ("classifier", "mlm"), the prefix of its keys in our state dicts.
    """

    def __init__(self, encoder: EncoderConfig | Encoder, head: str | nn.Module | None = None,
                 num_labels: int | None = None, *, head_name: str | None = None) -> None:
        super().__init__()
        fresh = isinstance(encoder, EncoderConfig)
        if fresh:
            if not (head is None or isinstance(head, str)):
                raise TypeError("with an EncoderConfig, name the head (a key of HEADS); pass a built Encoder "
                                "to compose a head module")
            config, encoder = encoder, Encoder(encoder, pooler=False)
            # encoder first: a head that keeps its own initialisation (the LSTM's) draws random
            # numbers after it, so seeded builds stay as they were; the head decides on the pooler
            head_name, (num_labels, head) = head, build_head(config, head, num_labels)
            if config.table.pooler and (head is None or getattr(head, "uses_pooler", False)):
                encoder.pooler = Pooler(config.hidden_size)
        elif isinstance(head, str) or (head is not None and head_name is None):
            raise TypeError("compose a built Encoder with a head module and its head_name; build a head "
                            "by name from an EncoderConfig")
        self.config: EncoderConfig = encoder.config
        self.head_name = head_name
        self.num_labels = num_labels
        self.encoder = encoder
        self.head_slot: str | None = getattr(head, "slot", "classifier") if head is not None else None
        if head is not None:
            self.add_module(self.head_slot, head)
        if fresh:
            self.apply_init()
        if self.frozen_encoder:
            self.encoder.requires_grad_(False)  # the feature-based approach: only the head learns
        self.register_load_state_dict_pre_hook(_renamed_keys)

    @property
    def head(self) -> nn.Module | None:
        return getattr(self, self.head_slot) if self.head_slot is not None else None

    @property
    def frozen_encoder(self) -> bool:
        return bool(getattr(self.head, "frozen_encoder", False))

    def train(self, mode: bool = True) -> BertkitModel:
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()  # frozen features: no dropout in the encoder
        return self

    def apply_init(self) -> None:
        init_weights(self)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        """Encode a batch; `mlm_mask` (batch, seq bool) limits MLM logits to those positions."""
        head = self.head
        if head is None:
            return ModelOutput(*self.encoder(input_ids, attention_mask, token_type_ids, output_hidden_states))
        return head(self.encoder, input_ids, attention_mask, token_type_ids,
                    output_hidden_states=output_hidden_states, mlm_mask=mlm_mask)

    def save(self, folder: str | Path) -> Path:
        """Write config.json + model.safetensors in Hugging Face layout (atomically)."""
        return _save_model(self, folder)


def _renamed_keys(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_: Any) -> None:
    """Run folders of earlier releases name a few head tensors differently: rename them on load."""
    rename_legacy(state, prefix)


def build_head(config: EncoderConfig, head: str | None, num_labels: int | None) -> tuple[int | None, nn.Module | None]:
    """The registered head `head` for `config`, and its resolved label count."""
    if head is None:
        return num_labels, None
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {tuple(HEADS)} or None.")
    spec = HEADS[head]
    if spec.labelled:
        check_labels(num_labels, config.labels)
        num_labels = num_labels or len(config.labels) or spec.default_labels
    return num_labels, spec.build(config, num_labels)


def check_labels(num_labels: int | None, labels: Sequence[str]) -> None:
    """Refuse a label count or label list that cannot describe a head: not positive, duplicated
    names, or a count that contradicts the names."""
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1):
        raise ValueError(f"num_labels must be a positive whole number, got {num_labels!r}")
    names = list(labels)
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"labels must be distinct; repeated: {repeated}")
    if num_labels is not None and names and num_labels != len(names):
        raise ValueError(f"num_labels={num_labels} contradicts the {len(names)} labels {names}")


def build(config: EncoderConfig, head: str | None = None, num_labels: int | None = None) -> BertkitModel:
    """A randomly initialised model (BERT initialisation)."""
    return BertkitModel(config, head=head, num_labels=num_labels)


def load_model(name_or_path: str | Path, head: str | None = None, num_labels: int | None = None,
               labels: list[str] | None = None, **config_changes: Any) -> BertkitModel:
    """Load a BERT-family checkpoint (local folder or hub name) into a BertkitModel, in eval mode.

    `head="auto"` takes the head from config.json's `architectures`. Head weights the checkpoint
    lacks (fine-tuning a pre-trained encoder) are freshly initialised; everything else must match.
    """
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
        num_labels = checkpoint_num_labels(state, config.table, head)
    model = BertkitModel(config, head=head, num_labels=num_labels)
    load_state(model, state)
    return model.eval()  # like a freshly loaded reference model; training switches to train()
