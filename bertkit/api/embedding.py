"""ktrain's `text.TransformerEmbedding`: token or sentence vectors from chosen encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bertkit.model import load_model
from bertkit.tokenizer import Tokenizer


class TransformerEmbedding:
    """`TransformerEmbedding(model_name, layers=[-2]).embed(texts)`: the hidden states of `layers`
    (-1 the last layer, -2 the one before; several are concatenated, as ktrain does)."""

    def __init__(self, model_name: str, layers: Sequence[int] = (-2,), batch_size: int = 32) -> None:
        self.model = load_model(model_name)
        self.tokenizer = Tokenizer.from_pretrained(model_name)
        depth = self.model.config.num_layers + 1  # the embeddings count as layer 0
        for layer in layers:
            if not -depth <= layer < depth:
                raise ValueError(f"layer {layer} does not exist: {model_name} has hidden states -{depth}..{depth - 1}")
        self.layers = list(layers)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, texts: str | Sequence[str], word_level: bool = True, max_length: int = 512) -> np.ndarray:
        """word_level: (texts, tokens, dim) with the [CLS]/[SEP] positions, zero past each text's end
        (tokens = the longest text's count); else (texts, dim), the mean over each text's tokens."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = min(max_length, self.model.config.max_positions - self.model.config.position_offset)
        batches = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], max_length=limit, padding=True,
                                   return_tensors="pt")  # fmt: skip
            out = self.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                             output_hidden_states=True)  # fmt: skip
            hidden = torch.cat([out.hidden_states[i] for i in self.layers], dim=-1)  # (batch, seq, dim)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            batches.append((hidden * mask).numpy() if word_level else ((hidden * mask).sum(1) / mask.sum(1)).numpy())
        if not word_level:
            return np.concatenate(batches)
        longest = max(b.shape[1] for b in batches)
        return np.concatenate([np.pad(b, ((0, 0), (0, longest - b.shape[1]), (0, 0))) for b in batches])
