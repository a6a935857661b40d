"""Learning-rate range test (Smith 2015; ktrain `lr_find`): ramp the LR exponentially, record the loss."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.data.batching import LengthBucketSampler
from bertkit.plotting import finish_figure, new_figure
from bertkit.train.checkpoint import capture_rng, restore_rng
from bertkit.train.hardware import default_device, to_device
from bertkit.train.optim import build_optimizer
from bertkit.train.state import LossFn

SKIP_START = 0.1  # ignore the first 10% of points: the smoothed curve is still settling there
SKIP_END = 3  # and the last points, where the loss is already diverging


@dataclass
class LRFinderResult:
    """`lrs[i]` was used for step i; `losses[i]` is the bias-corrected exponentially smoothed loss."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None

    def plot(self, path: str | Path | None = None, show: bool = False, *, skip_start: int = 0,
             skip_end: int = 0, mark: bool = True) -> Any:
        """Loss against LR (log x axis) without the first `skip_start` and last `skip_end` points,
        the suggestion marked when `mark`. Saves a PNG when `path` is given."""
        fig, ax = new_figure(show)
        end = len(self.lrs) - skip_end if skip_start + skip_end < len(self.lrs) else len(self.lrs)
        start = skip_start if skip_start < end else 0
        ax.plot(self.lrs[start:end], self.losses[start:end])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("smoothed loss")
        if mark and self.suggestion is not None:
            ax.axvline(self.suggestion, color="red", linestyle="--", label=f"{self.suggestion:.1e}")
            ax.legend()
        return finish_figure(fig, path, show)


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """Steepest descent: the LR where the smoothed loss falls fastest per unit of log(LR), after
    dropping the noisy start and the diverging end. None when there are too few points."""
    start, end = int(len(lrs) * SKIP_START), len(lrs) - SKIP_END
    if end - start < 3:
        return None
    slopes = np.gradient(np.asarray(losses[start:end]), np.log(np.asarray(lrs[start:end])))
    return float(lrs[start + int(np.argmin(slopes))])


def _batches(sampler: LengthBucketSampler, max_epochs: int | None) -> Iterator[list[int]]:
    epoch = 0
    while max_epochs is None or epoch < max_epochs:
        sampler.set_epoch(epoch)
        yield from sampler
        epoch += 1


def lr_find(
    model: nn.Module,
    train_data: Sequence[dict[str, Any]],
    loss_fn: LossFn,
    *,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
    lengths: Sequence[int] | None = None,
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    max_epochs: int | None = None,
    stop_factor: float = 4.0,
    smooth: float = 0.98,
    weight_decay: float = 0.01,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> LRFinderResult:
    """Train with AdamW for up to `num_steps` steps (or `max_epochs` passes over the data), the LR
    rising exponentially from `start_lr` to `end_lr`; stop when the smoothed loss exceeds
    `stop_factor` times its best. The model's weights, training mode and the RNG states are
    restored afterwards, so the range test does not change a later `fit`."""
    device = default_device(device)
    model.to(device)
    saved_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_rng, was_training = capture_rng(), model.training
    sampler = LengthBucketSampler(
        lengths if lengths is not None else [0] * len(train_data),
        batch_size,
        seed=seed,
        bucket=lengths is not None,
    )
    optimizer = build_optimizer(
        model, "adamw", lr=start_lr, weight_decay=weight_decay, betas=(0.9, 0.999), eps=None
    )
    ratio = (end_lr / start_lr) ** (1 / max(1, num_steps - 1))
    lrs, losses, raw = [], [], []
    average, best = 0.0, math.inf
    model.train()
    try:
        for i, indices in enumerate(_batches(sampler, max_epochs)):
            if i >= num_steps:
                break
            lr = start_lr * ratio**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = to_device(collate([train_data[j] for j in indices]), device)
            loss, _ = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            average = smooth * average + (1 - smooth) * value
            smoothed = average / (1 - smooth ** (i + 1))  # bias correction of the running mean
            lrs.append(lr)
            losses.append(smoothed)
            raw.append(value)
            if not math.isfinite(smoothed) or smoothed > stop_factor * best:
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(saved_weights)
        restore_rng(saved_rng)
        model.train(was_training)
    return LRFinderResult(lrs, losses, raw, suggest_lr(lrs, losses))
