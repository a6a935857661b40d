"""Encoder layers as features: sentence vectors (mean / first-token / pooler) from chosen layers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..model import BertkitModel, load_model
from ..tokenizer import Tokenizer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
Pooling = Literal["mean", "first", "pooler"]


class FeatureExtractor:
    """Turn texts into fixed-size vectors with a pre-trained encoder.

    `layers` picks hidden states (-1 is the last layer; several are averaged), `pooling` reduces
    tokens to one vector: "mean" over real tokens (sentence-transformers' recipe for MiniLM),
    "first" ([CLS]/<s>), or "pooler" (BERT's tanh pooler).
    """

    def __init__(self, model: str | Path | BertkitModel = DEFAULT_MODEL, tokenizer: Tokenizer | None = None, *,
                 pooling: Pooling = "mean", layers: Sequence[int] = (-1,), normalize: bool = True,
                 maxlen: int = 256, batch_size: int = 32) -> None:
        if pooling not in ("mean", "first", "pooler"):
            raise ValueError(f"pooling must be 'mean', 'first' or 'pooler', got {pooling!r}.")
        self.model = load_model(model) if isinstance(model, str | Path) else model
        self.tokenizer = tokenizer or Tokenizer.from_pretrained(model)
        if pooling == "pooler" and self.model.encoder.pooler is None:
            raise ValueError("This model has no pooler; use pooling='mean' or 'first'.")
        self.pooling, self.layers, self.normalize = pooling, tuple(layers), normalize
        self.maxlen, self.batch_size = maxlen, batch_size

    @torch.inference_mode()
    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        """(n_texts, hidden) float32 vectors; unit length when `normalize`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.model.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        vectors = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in chosen], max_length=self.maxlen, padding=True,
                                   return_tensors="pt")
            vectors[chosen] = self._pool(batch).numpy()
        return vectors

    def _pool(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                         output_hidden_states=self.layers != (-1,))
        if self.pooling == "pooler":
            vectors = out.pooled_output
        else:
            states = out.hidden_states or (out.last_hidden_state,)
            hidden = torch.stack([states[i] for i in self.layers]).mean(0) if out.hidden_states else states[0]
            if self.pooling == "first":
                vectors = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
                vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(vectors, dim=-1) if self.normalize else vectors


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


def _encode_command(args: argparse.Namespace) -> int:
    texts = list(args.texts)
    if args.file:
        texts += [line.strip() for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts and not sys.stdin.isatty():
        texts = [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        raise ValueError("No texts given: pass them as arguments, with --file, or on standard input.")
    extractor = FeatureExtractor(args.model, pooling=args.pooling, layers=args.layers, maxlen=args.maxlen,
                                 batch_size=args.batch_size)
    vectors = extractor.encode(texts)
    if args.out:
        np.save(args.out, vectors)
        print(json.dumps({"texts": len(texts), "dim": int(vectors.shape[1]), "out": str(args.out)}))
    else:
        print(similarity_table(texts, vectors))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("encode", help="encode texts into sentence vectors; print their similarities")
    p.add_argument("texts", nargs="*", help="texts to encode (else --file or standard input)")
    p.add_argument("--file", help="a text file, one text per line")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or folder (default: {DEFAULT_MODEL})")
    p.add_argument("--pooling", default="mean", choices=["mean", "first", "pooler"])
    p.add_argument("--layers", type=int, nargs="+", default=[-1], help="hidden layers to average (-1: last)")
    p.add_argument("--maxlen", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", help="save the vectors as a .npy file instead of printing similarities")
    p.set_defaults(func=_encode_command)
