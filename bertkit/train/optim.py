"""Optimizers for the loop: AdamW and LAMB, with no weight decay on biases and norm weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from bertkit.train.rowwise import RowAdamW, fused_supported


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: matrices (decayed) and vectors — biases, LayerNorm weights — (not decayed).

    The vector group also skips LAMB's trust ratio (`trust_ratio=False`), as in the LAMB paper.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "trust_ratio": True},
        {"params": no_decay, "weight_decay": 0.0, "trust_ratio": False},
    ]
    return [g for g in groups if g["params"]]


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., 2019): Adam moments, decoupled weight decay, per-parameter trust ratio
    ||w|| / ||update|| that rescales each layer's step. Bias correction is applied to the moments."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        trust_ratio: bool = True,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, trust_ratio=trust_ratio
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                step = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = m / (1 - beta1**step)
                v_hat = v / (1 - beta2**step)
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                ratio = 1.0
                if group["trust_ratio"]:
                    w_norm, u_norm = p.norm(), update.norm()
                    # a zero norm (fresh zero-init weights or no update) falls back to plain Adam
                    ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, 1.0)
                p.add_(update * ratio, alpha=-group["lr"])
        return loss


def build_optimizer(
    model: nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float | None,
) -> torch.optim.Optimizer:
    """AdamW (decoupled decay) or LAMB over `param_groups(model)`. eps=None: 1e-8 AdamW, 1e-6 LAMB.

    AdamW is `RowAdamW`: PyTorch's AdamW, fused into one kernel per tensor where PyTorch has one for
    the model's device, that also takes row-wise gradients of embedding tables (see `rowwise`).
    """
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        for g in groups:
            g.pop("trust_ratio")
        device = next(model.parameters()).device
        return RowAdamW(groups, lr=lr, betas=betas, eps=1e-8 if eps is None else eps,
                        fused=fused_supported(device))
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=1e-6 if eps is None else eps)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adamw' or 'lamb'")
