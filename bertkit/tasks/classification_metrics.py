"""Classification losses, probabilities, decoding and metrics, on pooled logits (numpy in, numpy out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.tasks.base import model_inputs
from bertkit.tasks.report import Evaluation

if TYPE_CHECKING:
    from bertkit.tasks.classification import ClassificationTask

TaskKind = Literal["multiclass", "multilabel", "regression"]


def task_loss(
    logits: torch.Tensor, targets: torch.Tensor, kind: TaskKind,
    class_weights: torch.Tensor | None = None, reduction: str = "mean",
) -> torch.Tensor:
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
        logits = model(**model_inputs(batch)).logits
        return task_loss(logits, batch["label"], kind, weights), {}

    return loss_fn


def balanced_class_weights(targets: Sequence[int], num_classes: int) -> list[float]:
    """n_examples / (n_classes * count) per class, as scikit-learn's "balanced" (absent classes: 1)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)
    return [len(targets) / (num_classes * c) if c else 1.0 for c in counts.tolist()]


# ------------------------------------------------------------------------------ inference


def probabilities(logits: np.ndarray, kind: TaskKind) -> np.ndarray:
    """Softmax (multiclass), sigmoid (multilabel) or the raw value (regression, shape (n,))."""
    t = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if kind == "multiclass":
        return t.softmax(-1).numpy()
    if kind == "multilabel":
        return t.sigmoid().numpy()
    return t.squeeze(-1).numpy()


def decode(probs: np.ndarray, task: ClassificationTask) -> list[Any]:
    """Label names (multiclass), label-name lists (multilabel) or floats (regression)."""
    if task.resolved_kind() == "multiclass":
        return [task.labels[i] for i in probs.argmax(-1).tolist()]
    if task.resolved_kind() == "multilabel":
        chosen = probs >= task.label_thresholds()
        return [[n for n, on in zip(task.labels, row, strict=True) if on] for row in chosen]
    return [float(v) for v in probs.tolist()]


# ------------------------------------------------------------------------------ metrics


def example_losses(logits: np.ndarray, targets: np.ndarray, kind: TaskKind) -> np.ndarray:
    """One (unweighted) loss per example, for the validation loss and `view_top_losses`."""
    return task_loss(torch.from_numpy(np.asarray(logits, dtype=np.float32)),
                     torch.as_tensor(targets), kind, reduction="none").numpy()


def metrics(logits: np.ndarray, targets: np.ndarray, task: ClassificationTask) -> dict[str, float]:
    """val_loss plus accuracy and macro F1 (multiclass), micro F1 and exact-match accuracy
    (multilabel), or MSE and Pearson/Spearman correlations (regression)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score

    out = {"val_loss": float(example_losses(logits, targets, task.resolved_kind()).mean())}
    if task.resolved_kind() == "regression":
        preds = probabilities(logits, "regression")
        out["val_mse"] = float(np.mean((preds - targets) ** 2))
        if len(preds) > 1 and np.std(preds) > 0 and np.std(targets) > 0:
            out["val_pearson"] = float(pearsonr(preds, targets)[0])
            out["val_spearman"] = float(spearmanr(preds, targets)[0])
        return out
    probs = probabilities(logits, task.resolved_kind())
    if task.resolved_kind() == "multiclass":
        preds = probs.argmax(-1)
        out["val_accuracy"] = float((preds == targets).mean())
        out["val_f1"] = float(f1_score(targets, preds, average="macro", zero_division=0))
    else:
        preds = (probs >= task.label_thresholds()).astype(np.int64)
        out["val_accuracy"] = float((preds == targets).all(-1).mean())
        out["val_f1"] = float(f1_score(targets, preds, average="micro", zero_division=0))
    return out


def evaluate(logits: np.ndarray, targets: np.ndarray, task: ClassificationTask,
             class_names: Sequence[str] | None = None) -> Evaluation:
    """Metrics, scikit-learn classification report and confusion matrix of pooled logits."""
    from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

    scores = metrics(logits, targets, task)
    names = list(class_names) if class_names is not None else list(task.labels)
    if task.resolved_kind() == "regression":
        text = "\n".join(f"{k}: {v:.4f}" for k, v in scores.items())
        return Evaluation(text, dict(scores), None, [], scores)
    if len(names) != len(task.labels):
        raise ValueError(f"got {len(names)} class_names for {len(task.labels)} classes")
    probs = probabilities(logits, task.resolved_kind())
    if task.resolved_kind() == "multiclass":
        preds = probs.argmax(-1)
        cm = confusion_matrix(targets, preds, labels=list(range(len(names))))
    else:
        preds = (probs >= task.label_thresholds()).astype(np.int64)
        cm = multilabel_confusion_matrix(targets, preds)
    kwargs = dict(labels=list(range(len(names))), target_names=names, zero_division=0, digits=4)
    if task.resolved_kind() == "multilabel":
        kwargs.pop("labels")
    text = classification_report(targets, preds, **kwargs)
    report = classification_report(targets, preds, output_dict=True, **kwargs)
    return Evaluation(text, report, cm, names, scores)
