"""`Preprocessor`: a model name, its tokenizer and a task — turns examples into training data and
builds the model with the task's head. The ktrain-style preprocessors of every task are one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bertkit.model import BertkitModel, load_model
from bertkit.tasks.base import Task, TaskData
from bertkit.tokenizer import Tokenizer


class Preprocessor:
    """Tokenizer + task for `model_name`; `preprocess_train` fixes what the training data decides."""

    def __init__(self, model_name: str, task: Task, batch_size: int = 32,
                 tokenizer: Tokenizer | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = str(model_name)
        self.tokenizer = tokenizer or Tokenizer.from_pretrained(model_name)
        self.task = task
        self.batch_size = int(batch_size)

    @property
    def maxlen(self) -> int:
        return self.task.maxlen

    def get_classes(self) -> list[str]:
        return list(self.task.labels)

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def preprocess_train(self, examples: Sequence[Any], targets: Sequence[Any]) -> TaskData:
        """Validate and featurise labelled training examples (fixes the label set if not given)."""
        self.task.prepare(examples, targets)
        data = self.task.featurize(self.tokenizer, examples, targets, batch_size=self.batch_size)
        if hasattr(self.task, "check_trainable"):  # e.g. a classifier refuses a single class
            self.task.check_trainable(data)
        return data

    def preprocess_test(self, examples: Sequence[Any], targets: Sequence[Any] | None = None) -> TaskData:
        """Validate and featurise validation/test examples; targets are optional (prediction only)."""
        return self.task.featurize(self.tokenizer, examples, targets, batch_size=self.batch_size)

    def get_model(self, seed: int | None = 42) -> BertkitModel:
        """The pre-trained encoder with a fresh head for the task (initialised from `seed`)."""
        return task_model(self.model_name, self.task, seed)


def task_model(model_name: str, task: Task, seed: int | None = 42) -> BertkitModel:
    """Load `model_name` with the task's head; the head's initialisation is repeatable from `seed`
    (None: the global RNG). A maxlen beyond the model's positions is a clear error."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = load_model(model_name, head=task.head, num_labels=task.num_outputs, labels=task.labels or None)
    limit = model.config.max_positions - model.config.position_offset
    if task.maxlen > limit:
        raise ValueError(f"maxlen={task.maxlen} exceeds the {limit} positions of {model_name}; "
                         f"use maxlen <= {limit} (and a sliding window for longer texts)")
    return model
