"""Batched inference shared by every task: token-budget batches of similar lengths, no compute on
padding, the model's precision mode, outputs back in feature order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bertkit.data.batching import pad_collate
from bertkit.model.encoder import packed_encoding
from bertkit.tasks.base import MODEL_INPUTS, _length

MAX_TOKENS = 16384  # padded tokens per batch: large matrices for the linear layers, bounded memory
PACK_WASTE = 0.05  # pack a batch's real tokens when padding would be more than this share of it


def token_batches(lengths: Sequence[int], max_tokens: int = MAX_TOKENS, max_size: int | None = None,
                  ) -> Iterator[list[int]]:
    """Indices in length order, cut into batches whose padded size (count × longest) stays within
    `max_tokens` (a longer single item gets a batch of its own) and count within `max_size`."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        # lengths rise along `order`, so the newest item is the batch's longest
        full = batch and ((len(batch) + 1) * lengths[i] > max_tokens or len(batch) == max_size)
        if full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def precision_context(model: nn.Module, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for a model prepared with `bertkit.precision.apply(model, "bf16")`."""
    if getattr(model, "precision", "fp32") == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batched_outputs(
    model: nn.Module, features: Sequence[dict[str, Any]], *, pad_id: int, batch_size: int | None = None,
    max_tokens: int = MAX_TOKENS, packed: bool = True, output_hidden_states: bool = False,
    progress: str | None = None,
) -> Iterator[tuple[list[int], dict[str, torch.Tensor], Any]]:
    """The one inference loop: (feature indices, padded batch on the model's device, model output)
    for every batch; the model runs in eval mode under `torch.inference_mode()`.

    Features are sorted by length and batched by a token budget (`max_tokens` padded tokens, at
    most `batch_size` features when given). With `packed`, a batch whose padding is more than 5%
    of it runs unpadded: only real tokens go through the linear layers, attention runs per
    sequence (fp32 outputs equal the padded ones to float rounding; not with hidden states).
    `progress` names a progress bar over the batches.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    lengths = [_length(f["input_ids"]) for f in features]
    chunks = list(token_batches(lengths, max_tokens, batch_size))
    # asked for only when wanted: an exported (ONNX) model takes the inputs alone
    options = {"output_hidden_states": True} if output_hidden_states else {}
    try:
        for chunk in tqdm(chunks, disable=progress is None, desc=progress, unit="batch"):
            rows = [{k: features[i][k] for k in MODEL_INPUTS if k in features[i]} for i in chunk]
            batch = {k: v.to(device) for k, v in pad_collate(rows, pad_id).items()}
            real = sum(lengths[i] for i in chunk)
            pack = packed and real < (1 - PACK_WASTE) * len(chunk) * lengths[chunk[-1]]
            with torch.inference_mode(), packed_encoding(model, pack), precision_context(model, device):
                out = model(**batch, **options)
            yield chunk, batch, out
    finally:
        model.train(was_training)


def forward_features(
    model: nn.Module, features: Sequence[dict[str, Any]], *, pad_id: int, batch_size: int | None = None,
    max_tokens: int = MAX_TOKENS, packed: bool = True,
) -> list[np.ndarray]:
    """The head's logits of every feature, as float32 arrays in feature order (batched as
    `batched_outputs` does). Token-level logits (batch, seq, k) come back cut to each feature's
    real length, (seq, k); sentence-level ones as (k,) and multiple-choice ones as (choices,).
    """
    lengths = [_length(f["input_ids"]) for f in features]
    outputs: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(features)
    for chunk, _, out in batched_outputs(model, features, pad_id=pad_id, batch_size=batch_size,
                                         max_tokens=max_tokens, packed=packed):
        logits = out.logits.float().cpu().numpy()
        for i, row in zip(chunk, logits, strict=True):
            outputs[i] = row[: lengths[i]] if logits.ndim == 3 else row
    return outputs


def mean_by_example(outputs: Sequence[np.ndarray], example_ids: Sequence[int], num_examples: int) -> np.ndarray:
    """(num_examples, k): the mean of each example's feature outputs (windows of one long text)."""
    stacked = torch.from_numpy(np.stack(outputs).astype(np.float32)) if outputs else torch.zeros(0, 1)
    index = torch.as_tensor(list(example_ids), dtype=torch.long)
    sums = torch.zeros(num_examples, stacked.shape[1]).index_add_(0, index, stacked)
    counts = torch.bincount(index, minlength=num_examples).clamp(min=1).unsqueeze(1)
    return (sums / counts).numpy()
