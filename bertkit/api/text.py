"""ktrain's `text` module: preprocessors, data loaders, models and embeddings for text tasks."""

from bertkit.api.embedding import TransformerEmbedding
from bertkit.api.ner import (
    entities_from_array,
    entities_from_conll2003,
    entities_from_txt,
    sequence_tagger,
)
from bertkit.api.squad import qa_from_squad
from bertkit.api.texts import (
    text_classifier,
    texts_from_array,
    texts_from_csv,
    texts_from_df,
    texts_from_folder,
)
from bertkit.api.transformer import Transformer

__all__ = [
    "Transformer", "TransformerEmbedding", "entities_from_array", "entities_from_conll2003", "entities_from_txt",
    "qa_from_squad", "sequence_tagger", "text_classifier", "texts_from_array", "texts_from_csv", "texts_from_df",
    "texts_from_folder",
]
