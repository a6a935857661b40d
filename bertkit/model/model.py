"""BertkitModel: an encoder with an optional task head, and the output it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import EncoderConfig
from .encoder import Encoder, init_weights
from .heads import (
    HEADS,
    BiLstmTagger,
    MaskedLM,
    PairClassifier,
    SequenceClassifier,
    TokenClassifier,
    needs_pooler,
    sequence_classifier,
)


@dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor  # (batch, seq, hidden)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + every layer
    pooled_output: torch.Tensor | None = None  # (batch, hidden)
    logits: torch.Tensor | None = None  # the head's output
    pair_logits: torch.Tensor | None = None  # (batch, 2): NSP/SOP, pre-training only


class BertkitModel(nn.Module):
    """One encoder plus at most one task head (the pre-training head is MLM + NSP/SOP)."""

    def __init__(self, config: EncoderConfig, head: str | None = None, num_labels: int | None = None) -> None:
        super().__init__()
        if head is not None and head not in HEADS:
            raise ValueError(f"Unknown head {head!r}; choose one of {HEADS} or None.")
        self.config = config
        self.head_name = head
        self.encoder = Encoder(config, pooler=needs_pooler(config.family, head))
        self.mlm = self.pair = self.classifier = None
        if head in ("mlm", "pretraining"):
            self.mlm = MaskedLM(config.hidden_size, config.embedding_size, config.vocab_size,
                                config.activation, config.layer_norm_eps)
        if head == "pretraining" and config.family in ("bert", "albert"):
            self.pair = PairClassifier(config.hidden_size, config.head_dropout if config.family == "albert" else 0.0)
        if head in ("classification", "token_classification", "multiple_choice", "bilstm_tagger"):
            check_labels(num_labels, config.labels)
            num_labels = num_labels or len(config.labels) or (1 if head == "multiple_choice" else 2)
        self.num_labels = num_labels
        dropout = config.head_dropout
        if head == "classification":
            self.classifier = sequence_classifier(config.family, config.hidden_size, num_labels, dropout)
        elif head == "multiple_choice":
            self.classifier = (
                sequence_classifier("distilbert", config.hidden_size, 1, dropout)
                if config.family == "distilbert" else SequenceClassifier(config.hidden_size, 1, dropout)
            )
        elif head == "token_classification":
            self.classifier = TokenClassifier(config.hidden_size, num_labels, dropout)
        elif head == "qa":
            qa_dropout = config.hidden_dropout if config.family == "distilbert" else 0.0
            self.classifier = TokenClassifier(config.hidden_size, 2, qa_dropout)
        elif head == "bilstm_tagger":
            self.classifier = BiLstmTagger(config.hidden_size, num_labels, dropout, config.num_layers)
        self.apply_init()
        if head == "bilstm_tagger":
            self.encoder.requires_grad_(False)  # the feature-based approach: only the tagger learns

    def train(self, mode: bool = True) -> BertkitModel:
        super().train(mode)
        if self.head_name == "bilstm_tagger":
            self.encoder.eval()  # frozen features: no dropout in the encoder
        return self

    def apply_init(self) -> None:
        init_weights(self)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        """Encode a batch; `mlm_mask` (batch, seq bool) limits MLM logits to those positions."""
        choices = None
        if self.head_name == "multiple_choice":
            choices = input_ids.shape[1]  # (batch, choices, seq) -> (batch * choices, seq)
            input_ids, attention_mask, token_type_ids = (
                t.flatten(0, 1) if t is not None else None for t in (input_ids, attention_mask, token_type_ids)
            )
        if self.head_name == "bilstm_tagger":
            with torch.no_grad():  # a frozen encoder: features, no graph
                hidden, states, pooled = self.encoder(input_ids, attention_mask, token_type_ids, True)
            out = ModelOutput(hidden, states if output_hidden_states else None, pooled)
            out.logits = self.classifier(states, attention_mask)
            return out
        hidden, states, pooled = self.encoder(input_ids, attention_mask, token_type_ids, output_hidden_states)
        out = ModelOutput(hidden, states, pooled)
        if self.mlm is not None:
            selected = hidden[mlm_mask] if mlm_mask is not None else hidden  # (n_masked, hidden)
            out.logits = self.mlm(selected, self.encoder.embeddings.word.weight)
        if self.pair is not None:
            out.pair_logits = self.pair(pooled)
        if self.classifier is not None:
            out.logits = self.classifier(hidden, pooled)
            if choices is not None:
                out.logits = out.logits.view(-1, choices)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write config.json + model.safetensors in Hugging Face layout (atomically)."""
        from .checkpoint import save_model

        return save_model(self, folder)


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
