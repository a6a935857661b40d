"""ktrain's `text` module: preprocessors, data loaders, models and embeddings for text tasks."""

from bertkit.api.embedding import TransformerEmbedding
from bertkit.api.texts import (
    text_classifier,
    texts_from_array,
    texts_from_csv,
    texts_from_df,
    texts_from_folder,
)
from bertkit.api.transformer import Transformer

__all__ = [
    "Transformer", "TransformerEmbedding", "text_classifier", "texts_from_array", "texts_from_csv",
    "texts_from_df", "texts_from_folder",
]
