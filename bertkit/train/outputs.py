"""Checks on an output folder (`--out`) before any work: bertkit replaces only its own outputs and
never a folder that holds one of the run's inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from bertkit.io import save_json
from bertkit.train.validation import check_options

OutputKind = Literal["predictor", "pretraining run"]
PREDICTOR_MARKER = "bertkit.json"  # written by Predictor.save, with "format": "bertkit-predictor"
RUN_MARKER = "bertkit-run.json"  # written into a pre-training --out before its first step
_FORMATS = {"predictor": "bertkit-predictor", "pretraining run": "bertkit-pretraining-run"}


class OutputError(ValueError):
    """An output folder that bertkit must not write to or replace."""


def output_kind(folder: str | os.PathLike) -> OutputKind | None:
    """What bertkit output `folder` is, judged by its marker file; None for anything else."""
    folder = Path(folder)
    for kind, marker in (("predictor", PREDICTOR_MARKER), ("pretraining run", RUN_MARKER)):
        try:
            meta = json.loads((folder / marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("format") == _FORMATS[kind]:
            return kind  # type: ignore[return-value]
    return None


def mark_run(folder: str | os.PathLike) -> None:
    """Mark `folder` as a pre-training run, so that a later run may reuse it."""
    save_json(Path(folder) / RUN_MARKER, {"format": _FORMATS["pretraining run"]})


def check_output(out: str | os.PathLike, kind: OutputKind, *, inputs: Iterable[str | os.PathLike | None] = (),
                 flag: str = "--out") -> Path:
    """Refuse `out` unless it is new, empty, or a bertkit output of this `kind`; return it.

    `inputs` (data files, the model folder, a checkpoint folder) must lie outside `out`: replacing
    `out` would delete them. Call it before any work, so a bad `--out` costs no training.
    """
    if not str(out).strip():
        raise OutputError(f"{flag} is empty: give a folder path")
    path = Path(out).expanduser()
    resolved = path.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        raise OutputError(f"{flag} {out} is the current folder or one above it: give a new sub-folder")
    _check_parents(path, flag)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {out} is a file, not a folder: give a new folder path")
    for item in inputs:
        if item is not None and _inside(Path(item).expanduser().resolve(), resolved):
            raise OutputError(f"{flag} {out} holds the input {item}: writing {flag} would delete it; "
                              "choose another folder")
    if path.is_dir() and any(path.iterdir()) and output_kind(path) != kind:
        found = output_kind(path)
        what = f"a bertkit {found}" if found else f"not a bertkit {kind} (no {_marker(kind)})"
        raise OutputError(f"{flag} {out} already exists and is {what}; bertkit replaces only its own "
                          f"{kind} folders: choose a new folder or remove this one")
    return path


def _check_parents(path: Path, flag: str) -> None:
    parent = path.absolute().parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise OutputError(f"{flag} {path} is under {folder}, which is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise OutputError(f"{flag} {path}: no permission to write in {folder}")
            return


def _inside(item: Path, folder: Path) -> bool:
    return item == folder or folder in item.parents


def _marker(kind: OutputKind) -> str:
    return PREDICTOR_MARKER if kind == "predictor" else RUN_MARKER


def check_finetune(model: str, train: str, out: str, valid: str | None = None, *,
                   checkpoint_dir: str | None = None, resume: bool = False, **options: Any) -> Path:
    """Everything `finetune` can check before reading data: options in range, `--resume` with a
    checkpoint folder, and an `out` that may be written without deleting an input."""
    check_options(**options)
    if resume and not checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir: the folder whose newest checkpoint to continue")
    local_model = model if Path(model).exists() else None  # a hub name is no input on disk
    return check_output(out, "predictor", inputs=(train, valid, local_model, checkpoint_dir))
