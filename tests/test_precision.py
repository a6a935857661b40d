"""Opt-in precision modes (bf16 autocast, int8 dynamic quantisation, ONNX) stay close to fp32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_inference import _features

import bertkit
from bertkit import EncoderConfig
from bertkit.cli import main
from bertkit.precision import apply_precision, check_precision
from bertkit.tasks.inference import forward_features


def _model() -> bertkit.BertkitModel:
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=37,
                           max_positions=160, labels=["a", "b", "c"])
    return bertkit.build(config, head="classification", num_labels=3).eval()


def _logits(model: torch.nn.Module, features: list[dict]) -> np.ndarray:
    return np.stack(forward_features(model, features, pad_id=0, max_tokens=400))


@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", 3e-2), ("int8", 3e-2)])
def test_reduced_precision_stays_within_tolerance(precision: str, tolerance: float) -> None:
    features = _features(16)
    expected = _logits(_model(), features)
    model = apply_precision(_model(), precision)
    assert model.precision == precision
    got = _logits(model, features)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < tolerance
    if precision == "int8":
        assert any("quantized" in type(m).__module__ for m in model.modules())


def test_onnx_export_matches_pytorch_and_records_precision(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "model"
    _model().save(folder)
    (folder / "bertkit.json").write_text(json.dumps({"format": "bertkit-predictor", "precision": "fp32"}))
    assert main(["export", "--onnx", str(folder)]) == 0
    meta = json.loads((folder / "bertkit.json").read_text())
    assert meta["precision"] == "onnx" and meta["onnx"]["max_abs_diff"] < 1e-4
    features = _features(12)
    expected = _logits(_model(), features)
    onnx_model = apply_precision(_model(), "onnx", folder)
    np.testing.assert_allclose(_logits(onnx_model, features), expected, atol=1e-4, rtol=0)


def test_bad_precision_and_missing_onnx_file_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp8")
    with pytest.raises(FileNotFoundError, match="bertkit export --onnx"):
        apply_precision(_model(), "onnx", tmp_path)
    assert main(["export", str(tmp_path)]) == 1  # no format chosen
