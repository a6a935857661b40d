"""The nine GLUE tasks: their TSV layouts, metrics (Matthews, F1, Pearson, Spearman, accuracy)
and the leaderboard's prediction files. The tasks themselves run as sentence(-pair) classification.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.io import atomic_write_text


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its columns are, its labels (none: regression), metrics and files."""

    name: str  # the leaderboard's spelling, also the data folder's name
    text: str  # column of the (first) text
    pair: str | None  # column of the second text of pair tasks
    label: str | None  # label column of train/dev files (None: CoLA's header-less layout)
    labels: tuple[str, ...]  # class names as the files write them; () for regression
    metrics: tuple[str, ...]  # the first is the one the learning rate is chosen by
    dev: tuple[str, ...] = ("dev.tsv",)
    test: tuple[tuple[str, str], ...] = (("test.tsv", ""),)  # (test file, leaderboard file); "" = name.tsv

    @property
    def regression(self) -> bool:
        return not self.labels

    def leaderboard_files(self) -> list[tuple[str, str]]:
        return [(test, out or f"{self.name}.tsv") for test, out in self.test]


NLI3 = ("contradiction", "entailment", "neutral")
NLI2 = ("entailment", "not_entailment")
BINARY = ("0", "1")
GLUE_TASKS: dict[str, GlueTask] = {t.name.lower().replace("-", ""): t for t in (
    GlueTask("CoLA", "sentence", None, None, BINARY, ("matthews", "accuracy")),
    GlueTask("SST-2", "sentence", None, "label", BINARY, ("accuracy",)),
    GlueTask("MRPC", "#1 String", "#2 String", "Quality", BINARY, ("f1", "accuracy")),
    GlueTask("STS-B", "sentence1", "sentence2", "score", (), ("spearman", "pearson")),
    GlueTask("QQP", "question1", "question2", "is_duplicate", BINARY, ("f1", "accuracy")),
    GlueTask("MNLI", "sentence1", "sentence2", "gold_label", NLI3, ("accuracy",),
             dev=("dev_matched.tsv", "dev_mismatched.tsv"),
             test=(("test_matched.tsv", "MNLI-m.tsv"), ("test_mismatched.tsv", "MNLI-mm.tsv"))),
    GlueTask("QNLI", "question", "sentence", "label", NLI2, ("accuracy",)),
    GlueTask("RTE", "sentence1", "sentence2", "label", NLI2, ("accuracy",)),
    GlueTask("WNLI", "sentence1", "sentence2", "label", BINARY, ("accuracy",)),
)}
COLA_COLUMNS = ("source", "label", "original_label", "sentence")  # CoLA's train/dev have no header


def glue_task(name: str) -> GlueTask:
    """The task called `name` ("CoLA", "sst2", "STS-B", "mnli", ...); unknown names are an error."""
    key = name.lower().replace("-", "").replace("_", "")
    key = {"mnlim": "mnli", "mnlimm": "mnli", "sts": "stsb"}.get(key, key)
    if key not in GLUE_TASKS:
        names = ", ".join(t.name for t in GLUE_TASKS.values())
        raise ValueError(f"unknown GLUE task {name!r}; choose one of {names}")
    return GLUE_TASKS[key]


@dataclass
class GlueSplit:
    """The rows of one GLUE file: texts (and second texts), labels when the file has them, and the
    ids the leaderboard file is keyed by (the `index`/`id` column, else the row number)."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any] | None  # class names, or floats for STS-B
    ids: list[str]

    def examples(self) -> list[Any]:
        """Single texts, or (text, second text) pairs."""
        return list(self.texts) if self.pairs is None else list(zip(self.texts, self.pairs, strict=True))


def read_glue(task: GlueTask, path: str | Path, labelled: bool = True) -> GlueSplit:
    """Read one of `task`'s TSV files (QUOTE_NONE, as the GLUE files need); a missing column, a
    short row or an unknown label is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GLUE {task.name} file not found: {path}")
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    headerless = task.label is None and labelled  # CoLA's train/dev
    header = list(COLA_COLUMNS) if headerless else (rows.pop(0) if rows else [])
    wanted = [task.text, *([task.pair] if task.pair else []), *([_label_column(task)] if labelled else [])]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{path} is not a GLUE {task.name} file: no column {', '.join(missing)} in {header}")
    at = {c: header.index(c) for c in wanted}
    key = next((header.index(c) for c in ("index", "id") if c in header), None)
    split = GlueSplit([], [] if task.pair else None, [] if labelled else None, [])
    for number, row in enumerate(rows, 1 if headerless else 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at.values()):
            raise ValueError(f"{path}, line {number}: {len(row)} fields, expected {len(header)}")
        split.texts.append(row[at[task.text]])
        if split.pairs is not None:
            split.pairs.append(row[at[task.pair]])
        if split.labels is not None:
            split.labels.append(_parse_label(task, row[at[_label_column(task)]], path, number))
        split.ids.append(row[key] if key is not None else str(len(split.ids)))
    if not split.texts:
        raise ValueError(f"{path} holds no rows")
    return split


def _label_column(task: GlueTask) -> str:
    return task.label or "label"


def _parse_label(task: GlueTask, value: str, path: Path, line: int) -> Any:
    if task.regression:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise ValueError(f"{path}, line {line}: score {value!r} is not a number")
        return score
    if value not in task.labels:
        raise ValueError(f"{path}, line {line}: label {value!r} is not one of {list(task.labels)}")
    return value


def write_leaderboard(path: str | Path, task: GlueTask, ids: Sequence[str], predictions: Sequence[Any]) -> None:
    """The leaderboard's file: a header `index<TAB>prediction`, then one row per test example
    (class names as the data writes them; STS-B scores clipped to [0, 5], three decimals)."""
    if len(ids) != len(predictions):
        raise ValueError(f"{len(ids)} test ids but {len(predictions)} predictions")
    if task.regression:
        values = [f"{min(5.0, max(0.0, float(p))):.3f}" for p in predictions]
    else:
        values = [str(p) for p in predictions]
    atomic_write_text(path, "index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in zip(ids, values, strict=True)))


# ------------------------------------------------------------------------------ metrics


def accuracy(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    gold_a, pred_a = np.asarray(gold), np.asarray(predicted)
    return float((gold_a == pred_a).mean())


def binary_f1(gold: Sequence[Any], predicted: Sequence[Any], positive: Any = 1) -> float:
    """F1 of the positive class (0 when it is never predicted nor present)."""
    gold_a, pred_a = np.asarray(gold) == positive, np.asarray(predicted) == positive
    tp = float((gold_a & pred_a).sum())
    denominator = float(gold_a.sum() + pred_a.sum())
    return 2 * tp / denominator if denominator else 0.0


def matthews(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Matthews correlation (the multiclass R_K form, as scikit-learn's); 0 where undefined."""
    classes = sorted(set(np.asarray(gold).tolist()) | set(np.asarray(predicted).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), dtype=np.float64)
    for g, p in zip(np.asarray(gold).tolist(), np.asarray(predicted).tolist(), strict=True):
        cm[index[g], index[p]] += 1
    t, p, c, s = cm.sum(1), cm.sum(0), np.trace(cm), cm.sum()
    denominator = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denominator) if denominator else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denominator) if denominator else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on the (tie-averaged) ranks."""
    return pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


METRICS = {"accuracy": accuracy, "f1": lambda g, p: binary_f1(g, p, "1"), "matthews": matthews,
           "pearson": pearson, "spearman": spearman}


def glue_metrics(task: GlueTask, gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
    """The task's metrics of predictions (class names as the files write them, or STS-B scores)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    return {name: METRICS[name](gold, predicted) for name in task.metrics}
