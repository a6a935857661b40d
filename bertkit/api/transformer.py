"""`Transformer`: the ktrain-style preprocessor of texts and labels for a classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bertkit.api.preprocessor import Preprocessor
from bertkit.data.readers import to_list
from bertkit.model import BertkitModel
from bertkit.tasks.base import TaskData
from bertkit.tasks.classification import ClassificationTask, LongTextPolicy, TaskKind

__all__ = ["Transformer"]


class Transformer(Preprocessor):
    """Tokenizer + model name + a `ClassificationTask`: turns raw texts and labels into training data.

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
        labels = [str(c) for c in to_list(classes)] if classes is not None else []
        settings = ClassificationTask(kind=task, labels=labels, maxlen=int(maxlen), long_text=long_text, stride=stride,
                                      thresholds=list(thresholds) if thresholds is not None else None)
        super().__init__(model_name, settings, batch_size)

    def preprocess_train(self, texts: Any, labels: Any, pairs: Any = None) -> TaskData:  # type: ignore[override]
        """Validate and tokenise training examples (fixes the task and classes if not yet known).

        `texts`: list, NumPy array or pandas Series of strings, or of (text, second text) pairs;
        `pairs`: the second texts, as an alternative to pairs inside `texts`. `labels`: class
        names or indices (multiclass), lists of names or 0/1 rows (multilabel), numbers (regression).
        """
        return super().preprocess_train(_examples(texts, pairs), _labels(labels))

    def preprocess_test(self, texts: Any, labels: Any = None, pairs: Any = None) -> TaskData:  # type: ignore[override]
        """Validate and tokenise validation/test examples; labels are optional (prediction only)."""
        return super().preprocess_test(_examples(texts, pairs), _labels(labels) if labels is not None else None)

    def get_classifier(self, seed: int | None = 42) -> BertkitModel:
        """The pre-trained encoder with a fresh classification head sized for the task.

        The head is initialised from `seed` (None: the global RNG), so runs are repeatable.
        """
        return self.get_model(seed)


def _labels(labels: Any) -> list[Any]:
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        return [row for row in labels.tolist()]
    return to_list(labels)


def _examples(texts: Any, pairs: Any) -> list[Any]:
    """Texts, or (text, second text) tuples from `texts` of pairs or from separate `pairs`."""
    if isinstance(texts, str):
        raise ValueError("expected a list of texts, got a single string; wrap it in a list")
    items = to_list(texts)
    if pairs is not None:
        seconds = to_list(pairs)
        if len(seconds) != len(items):
            raise ValueError(f"got {len(items)} texts but {len(seconds)} second texts of pairs")
        return list(zip(items, seconds, strict=True))
    if items and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in items):
        return [(x[0], x[1]) for x in items]
    return items
