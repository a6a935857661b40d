"""DistilBERT's losses: soft targets at a temperature (scaled by T²), the cosine between hidden
states on real tokens, and the triple loss of general distillation as a `fit` loss function."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from bertkit.pretrain.masking import IGNORE_INDEX

SoftTargets = Literal["softmax", "sigmoid", "mse"]


def soft_target_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    *,
    mask: torch.Tensor | None = None,
    dim: int = -1,
    kind: SoftTargets = "softmax",
) -> torch.Tensor:
    """KL(teacher ‖ student) of the distributions at temperature T, times T² (so its gradients keep
    the size of a hard-label loss's as T changes; Hinton et al., 2015), averaged over distributions.

    `dim` is the axis each distribution runs over (the last: classes or tags; 1 for a span head's
    distribution over positions). `mask` (True = real) has the logits' shape without `dim` when
    `dim` is the last axis — padded rows are left out of the mean — and otherwise the shape of
    the logits up to and including `dim` — padded positions get no probability. `kind` "sigmoid"
    treats each output as its own yes/no distribution (multi-label); "mse" matches raw outputs
    (regression; no temperature).
    """
    s, t = student_logits.float(), teacher_logits.float()
    if s.shape != t.shape:
        raise ValueError(f"student logits {tuple(s.shape)} and teacher logits {tuple(t.shape)} differ")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dim = dim % s.ndim
    if kind == "mse":
        per_row = (s - t).pow(2).mean(-1)
    elif kind == "sigmoid":
        per_row = _binary_kl(t / temperature, s / temperature).mean(-1) * temperature**2
    elif kind == "softmax":
        if mask is not None and dim != s.ndim - 1:
            blocked = ~_expand(mask.bool(), s)
            s, t = s.masked_fill(blocked, -1e9), t.masked_fill(blocked, -1e9)
        log_p_s = F.log_softmax(s / temperature, dim=dim)
        log_p_t = F.log_softmax(t / temperature, dim=dim)
        per_row = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim) * temperature**2
    else:
        raise ValueError(f"unknown soft-target kind {kind!r}; choose softmax, sigmoid or mse")
    if mask is not None and dim == s.ndim - 1:
        keep = mask.bool()
        if keep.shape != per_row.shape:
            raise ValueError(f"mask {tuple(keep.shape)} does not fit logits {tuple(s.shape)} (dim {dim})")
        return per_row[keep].mean() if keep.any() else per_row.sum() * 0.0
    return per_row.mean()


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    while mask.ndim < like.ndim:
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)


def _binary_kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """KL between Bernoulli(sigmoid(teacher)) and Bernoulli(sigmoid(student)), elementwise."""
    p = torch.sigmoid(teacher)
    log_p, log_not_p = F.logsigmoid(teacher), F.logsigmoid(-teacher)
    return p * (log_p - F.logsigmoid(student)) + (1 - p) * (log_not_p - F.logsigmoid(-student))


def hidden_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                       attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of 1 − cos(student, teacher) over real tokens: DistilBERT's cosine embedding loss with
    target 1, which aligns the directions of the two hidden states. Padding is left out."""
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(f"hidden states differ in shape: student {tuple(student_hidden.shape)}, teacher "
                         f"{tuple(teacher_hidden.shape)}; the cosine loss needs equal widths")
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)  # (batch, seq)
    if attention_mask is None:
        return (1 - cos).mean()
    real = attention_mask.bool()
    return (1 - cos[real]).mean()


def triple_loss(teacher: nn.Module, *, temperature: float = 2.0, alpha_ce: float = 5.0,
                alpha_mlm: float = 2.0, alpha_cos: float = 1.0) -> Any:
    """`loss_fn(student, batch)` for `fit` on masked-LM batches: alpha_ce × soft-target KL over the
    vocabulary at the masked positions + alpha_mlm × the student's MLM loss + alpha_cos × the
    cosine loss between last hidden states on real tokens. The teacher runs frozen, in eval mode."""
    teacher.eval().requires_grad_(False)

    def loss_fn(student: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        mlm_mask = labels != IGNORE_INDEX  # (batch, seq); KL and MLM run at these positions only
        inputs = (batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
        s_out = student(*inputs, mlm_mask=mlm_mask)
        targets = labels[mlm_mask]
        s_logits = s_out.logits.float()  # (n_masked, vocab)
        mlm = F.cross_entropy(s_logits, targets)
        loss = alpha_mlm * mlm
        metrics = {"mlm_loss": mlm.item(),
                   "mlm_accuracy": (s_logits.argmax(-1) == targets).float().mean().item()}
        if not (alpha_ce or alpha_cos):  # MLM alone: the no-teacher baseline skips its forward
            return loss, metrics
        _follow(teacher, labels.device)
        with torch.no_grad():
            t_out = teacher(*inputs, mlm_mask=mlm_mask)
        if alpha_ce:
            kl = soft_target_loss(s_logits, t_out.logits, temperature)
            loss = loss + alpha_ce * kl
            metrics["kl_loss"] = kl.item()
        if alpha_cos:
            cos = hidden_cosine_loss(s_out.last_hidden_state, t_out.last_hidden_state, inputs[1])
            loss = loss + alpha_cos * cos
            metrics["cos_loss"] = cos.item()
        return loss, metrics

    return loss_fn


def _follow(teacher: nn.Module, device: torch.device) -> None:
    """Keep the teacher on the device `fit` put the student's batches on."""
    if next(teacher.parameters()).device != device:
        teacher.to(device)
