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


@pytest.mark.parametrize("kind", ["hidden", "attention"])
@pytest.mark.parametrize("head", [None, "classification"])
def test_dropout_noise_matches_transformers(head, kind):
    """Same weights, same input, training mode, one kind of dropout on: the outputs' spread over
    many masks equals that of `transformers`' BERT, so both drop at the same places at the same
    rates. Turning one dropout off (the last layer's, or the classifier's) moves the spread far outside the bounds."""
    import transformers as hf

    from bertkit import BertkitModel, EncoderConfig
    from bertkit.model.checkpoint import load_state

    torch.manual_seed(0)
    rates = {"hidden_dropout_prob": 0.3 if kind == "hidden" else 0.0,
             "attention_probs_dropout_prob": 0.5 if kind == "attention" else 0.0}
    config = hf.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=64, num_labels=8, **rates)
    reference = (hf.BertForSequenceClassification if head else hf.BertModel)(config).train()
    ours = BertkitModel(EncoderConfig.from_hf(config.to_dict()), head=head, num_labels=8 if head else None).train()
    load_state(ours, reference.state_dict())
    # the embeddings' dropout drowns the layers' in a random tiny model: off on both sides
    ours.encoder.embeddings.dropout.p = 0.0
    (reference.bert if head else reference).embeddings.dropout.p = 0.0
    ids = torch.randint(3, 99, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    real = mask.bool()

    def spread(model):
        """Mean and variance of each output element over 400 training-mode passes (fresh masks each)."""
        pick = (lambda out: out.logits) if head else (lambda out: out.last_hidden_state[real])
        outs = torch.stack([pick(model(input_ids=ids, attention_mask=mask)) for _ in range(400)])
        return outs.mean(0), outs.var(0)

    with torch.no_grad():
        (m1, v1), (m2, v2) = spread(ours), spread(reference)
        last = ours.encoder.layers[-1]
        if kind == "attention":
            last.attention.dropout = 0.0
        else:  # the classifier's dropout dominates the spread of logits
            (ours.classifier if head else last).dropout.p = 0.0
        _, v_missing = spread(ours)
    assert 0.92 < (v1.mean() / v2.mean()).item() < 1.08
    assert (v_missing.mean() / v2.mean()).item() < 0.8
    # the means agree to a few standard errors of a 400-pass average
    assert ((m1 - m2).abs().mean() < 4 * (v2.mean() / 400) ** 0.5).item()
