"""Training checkpoints: `root/step-000123/` with weights, optimizer, scheduler, RNG and loop state,
and `root/run.json`, the fingerprint of what the run was made with (checked before resuming).

Every file is loadable with `torch.load(weights_only=True)` or plain JSON, and a folder appears
whole or not at all (written through `bertkit.io.atomic_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
import zipfile
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
RUN_FILE = "run.json"
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")
log = logging.getLogger(__name__)


class CheckpointMismatch(ValueError):
    """Resuming would continue a run with other data, model or options than it was made with."""


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


# ----------------------------------------------------------------------------- safe resume
def resume_point(root: str | Path) -> Path | None:
    """The newest complete, readable checkpoint under `root` (None when there is none at all).

    A newest checkpoint that is truncated or corrupt (a full disk, a copy cut short) is skipped
    with a warning for the one before it; when none is readable, a `ValueError` names the reasons.
    """
    problems = []
    for path in reversed(step_dirs(root)):
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                log.warning("skipped unreadable checkpoint(s): %s; resuming from %s", "; ".join(problems), path)
            return path
        problems.append(f"{path} ({problem})")
    if problems:
        raise ValueError(f"no readable checkpoint to resume from: {'; '.join(problems)}; remove "
                         "them or resume without them (pre-training: --no-resume)")
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from (naming the file), or None."""
    for name in CHECKPOINT_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
        try:
            _CHECKS[name.rpartition(".")[2]](path / name)
        except Exception as error:  # any parse failure means: not resumable
            return f"{name}: {type(error).__name__}: {' '.join(str(error).split())[:200]}"
    return None


def _check_safetensors(file: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:  # checks the header covers the whole file
        for key in f.keys():  # noqa: SIM118 — safe_open handles have no __iter__
            f.get_slice(key)


def _check_zip(file: Path) -> None:
    with zipfile.ZipFile(file) as archive:  # torch.save writes a zip archive: check every CRC
        if (bad := archive.testzip()) is not None:
            raise ValueError(f"member {bad} is corrupt")


_CHECKS = {"safetensors": _check_safetensors, "pt": _check_zip,
           "json": lambda file: json.loads(file.read_text(encoding="utf-8"))["step"]}


def fingerprint_task_data(data: Any) -> str:
    """A hash of featurised training data: every feature's token ids, and the targets."""
    features = getattr(data, "features", None) or []
    return fingerprint_data([f.get("input_ids") for f in features], getattr(data, "example_ids", None),
                            getattr(data, "targets", None))


def fingerprint_data(*parts: Any) -> str:
    """A short hash of the training data (token ids and labels, or a corpus manifest)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


# TrainConfig fields that do not change the trained weights: they may differ on resume
_NEUTRAL_OPTIONS = ("checkpoint_dir", "checkpoint_every", "keep_checkpoints", "resume", "log_every", "progress")


def train_fingerprint(config: Any, model: nn.Module, data: str) -> dict[str, Any]:
    """What a run is made with: the data hash, the model config and every `TrainConfig` option
    that changes the result (not where or how often checkpoints and logs are written)."""
    from dataclasses import asdict

    options = {k: v for k, v in asdict(config).items() if k not in _NEUTRAL_OPTIONS}
    # the batch of one optimizer step is what counts: a run may resume on another number of
    # processes with the accumulation that keeps it (2 ranks x 1 = 1 rank x 2)
    options["batch_per_step"] = options.pop("batch_size") * options.pop("grad_accum") * distributed.world_size()
    model_config = getattr(model, "config", None)
    described = model_config.to_dict() if hasattr(model_config, "to_dict") else {}
    return {"data": data, "model": described | {"num_labels": getattr(model, "num_labels", None)},
            "options": options}


def check_run(root: str | Path, fingerprint: dict[str, Any], *, resume: bool,
              allow_changes: bool = False) -> None:
    """Compare what this run is made with to what the checkpoints under `root` were made with.

    `fingerprint` is {"data": ..., "model": {...}, "options": {...}}. Resuming with other data or
    options is an error listing every difference unless `allow_changes`; another model config is
    always one (the weights would not fit). Starting afresh over a folder that already holds
    checkpoints is an error too: their rotation would delete them. Records `fingerprint` for the
    next resume. Call it on every rank; only rank 0 writes.
    """
    root = Path(root)
    has_checkpoints = bool(step_dirs(root))
    if has_checkpoints and not resume:
        raise CheckpointMismatch(f"{root} holds checkpoints of an earlier run: resume it (--resume), "
                                 "or choose an empty checkpoint folder")
    saved = _read_run(root / RUN_FILE) if has_checkpoints else None
    if has_checkpoints and saved is None:
        log.warning("%s has no readable %s: cannot check that it was made with the same data and "
                    "options", root, RUN_FILE)
    if saved is not None:
        changes = _differences(saved, fingerprint)
        model_changes = [c for c in changes if c.startswith("model.")]
        if model_changes or (changes and not allow_changes):
            how = ("" if model_changes else "; to continue with the new settings anyway, pass "
                   "--force-resume (force_resume=True in Python)")
            raise CheckpointMismatch(f"the checkpoints in {root} were made with other settings: "
                                     f"{', '.join(changes)}; rerun with the old settings or choose "
                                     f"another checkpoint folder{how}")
        if changes:
            log.warning("resuming %s with changed settings: %s", root, ", ".join(changes))
    if distributed.is_main():
        save_json(root / RUN_FILE, fingerprint)


def _read_run(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """"key old -> new" for every leaf that differs (JSON round-trip, so tuples equal lists)."""
    old, new = json.loads(json.dumps(old, default=str)), json.loads(json.dumps(new, default=str))
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a} -> {b}")
    return out
