"""Training history records and their plots (PNG)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.io import atomic_write_text
from bertkit.plotting import finish_figure, new_figure


@dataclass
class History:
    """Records written by `fit`: training records (step, epoch, lr, loss, examples_per_s, train
    metrics) every `log_every` steps and evaluation records (step, epoch, eval metrics)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of every record that has `key`."""
        pairs = [(r["step"], r[key]) for r in self.records if key in r]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def to_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.records, indent=2) + "\n")

    def plot(self, path: str | Path) -> Path:
        """Save training loss and every evaluation metric against the step to a PNG at `path`."""
        eval_keys = sorted({k for r in self.records if "loss" not in r for k in r} - _BOOKKEEPING)
        panels = ["loss", *eval_keys]
        cols = min(3, len(panels))
        rows = math.ceil(len(panels) / cols)
        fig, axes = new_figure(figsize=(4.5 * cols, 3.2 * rows), rows=rows, cols=cols)
        for ax, key in zip(axes.flat, panels, strict=False):
            steps, values = self.series(key)
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None)
            ax.set_title("train loss" if key == "loss" else key)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        finish_figure(fig, path)
        return Path(path)


_BOOKKEEPING = {"step", "epoch", "lr", "examples_per_s"}
