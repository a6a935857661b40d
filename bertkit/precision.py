"""Inference precision modes: fp32, bf16 autocast, int8 dynamic quantisation, ONNX Runtime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

from bertkit.model.model import ModelOutput

Precision = Literal["fp32", "bf16", "int8", "onnx"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
ONNX_FILE = "model.onnx"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def apply_precision(model: nn.Module, precision: str, folder: str | Path | None = None) -> nn.Module:
    """The model to run for `precision` (fp32 weights in, the same head's logits out).

    bf16 marks the model so `forward_features` runs it under bf16 autocast; int8 replaces its
    linear layers with dynamically quantised ones (weights int8 with one scale per output row,
    activations quantised per batch);
    onnx returns an `OnnxModel` over `folder/model.onnx` (written by `bertkit export --onnx`).
    """
    check_precision(precision)
    if precision == "onnx":
        if folder is None or not (Path(folder) / ONNX_FILE).is_file():
            raise FileNotFoundError(f"no {ONNX_FILE} in {folder}; run `bertkit export --onnx {folder}` first")
        return OnnxModel(Path(folder) / ONNX_FILE, model)
    if precision == "int8":
        with warnings.catch_warnings():  # torch points eager quantisation users to torchao
            warnings.simplefilter("ignore")
            # one scale per output row of each weight: on a MiniLM IMDB classifier, 600 reviews,
            # -1.0 accuracy points against fp32 where one scale per matrix loses 2.7, and faster
            per_row = torch.ao.quantization.per_channel_dynamic_qconfig
            model = torch.ao.quantization.quantize_dynamic(model.cpu(), {nn.Linear: per_row}, dtype=torch.qint8)
    model.precision = precision
    return model.eval()


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def inference_threads() -> int:
    """Use one intra-op thread per core this process may run on (BERTKIT_THREADS sets another number)."""
    threads = int(os.environ.get("BERTKIT_THREADS", available_cores()))
    torch.set_num_threads(threads)
    return threads


class OnnxModel(nn.Module):
    """A model exported to ONNX, run by onnxruntime, with the `BertkitModel` call signature."""

    precision = "onnx"

    def __init__(self, path: Path, source: nn.Module) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("precision='onnx' needs onnxruntime: pip install 'bertkit[onnx]'") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        # what callers read from a model besides its forward
        self.config = source.config
        self.head_name = getattr(source, "head_name", None)
        self.num_labels = getattr(source, "num_labels", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: object) -> ModelOutput:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if given["attention_mask"] is None:
            given["attention_mask"] = torch.ones_like(input_ids)
        if given["token_type_ids"] is None:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feeds = {name: given[name].cpu().numpy() for name in self.inputs}
        logits = torch.from_numpy(self.session.run(None, feeds)[0])
        return ModelOutput(last_hidden_state=torch.empty(0), logits=logits)
