"""Task-specific distillation for any task: the teacher's logits, computed once and memory-mapped,
become soft targets that a student learns at a temperature alongside the task's own hard-label loss.

Nothing here knows a task kind. The soft targets are whatever the task's head emits, per feature
(`forward_features`): a vector per text, or per token (padding masked out). A task whose outputs
are not one softmax over their last axis says so with an optional `soft_targets` attribute:
"sigmoid" (independent labels), "mse" (regression) or "positions" (a distribution over tokens,
as a span head's start and end).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.distill.losses import soft_target_loss
from bertkit.io import atomic_dir
from bertkit.model import ModelOutput
from bertkit.tasks.base import LossFn, Task, TaskData, model_inputs
from bertkit.tasks.inference import forward_features

TEACHER_KEY, LABELLED_KEY = "teacher_logits", "has_label"
SOFT_TARGETS = ("softmax", "sigmoid", "mse", "positions")


# ----------------------------------------------------------------------------- the logits cache
def _fingerprint(model: nn.Module, features: Sequence[dict[str, Any]]) -> str:
    """Identifies (teacher weights, inputs): a cache made for other ones is never reused."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(np.float64(tensor.detach().double().sum().item()).tobytes())
    for f in features:
        digest.update(np.asarray(f["input_ids"], dtype=np.int64).tobytes())
        digest.update(np.asarray(f.get("token_type_ids", ()), dtype=np.int64).tobytes())
    return digest.hexdigest()


def _write_cache(folder: Path, outputs: list[np.ndarray], fingerprint: str) -> None:
    shapes = np.array([list(o.shape) + [0] * (2 - o.ndim) for o in outputs], dtype=np.int64)
    flat = np.concatenate([o.ravel() for o in outputs]).astype(np.float32) if outputs else np.zeros(0, np.float32)
    with atomic_dir(folder) as tmp:
        np.save(tmp / "logits.npy", flat)
        np.save(tmp / "shapes.npy", shapes)
        (tmp / "cache.json").write_text(json.dumps({"fingerprint": fingerprint, "features": len(outputs)}))


def _read_cache(folder: Path) -> list[np.ndarray]:
    """Views into one memory-mapped file: a large cache is paged in as batches need it."""
    flat = np.load(folder / "logits.npy", mmap_mode="r")
    out, offset = [], 0
    for rows, cols in np.load(folder / "shapes.npy"):
        shape = (int(rows),) if cols == 0 else (int(rows), int(cols))
        size = int(np.prod(shape))
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


def teacher_logits(teacher: nn.Module, data: TaskData, cache: str | Path | None = None, *,
                   batch_size: int = 64) -> list[np.ndarray]:
    """The teacher's outputs for every feature of `data` (as `forward_features` gives them).

    With `cache` (a folder), they are written once to a memory-mapped float32 file and read back
    from it on later calls with the same teacher and the same features.
    """
    if cache is None:
        return forward_features(teacher, data.features, pad_id=data.pad_id, batch_size=batch_size)
    folder, fingerprint = Path(cache), _fingerprint(teacher, data.features)
    info = folder / "cache.json"
    if not (info.is_file() and json.loads(info.read_text())["fingerprint"] == fingerprint):
        outputs = forward_features(teacher, data.features, pad_id=data.pad_id, batch_size=batch_size)
        _write_cache(folder, outputs, fingerprint)
    return _read_cache(folder)


# ----------------------------------------------------------------------------- training data
def _placeholder(template: dict[str, Any], key: str, ids: Any) -> Any:
    """A stand-in target for an unlabelled feature with `ids`, shaped like the labelled
    `template`'s (never used: the hard-label loss only sees labelled rows)."""
    array = np.asarray(template[key])
    if array.ndim == 1 and len(array) == len(template["input_ids"]) and array.dtype.kind in "iu":
        return [-100] * len(ids)  # a per-token label sequence, padded like its labels
    return np.zeros_like(array).tolist() if array.ndim else array.dtype.type(0).item()


def soft_target_data(data: TaskData, logits: Sequence[np.ndarray], extra: TaskData | None = None,
                     extra_logits: Sequence[np.ndarray] | None = None) -> TaskData:
    """`data`'s features with their teacher logits (and `has_label`), plus unlabelled `extra`
    features with theirs: the training data of a student."""
    if len(logits) != len(data):
        raise ValueError(f"{len(logits)} teacher outputs for {len(data)} features")
    features = [{**f, TEACHER_KEY: t, LABELLED_KEY: True} for f, t in zip(data.features, logits, strict=True)]
    example_ids, examples = list(data.example_ids), list(data.examples)
    targets = list(data.targets) if data.targets is not None else [None] * len(examples)
    if extra is not None and len(extra):
        if extra_logits is None or len(extra_logits) != len(extra):
            raise ValueError("extra features need one teacher output each")
        targets = [k for k in data.features[0] if k not in extra.features[0]] if data.features else []
        for f, t in zip(extra.features, extra_logits, strict=True):
            stand_in = {k: _placeholder(data.features[0], k, f["input_ids"]) for k in targets}
            features.append({**f, **stand_in, TEACHER_KEY: t, LABELLED_KEY: False})
        example_ids += [len(examples) + i for i in extra.example_ids]
        examples += list(extra.examples)
        targets += [None] * len(extra.examples)
    return replace(data, features=features, example_ids=example_ids, examples=examples, targets=targets,
                   extras=[])


# ----------------------------------------------------------------------------- the loss
class _Replay(nn.Module):
    """Stands in for the student inside the task's loss: returns the chosen rows of the output
    already computed, so the student runs once per batch whatever the loss needs."""

    def __init__(self, output: ModelOutput, rows: torch.Tensor) -> None:
        super().__init__()
        self.output, self.rows = output, rows

    def forward(self, *args: Any, **kwargs: Any) -> ModelOutput:
        return ModelOutput(self.output.last_hidden_state[self.rows], logits=self.output.logits[self.rows])


def _rows(batch: dict[str, Any], rows: torch.Tensor, size: int) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if key in (TEACHER_KEY, LABELLED_KEY):
            continue
        if torch.is_tensor(value) and value.ndim and value.shape[0] == size:
            out[key] = value[rows.to(value.device)]
        elif isinstance(value, list) and len(value) == size:
            out[key] = [value[i] for i in rows.tolist()]
        else:
            out[key] = value
    return out


@dataclass
class SoftTargetTask:
    """A task whose training loss is distillation: alpha × soft-target loss at `temperature`
    (against the batch's `teacher_logits`) + (1 − alpha) × the task's own loss on labelled rows.
    Everything else (name, head, decoding, metrics, settings) is the wrapped task's, so a student
    trained with it saves as an ordinary predictor of that task."""

    task: Task
    temperature: float = 2.0
    alpha: float = 0.5
    labelled: TaskData | None = field(default=None, repr=False)  # for the task's loss options

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha (the soft targets' share of the loss) must be in [0, 1], got {self.alpha}")
        kind = getattr(self.task, "soft_targets", "softmax")
        if kind not in SOFT_TARGETS:
            raise ValueError(f"task {self.task.name!r} declares soft_targets={kind!r}; expected one of {SOFT_TARGETS}")

    def __getattr__(self, name: str) -> Any:
        if name == "task":  # not yet set (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.task, name)

    def loss_fn(self, train_data: TaskData | None = None, **options: Any) -> LossFn:
        hard_fn = self.task.loss_fn(self.labelled, **options)
        kind = getattr(self.task, "soft_targets", "softmax")
        temperature, alpha = self.temperature, self.alpha

        def loss_fn(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            output = model(**model_inputs(batch))
            logits, teacher = output.logits, batch[TEACHER_KEY].to(output.logits.device)
            token_level = teacher.ndim == 3
            mask = batch["attention_mask"] if token_level and "attention_mask" in batch else None
            soft = soft_target_loss(logits, teacher, temperature, mask=mask, dim=1 if kind == "positions" else -1,
                                    kind="softmax" if kind == "positions" else kind)
            metrics = {"soft_loss": soft.item()}
            labelled = batch.get(LABELLED_KEY)
            rows = (labelled.nonzero().squeeze(1) if labelled is not None
                    else torch.arange(logits.shape[0], device=logits.device))
            loss = alpha * soft
            if alpha < 1.0 and len(rows):
                hard, hard_metrics = hard_fn(_Replay(output, rows), _rows(batch, rows, logits.shape[0]))
                loss = loss + (1.0 - alpha) * hard
                metrics |= {"hard_loss": hard.item()} | {f"hard_{k}": v for k, v in hard_metrics.items()}
            return loss, metrics

        return loss_fn


# ----------------------------------------------------------------------------- putting it together
def prepare_student(
    teacher: nn.Module,
    tokenizer: Any,
    train_data: TaskData,
    *,
    layers: int | Sequence[int] | None = None,
    family: str | None = None,
    unlabeled: Sequence[Any] | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    cache: str | Path | None = None,
    batch_size: int = 64,
) -> tuple[nn.Module, TaskData]:
    """(student, training data) for task-specific distillation; train them with `fit` or a Learner.

    The student is `make_student(teacher, layers, family=family)`. The data is `train_data` plus
    the task's features of `unlabeled` examples (texts the teacher labels), each with the
    teacher's logits (cached under `cache` when given), and its task is a `SoftTargetTask`, so
    `data.task.loss_fn(data)` is the distillation loss.
    """
    from bertkit.distill.student import make_student

    task = train_data.task
    if not train_data.labelled:
        raise ValueError("train_data has no targets: featurise the labelled examples with their labels")
    folder = Path(cache) if cache is not None else None
    logits = teacher_logits(teacher, train_data, folder / "train" if folder else None, batch_size=batch_size)
    extra = extra_logits = None
    if unlabeled is not None and len(unlabeled):
        extra = task.featurize(tokenizer, list(unlabeled), None, batch_size=train_data.batch_size)
        extra_logits = teacher_logits(teacher, extra, folder / "unlabeled" if folder else None, batch_size=batch_size)
    data = soft_target_data(train_data, logits, extra, extra_logits)
    data.task = SoftTargetTask(task, temperature=temperature, alpha=alpha, labelled=train_data)
    return make_student(teacher, layers, family=family), data
