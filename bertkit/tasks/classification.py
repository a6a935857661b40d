"""Sequence classification of single texts or text pairs: the `ClassificationTask`.

Kinds: "multiclass" (softmax, cross-entropy with optional class weights), "multilabel" (sigmoid,
binary cross-entropy, one threshold per label) and "regression" (one output, mean squared error,
STS-B style). Texts longer than `maxlen` tokens follow the long-text policy:

- "truncate" (default): keep the first `maxlen` tokens (a pair trims its longer text first).
- "head_tail": keep the first quarter and the last three quarters of the token budget, dropping
  the middle (Sun et al., 2019: reviews put their verdict at the start or the end). Single texts.
- "sliding_window": cut the text (or a pair's second text) into windows of `maxlen` tokens that
  overlap by `stride` tokens. Every window is a training item carrying its example's label; at
  evaluation and prediction the windows' logits are averaged into one prediction per example.

An example is a text, or a (text, second text) pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from bertkit.data.readers import read_table, to_list
from bertkit.tasks import classification_metrics as cm
from bertkit.tasks.base import MODEL_INPUTS, LossFn, TaskData
from bertkit.tasks.inference import mean_by_example
from bertkit.tasks.report import Evaluation
from bertkit.tokenizer import Tokenizer

TaskKind = cm.TaskKind
LongTextPolicy = Literal["truncate", "head_tail", "sliding_window"]
KINDS = ("multiclass", "multilabel", "regression")
POLICIES = ("truncate", "head_tail", "sliding_window")
MULTILABEL_SEPARATOR = "|"  # a multilabel row's labels in one table cell: "sports|politics"


@dataclass
class ClassificationTask:
    """Classify texts or text pairs; stored in a predictor's bertkit.json.

    Args:
        kind: multiclass, multilabel or regression (default: inferred from the training labels:
            label lists mean multilabel, numbers without classes regression)
        labels: class names in output order (default: the sorted training labels)
        maxlen: tokens per text or window
        long_text: what happens to texts longer than maxlen
        stride: overlap of sliding windows in tokens (default: maxlen // 4)
        thresholds: multilabel only: one probability threshold per label (default 0.5)
        pairs: whether examples are (text, second text) pairs (set from the training data)
    """

    name: ClassVar[str] = "classification"
    head: ClassVar[str] = "classification"

    kind: TaskKind | None = None
    labels: list[str] = field(default_factory=list)
    maxlen: int = 128
    long_text: LongTextPolicy = "truncate"
    stride: int | None = None
    thresholds: list[float] | None = None
    pairs: bool = field(default=False, metadata={"derived": True})  # set by prepare()

    def __post_init__(self) -> None:
        self.labels = [str(c) for c in to_list(self.labels)]
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"unknown classification kind {self.kind!r}; choose one of {KINDS}")
        if self.long_text not in POLICIES:
            raise ValueError(f"unknown long-text policy {self.long_text!r}; choose one of {POLICIES}")
        if self.maxlen < 8:
            raise ValueError(f"maxlen must be at least 8 tokens, got {self.maxlen}")
        if self.stride is not None and not 0 <= self.stride < self.maxlen:
            raise ValueError(f"stride must be between 0 and maxlen - 1 ({self.maxlen - 1}), got {self.stride}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"class names must be unique, got {self.labels}")
        if self.kind == "regression" and self.labels:
            raise ValueError("regression predicts one number: leave `classes` empty")
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ValueError(f"got {len(self.thresholds)} thresholds for {len(self.labels)} labels")

    # ----------------------------------------------------------------- settings
    @property
    def num_outputs(self) -> int:
        return 1 if self.resolved_kind() == "regression" else len(self.labels)

    @property
    def soft_targets(self) -> str:
        """How distillation matches a teacher's outputs (see `bertkit.distill.task`)."""
        return {"multiclass": "softmax", "multilabel": "sigmoid", "regression": "mse"}[self.resolved_kind()]

    def resolved_kind(self) -> TaskKind:
        """The kind, with classes but no kind meaning multiclass; unknown yet is an error."""
        if self.kind is not None:
            return self.kind
        if self.labels:
            return "multiclass"
        raise ValueError("the task is not known yet: call preprocess_train first or pass classes=...")

    @property
    def window_stride(self) -> int:
        return self.stride if self.stride is not None else self.maxlen // 4

    def label_thresholds(self) -> np.ndarray:
        return np.asarray(self.thresholds or [0.5] * len(self.labels), dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"kind": self.resolved_kind()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassificationTask:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def prepare(self, examples: Sequence[Any], targets: Sequence[Any]) -> None:
        """Infer the kind and the class names from training labels where not given."""
        self.pairs = bool(examples) and isinstance(examples[0], tuple)
        if self.kind is None:
            self.kind = _infer_kind(list(targets), bool(self.labels))
        if self.kind == "multilabel" and not self.labels:
            raise ValueError("multilabel data needs classes=[...] (the label names, in column order)")
        if self.kind == "multiclass" and not self.labels:
            self.labels = _classes_from(list(targets))
        self.__post_init__()

    def check_trainable(self, data: TaskData) -> None:
        """Refuse a single-class task (after the examples themselves were checked)."""
        if self.resolved_kind() == "multiclass" and data.targets is not None:
            _check_two_classes(self.labels)

    # ----------------------------------------------------------------- data
    def featurize(self, tokenizer: Tokenizer, examples: Sequence[Any], targets: Sequence[Any] | None = None,
                  *, batch_size: int = 32) -> TaskData:
        texts, pairs = split_examples(examples)
        check_texts(texts, pairs)
        encoded = None
        if targets is not None:
            if len(targets) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(targets)} labels; pass one label per text")
            encoded = encode_labels(targets, self)
        features, example_ids = featurize(tokenizer, texts, pairs, self)
        if encoded is not None:
            for feature, example in zip(features, example_ids, strict=True):
                feature["label"] = encoded[example]
        examples = list(zip(texts, pairs, strict=True)) if pairs is not None else list(texts)
        return TaskData(self, features, example_ids, examples, encoded, tokenizer.pad_id or 0, batch_size)

    def example_from_line(self, line: str) -> Any:
        """A text; for a pair task, the two texts separated by a tab."""
        if not self.pairs:
            return line
        first, tab, second = line.partition("\t")
        if not tab:
            raise ValueError("this predictor classifies text pairs: give both texts separated by a tab")
        return (first, second)

    @classmethod
    def read(cls, path: str, *, text_column: str = "text", label_column: str | None = "label",
             text_pair_column: str | None = None, encoding: str = "utf-8") -> tuple[list[Any], list[Any] | None]:
        """Texts (or pairs) and labels of a CSV/TSV/JSONL/Parquet table.

        Args:
            text_column: column of the texts
            label_column: column of the labels (multilabel: names joined by "|")
            text_pair_column: column of the second texts of sentence-pair tasks
            encoding: text encoding of the file (e.g. latin-1)
        """
        frame = read_table(path, text_column, label_column, text_pair_column, encoding)
        present = label_column if label_column in frame.columns else None
        texts = to_list(frame[text_column])
        if text_pair_column:
            texts = list(zip(texts, to_list(frame[text_pair_column]), strict=True))
        return texts, to_list(frame[present]) if present else None

    # ----------------------------------------------------------------- training and outputs
    def loss_fn(self, train_data: TaskData | None = None, *, class_weights: Any = None) -> LossFn:
        """Cross-entropy (optionally class-weighted: "balanced", a list, or a dict by class name),
        binary cross-entropy, or mean squared error."""
        return cm.make_loss_fn(self.resolved_kind(), self.class_weights(class_weights, train_data))

    def class_weights(self, weights: Any, train_data: TaskData | None = None) -> list[float] | None:
        """Per-class loss weights from "balanced" (inverse frequency), a list, or a dict by name."""
        if weights is None:
            return None
        if self.resolved_kind() != "multiclass":
            raise ValueError("class_weights apply to multiclass tasks only")
        if isinstance(weights, str) and weights == "balanced":
            if train_data is None or train_data.targets is None:
                raise ValueError("class_weights='balanced' needs labelled training data")
            return cm.balanced_class_weights(train_data.targets, len(self.labels))
        if isinstance(weights, dict):
            unknown = set(weights) - set(self.labels)
            if unknown:
                raise ValueError(f"class_weights name unknown classes {sorted(unknown)}; classes are {self.labels}")
            return [float(weights.get(name, 1.0)) for name in self.labels]
        if isinstance(weights, str) or len(weights) != len(self.labels):
            raise ValueError(f"class_weights must be 'balanced', a dict, or {len(self.labels)} numbers")
        return [float(w) for w in weights]

    def logits(self, outputs: list[np.ndarray], data: TaskData) -> np.ndarray:
        """(examples, outputs): each example's windows averaged."""
        return mean_by_example(outputs, data.example_ids, data.num_examples)

    def probabilities(self, outputs: list[np.ndarray], data: TaskData) -> np.ndarray:
        return cm.probabilities(self.logits(outputs, data), self.resolved_kind())

    def decode(self, outputs: list[np.ndarray], data: TaskData) -> list[Any]:
        return cm.decode(self.probabilities(outputs, data), self)

    def metrics(self, outputs: list[np.ndarray], data: TaskData) -> dict[str, float]:
        return cm.metrics(self.logits(outputs, data), _targets(data), self)

    def evaluate(self, outputs: list[np.ndarray], data: TaskData,
                 class_names: Sequence[str] | None = None) -> Evaluation:
        return cm.evaluate(self.logits(outputs, data), _targets(data), self, class_names)

    def example_losses(self, outputs: list[np.ndarray], data: TaskData) -> np.ndarray:
        """One loss per example (for top losses)."""
        return cm.example_losses(self.logits(outputs, data), _targets(data), self.resolved_kind())

    def target_names(self, data: TaskData) -> list[Any]:
        """Targets as users wrote them: class names, label-name lists, or numbers."""
        targets = _targets(data)
        if self.resolved_kind() == "regression":
            return [float(v) for v in targets]
        if self.resolved_kind() == "multiclass":
            return [self.labels[int(i)] for i in targets]
        return [[n for n, on in zip(self.labels, row, strict=True) if on] for row in targets]

    def records(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """{"text", "label", "probabilities": {class: p}} per example (regression: "value")."""
        probs = self.probabilities(outputs, data)
        labels = cm.decode(probs, self)
        if self.resolved_kind() == "regression":
            return [{"text": t, "value": v} for t, v in zip(data.examples, labels, strict=True)]
        return [{"text": t, "label": label, "probabilities": dict(zip(self.labels, map(float, row), strict=True))}
                for t, label, row in zip(data.examples, labels, probs, strict=True)]

    def predict(self, predictor: Any, texts: Any, return_proba: bool = False) -> Any:
        """Label of one text (a str or a (text, second text) tuple), or a list of labels for a list.

        Multiclass gives class names, multilabel lists of class names (probability >= the label's
        threshold), regression floats. `return_proba=True` gives the probabilities instead.
        """
        single = _is_single(texts)
        outputs, data = predictor.outputs([texts] if single else _examples(texts))
        probs = self.probabilities(outputs, data)
        result = probs if return_proba else cm.decode(probs, self)
        return result[0] if single else result


def _targets(data: TaskData) -> np.ndarray:
    if data.targets is None:
        raise ValueError("this data set has no labels; pass labels to preprocess_test to evaluate")
    return np.asarray(data.targets)


def _is_single(texts: Any) -> bool:
    return isinstance(texts, str) or (isinstance(texts, tuple) and len(texts) == 2
                                      and all(isinstance(t, str) for t in texts))


def _examples(texts: Any) -> list[Any]:
    items = to_list(texts)
    return [tuple(x) if isinstance(x, list) else x for x in items]


def _check_two_classes(labels: list[str]) -> None:
    """A classifier needs two classes: with one, the model has a single output, answers that class
    always and trains to a loss of 0."""
    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two classes, got {len(labels)} "
                         f"({', '.join(labels) or 'none'}): check the label column")


def _infer_kind(labels: list[Any], has_classes: bool) -> TaskKind:
    if not labels:
        raise ValueError("no labels given: pass one label per text")
    first = labels[0]
    if isinstance(first, (list, tuple, np.ndarray)):
        return "multilabel"
    if not has_classes and all(isinstance(v, float) for v in labels):
        return "regression"
    return "multiclass"


def _classes_from(labels: list[Any]) -> list[str]:
    """Class names when none were given: sorted label strings, or "0".."k" for integer labels."""
    if all(isinstance(v, str) for v in labels):
        return sorted(set(labels))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return [str(i) for i in range(max(labels) + 1)]
    raise ValueError("labels mix names and numbers; pass classes=[...] to say which is which")


def split_examples(examples: Sequence[Any]) -> tuple[list[Any], list[Any] | None]:
    """Texts and second texts (None for single texts) of examples given as texts or pairs."""
    if isinstance(examples, str):
        raise ValueError("expected a list of texts, got a single string; wrap it in a list")
    items = to_list(examples)
    if items and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in items):
        return [x[0] for x in items], [x[1] for x in items]
    if any(isinstance(x, tuple) for x in items):
        raise ValueError("mix of single texts and (text, second text) pairs; pass one kind")
    return items, None


def check_texts(texts: Sequence[Any], pairs: Sequence[Any] | None, what: str = "texts") -> None:
    """Every text must be a non-empty string; pairs must match texts one to one."""
    if len(texts) == 0:
        raise ValueError(f"no {what} given: pass at least one example")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} second texts of pairs")
    for name, column in (("text", texts), ("second text", pairs or [])):
        for i, text in enumerate(column):
            if not isinstance(text, str):
                raise ValueError(f"{name} {i} is {type(text).__name__} {text!r}, not a string")
            if not text.strip():
                raise ValueError(f"{name} {i} is empty; remove it or give it some text")


def encode_labels(labels: Sequence[Any], task: ClassificationTask) -> list[Any]:
    """Turn user labels (class names or indices; label lists or 0/1 rows; numbers) into targets."""
    names = task.labels
    index = {name: i for i, name in enumerate(names)}

    def class_index(value: Any, row: int) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
            hint = " (label lists are for task='multilabel')" if isinstance(value, (list, tuple)) else ""
            raise ValueError(f"label {row} is {value!r}; use a class name or a class index{hint}")
        if isinstance(value, str):
            if value not in index:
                raise ValueError(f"label {row} is {value!r}, which is not one of the classes {names}")
            return index[value]
        if not 0 <= int(value) < len(names):
            raise ValueError(f"label {row} is {value}, outside the class indices 0..{len(names) - 1}")
        return int(value)

    if task.resolved_kind() == "multiclass":
        return [class_index(v, i) for i, v in enumerate(labels)]
    if task.resolved_kind() == "regression":
        out = []
        for i, v in enumerate(labels):
            if isinstance(v, str) or not math.isfinite(float(v)):
                raise ValueError(f"label {i} is {v!r}; regression needs a finite number")
            out.append(float(v))
        return out
    return [_multilabel_row(v, i, names, class_index) for i, v in enumerate(labels)]


def _multilabel_row(value: Any, row: int, names: list[str], class_index: Any) -> list[float]:
    """A list of class names/indices, or a 0/1 row as long as the class list, → a 0/1 float row."""
    if isinstance(value, str):  # names joined in one table cell; "" is no label at all
        items: list[Any] = value.split(MULTILABEL_SEPARATOR) if value else []
    else:
        items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if len(items) == len(names) and all(not isinstance(x, str) and x in (0, 1) for x in items):
        return [float(x) for x in items]
    target = [0.0] * len(names)
    for item in items:
        target[class_index(item, row)] = 1.0
    return target


def featurize(
    tokenizer: Tokenizer, texts: list[str], pairs: list[str] | None, task: ClassificationTask
) -> tuple[list[dict[str, Any]], list[int]]:
    """Token ids of every example under the long-text policy; returns (features, example_ids)."""
    maxlen = task.maxlen
    if task.long_text == "head_tail":
        if pairs is not None:
            raise ValueError("long_text='head_tail' handles single texts; use 'truncate' or 'sliding_window' for pairs")
        return _head_tail(tokenizer, texts, maxlen), list(range(len(texts)))
    windows = task.long_text == "sliding_window"
    enc = tokenizer(texts, pairs, max_length=maxlen, truncation=True, return_overflowing=windows,
                    stride=task.window_stride if windows else 0)
    keys = [k for k in MODEL_INPUTS if k in enc]
    features = [{k: enc[k][i] for k in keys} for i in range(len(enc["input_ids"]))]
    example_ids = enc["overflow_to_sample"] if windows else list(range(len(texts)))
    return features, list(example_ids)


def _head_tail(tokenizer: Tokenizer, texts: list[str], maxlen: int) -> list[dict[str, Any]]:
    budget = maxlen - 2  # room for [CLS] and [SEP]
    head = budget // 4
    features = []
    for ids in tokenizer.encode_ids(texts):
        if len(ids) > budget:
            ids = ids[:head] + ids[len(ids) - (budget - head) :]
        row = [tokenizer.cls_id, *ids, tokenizer.sep_id]
        features.append({"input_ids": row, "attention_mask": [1] * len(row), "token_type_ids": [0] * len(row)})
    return features


