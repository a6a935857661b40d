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


def new_figure(show: bool = False, *, figsize: tuple[float, float] = (6, 4), rows: int | None = None,
               cols: int | None = None) -> tuple[Any, Any]:
    """(figure, axes): one Axes, or a 2-D array of them (even 1×1) when `rows` or `cols` is given."""
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
    grid = rows is not None or cols is not None
    axes = fig.subplots(rows or 1, cols or 1, squeeze=not grid)
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
