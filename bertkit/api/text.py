"""ktrain-style text preprocessing: `text.Transformer` tokenises and validates examples for a classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bertkit.data.readers import to_list
from bertkit.model import BertkitModel, load_model
from bertkit.tasks.classification import (
    ClassificationData,
    LongTextPolicy,
    TaskKind,
    TaskSettings,
    check_texts,
    check_trainable,
    encode_labels,
    featurize,
)
from bertkit.tokenizer import Tokenizer

__all__ = ["Transformer"]


class Transformer:
    """Tokenizer + model name + task settings: turns raw texts and labels into training data.

    `classes` are the label names (their order fixes the class indices). `task` is "multiclass",
    "multilabel" or "regression"; None infers it from the first labels given to
    `preprocess_train`: label lists or 0/1 rows mean multilabel, numbers without `classes` mean
    regression. `long_text` ("truncate", "head_tail", "sliding_window") and `stride` choose what
    happens to texts longer than `maxlen` tokens (see `bertkit.tasks.classification`).
    """

    def __init__(
        self,
        model_name: str,
        maxlen: int = 128,
        classes: Sequence[str] | None = None,
        batch_size: int = 32,
        *,
        task: TaskKind | None = None,
        long_text: LongTextPolicy = "truncate",
        stride: int | None = None,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        self.model_name = str(model_name)
        self.tokenizer = Tokenizer.from_pretrained(model_name)
        self.maxlen = int(maxlen)
        self.batch_size = int(batch_size)
        self.classes = [str(c) for c in to_list(classes)] if classes is not None else []
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes}")
        self._task = task
        self._long_text, self._stride = long_text, stride
        self._thresholds = list(thresholds) if thresholds is not None else None
        self.settings: TaskSettings | None = self._make_settings(task) if task else None

    def _make_settings(self, kind: TaskKind) -> TaskSettings:
        return TaskSettings(kind=kind, labels=list(self.classes), maxlen=self.maxlen,
                            long_text=self._long_text, stride=self._stride,
                            thresholds=self._thresholds)  # fmt: skip

    def get_classes(self) -> list[str]:
        return list(self.classes)

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def preprocess_train(self, texts: Any, labels: Any, pairs: Any = None) -> ClassificationData:
        """Validate and tokenise training examples (fixes the task and classes if not yet known).

        `texts`: list, NumPy array or pandas Series of strings, or of (text, second text) pairs;
        `pairs`: the second texts, as an alternative to pairs inside `texts`. `labels`: class
        names or indices (multiclass), lists of names or 0/1 rows (multilabel), numbers (regression).
        """
        labels_list = self._labels(labels)
        if self.settings is None:
            self._infer_task(labels_list)
        return check_trainable(self._preprocess(texts, labels_list, pairs))

    def preprocess_test(self, texts: Any, labels: Any = None, pairs: Any = None) -> ClassificationData:
        """Validate and tokenise validation/test examples; labels are optional (prediction only)."""
        labels_list = self._labels(labels) if labels is not None else None
        return self._preprocess(texts, labels_list, pairs)

    def get_classifier(self, seed: int | None = 42) -> BertkitModel:
        """The pre-trained encoder with a fresh classification head sized for the task.

        The head is initialised from `seed` (None: the global RNG), so runs are repeatable.
        """
        settings = self._require_settings()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = load_model(self.model_name, head="classification",
                               num_labels=settings.num_outputs, labels=settings.labels)  # fmt: skip
        limit = model.config.max_positions - model.config.position_offset
        if settings.maxlen > limit:
            raise ValueError(f"maxlen={settings.maxlen} exceeds the {limit} positions of {self.model_name}; "
                             f"use maxlen <= {limit} (and long_text='sliding_window' for longer texts)")  # fmt: skip
        return model

    def _require_settings(self) -> TaskSettings:
        if self.settings is None and self.classes:
            self.settings = self._make_settings("multiclass")
        if self.settings is None:
            raise ValueError("the task is not known yet: call preprocess_train first or pass classes=...")
        return self.settings

    @staticmethod
    def _labels(labels: Any) -> list[Any]:
        if isinstance(labels, np.ndarray) and labels.ndim == 2:
            return [row for row in labels.tolist()]
        return to_list(labels)

    def _infer_task(self, labels: list[Any]) -> None:
        if not labels:
            raise ValueError("no labels given: pass one label per text")
        first = labels[0]
        if isinstance(first, (list, tuple, np.ndarray)):
            kind: TaskKind = "multilabel"
            if not self.classes:
                raise ValueError("multilabel data needs classes=[...] (the label names, in column order)")
        elif not self.classes and all(isinstance(v, float) for v in labels):
            kind = "regression"
        else:
            kind = "multiclass"
            if not self.classes:
                self.classes = _classes_from(labels)
        self.settings = self._make_settings(kind)

    def _preprocess(self, texts: Any, labels: list[Any] | None, pairs: Any) -> ClassificationData:
        settings = self._require_settings()
        texts_list, pairs_list = _split_pairs(texts, pairs)
        check_texts(texts_list, pairs_list)
        targets = None
        if labels is not None:
            if len(labels) != len(texts_list):
                raise ValueError(f"got {len(texts_list)} texts but {len(labels)} labels; pass one label per text")
            targets = encode_labels(labels, settings)
        features, example_ids = featurize(self.tokenizer, texts_list, pairs_list, settings)
        if targets is not None:
            for feature, example in zip(features, example_ids, strict=True):
                feature["label"] = targets[example]
        return ClassificationData(features, example_ids, texts_list, pairs_list, targets, settings,
                                  pad_id=self.tokenizer.pad_id or 0, batch_size=self.batch_size)  # fmt: skip


def _classes_from(labels: list[Any]) -> list[str]:
    """Class names when none were given: sorted label strings, or "0".."k" for integer labels."""
    if all(isinstance(v, str) for v in labels):
        return sorted(set(labels))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return [str(i) for i in range(max(labels) + 1)]
    raise ValueError("labels mix names and numbers; pass classes=[...] to say which is which")


def _split_pairs(texts: Any, pairs: Any) -> tuple[list[Any], list[Any] | None]:
    """Accept `texts` of (a, b) pairs (list or (n, 2) array) or separate `pairs`."""
    if isinstance(texts, str):
        raise ValueError("expected a list of texts, got a single string; wrap it in a list")
    items = to_list(texts)
    if pairs is not None:
        return items, to_list(pairs)
    if items and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in items):
        return [x[0] for x in items], [x[1] for x in items]
    return items, None
