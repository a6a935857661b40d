"""Pre-training objectives: masked-LM (+ next-sentence or sentence-order) or left-to-right loss,
and held-out metrics. The MLM vocabulary projection runs only at masked positions (`mlm_mask`),
about 15% of tokens; the left-to-right objective uses the same head at every real position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bertkit.pretrain.masking import IGNORE_INDEX, MLMCollator, Objective
from bertkit.pretrain.shards import PretrainDataset

PAIR_KEYS = {"next_sentence_label": "nsp", "sentence_order_label": "sop"}
# Metric prefix per objective: "lm" losses are next-token and never comparable with "mlm" ones.
PREFIX = {"mlm": "mlm", "left_to_right": "lm"}


def _pair_label(batch: dict[str, Any]) -> tuple[str, torch.Tensor] | None:
    for key, name in PAIR_KEYS.items():
        if key in batch:
            return name, batch[key]
    return None


def _forward(model: nn.Module, batch: dict[str, Any]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Run the model with logits only where labels are set (masked tokens, or every position with a
    next token); returns (output, mask, targets)."""
    labels = batch["labels"]
    mlm_mask = labels != IGNORE_INDEX  # (batch, seq)
    out = model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"),
                mlm_mask=mlm_mask)
    return out, mlm_mask, labels[mlm_mask]  # targets: (n_masked,)


def pretraining_loss(model: nn.Module, batch: dict[str, Any], objective: Objective = "mlm",
                     ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over the batch's labels (masked tokens for "mlm", next tokens for
    "left_to_right", as the collator made them), plus NSP/SOP cross-entropy when the model has a
    pair head and the batch pair labels.

    Metrics: mlm_loss and mlm_accuracy (lm_loss, lm_accuracy for left-to-right) and, with a pair
    head, nsp_/sop_loss and _accuracy. Perplexity is exp(mean loss) over a logging window, so
    `pretrain` derives it from the averaged loss (a mean of per-batch perplexities overstates it).
    """
    name = PREFIX[objective]
    out, _, targets = _forward(model, batch)
    logits = out.logits.float()  # (n_targets, vocab); float: bf16 log-softmax loses precision
    mlm_loss = F.cross_entropy(logits, targets)
    with torch.no_grad():
        metrics = {f"{name}_loss": mlm_loss.item(),
                   f"{name}_accuracy": (logits.argmax(-1) == targets).float().mean().item()}
    loss = mlm_loss
    pair = _pair_label(batch)
    if pair is not None and out.pair_logits is not None:
        name, pair_labels = pair
        pair_logits = out.pair_logits.float()
        pair_loss = F.cross_entropy(pair_logits, pair_labels)
        loss = loss + pair_loss
        metrics[f"{name}_loss"] = pair_loss.item()
        metrics[f"{name}_accuracy"] = (pair_logits.argmax(-1) == pair_labels).float().mean().item()
    return loss, metrics


@torch.no_grad()
def evaluate_pretraining(model: nn.Module, dataset: PretrainDataset, *, batch_size: int = 64,
                         seed: int = 0, max_samples: int | None = None,
                         device: str | torch.device | None = None, objective: Objective = "mlm",
                         mask_mix: Sequence[float] | None = None) -> dict[str, float]:
    """Held-out loss, accuracy and perplexity (+ NSP/SOP accuracy), token-weighted: mlm_* over
    masked tokens, or lm_* over next tokens with `objective="left_to_right"`.

    Masking is deterministic: the collator is seeded with `seed` at epoch 0, so every call on the
    same data masks the same tokens and numbers from different checkpoints are comparable.
    `mask_mix=None` corrupts with the corpus's own mix (BERT's 80/10/10 unless prepared otherwise).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    collator = MLMCollator.from_manifest(dataset.manifest, seed=seed, objective=objective, mask_mix=mask_mix)
    count = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    if count == 0:
        raise ValueError("evaluate_pretraining got an empty dataset")
    was_training = model.training
    model.eval()
    loss_sum, correct, tokens, pair_correct, pairs, pair_name = 0.0, 0, 0, 0, 0, None
    for start in range(0, count, batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, count))])
        batch = {k: v.to(device) for k, v in batch.items()}
        out, _, targets = _forward(model, batch)
        logits = out.logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        correct += int((logits.argmax(-1) == targets).sum())
        tokens += int(targets.numel())
        pair = _pair_label(batch)
        if pair is not None and out.pair_logits is not None:
            pair_name = pair[0]
            pair_correct += int((out.pair_logits.argmax(-1) == pair[1]).sum())
            pairs += int(pair[1].numel())
    model.train(was_training)
    mlm_loss, name = loss_sum / max(tokens, 1), PREFIX[objective]
    metrics = {f"{name}_loss": mlm_loss, f"{name}_accuracy": correct / max(tokens, 1),
               "perplexity": math.exp(min(mlm_loss, 50.0))}
    if pair_name is not None:
        metrics[f"{pair_name}_accuracy"] = pair_correct / pairs
    return metrics
