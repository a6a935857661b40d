"""Task heads and their registry: a head runs the encoder on the inputs it owns and returns logits;
the task computes the loss. Adding a head is one class here and one `HEADS` entry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ..config import EncoderConfig
from ..families import ClassifierLayout
from .dropout import Dropout
from .encoder import Encoder, activation

Head = Literal["mlm", "pretraining", "classification", "token_classification", "qa", "multiple_choice",
               "bilstm_tagger"]


@dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor  # (batch, seq, hidden); (batch, 1, hidden) from sequence-level heads
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + every layer
    pooled_output: torch.Tensor | None = None  # (batch, hidden)
    logits: torch.Tensor | None = None  # the head's output
    pair_logits: torch.Tensor | None = None  # (batch, 2): NSP/SOP, pre-training only


class TaskHead(nn.Module, ABC):
    """A head that turns the encoder's outputs on (batch, seq) inputs into logits.

    Any head is an nn.Module whose `forward(encoder, input_ids, attention_mask, token_type_ids, *,
    output_hidden_states, mlm_mask)` returns a `ModelOutput`; it may declare `slot` (the model
    attribute that holds it, hence the prefix of its state-dict keys; default "classifier"),
    `uses_pooler`, `frozen_encoder` (the encoder only supplies features: no gradient, no dropout)
    and `first_only` (the head reads the first position alone, so the encoder's last layer computes
    no other; the output's last hidden state is then (batch, 1, hidden)).
    """

    slot: ClassVar[str] = "classifier"
    frozen_encoder: ClassVar[bool] = False
    first_only: ClassVar[bool] = False
    uses_pooler: bool = False

    def forward(self, encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        hidden, states, pooled = encoder(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                         first_only=self.first_only)
        return ModelOutput(hidden, states, pooled, logits=self.logits(hidden, pooled))

    @abstractmethod
    def logits(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        """(batch, seq, hidden) states and the pooled (batch, hidden) vector -> the head's logits."""


class PairClassifier(nn.Module):
    """Next-sentence (BERT) or sentence-order (ALBERT) prediction from the pooled output."""

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class MaskedLM(nn.Module):
    """transform -> activation -> layer norm -> scores against the (tied) input word embeddings;
    with `pair`, pre-training's NSP/SOP logits from the pooled output as well."""

    slot: ClassVar[str] = "mlm"
    frozen_encoder: ClassVar[bool] = False

    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, act: str, eps: float,
                 pair: PairClassifier | None = None) -> None:
        super().__init__()
        self.transform = nn.Linear(hidden_size, embedding_size)
        self.act = activation(act)
        self.norm = nn.LayerNorm(embedding_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.pair = pair
        self.uses_pooler = pair is not None

    def forward(self, encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        """`mlm_mask` (batch, seq bool) limits the logits to those positions."""
        hidden, states, pooled = encoder(input_ids, attention_mask, token_type_ids, output_hidden_states)
        selected = hidden[mlm_mask] if mlm_mask is not None else hidden  # (n_masked, hidden)
        # The decoder weight is the embedding matrix itself, passed in, so the tie can never break.
        out = ModelOutput(hidden, states, pooled, logits=self.scores(selected, encoder.embeddings.word.weight))
        if self.pair is not None:
            out.pair_logits = self.pair(pooled)
        return out

    def scores(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.norm(self.act(self.transform(hidden))), word_embeddings, self.bias)


class SequenceClassifier(TaskHead):
    """Sentence-level logits, in the shape each family's checkpoints use (`ClassifierLayout`).

    BERT/ALBERT: pooled -> dropout -> out. RoBERTa: first token -> dropout -> dense -> tanh ->
    dropout -> out. DistilBERT: first token -> dense -> ReLU -> dropout -> out. Each reads the
    first position alone (a causal encoder's pooler, the last real one), so the encoder computes no
    other in its last layer (`first_only`).
    """

    first_only: ClassVar[bool] = True

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, layout: ClassifierLayout) -> None:
        super().__init__()
        self.uses_pooler = layout.source == "pooled"
        self.dense = nn.Linear(hidden_size, hidden_size) if layout.dense_act else None
        self.act = activation(layout.dense_act) if layout.dense_act else None
        self.dropout_before_dense = layout.dropout_before_dense
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def logits(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        x = pooled if self.uses_pooler else hidden[:, 0]
        if self.dense is not None:
            if self.dropout_before_dense:
                x = self.dropout(x)
            x = self.act(self.dense(x))
        return self.out(self.dropout(x))


class MultipleChoice(SequenceClassifier):
    """One score per choice: inputs are (batch, choices, seq), encoded as batch * choices rows."""

    def forward(self, encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        choices = input_ids.shape[1]  # (batch, choices, seq) -> (batch * choices, seq)
        flat = (t.flatten(0, 1) if t is not None else None for t in (input_ids, attention_mask, token_type_ids))
        out = super().forward(encoder, *flat, output_hidden_states=output_hidden_states)
        out.logits = out.logits.view(-1, choices)  # (batch, choices)
        return out


class TokenClassifier(TaskHead):
    """Per-token logits: one per tag (named entities)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def logits(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.dropout(hidden))


class SpanHead(TaskHead):
    """Extractive QA: a start and an end score per token, (batch, seq, 2)."""

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(hidden_size, 2)

    def logits(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.dropout(hidden))


class BiLstmTagger(nn.Module):
    """The BERT paper's feature-based tagger: the top four layers of a frozen encoder, concatenated,
    into a two-layer BiLSTM as wide as the encoder (768 units for BERT-base, as in the paper), then
    a linear layer to the tags. bertkit's own head: `transformers` has no class for it."""

    LAYERS, DEPTH = 4, 2
    slot: ClassVar[str] = "classifier"
    frozen_encoder: ClassVar[bool] = True
    uses_pooler = False

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, encoder_layers: int) -> None:
        super().__init__()
        self.layers = min(self.LAYERS, encoder_layers)  # fewer in encoders of fewer layers
        self.lstm = nn.LSTM(self.layers * hidden_size, hidden_size, num_layers=self.DEPTH, batch_first=True,
                            bidirectional=True, dropout=dropout)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(2 * hidden_size, num_labels)

    def forward(self, encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                mlm_mask: torch.Tensor | None = None) -> ModelOutput:
        with torch.no_grad():  # a frozen encoder: features, no graph
            hidden, states, pooled = encoder(input_ids, attention_mask, token_type_ids, True)
        out = ModelOutput(hidden, states if output_hidden_states else None, pooled)
        out.logits = self.tag(states, attention_mask)
        return out

    def tag(self, states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None) -> torch.Tensor:
        features = torch.cat(states[-self.layers :], dim=-1)  # (batch, seq, 4 * hidden)
        seq = features.shape[1]
        lengths = (attention_mask.sum(-1) if attention_mask is not None
                   else torch.full(features.shape[:1], seq)).cpu()
        # packed, so the backward direction starts at each sentence's last token, not at padding
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=seq)
        return self.out(self.dropout(hidden))  # (batch, seq, num_labels)


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class HeadSpec:
    """How to build a head by name: `build(config, num_labels)`; `architecture`: the suffix of its
    Hugging Face class name ("ForSequenceClassification"); `labelled`: sized by num_labels or the
    config's labels, `default_labels` when neither is given."""

    build: Callable[[EncoderConfig, int | None], nn.Module]
    architecture: str
    labelled: bool = False
    default_labels: int = 2


def _masked_lm(config: EncoderConfig, pair: bool) -> MaskedLM:
    table = config.table
    pair_head = None
    if pair and table.pair_head is not None:
        pair_head = PairClassifier(config.hidden_size, config.head_dropout if table.pair_dropout else 0.0)
    return MaskedLM(config.hidden_size, config.embedding_size, config.vocab_size, config.activation,
                    config.layer_norm_eps, pair=pair_head)


HEADS: dict[str, HeadSpec] = {
    "mlm": HeadSpec(lambda c, n: _masked_lm(c, pair=False), "ForMaskedLM"),
    "pretraining": HeadSpec(lambda c, n: _masked_lm(c, pair=True), "ForPreTraining"),
    "classification": HeadSpec(
        lambda c, n: SequenceClassifier(c.hidden_size, n, c.head_dropout, c.table.classifier),
        "ForSequenceClassification", labelled=True),
    "token_classification": HeadSpec(
        lambda c, n: TokenClassifier(c.hidden_size, n, c.head_dropout),
        "ForTokenClassification", labelled=True),
    "qa": HeadSpec(lambda c, n: SpanHead(c.hidden_size, c.hidden_dropout if c.table.qa_dropout else 0.0),
                   "ForQuestionAnswering"),
    "multiple_choice": HeadSpec(
        lambda c, n: MultipleChoice(c.hidden_size, 1, c.head_dropout, c.table.choice_classifier),
        "ForMultipleChoice", labelled=True, default_labels=1),
    "bilstm_tagger": HeadSpec(
        lambda c, n: BiLstmTagger(c.hidden_size, n, c.head_dropout, c.num_layers),
        "BiLstmTagger", labelled=True),
}
