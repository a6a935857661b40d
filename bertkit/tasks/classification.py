"""Sequence classification of single texts or text pairs: featurise, loss, pooled inference, metrics.

Kinds: "multiclass" (softmax, cross-entropy with optional class weights), "multilabel" (sigmoid,
binary cross-entropy, one threshold per label) and "regression" (one output, mean squared error,
STS-B style). Texts longer than `maxlen` tokens follow the long-text policy:

- "truncate" (default): keep the first `maxlen` tokens (a pair trims its longer text first).
- "head_tail": keep the first quarter and the last three quarters of the token budget, dropping
  the middle (Sun et al., 2019: reviews put their verdict at the start or the end). Single texts.
- "sliding_window": cut the text (or a pair's second text) into windows of `maxlen` tokens that
  overlap by `stride` tokens. Every window is a training item carrying its example's label; at
  evaluation and prediction the windows' logits are averaged into one prediction per example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.data.batching import pad_collate
from bertkit.tasks.report import Evaluation
from bertkit.tokenizer import Tokenizer

TaskKind = Literal["multiclass", "multilabel", "regression"]
LongTextPolicy = Literal["truncate", "head_tail", "sliding_window"]
KINDS = ("multiclass", "multilabel", "regression")
POLICIES = ("truncate", "head_tail", "sliding_window")
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TaskSettings:
    """What a classifier needs besides its weights and tokenizer; stored in a predictor's bertkit.json."""

    kind: TaskKind = "multiclass"
    labels: list[str] = field(default_factory=list)
    maxlen: int = 128
    long_text: LongTextPolicy = "truncate"
    stride: int | None = None  # window overlap in tokens; None: maxlen // 4
    thresholds: list[float] | None = None  # multilabel only; None: 0.5 for every label

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; choose one of {KINDS}")
        if self.long_text not in POLICIES:
            raise ValueError(f"unknown long-text policy {self.long_text!r}; choose one of {POLICIES}")
        if self.maxlen < 8:
            raise ValueError(f"maxlen must be at least 8 tokens, got {self.maxlen}")
        if self.kind == "regression" and self.labels:
            raise ValueError("regression predicts one number: leave `classes` empty")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"class names must be distinct, got {self.labels}")
        if self.stride is not None and not 0 <= self.stride < self.maxlen:
            raise ValueError(f"stride must be between 0 and maxlen - 1 ({self.maxlen - 1}), got {self.stride}")
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ValueError(f"got {len(self.thresholds)} thresholds for {len(self.labels)} labels")

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def window_stride(self) -> int:
        return self.stride if self.stride is not None else self.maxlen // 4

    def label_thresholds(self) -> np.ndarray:
        return np.asarray(self.thresholds or [0.5] * len(self.labels), dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSettings:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class ClassificationData:
    """Tokenised examples: one feature per example, or several under "sliding_window".

    Indexing gives feature dicts (what the training loop batches); `lengths` drives the bucketed
    sampler; `texts`/`pairs`/`targets` keep the examples for evaluation and `view_top_losses`.
    """

    features: list[dict[str, Any]]
    example_ids: list[int]  # feature index -> example index
    texts: list[str]
    pairs: list[str] | None
    targets: list[Any] | None  # class index, float, or 0/1 vector per example
    settings: TaskSettings
    pad_id: int
    batch_size: int = 32

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]

    @property
    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]

    @property
    def num_examples(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """A hash of the token ids and targets: what a resumed run must be trained on again."""
        from bertkit.train.checkpoint import fingerprint_data

        return fingerprint_data([f["input_ids"] for f in self.features], self.example_ids, self.targets)

    def target_array(self) -> np.ndarray:
        if self.targets is None:
            raise ValueError("this data set has no labels; pass labels to preprocess_test to evaluate")
        return np.asarray(self.targets)


# ------------------------------------------------------------------------------ inputs


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


def check_trainable(data: ClassificationData) -> ClassificationData:
    """Refuse training data a classifier cannot learn from: fewer than two classes, or labels that
    are all one class (a model that always answers it, with loss 0)."""
    settings = data.settings
    if settings.kind != "multiclass" or data.targets is None:
        return data
    if len(settings.labels) < 2:
        raise ValueError(f"a classifier needs at least two classes, got {len(settings.labels)} "
                         f"({', '.join(settings.labels) or 'none'}): check the label column")  # fmt: skip
    seen = set(data.targets)
    if len(seen) < 2:
        raise ValueError(f"every training label is {settings.labels[next(iter(seen))]!r}: a classifier "
                         "needs examples of at least two classes")  # fmt: skip
    return data


def encode_labels(labels: Sequence[Any], settings: TaskSettings) -> list[Any]:
    """Turn user labels (class names or indices; label lists or 0/1 rows; numbers) into targets."""
    names = settings.labels
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

    if settings.kind == "multiclass":
        return [class_index(v, i) for i, v in enumerate(labels)]
    if settings.kind == "regression":
        out = []
        for i, v in enumerate(labels):
            if isinstance(v, str) or not math.isfinite(float(v)):
                raise ValueError(f"label {i} is {v!r}; regression needs a finite number")
            out.append(float(v))
        return out
    return [_multilabel_row(v, i, names, class_index) for i, v in enumerate(labels)]


def _multilabel_row(value: Any, row: int, names: list[str], class_index: Any) -> list[float]:
    """A list of class names/indices, or a 0/1 row as long as the class list, → a 0/1 float row."""
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if len(items) == len(names) and all(not isinstance(x, str) and x in (0, 1) for x in items):
        return [float(x) for x in items]
    target = [0.0] * len(names)
    for item in items:
        target[class_index(item, row)] = 1.0
    return target


def featurize(
    tokenizer: Tokenizer, texts: list[str], pairs: list[str] | None, settings: TaskSettings
) -> tuple[list[dict[str, Any]], list[int]]:
    """Token ids of every example under the long-text policy; returns (features, example_ids)."""
    maxlen = settings.maxlen
    if settings.long_text == "head_tail":
        if pairs is not None:
            raise ValueError("long_text='head_tail' handles single texts; use 'truncate' or 'sliding_window' for pairs")
        return _head_tail(tokenizer, texts, maxlen), list(range(len(texts)))
    windows = settings.long_text == "sliding_window"
    enc = tokenizer(texts, pairs, max_length=maxlen, truncation=True, return_overflowing=windows,
                    stride=settings.window_stride if windows else 0)  # fmt: skip
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


# ------------------------------------------------------------------------------ loss


def task_loss(
    logits: torch.Tensor, targets: torch.Tensor, kind: TaskKind,
    class_weights: torch.Tensor | None = None, reduction: str = "mean",
) -> torch.Tensor:  # fmt: skip
    """Cross-entropy (weighted), BCE-with-logits, or MSE, in float32 whatever the autocast dtype."""
    logits = logits.float()
    if kind == "multiclass":
        weight = class_weights.to(logits.device) if class_weights is not None else None
        return F.cross_entropy(logits, targets.long(), weight=weight, reduction=reduction)
    if kind == "multilabel":
        loss = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").mean(-1)
    else:
        loss = F.mse_loss(logits.squeeze(-1), targets.float(), reduction="none")
    return loss.mean() if reduction == "mean" else loss


def make_loss_fn(kind: TaskKind, class_weights: Sequence[float] | None = None) -> Any:
    """`loss_fn(model, batch) -> (loss, metrics)` for `bertkit.train.fit`."""
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None

    def loss_fn(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}).logits
        return task_loss(logits, batch["label"], kind, weights), {}

    return loss_fn


def balanced_class_weights(targets: Sequence[int], num_classes: int) -> list[float]:
    """n_examples / (n_classes * count) per class, as scikit-learn's "balanced" (absent classes: 1)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)
    return [len(targets) / (num_classes * c) if c else 1.0 for c in counts.tolist()]


# ------------------------------------------------------------------------------ inference


@torch.inference_mode()
def predict_logits(
    model: nn.Module, features: Sequence[dict[str, Any]], example_ids: Sequence[int],
    num_examples: int, *, pad_id: int, batch_size: int = 32,
) -> np.ndarray:  # fmt: skip
    """Logits per example (num_examples, outputs): batches sorted by length, windows mean-pooled."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    rows: list[torch.Tensor] = [torch.empty(0)] * len(features)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = pad_collate([{k: features[i][k] for k in MODEL_INPUTS if k in features[i]} for i in chunk], pad_id)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            for i, row in zip(chunk, logits, strict=True):
                rows[i] = row
    finally:
        model.train(was_training)
    stacked = torch.stack(rows)  # (features, outputs)
    index = torch.as_tensor(list(example_ids), dtype=torch.long)
    sums = torch.zeros(num_examples, stacked.shape[1]).index_add_(0, index, stacked)
    counts = torch.bincount(index, minlength=num_examples).clamp(min=1).unsqueeze(1)
    return (sums / counts).numpy()


def probabilities(logits: np.ndarray, kind: TaskKind) -> np.ndarray:
    """Softmax (multiclass), sigmoid (multilabel) or the raw value (regression, shape (n,))."""
    t = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if kind == "multiclass":
        return t.softmax(-1).numpy()
    if kind == "multilabel":
        return t.sigmoid().numpy()
    return t.squeeze(-1).numpy()


def decode(probs: np.ndarray, settings: TaskSettings) -> list[Any]:
    """Label names (multiclass), label-name lists (multilabel) or floats (regression)."""
    if settings.kind == "multiclass":
        return [settings.labels[i] for i in probs.argmax(-1).tolist()]
    if settings.kind == "multilabel":
        chosen = probs >= settings.label_thresholds()
        return [[n for n, on in zip(settings.labels, row, strict=True) if on] for row in chosen]
    return [float(v) for v in probs.tolist()]


# ------------------------------------------------------------------------------ metrics


def example_losses(logits: np.ndarray, targets: np.ndarray, kind: TaskKind) -> np.ndarray:
    """One (unweighted) loss per example, for the validation loss and `view_top_losses`."""
    return task_loss(torch.from_numpy(np.asarray(logits, dtype=np.float32)),
                     torch.as_tensor(targets), kind, reduction="none").numpy()  # fmt: skip


def metrics(logits: np.ndarray, targets: np.ndarray, settings: TaskSettings) -> dict[str, float]:
    """val_loss plus accuracy and macro F1 (multiclass), micro F1 and exact-match accuracy
    (multilabel), or MSE and Pearson/Spearman correlations (regression)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score

    out = {"val_loss": float(example_losses(logits, targets, settings.kind).mean())}
    if settings.kind == "regression":
        preds = probabilities(logits, "regression")
        out["val_mse"] = float(np.mean((preds - targets) ** 2))
        if len(preds) > 1 and np.std(preds) > 0 and np.std(targets) > 0:
            out["val_pearson"] = float(pearsonr(preds, targets)[0])
            out["val_spearman"] = float(spearmanr(preds, targets)[0])
        return out
    probs = probabilities(logits, settings.kind)
    if settings.kind == "multiclass":
        preds = probs.argmax(-1)
        out["val_accuracy"] = float((preds == targets).mean())
        out["val_f1"] = float(f1_score(targets, preds, average="macro", zero_division=0))
    else:
        preds = (probs >= settings.label_thresholds()).astype(np.int64)
        out["val_accuracy"] = float((preds == targets).all(-1).mean())
        out["val_f1"] = float(f1_score(targets, preds, average="micro", zero_division=0))
    return out


def evaluate(logits: np.ndarray, targets: np.ndarray, settings: TaskSettings,
             class_names: Sequence[str] | None = None) -> Evaluation:  # fmt: skip
    """Metrics, scikit-learn classification report and confusion matrix of pooled logits."""
    from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

    scores = metrics(logits, targets, settings)
    names = list(class_names) if class_names is not None else list(settings.labels)
    if settings.kind == "regression":
        text = "\n".join(f"{k}: {v:.4f}" for k, v in scores.items())
        return Evaluation(text, dict(scores), None, [], scores)
    if len(names) != len(settings.labels):
        raise ValueError(f"got {len(names)} class_names for {len(settings.labels)} classes")
    probs = probabilities(logits, settings.kind)
    if settings.kind == "multiclass":
        preds = probs.argmax(-1)
        cm = confusion_matrix(targets, preds, labels=list(range(len(names))))
    else:
        preds = (probs >= settings.label_thresholds()).astype(np.int64)
        cm = multilabel_confusion_matrix(targets, preds)
    kwargs = dict(labels=list(range(len(names))), target_names=names, zero_division=0, digits=4)
    if settings.kind == "multilabel":
        kwargs.pop("labels")
    text = classification_report(targets, preds, **kwargs)
    report = classification_report(targets, preds, output_dict=True, **kwargs)
    return Evaluation(text, report, cm, names, scores)
