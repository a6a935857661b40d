"""Encoder layers as features (the paper's feature-based approach): sentence or token vectors
from chosen layers, pooled by mean, first token ([CLS]) or BERT's pooler."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from ..model import BertkitModel, load_model
from ..tokenizer import Tokenizer
from .inference import batched_outputs

DEFAULT_MODEL = "all-MiniLM-L6-v2"
Pooling = Literal["mean", "first", "cls", "pooler"]
LayerChoice = Literal["last", "second_to_last", "sum_last_four", "concat_last_four", "all"]
LAYER_CHOICES: tuple[str, ...] = get_args(LayerChoice)
POOLINGS: tuple[str, ...] = get_args(Pooling)


class FeatureExtractor:
    """Turn texts into vectors with a pre-trained encoder.

    `layers` picks hidden states: a list of indices (-1 is the last layer; several are averaged)
    or a name — "last", "second_to_last", "sum_last_four", "concat_last_four" (4 × hidden wide,
    layers in order) or "all" (the embedding output and every layer: one more axis). `pooling`
    reduces tokens to one vector: "mean" over real tokens (sentence-transformers' recipe for
    MiniLM), "first"/"cls" ([CLS]/<s>), or "pooler" (BERT's tanh pooler, last layer only).
    """

    def __init__(self, model: str | Path | BertkitModel = DEFAULT_MODEL, tokenizer: Tokenizer | None = None, *,
                 pooling: Pooling = "mean", layers: Sequence[int] | LayerChoice = (-1,), normalize: bool = True,
                 maxlen: int = 256, batch_size: int = 32) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        if isinstance(layers, str) and layers not in LAYER_CHOICES:
            raise ValueError(f"layers must be layer indices or one of {LAYER_CHOICES}, got {layers!r}.")
        self.model = load_model(model) if isinstance(model, str | Path) else model
        self.tokenizer = tokenizer or Tokenizer.from_pretrained(model)
        if pooling == "pooler" and self.model.encoder.pooler is None:
            raise ValueError("This model has no pooler; use pooling='mean' or 'first'.")
        self.layers = layers if isinstance(layers, str) else tuple(layers)
        needed = {"second_to_last": 2, "sum_last_four": 4, "concat_last_four": 4}.get(self.layers, 0)
        if self.model.config.num_layers < needed:
            raise ValueError(f"layers={self.layers!r} needs a model of {needed} or more layers; "
                             f"this one has {self.model.config.num_layers}")
        if pooling == "pooler" and self.layers not in ((-1,), "last"):
            raise ValueError("pooling='pooler' reads the last layer only; leave layers at the default.")
        self.pooling, self.normalize = pooling, normalize
        self.maxlen, self.batch_size = maxlen, batch_size

    @property
    def dim(self) -> int:
        """Width of one vector (per layer for layers="all")."""
        hidden = self.model.config.hidden_size
        return 4 * hidden if self.layers == "concat_last_four" else hidden

    @torch.inference_mode()
    def encode(self, texts: str | Sequence[str], progress: bool = False) -> np.ndarray:
        """(n_texts, dim) float32 sentence vectors — (n_texts, layers + 1, hidden) for layers="all";
        unit length when `normalize`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        vectors: np.ndarray | None = None
        for chosen, batch, hidden, pooler in self._batches(texts, progress):
            pooled = pooler if self.pooling == "pooler" else self._pool(batch, hidden)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            if vectors is None:
                vectors = np.zeros((len(texts), *pooled.shape[1:]), dtype=np.float32)
            vectors[chosen] = pooled.float().cpu().numpy()
        return vectors if vectors is not None else np.zeros((0, self.dim), dtype=np.float32)

    @torch.inference_mode()
    def token_vectors(self, texts: str | Sequence[str], progress: bool = False) -> list[tuple[list[str], np.ndarray]]:
        """Per text: its word-piece tokens (with [CLS]/[SEP]) and their vectors, (tokens, dim) —
        (tokens, layers + 1, hidden) for layers="all". Not normalised."""
        if self.pooling == "pooler":
            raise ValueError("token vectors have no pooling; use pooling='mean' or 'first' (ignored)")
        texts = [texts] if isinstance(texts, str) else list(texts)
        out: list[tuple[list[str], np.ndarray]] = [([], np.zeros(0, dtype=np.float32))] * len(texts)
        for chosen, batch, hidden, _ in self._batches(texts, progress):
            hidden = hidden.float().cpu().numpy()
            for row, i in enumerate(chosen):
                ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
                out[i] = (self.tokenizer.convert_ids_to_tokens(ids), hidden[row, : len(ids)])
        return out

    def _batches(self, texts: list[str], progress: bool) -> Iterator[tuple[list[int], dict, torch.Tensor, torch.Tensor]]:
        """(indices, batch, chosen hidden states, pooler output) per batch of similar lengths."""
        encoded = self.tokenizer(texts, max_length=self.maxlen)
        features = [dict(zip(encoded, row, strict=True)) for row in zip(*encoded.values(), strict=True)]
        # a sequence-level head would leave only the first position of the last layer
        needs_all = self.layers not in ((-1,), "last") or getattr(self.model.head, "first_only", False)
        for chosen, batch, out in batched_outputs(self.model, features, pad_id=self.tokenizer.pad_id or 0,
                                                  batch_size=self.batch_size, output_hidden_states=needs_all,
                                                  progress="features" if progress else None):
            yield chosen, batch, self._combine(out.hidden_states or (out.last_hidden_state,)), out.pooled_output

    def _combine(self, states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One tensor from the embedding output and every layer's (`states`)."""
        if self.layers == "second_to_last":
            return states[-2]
        if self.layers == "sum_last_four":
            return torch.stack(states[-4:]).sum(0)
        if self.layers == "concat_last_four":
            return torch.cat(states[-4:], dim=-1)
        if self.layers == "all":
            return torch.stack(states, dim=2)
        layers = (-1,) if self.layers == "last" or len(states) == 1 else self.layers
        return torch.stack([states[i] for i in layers]).mean(0)

    def _pool(self, batch: dict[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
        """(batch, dim) — (batch, layers + 1, hidden) for "all" — from token vectors."""
        if self.pooling in ("first", "cls"):
            return hidden[:, 0]
        mask = batch["attention_mask"].to(hidden.dtype)  # (batch, seq)
        mask = mask.view(*mask.shape, *([1] * (hidden.ndim - 2)))
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def similarity_table(texts: Sequence[str], vectors: np.ndarray) -> str:
    """Cosine similarities of every pair of texts, as a small text table."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    sims = unit @ unit.T
    labels = [f"[{i}]" for i in range(len(texts))]
    lines = [f"{i:>4} {t}" for i, t in zip(labels, texts, strict=True)]
    lines.append("      " + " ".join(f"{label:>6}" for label in labels))
    for label, row in zip(labels, sims, strict=True):
        lines.append(f"{label:>5} " + " ".join(f"{value:6.3f}" for value in row))
    return "\n".join(lines)
