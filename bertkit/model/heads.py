"""Task heads: each reads the encoder's outputs and returns logits; the task computes the loss."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .encoder import activation

Head = Literal["mlm", "pretraining", "classification", "token_classification", "qa", "multiple_choice",
               "bilstm_tagger"]
HEADS: tuple[str, ...] = ("mlm", "pretraining", "classification", "token_classification", "qa",
                          "multiple_choice", "bilstm_tagger")


class MaskedLM(nn.Module):
    """transform -> activation -> layer norm -> scores against the (tied) input word embeddings."""

    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, act: str, eps: float) -> None:
        super().__init__()
        self.transform = nn.Linear(hidden_size, embedding_size)
        self.act = activation(act)
        self.norm = nn.LayerNorm(embedding_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        # The decoder weight is the embedding matrix itself, passed in, so the tie can never break.
        return nn.functional.linear(self.norm(self.act(self.transform(hidden))), word_embeddings, self.bias)


class PairClassifier(nn.Module):
    """Next-sentence (BERT) or sentence-order (ALBERT) prediction from the pooled output."""

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class SequenceClassifier(nn.Module):
    """Sentence-level logits, in the shape each family's checkpoints use.

    BERT/ALBERT: pooled -> dropout -> out. RoBERTa: first token -> dropout -> dense -> tanh ->
    dropout -> out. DistilBERT: first token -> dense -> ReLU -> dropout -> out.
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, *,
                 source: Literal["pooled", "first"] = "pooled", dense_act: str | None = None,
                 dropout_before_dense: bool = False) -> None:
        super().__init__()
        self.source = source
        self.dense = nn.Linear(hidden_size, hidden_size) if dense_act else None
        self.act = activation(dense_act) if dense_act else None
        self.dropout_before_dense = dropout_before_dense
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        x = pooled if self.source == "pooled" else hidden[:, 0]
        if self.dense is not None:
            if self.dropout_before_dense:
                x = self.dropout(x)
            x = self.act(self.dense(x))
        return self.out(self.dropout(x))


class TokenClassifier(nn.Module):
    """Per-token logits: named entities (num_labels tags) or QA spans (2: start and end)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.dropout(hidden))


class BiLstmTagger(nn.Module):
    """The BERT paper's feature-based tagger: the top four layers of a frozen encoder, concatenated,
    into a two-layer BiLSTM as wide as the encoder (768 units for BERT-base, as in the paper), then
    a linear layer to the tags. bertkit's own head: `transformers` has no class for it."""

    LAYERS, DEPTH = 4, 2

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, encoder_layers: int) -> None:
        super().__init__()
        self.layers = min(self.LAYERS, encoder_layers)  # fewer in encoders of fewer layers
        self.lstm = nn.LSTM(self.layers * hidden_size, hidden_size, num_layers=self.DEPTH, batch_first=True,
                            bidirectional=True, dropout=dropout)  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden_size, num_labels)

    def forward(self, states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None) -> torch.Tensor:
        features = torch.cat(states[-self.layers :], dim=-1)  # (batch, seq, 4 * hidden)
        seq = features.shape[1]
        lengths = (attention_mask.sum(-1) if attention_mask is not None
                   else torch.full(features.shape[:1], seq)).cpu()  # fmt: skip
        # packed, so the backward direction starts at each sentence's last token, not at padding
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=seq)
        return self.out(self.dropout(hidden))  # (batch, seq, num_labels)


def needs_pooler(family: str, head: str | None) -> bool:
    """Whether the family's checkpoint for this head carries (and uses) a pooler."""
    if family == "distilbert":
        return False
    if head is None:
        return True
    if head == "classification":
        return family != "roberta"
    return head in ("multiple_choice", "pretraining") and not (family == "roberta" and head == "pretraining")


def sequence_classifier(family: str, hidden_size: int, num_labels: int, dropout: float) -> SequenceClassifier:
    """The classifier shape a family's checkpoints use for sequence classification."""
    if family == "roberta":
        return SequenceClassifier(hidden_size, num_labels, dropout, source="first", dense_act="tanh",
                                  dropout_before_dense=True)
    if family == "distilbert":
        return SequenceClassifier(hidden_size, num_labels, dropout, source="first", dense_act="relu")
    return SequenceClassifier(hidden_size, num_labels, dropout, source="pooled")
