"""ktrain's `text.TransformerEmbedding`: token or sentence vectors from chosen encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bertkit.data.batching import pad_vectors
from bertkit.model import load_model
from bertkit.tasks.features import FeatureExtractor
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

    def embed(self, texts: str | Sequence[str], word_level: bool = True, max_length: int = 512) -> np.ndarray:
        """word_level: (texts, tokens, dim) with the [CLS]/[SEP] positions, zero past each text's end
        (tokens = the longest text's count); else (texts, dim), the mean over each text's tokens."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = min(max_length, self.model.config.max_positions - self.model.config.position_offset)
        # every hidden state, so that the chosen ones can be concatenated rather than averaged
        extractor = FeatureExtractor(self.model, self.tokenizer, pooling="mean", layers="all", normalize=False,
                                     maxlen=limit, batch_size=self.batch_size)
        if not word_level:
            states = extractor.encode(texts)  # (texts, layers + 1, hidden)
            return states[:, self.layers].reshape(len(texts), -1)
        tokens = [vectors[:, self.layers].reshape(len(vectors), -1) for _, vectors in extractor.token_vectors(texts)]
        return pad_vectors(tokens, max(len(v) for v in tokens))
