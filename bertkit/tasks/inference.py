"""Batched inference shared by every task: length-sorted batches, outputs back in feature order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.data.batching import pad_collate
from bertkit.tasks.base import MODEL_INPUTS, _length


@torch.inference_mode()
def forward_features(
    model: nn.Module, features: Sequence[dict[str, Any]], *, pad_id: int, batch_size: int = 32,
) -> list[np.ndarray]:  # fmt: skip
    """The head's logits of every feature, as float32 arrays in feature order.

    Features are batched by length (little padding); token-level logits (batch, seq, k) come back
    cut to each feature's real length, (seq, k); sentence-level ones as (k,) and multiple-choice
    ones as (choices,).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: _length(features[i]["input_ids"]))
    outputs: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(features)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = [{k: features[i][k] for k in MODEL_INPUTS if k in features[i]} for i in chunk]
            batch = pad_collate(rows, pad_id)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
            for i, row in zip(chunk, logits, strict=True):
                token_level = logits.ndim == 3
                outputs[i] = row[: _length(features[i]["input_ids"])] if token_level else row
    finally:
        model.train(was_training)
    return outputs


def mean_by_example(outputs: Sequence[np.ndarray], example_ids: Sequence[int], num_examples: int) -> np.ndarray:
    """(num_examples, k): the mean of each example's feature outputs (windows of one long text)."""
    stacked = torch.from_numpy(np.stack(outputs).astype(np.float32)) if outputs else torch.zeros(0, 1)
    index = torch.as_tensor(list(example_ids), dtype=torch.long)
    sums = torch.zeros(num_examples, stacked.shape[1]).index_add_(0, index, stacked)
    counts = torch.bincount(index, minlength=num_examples).clamp(min=1).unsqueeze(1)
    return (sums / counts).numpy()
