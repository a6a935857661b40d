"""Range checks of training options, run before any work: a degenerate value (0 epochs, 0 steps,
0 layers, a negative warmup) is a clear error instead of a run that silently does something else."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

_AT_LEAST_1: tuple[Callable[[Any], bool], str] = (lambda v: v >= 1, "at least 1")
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": _AT_LEAST_1,
    "max_steps": _AT_LEAST_1,
    "batch_size": _AT_LEAST_1,
    "grad_accum": _AT_LEAST_1,
    "eval_every": _AT_LEAST_1,
    "early_stopping": _AT_LEAST_1,
    "checkpoint_every": _AT_LEAST_1,
    "keep_checkpoints": _AT_LEAST_1,
    "log_every": _AT_LEAST_1,
    "layers": _AT_LEAST_1,
    "hidden": _AT_LEAST_1,
    "heads": _AT_LEAST_1,
    "intermediate": _AT_LEAST_1,
    "lr": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "warmup": (lambda v: math.isfinite(v) and v >= 0, "0 or more (a fraction < 1, or steps)"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "0 or more"),
    "max_minutes": (lambda v: v >= 0, "0 or more"),
    "stride": (lambda v: v >= 0, "0 or more"),
}


def check_options(**values: Any) -> None:
    """Raise `ValueError` naming the first option outside its range; None means "not set"."""
    for name, value in values.items():
        if value is None or name not in _RULES:
            continue
        ok, expected = _RULES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ValueError(f"{name} must be {expected}, got {value}")
