"""Training checkpoints: `root/step-000123/` with weights, optimizer, scheduler, RNG and loop state.

Every file is loadable with `torch.load(weights_only=True)` or plain JSON, and a folder appears
whole or not at all (written through `bertkit.io.atomic_dir`).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
from torch import nn

from bertkit.io import atomic_dir, save_json
from bertkit.train import distributed

_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dirs(root: str | Path) -> list[Path]:
    """Checkpoint folders under `root`, oldest (lowest step) first; temp/partial folders are ignored."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The highest-step checkpoint folder under `root`, or None."""
    dirs = step_dirs(root)
    return dirs[-1] if dirs else None


def capture_rng() -> dict[str, Any]:
    """This process's Python, NumPy, torch CPU and CUDA RNG states, as weights_only-safe values."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _gather_rng() -> list[dict[str, Any]]:
    """RNG states of every rank (each rank's dropout stream differs), collected on all ranks."""
    mine = capture_rng()
    if not distributed.is_distributed():
        return [mine]
    everyone: list[Any] = [None] * distributed.world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def save_checkpoint(
    root: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path | None:
    """Write `root/step-{state['step']:06d}`, then delete all but the newest `keep` checkpoints.

    Call it on every rank: RNG states are gathered from all ranks, only rank 0 writes. Returns the
    folder on rank 0, None elsewhere.
    """
    rng_states = _gather_rng()
    path = None
    if distributed.is_main():
        path = Path(root) / f"step-{state['step']:06d}"
        with atomic_dir(path) as tmp:
            # save_model drops duplicate names of tied tensors (e.g. MLM decoder = embeddings)
            safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(rng_states, tmp / "rng.pt")
            save_json(tmp / "state.json", state)
        for old in step_dirs(root)[: -max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    return path


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_random: bool = True,
) -> dict[str, Any]:
    """Load weights (+ optimizer, scheduler, this rank's RNG) from `path`; return the loop state dict.

    A run resumed with a different world size restores rank 0's RNG on the ranks that have no
    saved state of their own.
    """
    path = Path(path)
    missing, unexpected = safetensors.torch.load_model(model, str(path / "model.safetensors"))
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}"
        )
    device = next(model.parameters()).device
    if optimizer is not None:
        optimizer.load_state_dict(
            torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
        )
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    if restore_random:
        states = torch.load(path / "rng.pt", weights_only=True)
        r = distributed.rank()
        restore_rng(states[r] if r < len(states) else states[0])
    return json.loads((path / "state.json").read_text())


def save_weights(path: str | Path, model: nn.Module) -> None:
    """Write only the model weights to `path/model.safetensors` (used for the best model so far)."""
    with atomic_dir(path) as tmp:
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
