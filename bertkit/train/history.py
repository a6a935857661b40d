"""Training history records and their plots (PNG): the one plotter of fine-tuning, pre-training
and distillation curves."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.io import atomic_write_text
from bertkit.plotting import finish_figure, new_figure

BOOKKEEPING = frozenset({"step", "global_step", "phase", "epoch", "lr", "examples_per_s"})
LOG_SCALE = ("perplexity",)  # panels whose values span orders of magnitude


@dataclass
class History:
    """Records written by `fit`: training records (step, epoch, lr, loss, examples_per_s, train
    metrics) every `log_every` steps and evaluation records (step, epoch, eval metrics)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of every record that has `key`."""
        return series(self.records, key)

    def to_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.records, indent=2) + "\n")

    def plot(self, path: str | Path) -> Path:
        """Save the loss and every other metric (training and validation) against the step to a
        PNG at `path`."""
        plot_history(self.records, path)
        return Path(path)


def series(records: Sequence[dict[str, Any]], key: str, x: str = "step") -> tuple[list[Any], list[float]]:
    """(x values, values) of every record that has `key`."""
    pairs = [(r[x], r[key]) for r in records if key in r]
    return [s for s, _ in pairs], [v for _, v in pairs]


def metric_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric of `records` once, without its "val_" prefix: "loss" first, then in order."""
    names = {k.removeprefix("val_"): None for r in records for k in r if k not in BOOKKEEPING}
    return sorted(names, key=lambda k: k != "loss")


def plot_history(records: Sequence[dict[str, Any]], path: str | Path | None = None,
                 panels: Sequence[str] | None = None, *, x: str = "step", show: bool = False) -> Any:
    """One panel per metric in `panels` (default: all of them), each with its training values
    (`key`) and validation ones (`val_key`) against `x`; a PNG at `path` and/or shown. Returns
    the figure."""
    names = [k for k in (metric_names(records) if panels is None else panels)
             if any(k in r or f"val_{k}" in r for r in records)] or ["loss"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = new_figure(show, figsize=(4.5 * cols, 3.2 * rows), rows=rows, cols=cols)
    for ax, key in zip(axes.flat, names, strict=False):
        for name, label in ((key, "train"), (f"val_{key}", "validation")):
            steps, values = series(records, name, x)
            if steps:
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=label)
        if key in LOG_SCALE:
            ax.set_yscale("log")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel(x.replace("_", " "))
        if ax.lines:
            ax.legend()
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return finish_figure(fig, path, show)
