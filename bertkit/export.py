"""`bertkit export --onnx`: a model or predictor folder to ONNX, checked against PyTorch's outputs."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.cli_options import add_options, call
from bertkit.io import save_json
from bertkit.precision import ONNX_FILE, OnnxModel

META_FILE = "bertkit.json"


class _Logits(nn.Module):
    """The model's logits (or last hidden state for a bare encoder) as the graph's one output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids, attention_mask, token_type_ids)
        return out.logits if out.logits is not None else out.last_hidden_state


def sample_inputs(model: nn.Module, batch: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids with the last row right-padded to half its length (so the mask path is traced)."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 2, seq) if getattr(model, "head_name", None) == "multiple_choice" else (batch, seq)
    ids = torch.randint(config.pad_token_id + 1, config.vocab_size, shape, generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, ..., seq // 2 :] = 0
    ids[mask == 0] = config.pad_token_id
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def export_onnx(folder: str | Path, out: str | Path | None = None, tolerance: float = 1e-4) -> tuple[Path, float]:
    """Write `model.onnx` (dynamic batch and length axes) for the model in `folder`.

    Returns (path, largest absolute difference from PyTorch fp32 logits on a fresh padded batch);
    raises `ValueError` when that difference exceeds `tolerance`. In a predictor folder the
    file lands beside the weights and `bertkit.json` records `"precision": "onnx"`.
    """
    from torch.export import Dim

    from bertkit.model import load_model

    folder = Path(folder)
    model = load_model(folder, head="auto").eval()
    path = Path(out) if out is not None else folder / ONNX_FILE
    inputs = sample_inputs(model, batch=2, seq=8)
    names = list(inputs)
    batch, seq = Dim("batch"), Dim("seq", max=model.config.max_positions - model.config.position_offset)
    axes = {0: batch, 2: seq} if inputs["input_ids"].dim() == 3 else {0: batch, 1: seq}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Logits(model), tuple(inputs.values()), tmp, input_names=names, output_names=["logits"],
                              dynamic_shapes=tuple(axes for _ in names), dynamo=True, external_data=False,
                              verbose=False)
        diff = compare(model, OnnxModel(Path(tmp), model))
        if diff > tolerance:
            raise ValueError(f"ONNX outputs differ from PyTorch's by {diff:.2e} (> {tolerance:g}); not written")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if (folder / META_FILE).is_file() and path.parent.resolve() == folder.resolve():
        _record(folder / META_FILE, path.name, diff)
    return path, diff


@torch.inference_mode()
def compare(model: nn.Module, exported: nn.Module, batch: int = 3, seq: int = 11) -> float:
    """Largest absolute logit difference between two models on a padded random batch."""
    inputs = sample_inputs(model, batch, seq, seed=1)
    expected = _Logits(model)(**inputs)
    got = exported(**inputs).logits
    return float(np.abs(expected.numpy() - got.numpy()).max())


def _record(meta_path: Path, name: str, diff: float) -> None:
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["precision"] = "onnx"
    meta["onnx"] = {"file": name, "max_abs_diff": diff}
    save_json(meta_path, meta)


def export(folder: str, onnx: bool = False, out: str | None = None, tolerance: float = 1e-4) -> int:
    """Export a model or predictor folder.

    Args:
        folder: a model folder (config.json + weights) or a predictor folder.
        onnx: write ONNX (the only format): dynamic batch and length axes, checked against PyTorch.
        out: where to write the file; default: model.onnx inside the folder (a predictor then loads
            with precision "onnx" by default).
        tolerance: the largest absolute difference from PyTorch's fp32 logits accepted.
    """
    if not onnx:
        raise ValueError("choose an export format: --onnx")
    path, diff = export_onnx(folder, out, tolerance)
    print(f"wrote {path} (largest difference from PyTorch fp32 logits: {diff:.2e})")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a model or predictor folder to ONNX",
                                   description="Export a model or predictor folder to ONNX.")
    add_options(parser, export, positional=("folder",))
    parser.set_defaults(func=lambda args: call(export, args))
