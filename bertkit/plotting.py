"""Figures for people: saved as PNG (atomically) and shown on screen only when asked.

Figures that are only saved are plain `matplotlib.figure.Figure` objects, which need no GUI
backend; pyplot (and so the session's backend) is touched only when a figure is to be shown, so
saving a plot never changes what a notebook or script can display afterwards.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from bertkit.io import atomic_write_bytes


def new_figure(show: bool = False, *, figsize: tuple[float, float] = (6, 4), rows: int = 1,
               cols: int = 1) -> tuple[Any, Any]:
    """(figure, axes): axes is one Axes for a 1×1 grid, else a 2-D array of them."""
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
    axes = fig.subplots(rows, cols, squeeze=rows * cols == 1)
    return fig, axes


def finish_figure(fig: Any, path: str | Path | None = None, show: bool = False) -> Any:
    """Write `fig` as a PNG at `path` (atomically) and/or show it on screen; returns the figure."""
    if path is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        atomic_write_bytes(path, buffer.getvalue())
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig
