"""Task distillation in the ktrain style (`ktrain.distill(teacher, train_data) -> Learner`) and as one
typed function over files (`distill_task`, behind `bertkit distill task`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bertkit.api.learner import Learner
from bertkit.api.predictor import Predictor, load_predictor
from bertkit.cli_options import option_names
from bertkit.config import Family
from bertkit.distill.task import prepare_student
from bertkit.io import atomic_dir, save_json
from bertkit.tasks.base import TaskData
from bertkit.train.schedules import ScheduleName


def _as_data(teacher: Predictor, data: Any, what: str) -> TaskData:
    """TaskData as given (featurised with the teacher's tokenizer), or (examples, targets)."""
    if isinstance(data, TaskData):
        if data.task.name != teacher.task.name:
            raise ValueError(f"{what} is for the {data.task.name!r} task, the teacher predicts {teacher.task.name!r}")
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"{what} must be TaskData (preprocess_train/test) or an (examples, targets) pair")
    examples, targets = data
    return teacher.task.featurize(teacher.tokenizer, list(examples), list(targets), batch_size=teacher.batch_size)


def distill(
    teacher: Predictor,
    train_data: Any,
    val_data: Any = None,
    *,
    layers: int | Sequence[int] | None = None,
    family: str | None = None,
    unlabeled: Sequence[Any] | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    batch_size: int | None = None,
    cache: str | Path | None = None,
    **loss_options: Any,
) -> Learner:
    """A `Learner` whose model is a student of `teacher` (a predictor of any task) and whose loss is
    distillation: alpha × the soft targets at `temperature` + (1 − alpha) × the task's own loss.

    `train_data`/`val_data`: TaskData of the teacher's task and tokenizer (`preprocess_train`,
    `preprocess_test`) or (examples, targets). `layers`: how many or which teacher layers the
    student copies (default half). `unlabeled`: extra examples the teacher labels. `cache`: a
    folder for the teacher's logits (memory-mapped, reused). Train with `fit_onecycle` etc.;
    `ktrain.get_predictor(learner.model, preproc=teacher)` then makes an ordinary predictor.
    """
    train = _as_data(teacher, train_data, "train_data")
    val = _as_data(teacher, val_data, "val_data") if val_data is not None else None
    student, data = prepare_student(teacher.model, teacher.tokenizer, train, layers=layers, family=family,
                                    unlabeled=unlabeled, temperature=temperature, alpha=alpha, cache=cache,
                                    batch_size=max(teacher.batch_size, 32))
    return Learner(student, data, val, batch_size, **loss_options)


def _read(predictor: Predictor, path: str, options: dict[str, Any] | None, labelled: bool) -> tuple[list, Any]:
    examples, targets = predictor.task.read(path, **(options or {}))
    if labelled and targets is None:
        raise ValueError(f"{path} has no labels for the {predictor.task.name} task")
    return examples, targets


def _unlabeled(predictor: Predictor, path: str, options: dict[str, Any] | None) -> list[Any]:
    """Extra examples: a .txt file (one per line), or a file in the task's format (labels unused)."""
    file = Path(path)
    if file.suffix.lower() == ".txt":
        if not file.is_file():
            raise FileNotFoundError(f"unlabeled text file not found: {file}")
        lines = file.read_text(encoding="utf-8").splitlines()
        return [predictor.task.example_from_line(line) for line in lines if line.strip()]
    options = dict(options or {})
    if "label_column" in option_names(predictor.task.read):
        options["label_column"] = None  # unlabelled: a label column is neither needed nor read
    return predictor.task.read(path, **options)[0]


def distill_task(
    teacher: str, train: str, out: str, valid: str | None = None, *,
    unlabeled: str | None = None, read_options: dict[str, Any] | None = None,
    layers: list[int] | None = None, num_layers: int | None = None,
    family: Family | None = None,
    temperature: float = 2.0, alpha: float = 0.5, epochs: int = 3, lr: float = 1e-4,
    batch_size: int = 32, schedule: ScheduleName = "linear", warmup: float = 0.1, seed: int = 42,
    max_steps: int | None = None, bf16: bool = False, grad_accum: int = 1, progress: bool = True,
) -> dict[str, Any]:
    """Distil a saved predictor into a smaller one: the student learns the teacher's logits on the
    training file (and on unlabeled examples) plus the labels; writes the predictor folder `out`
    (atomically) with report.json and history.json. The teacher's logits are cached in
    OUT.cache/ (memory-mapped) and reused by a rerun on the same data.

    Args:
        teacher: predictor folder of the teacher (any task)
        train: labelled training file in the task's format
        out: predictor folder to write for the student
        valid: labelled validation file (same format)
        unlabeled: extra examples for the teacher to label: .txt (one per line) or the task's format
        read_options: options of the task's file reader, e.g. {"text_column": "sentence"}
        layers: which teacher layers the student copies, in order
        num_layers: or how many (an even spread keeping the first and last); default half
        family: the student's family ("distilbert" for a BERT teacher drops token types and pooler)
        temperature: softmax temperature of the soft targets
        alpha: share of the soft-target loss (the rest is the task's hard-label loss)
        epochs: passes over the training data
        lr: peak learning rate
        batch_size: examples per micro-batch
        schedule: learning-rate schedule
        warmup: fraction (<1) or number of warmup steps
        seed: random seed (data order, dropout)
        max_steps: stop after N optimizer steps (smoke runs)
        bf16: bfloat16 autocast
        grad_accum: micro-batches per optimizer step
        progress: show a progress bar
    """
    if layers is not None and num_layers is not None:
        raise ValueError("give layers (which teacher layers) or num_layers (how many), not both")
    predictor = load_predictor(teacher)
    train_data = _read(predictor, train, read_options, labelled=True)
    val_data = _read(predictor, valid, read_options, labelled=True) if valid else None
    extra = _unlabeled(predictor, unlabeled, read_options) if unlabeled else None
    learner = distill(predictor, train_data, val_data, layers=layers if layers is not None else num_layers,
                      family=family, unlabeled=extra, temperature=temperature, alpha=alpha, batch_size=batch_size,
                      cache=f"{out}.cache")
    start = time.perf_counter()
    history = learner.train(lr, epochs, schedule=schedule, warmup=warmup, seed=seed, max_steps=max_steps,
                            bf16=bf16, grad_accum=grad_accum, progress=progress)
    seconds = time.perf_counter() - start
    evaluation = learner.report() if learner.val_data is not None else None
    report = {"teacher": teacher, "task": predictor.task.name, "student_layers": learner.model.config.num_layers,
              "teacher_layers": predictor.model.config.num_layers, "temperature": temperature, "alpha": alpha,
              "train_examples": len(train_data[0]), "unlabeled_examples": len(extra or []),
              "train_seconds": round(seconds, 2),
              **(evaluation.to_json() if evaluation is not None else {})}
    with atomic_dir(out) as tmp:
        Predictor(learner.model.cpu(), predictor.tokenizer, predictor.task).save(tmp)
        save_json(tmp / "report.json", report)
        history.to_json(tmp / "history.json")
    print(f"saved the student predictor and report.json to {out}")
    return report
