"""Two small tasks on the Task interface for the distillation tests — one label per text, one tag
per token — and the training of tiny teachers on generated data."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from finetune_helpers import _WORDS, EMOTIONS

from bertkit.data.batching import pad_collate
from bertkit.tasks.base import TaskData, model_inputs
from bertkit.tasks.inference import forward_features
from bertkit.train import TrainConfig, fit

EMOTION_WORDS = {w for words in _WORDS.values() for w in words}


@dataclass
class TextLabels:
    """One class per text (cross-entropy)."""

    name: ClassVar[str] = "text_labels"
    head: ClassVar[str] = "classification"
    classes: tuple[str, ...] = tuple(EMOTIONS)
    maxlen: int = 32

    @property
    def labels(self) -> list[str]:
        return list(self.classes)

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def featurize(self, tokenizer: Any, examples: Sequence[str], targets: Sequence[str] | None = None, *,
                  batch_size: int = 32) -> TaskData:
        enc = tokenizer(list(examples), max_length=self.maxlen, truncation=True)
        features = [{k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
                    for i in range(len(examples))]
        if targets is not None:
            for f, y in zip(features, targets, strict=True):
                f["label"] = self.classes.index(y)
        return TaskData(self, features, list(range(len(examples))), list(examples),
                        None if targets is None else list(targets), tokenizer.pad_id, batch_size)

    def loss_fn(self, train_data: TaskData | None = None, **options: Any):
        def loss(model, batch):
            logits = model(**model_inputs(batch)).logits
            return F.cross_entropy(logits, batch["label"]), {}

        return loss

    def accuracy(self, outputs: list[np.ndarray], data: TaskData) -> float:
        predicted = [self.classes[int(o.argmax())] for o in outputs]
        return float(np.mean([p == t for p, t in zip(predicted, data.targets, strict=True)]))


@dataclass
class WordTags:
    """One tag per token: 1 on emotion words, 0 elsewhere (-100 on special tokens)."""

    name: ClassVar[str] = "word_tags"
    head: ClassVar[str] = "token_classification"
    maxlen: int = 32

    @property
    def labels(self) -> list[str]:
        return ["O", "EMO"]

    @property
    def num_outputs(self) -> int:
        return 2

    def featurize(self, tokenizer: Any, examples: Sequence[str], targets: Sequence[Any] | None = None, *,
                  batch_size: int = 32) -> TaskData:
        enc = tokenizer(list(examples), max_length=self.maxlen, truncation=True)
        features = []
        for i in range(len(examples)):
            f = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
            if targets is not None:
                tokens = tokenizer.convert_ids_to_tokens(f["input_ids"])
                f["labels"] = [-100 if t in ("[CLS]", "[SEP]") else int(t in EMOTION_WORDS) for t in tokens]
            features.append(f)
        return TaskData(self, features, list(range(len(examples))), list(examples),
                        None if targets is None else list(targets), tokenizer.pad_id, batch_size)

    def loss_fn(self, train_data: TaskData | None = None, **options: Any):
        def loss(model, batch):
            logits = model(**model_inputs(batch)).logits
            return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten()), {}

        return loss

    def accuracy(self, outputs: list[np.ndarray], data: TaskData) -> float:
        right = total = 0
        for o, f in zip(outputs, data.features, strict=True):
            labels = np.asarray(f["labels"])
            keep = labels != -100
            right += int((o.argmax(-1)[keep] == labels[keep]).sum())
            total += int(keep.sum())
        return right / total


def train(model: torch.nn.Module, data: TaskData, *, epochs: int, lr: float = 3e-3, seed: int = 0) -> None:
    """`fit` with the data's own task loss, as the tests' one training recipe."""
    config = TrainConfig(lr=lr, epochs=epochs, batch_size=16, warmup=0.1, seed=seed, progress=False,
                         log_every=1000)
    fit(model, data, data.task.loss_fn(data), config, collate=functools.partial(pad_collate, pad_id=data.pad_id),
        lengths=data.lengths)


def accuracy(model: torch.nn.Module, data: TaskData) -> float:
    return data.task.accuracy(forward_features(model, data.features, pad_id=data.pad_id), data)
