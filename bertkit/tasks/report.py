"""`Evaluation`: a task's validation report — printable text, JSON, metrics, and plots where they apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bertkit.plotting import finish_figure, new_figure


@dataclass
class Evaluation:
    """A validation run: the report (text and dict), the confusion matrix where there is one, the metrics."""

    report: str
    report_dict: dict[str, Any]
    confusion_matrix: np.ndarray | None  # (true, predicted); multilabel: (labels, 2, 2)
    labels: list[str]
    metrics: dict[str, float]
    value: Any = None  # what ktrain's validate returns for the task, where it is not the matrix
    predictions: Any = None  # the task's predictions in its standard file format, where it has one

    def __str__(self) -> str:
        if self.confusion_matrix is None:
            return self.report
        return f"{self.report}\nconfusion matrix (rows: true, columns: predicted)\n{self.matrix_text()}"

    def matrix_text(self) -> str:
        cm = self.confusion_matrix
        if cm is None or cm.ndim != 2:
            return str(cm)
        width = max(len(str(cm.max())), *(len(n) for n in self.labels)) + 1
        head = " " * width + "".join(n[:width - 1].rjust(width) for n in self.labels)
        rows = [n[:width - 1].rjust(width) + "".join(str(v).rjust(width) for v in row)
                for n, row in zip(self.labels, cm.tolist(), strict=True)]
        return "\n".join([head, *rows])

    def to_json(self) -> dict[str, Any]:
        cm = None if self.confusion_matrix is None else self.confusion_matrix.tolist()
        return {"metrics": self.metrics, "report": self.report_dict, "confusion_matrix": cm,
                "labels": self.labels}

    def ktrain_value(self) -> Any:
        """What ktrain's `learner.validate` returns: the task's own value (NER: the F1 score), else
        the confusion matrix where there is one, else the metrics."""
        if self.value is not None:
            return self.value
        return self.confusion_matrix if self.confusion_matrix is not None else self.metrics

    def has_confusion_plot(self) -> bool:
        """Whether there is a single-label confusion matrix to draw."""
        return self.confusion_matrix is not None and self.confusion_matrix.ndim == 2

    def plot_confusion(self, path: str | None = None, show: bool = False) -> Any:
        """Heat map of the (single-label) confusion matrix; a PNG at `path`, a window with `show`."""
        if self.confusion_matrix is None or self.confusion_matrix.ndim != 2:
            raise ValueError("a confusion-matrix plot needs a multiclass task")
        cm, n = self.confusion_matrix, len(self.labels)
        fig, ax = new_figure(show, figsize=(1.2 + 0.7 * n, 1 + 0.6 * n))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(n), self.labels, rotation=45, ha="right")
        ax.set_yticks(range(n), self.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > cm.max() / 2 else "black")
        return finish_figure(fig, path, show)


