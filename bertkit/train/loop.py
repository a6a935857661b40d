"""The one training loop: fine-tuning, pre-training and distillation all call `fit` with their loss.

Read top to bottom: `fit` sets up (seed, sampler, optimizer, schedule, resume, DDP), then runs
optimizer steps; each step accumulates `grad_accum` micro-batches, clips, steps, and then logs,
evaluates, checkpoints and calls the callbacks. Its settings and the state callbacks see are in
`bertkit.train.state`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn
from torch.profiler import record_function
from tqdm.auto import tqdm

from bertkit.data.batching import LengthBucketSampler
from bertkit.train import distributed
from bertkit.train.checkpoint import (
    load_checkpoint,
    resume_point,
    save_checkpoint,
    save_weights,
)
from bertkit.train.hardware import default_device, to_device
from bertkit.train.history import History
from bertkit.train.optim import build_optimizer
from bertkit.train.rowwise import RowAdamW, clip_grad_norm, row_gradients
from bertkit.train.schedules import get_schedule
from bertkit.train.state import EvalFn, LossFn, TrainConfig, TrainState, set_seed
from bertkit.train.validation import check_options


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    for cb in callbacks:
        if hasattr(cb, hook):
            getattr(cb, hook)(*args)


@dataclass
class _Run:
    """The moving parts of one `fit` call, so helpers take one argument instead of ten."""

    model: nn.Module
    ddp_model: nn.Module
    data: Sequence[dict[str, Any]]
    loss_fn: LossFn
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    eval_fn: EvalFn | None
    callbacks: Sequence[Any]
    config: TrainConfig
    device: torch.device
    sampler: LengthBucketSampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: TrainState
    bar: Any = None
    window_loss: torch.Tensor | None = None  # summed step losses since the last log record
    window_metrics: dict[str, float] = field(default_factory=dict)
    window_steps: int = 0
    window_examples: int = 0
    window_start: float = field(default_factory=time.perf_counter)
    interrupted: Callable[[], bool] = lambda: False


def fit(
    model: nn.Module,
    train_data: Sequence[dict[str, Any]],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
    lengths: Sequence[int] | None = None,
    eval_fn: EvalFn | None = None,
    callbacks: Sequence[Any] = (),
    device: str | torch.device | None = None,
) -> History:
    """Train `model` on `train_data` by minimising `loss_fn(model, batch) -> (loss, metrics)`.

    `model` is trained in place (on exit it holds the final, or with `restore_best` the best,
    weights). Under torchrun (`init_distributed()` called first) the model is wrapped in
    DistributedDataParallel and `loss_fn` receives the wrapper; each rank takes every W-th
    micro-batch. `eval_fn(model)` gets the unwrapped model in eval mode under `torch.no_grad()`
    and is called on every rank; its metrics are averaged over ranks. Returns the `History`.
    """
    run = _setup(model, train_data, loss_fn, config, collate, lengths, eval_fn, callbacks, device)
    state = run.state
    # embedding tables send row-wise gradients to RowAdamW (DDP all-reduces dense ones only)
    rowwise = isinstance(run.optimizer, RowAdamW) and run.ddp_model is run.model
    run.ddp_model.train()
    try:
        with row_gradients(model, run.optimizer, enabled=rowwise), _interruptible() as run.interrupted:
            while not (_finished(state) or state.should_stop):
                run.sampler.set_epoch(state.epoch)
                run.sampler.skip(state.micro_batches)
                if hasattr(run.collate, "set_epoch"):  # e.g. dynamic MLM masks seeded by epoch
                    run.collate.set_epoch(state.epoch)
                _train_epoch(run)
                if state.should_stop or _finished(state):
                    break
                state.epoch, state.micro_batches = state.epoch + 1, 0
    finally:
        _sync_weights(run)
        if run.bar is not None:
            run.bar.close()
    if config.restore_best and state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return state.history


def _finished(state: TrainState) -> bool:
    return state.step >= state.total_steps


def _setup(model, data, loss_fn, config, collate, lengths, eval_fn, callbacks, device) -> _Run:
    check_options(lr=config.lr, epochs=config.epochs, max_steps=config.max_steps,
                  batch_size=config.batch_size, grad_accum=config.grad_accum, warmup=config.warmup,
                  eval_every=config.eval_every, early_stopping=config.early_stopping,
                  checkpoint_every=config.checkpoint_every, log_every=config.log_every)
    if len(data) == 0:
        raise ValueError("train_data is empty: nothing to train on")
    set_seed(config.seed)
    device = default_device(device)
    model.to(device)
    world = distributed.world_size()
    sampler = LengthBucketSampler(
        lengths if lengths is not None else [0] * len(data),
        config.batch_size,
        seed=config.seed,
        bucket=lengths is not None and config.group_by_length,
        rank=distributed.rank(),
        world_size=world,
    )
    micro_per_rank = math.ceil(sampler.num_global_batches() / world)
    steps_per_epoch = math.ceil(micro_per_rank / config.grad_accum)
    total = config.max_steps or config.epochs * steps_per_epoch
    warmup = int(config.warmup * total) if config.warmup < 1 else int(config.warmup)
    optimizer = build_optimizer(
        model, config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
        betas=config.betas, eps=config.eps,
    )
    schedule = get_schedule(config.schedule, total, warmup, cycle_steps=steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = TrainState(config=config, model=model, history=History(), total_steps=total, optimizer=optimizer)
    _maybe_resume(model, optimizer, scheduler, state)
    ddp_model = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    show = config.progress and distributed.is_main()
    bar = tqdm(total=total, initial=state.step, disable=not show, desc="train", unit="step")
    return _Run(
        model, ddp_model, data, loss_fn, collate, eval_fn, callbacks, config, device,
        sampler, optimizer, scheduler, state, bar,
    )


def _maybe_resume(model, optimizer, scheduler, state: TrainState) -> None:
    """Continue from the newest checkpoint in `checkpoint_dir` (weights, optimizer, RNG, position)."""
    config = state.config
    if not (config.checkpoint_dir and config.resume):
        return
    path = resume_point(config.checkpoint_dir)  # skips a truncated newest checkpoint, with a warning
    if path is None:
        return
    saved = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
    state.step, state.epoch = saved["step"], saved["epoch"]
    state.micro_batches = saved["micro_batches"]
    state.best_metric, state.bad_evals = saved["best_metric"], saved["bad_evals"]
    state.should_stop = saved["should_stop"]  # an early-stopped run stays stopped
    state.history.records = saved["history"]
    best = Path(config.checkpoint_dir) / "best" / "model.safetensors"
    if config.restore_best and best.is_file():
        state.best_state = safetensors.torch.load_file(str(best))


def _train_epoch(run: _Run) -> None:
    """Optimizer steps over this rank's remaining micro-batches of the current epoch."""
    state, config = run.state, run.config
    batches = list(run.sampler)
    epoch_len = run.sampler.num_global_batches()
    for start in range(0, len(batches), config.grad_accum):
        window = batches[start : start + config.grad_accum]
        loss, metrics, examples = _accumulate(run, window)
        _optimizer_step(run)
        state.step += 1
        consumed = state.micro_batches + len(window) * distributed.world_size()
        state.micro_batches = min(consumed, epoch_len)
        epoch_done = start + config.grad_accum >= len(batches)
        with record_function("step.logging"):
            _track(run, loss, metrics, examples)
            _after_step(run, epoch_done)
        if state.should_stop or _finished(state):
            return
        if run.interrupted():
            raise KeyboardInterrupt


@contextlib.contextmanager
def _interruptible() -> Iterator[Callable[[], bool]]:
    """Yield a function telling whether Ctrl-C was pressed since entry. The loop checks it after
    every step, so training stops even when the first KeyboardInterrupt landed in code where
    Python only reports exceptions (a finaliser run by the garbage collector)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield lambda: False
        return
    pressed: list[bool] = []

    def on_sigint(signum: int, frame: Any) -> None:
        pressed.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _accumulate(run: _Run, window: list[list[int]]) -> tuple[torch.Tensor, dict[str, float], int]:
    """Forward + backward over the micro-batches of one optimizer step; returns their mean loss."""
    if not run.ddp_model.training:  # evaluation, or a callback, left the model in eval mode
        run.ddp_model.train()
    total_loss = torch.zeros((), device=run.device)
    metrics: dict[str, float] = {}
    examples = 0
    for i, indices in enumerate(window):
        with record_function("step.data"):
            batch = to_device(run.collate([run.data[j] for j in indices]), run.device)
        last = i == len(window) - 1
        # gradients are all-reduced by DDP only on the last micro-batch of the window
        sync = (
            contextlib.nullcontext()
            if last or run.ddp_model is run.model
            else run.ddp_model.no_sync()
        )
        autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.config.bf16)
        with sync:
            with autocast, record_function("step.forward"):
                loss, batch_metrics = run.loss_fn(run.ddp_model, batch)
            with record_function("step.backward"):
                (loss / len(window)).backward()
        total_loss += loss.detach().float() / len(window)
        for k, v in batch_metrics.items():
            metrics[k] = metrics.get(k, 0.0) + float(v) / len(window)
        examples += len(indices)
    return total_loss, metrics, examples


def _optimizer_step(run: _Run) -> None:
    if run.config.max_grad_norm:
        with record_function("step.clip"):
            clip_grad_norm(run.model.parameters(), run.config.max_grad_norm)
    with record_function("step.optimizer"):
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    with record_function("step.scheduler"):
        run.scheduler.step()


def _track(run: _Run, loss: torch.Tensor, metrics: dict[str, float], examples: int) -> None:
    run.window_loss = loss if run.window_loss is None else run.window_loss + loss
    for k, v in metrics.items():
        run.window_metrics[k] = run.window_metrics.get(k, 0.0) + v
    run.window_steps += 1
    run.window_examples += examples


def _after_step(run: _Run, epoch_done: bool) -> None:
    """Log, evaluate, checkpoint, call callbacks — in that order, so a checkpoint holds the
    metrics of its own step and a callback that stops training sees everything up to date."""
    state, config = run.state, run.config
    run.bar.update(1)
    if state.step % config.log_every == 0 or epoch_done or _finished(state):
        _log(run)
    due_eval = config.eval_every and state.step % config.eval_every == 0
    if run.eval_fn is not None and (due_eval or (epoch_done and not config.eval_every)):
        _sync_weights(run)
        _evaluate(run)
    due_ckpt = config.checkpoint_every and state.step % config.checkpoint_every == 0
    saved = due_ckpt or epoch_done or _finished(state) or state.should_stop
    if saved:
        _checkpoint(run)
    _call(run.callbacks, "on_step_end", state)
    if epoch_done:
        _call(run.callbacks, "on_epoch_end", state)
    if state.should_stop and not saved:
        _checkpoint(run)  # a callback stopped the run (e.g. a time budget): keep this step


def _sync_weights(run: _Run) -> None:
    """Bring deferred embedding-row updates into the weights (a no-op for other optimizers)."""
    run.state.sync_weights()


def _checkpoint(run: _Run) -> None:
    """Save a checkpoint (when the run has a folder) of AdamW's exact weights: deferred
    embedding-row updates are brought in first, also for the caller that reads the weights next."""
    _sync_weights(run)
    if run.config.checkpoint_dir:
        save_checkpoint(
            run.config.checkpoint_dir, model=run.model, optimizer=run.optimizer,
            scheduler=run.scheduler, state=run.state.to_json(), keep=run.config.keep_checkpoints,
        )


def _log(run: _Run) -> None:
    """One history record with the loss and metrics averaged over the window and over ranks."""
    state = run.state
    n = run.window_steps
    world = distributed.world_size()
    values = torch.stack(
        [run.window_loss.float().cpu() / n]
        + [torch.tensor(v / n) for v in run.window_metrics.values()]
    )
    values = distributed.all_reduce_mean(values).tolist()
    elapsed = max(time.perf_counter() - run.window_start, 1e-9)
    state.lr = run.scheduler.get_last_lr()[0]
    state.last_loss = values[0]
    record = {"step": state.step, "epoch": state.epoch, "lr": state.lr, "loss": values[0]}
    record |= dict(zip(run.window_metrics, values[1:], strict=True))
    record["examples_per_s"] = run.window_examples * world / elapsed
    if distributed.is_main():
        state.history.append(record)
    run.bar.set_postfix(
        loss=f"{values[0]:.4f}", lr=f"{state.lr:.2e}", ex_s=f"{record['examples_per_s']:.0f}"
    )
    run.window_loss, run.window_metrics, run.window_steps, run.window_examples = None, {}, 0, 0
    run.window_start = time.perf_counter()


def _evaluate(run: _Run) -> None:
    state = run.state
    run.model.eval()
    with torch.no_grad():
        raw = run.eval_fn(run.model)
    names = sorted(raw)
    averaged = distributed.all_reduce_mean(torch.tensor([float(raw[k]) for k in names]))
    metrics = dict(zip(names, averaged.tolist(), strict=True))
    if distributed.is_main():
        state.history.append({"step": state.step, "epoch": state.epoch} | metrics)
    _track_best(run, metrics)
    _call(run.callbacks, "on_evaluate", state, metrics)
    run.model.train()


def _track_best(run: _Run, metrics: dict[str, float]) -> None:
    state, config = run.state, run.config
    if config.monitor not in metrics:
        if config.early_stopping or config.restore_best:
            raise KeyError(
                f"monitor {config.monitor!r} is not among the eval metrics {sorted(metrics)}; "
                "set TrainConfig.monitor to one of them"
            )
        return
    value = metrics[config.monitor]
    best = state.best_metric
    improved = best is None or (value < best if config.mode == "min" else value > best)
    if improved:
        state.best_metric, state.bad_evals = value, 0
        if config.restore_best:
            state.best_state = {
                k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()
            }
            if config.checkpoint_dir and distributed.is_main():
                save_weights(Path(config.checkpoint_dir) / "best", run.model)
    else:
        state.bad_evals += 1
        if config.early_stopping and state.bad_evals >= config.early_stopping:
            state.should_stop = True
