"""What `fit` is given and what its callbacks see: `TrainConfig`, `TrainState`, the `Callback`
protocol, the loss and evaluation signatures, and `set_seed`."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from bertkit.train.history import History
from bertkit.train.rowwise import RowAdamW
from bertkit.train.schedules import ScheduleName

LossFn = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainConfig:
    """Everything `fit` needs besides the model, data and loss. Steps are optimizer steps."""

    lr: float = 5e-5
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs (and sets the schedule length) when given
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup: float = 0.1  # < 1: fraction of total steps; >= 1: number of steps
    schedule: ScheduleName = "linear"
    # batches of similar lengths (when `fit` is given lengths): less padding, more examples/s, but
    # length-alike batches; False draws them at random (pair it with packed encoding for the speed)
    group_by_length: bool = True
    optimizer: Literal["adamw", "lamb"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float | None = None  # None: 1e-8 for AdamW, 1e-6 for LAMB
    max_grad_norm: float | None = 1.0
    bf16: bool = False
    eval_every: int | None = None  # None: at the end of each epoch
    early_stopping: int | None = None  # patience, in evaluations without improvement
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None  # steps; a checkpoint is also written at each epoch end
    keep_checkpoints: int = 2
    resume: bool = True
    seed: int = 42
    log_every: int = 10
    progress: bool = True
    restore_best: bool = False


@dataclass
class TrainState:
    """What callbacks see. Set `should_stop = True` to end training after the current step.

    The weights of embedding rows a batch did not touch may owe the weight decay of the last few
    steps until the next evaluation or checkpoint (see `bertkit.train.rowwise`); a callback that
    reads the weights calls `state.sync_weights()` first. Doing so on a fixed schedule keeps runs
    repeatable; when the flushes happen never depends on which callbacks are attached.
    """

    config: TrainConfig
    model: nn.Module  # unwrapped (never the DDP wrapper)
    history: History
    total_steps: int
    step: int = 0  # optimizer steps done
    epoch: int = 0
    micro_batches: int = 0  # global micro-batches consumed in the current epoch
    best_metric: float | None = None
    bad_evals: int = 0
    should_stop: bool = False
    last_loss: float | None = None
    lr: float = 0.0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)

    def sync_weights(self) -> None:
        """Make `model`'s weights exactly those of standard AdamW at this step."""
        if isinstance(self.optimizer, RowAdamW):
            self.optimizer.sync_weights()

    def to_json(self) -> dict[str, Any]:
        keys = ("step", "epoch", "micro_batches", "best_metric", "bad_evals", "should_stop")
        keys += ("total_steps",)
        return {k: getattr(self, k) for k in keys} | {"history": self.history.records}


class Callback(Protocol):
    """Any object with some of these methods; missing ones are skipped. All ranks call them."""

    def on_step_end(self, state: TrainState) -> None: ...
    def on_evaluate(self, state: TrainState, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs): same seed, same initial weights and dropout."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
