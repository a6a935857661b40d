"""Learning-rate schedules as multipliers of the peak LR, functions of the optimizer step.

Every schedule maps `step` (0-based count of optimizer steps taken) to a factor in [0, 1] that
`torch.optim.lr_scheduler.LambdaLR` multiplies with the configured (peak) learning rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

ScheduleName = Literal["linear", "constant", "cosine", "onecycle", "triangular"]

ONECYCLE_PCT = 0.3  # fraction of the run spent rising, as in fastai / ktrain
ONECYCLE_DIV = 25.0  # start at peak / 25
ONECYCLE_FINAL_DIV = 1e4  # end at start / 1e4, i.e. ~0
TRIANGULAR_MIN = 0.1  # cyclical LR oscillates between peak / 10 and peak


def _warmup(step: int, warmup: int) -> float:
    # HF-compatible: step 0 has factor 0, the factor reaches 1 at step == warmup
    return step / warmup


def linear(step: int, total: int, warmup: int = 0) -> float:
    """Linear warmup from 0 to 1 over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return _warmup(step, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def constant(step: int, total: int, warmup: int = 0) -> float:
    """Linear warmup, then the peak LR until the end."""
    return _warmup(step, warmup) if step < warmup else 1.0


def cosine(step: int, total: int, warmup: int = 0) -> float:
    """Linear warmup, then half a cosine from 1 down to 0 at `total`."""
    if step < warmup:
        return _warmup(step, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def onecycle(step: int, total: int, warmup: int = 0) -> float:
    """1cycle policy (Smith; fastai/ktrain): cosine rise from 1/25 of the peak to the peak over the
    first 30% of steps, then cosine anneal to 1/25e4 of the peak (~0). `warmup` is ignored: the
    rising phase is the warmup. Momentum is not cycled (Adam's beta1 stays fixed), which keeps
    the optimizer state simple to checkpoint; fine-tuning results do not depend on it in practice.
    """
    start, end = 1.0 / ONECYCLE_DIV, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
    rise = max(1, round(ONECYCLE_PCT * total))
    if step < rise:
        return _cos_between(start, 1.0, step / rise)
    return _cos_between(1.0, end, min(1.0, (step - rise) / max(1, total - rise)))


def _cos_between(a: float, b: float, progress: float) -> float:
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * progress))


def triangular(step: int, total: int, warmup: int = 0, *, cycle: int | None = None) -> float:
    """Cyclical LR (Smith 2017, "triangular"): up from peak/10 to the peak in half a cycle, back down
    in the other half. `cycle` defaults to `total` (one cycle per run); ktrain's autofit uses one
    cycle per epoch, which the loop passes. `warmup` is ignored.
    """
    cycle = max(2, cycle or total)
    position = (step % cycle) / cycle  # 0 → 1 within the cycle
    height = 1.0 - abs(2.0 * position - 1.0)  # 0 → 1 → 0
    return TRIANGULAR_MIN + (1.0 - TRIANGULAR_MIN) * height


SCHEDULES: dict[str, Callable[..., float]] = {
    "linear": linear,
    "constant": constant,
    "cosine": cosine,
    "onecycle": onecycle,
    "triangular": triangular,
}


def get_schedule(
    name: ScheduleName, total_steps: int, warmup_steps: int = 0, *, cycle_steps: int | None = None
) -> Callable[[int], float]:
    """Return `f(step) -> factor` for LambdaLR. `cycle_steps` is used by "triangular" only."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    if name == "triangular":
        return functools.partial(triangular, total=total_steps, cycle=cycle_steps)
    return functools.partial(SCHEDULES[name], total=total_steps, warmup=warmup_steps)
