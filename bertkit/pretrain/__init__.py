"""Pre-training data: vocabularies, corpus shards and MLM masking."""

from bertkit.pretrain.corpus import prepare_corpus
from bertkit.pretrain.documents import find_files, read_documents, split_sentences
from bertkit.pretrain.masking import MLMCollator, mask_tokens, word_starts_for
from bertkit.pretrain.shards import Manifest, PretrainDataset
from bertkit.pretrain.vocab import train_vocab

__all__ = [
    "MLMCollator", "Manifest", "PretrainDataset", "find_files", "mask_tokens", "prepare_corpus",
    "read_documents", "split_sentences", "train_vocab", "word_starts_for",
]
