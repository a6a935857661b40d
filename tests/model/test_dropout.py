"""The CPU dropout: PyTorch's semantics (rate, scale, gradient, identity when off), masks governed by
torch's generator, and attention with dropout equal to SDPA's steps."""

import pytest
import torch
import torch.nn.functional as F

import bertkit.model.dropout as dropout_module
from bertkit.model.dropout import Dropout, attention, dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    out = dropout(torch.ones(1_000_000), p)
    kept = out != 0
    # the rate is p to 2**-16; 5 standard deviations of a million draws
    assert abs(1 - kept.float().mean().item() - p) < 5 * (p * (1 - p) / 1e6) ** 0.5
    threshold = round(p * 65536)
    assert torch.allclose(out[kept], torch.tensor(65536 / (65536 - threshold)))  # one over the keep rate used


def test_masks_follow_torch_generator():
    x = torch.randn(4, 33, 16)
    torch.manual_seed(1)
    first = dropout(x, 0.1)
    state = torch.get_rng_state()
    second = dropout(x, 0.1)
    torch.set_rng_state(state)  # a resumed run restores this state
    assert torch.equal(dropout(x, 0.1), second)
    assert not torch.equal(first, second)
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.1), first)


def test_gradient_is_the_mask():
    x = torch.randn(8, 50, requires_grad=True)
    out = dropout(x, 0.2)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    mask = out.detach() / x.detach()
    assert torch.allclose(x.grad, upstream * mask)
    scale = torch.tensor(65536 / (65536 - round(0.2 * 65536)))
    assert (mask == 0).any() and torch.allclose(mask[mask != 0], scale)


def test_off_and_edge_rates():
    x = torch.randn(3, 5)
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert dropout(x.bfloat16(), 0.3).dtype == torch.bfloat16


def test_module_is_a_drop_in_for_nn_dropout():
    module = Dropout(0.25)
    assert isinstance(module, torch.nn.Dropout) and module.p == 0.25
    assert module.state_dict() == {}
    x = torch.randn(10, 10)
    assert torch.equal(module.eval()(x), x)
    torch.manual_seed(3)
    trained = module.train()(x)
    torch.manual_seed(3)
    assert torch.equal(trained, dropout(x, 0.25))


@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_sdpa(monkeypatch, masked):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    mask = None
    if masked:
        mask = torch.zeros(2, 1, 1, 7)
        mask[1, ..., 5:] = torch.finfo(torch.float32).min
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(attention(q, k, v, mask, 0.0), reference, atol=1e-6)
    # with dropout: the same steps, the probabilities passing through `dropout`
    monkeypatch.setattr(dropout_module, "dropout", lambda x, p, training=True: x)
    assert torch.allclose(attention(q, k, v, mask, 0.1), reference, atol=1e-5)


def test_attention_dropout_draws_from_torch_generator():
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    torch.manual_seed(7)
    first = attention(q, k, v, None, 0.5)
    torch.manual_seed(7)
    assert torch.equal(attention(q, k, v, None, 0.5), first)
    assert not torch.allclose(first, attention(q, k, v, None, 0.0))
