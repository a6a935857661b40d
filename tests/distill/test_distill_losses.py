"""Distillation losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from bertkit.distill import hidden_cosine_loss, soft_target_loss


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def softmax(x: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(v / t) for v in x]
    return [v / sum(e) for v in e]


def test_soft_targets_kl_at_temperature_scaled_by_t_squared() -> None:
    s, t = [0.0, 1.0, 2.0], [1.0, 0.0, 0.5]
    for temperature in (1.0, 2.0, 4.0):
        expected = kl(softmax(t, temperature), softmax(s, temperature)) * temperature**2
        got = soft_target_loss(torch.tensor([s]), torch.tensor([t]), temperature)
        assert got.item() == pytest.approx(expected, rel=1e-5)
    # two rows: the mean of the rows' KL; identical logits give zero
    rows = soft_target_loss(torch.tensor([s, t]), torch.tensor([t, t]), 2.0)
    assert rows.item() == pytest.approx(kl(softmax(t, 2), softmax(s, 2)) * 4 / 2, rel=1e-5)


def test_soft_targets_leave_padded_tokens_out() -> None:
    s = torch.tensor([[[0.0, 1.0], [5.0, -5.0]], [[2.0, 0.0], [0.0, 0.0]]])  # (batch 2, seq 2, 2 tags)
    t = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    rows = [([0.0, 1.0], [1.0, 0.0]), ([2.0, 0.0], [0.0, 2.0]), ([0.0, 0.0], [9.0, 9.0])]
    expected = sum(kl(softmax(b), softmax(a)) for a, b in rows) / 3
    assert soft_target_loss(s, t, 1.0, mask=mask).item() == pytest.approx(expected, rel=1e-5)
    changed = s.clone()
    changed[0, 1] = torch.tensor([-50.0, 50.0])  # a padded position: no effect
    assert soft_target_loss(changed, t, 1.0, mask=mask).item() == pytest.approx(expected, rel=1e-5)


def test_soft_targets_over_positions_mask_padding_out_of_the_distribution() -> None:
    s = torch.tensor([[[0.0], [1.0], [7.0]]])  # (batch 1, seq 3, 1 output), distribution over seq
    t = torch.tensor([[[1.0], [0.0], [-7.0]]])
    mask = torch.tensor([[1, 1, 0]])
    expected = kl(softmax([1.0, 0.0], 2.0), softmax([0.0, 1.0], 2.0)) * 4
    got = soft_target_loss(s, t, 2.0, mask=mask, dim=1)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_sigmoid_and_mse_soft_targets() -> None:
    s, t = torch.tensor([[0.5, -1.0]]), torch.tensor([[2.0, 0.0]])

    def bern(p: float, q: float) -> float:
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    sig = [1 / (1 + math.exp(-x / 2)) for x in (0.5, -1.0, 2.0, 0.0)]
    expected = (bern(sig[2], sig[0]) + bern(sig[3], sig[1])) / 2 * 4
    assert soft_target_loss(s, t, 2.0, kind="sigmoid").item() == pytest.approx(expected, rel=1e-5)
    assert soft_target_loss(s, t, 2.0, kind="mse").item() == pytest.approx((1.5**2 + 1.0) / 2, rel=1e-6)


def test_soft_target_errors() -> None:
    with pytest.raises(ValueError, match="differ"):
        soft_target_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature must be positive"):
        soft_target_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)


def test_cosine_loss_targets_direction_on_real_tokens() -> None:
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]]])
    teacher = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]])  # same, orthogonal, padded
    mask = torch.tensor([[1, 1, 0]])
    # 1 - cos: 0 for the same direction (any length), 1 for orthogonal; the padded token is ignored
    assert hidden_cosine_loss(student, teacher, mask).item() == pytest.approx(0.5, abs=1e-6)
    assert hidden_cosine_loss(student, teacher).item() == pytest.approx((0 + 1 + 1 + 2**-0.5) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="equal widths"):
        hidden_cosine_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
