"""The shared inference path: token-budget batches, packed (unpadded) encoding, precision modes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import bertkit
from bertkit import EncoderConfig
from bertkit.model.encoder import packed_encoding
from bertkit.tasks.inference import forward_features, token_batches


def _model(family: str, head: str) -> bertkit.BertkitModel:
    torch.manual_seed(0)
    extra = {"embedding_size": 16} if family == "albert" else {}
    config = EncoderConfig(family=family, vocab_size=100, hidden_size=32, num_layers=2, num_heads=4,
                           intermediate_size=37, max_positions=160, **extra)
    return bertkit.build(config, head=head, num_labels=3 if head != "multiple_choice" else None).eval()


def _features(n: int, seed: int = 0, pairs: bool = True, choices: int | None = None) -> list[dict]:
    """Very short and very long sequences mixed, ids avoiding the pad id; pairs get type ids 1."""
    rng = random.Random(seed)

    def one() -> dict:
        length = rng.choice([2, 3, 5, 17, 64, 150, rng.randint(2, 150)])
        ids = [rng.randint(3, 99) for _ in range(length)]
        cut = rng.randint(1, length) if pairs else length
        return {"input_ids": ids, "attention_mask": [1] * length, "token_type_ids": [0] * cut + [1] * (length - cut)}

    if choices is None:
        return [one() for _ in range(n)]
    out = []
    for _ in range(n):
        rows = [one() for _ in range(choices)]
        longest = max(len(r["input_ids"]) for r in rows)
        keys = ("input_ids", "attention_mask", "token_type_ids")
        out.append({k: [r[k] + [0] * (longest - len(r[k])) for r in rows] for k in keys})
    return out


def _one_by_one(model: torch.nn.Module, features: list[dict]) -> list[np.ndarray]:
    """Reference: every feature alone, without padding or packing."""
    out = []
    with torch.inference_mode():
        for f in features:
            inputs = {k: torch.tensor([f[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
            out.append(model(**inputs).logits[0].float().numpy())
    return out


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert"])
@pytest.mark.parametrize("head", ["classification", "token_classification"])
def test_packed_batches_equal_one_by_one_in_input_order(family: str, head: str) -> None:
    model = _model(family, head)
    features = _features(24, pairs=family != "distilbert")
    if family == "roberta":  # RoBERTa's pad id is 1; keep real ids away from it
        for f in features:
            f["input_ids"] = [max(i, 2) for i in f["input_ids"]]
    reference = _one_by_one(model, features)
    pad_id = model.config.pad_token_id
    for packed in (True, False):
        got = forward_features(model, features, pad_id=pad_id, max_tokens=400, packed=packed)
        assert len(got) == len(features)
        for i, (a, b) in enumerate(zip(got, reference, strict=True)):
            assert a.shape == b.shape, (i, a.shape, b.shape)
            np.testing.assert_allclose(a, b, atol=2e-5, rtol=0, err_msg=f"feature {i}, packed={packed}")


def test_packed_multiple_choice_equals_one_by_one() -> None:
    model = _model("bert", "multiple_choice")
    features = _features(12, choices=3)
    reference = _one_by_one(model, features)
    got = forward_features(model, features, pad_id=0, max_tokens=2000)
    for a, b in zip(got, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_packed_encoder_skips_padding() -> None:
    model = _model("bert", "classification")
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = (ids != 0).long()
    with packed_encoding(model), torch.inference_mode():
        hidden, states, pooled = model.encoder(ids, mask)
    assert states is None and torch.all(hidden[1, 2:] == 0)  # padded positions were never computed
    padded, _, _ = model.encoder(ids, mask)
    torch.testing.assert_close(hidden[mask.bool()], padded[mask.bool()], atol=1e-5, rtol=0)
    assert model.encoder.packed is False  # the switch is restored after the block
    model.train()
    with packed_encoding(model):
        _, states, _ = model.encoder(ids, mask, output_hidden_states=True)
    assert states is not None  # hidden states take the ordinary path


def _no_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = 0.0


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert"])
def test_packed_training_gives_the_padded_loss_and_gradients(family: str) -> None:
    model = _model(family, "token_classification")
    model.train()
    _no_dropout(model)  # dropout draws differ between the two layouts
    ids = torch.tensor([[5, 6, 7, 8, 9, 4], [9, 10, 11, 0, 0, 0], [12, 13, 0, 0, 0, 0]])
    mask, labels = (ids != 0).long(), torch.randint(0, 2, ids.shape)
    grads = []
    for packed in (False, True):
        model.zero_grad()
        with packed_encoding(model, packed):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits[mask.bool()], labels[mask.bool()])
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert"])
@pytest.mark.parametrize("head", ["classification", "multiple_choice"])
def test_sequence_heads_compute_only_the_first_position_in_the_last_layer(family: str, head: str) -> None:
    """Sequence-level heads read one position, so the encoder's last layer computes no other: the
    logits and every gradient equal the full computation's, padded and packed alike."""
    model = _model(family, head).train()
    _no_dropout(model)
    shape = (3, 2, 6) if head == "multiple_choice" else (6, 6)
    ids = torch.randint(3, 99, (6, 6))
    ids[1, 3:], ids[2, 2:], ids[4, 1:] = 0, 0, 0  # lengths 6, 3, 2, 6, 1, 6
    ids = ids.view(shape)
    mask = (ids != 0).long()
    runs = []
    for mode in ("full", "padded", "packed"):
        model.zero_grad()
        if mode == "full":  # the head on every position's last-layer state
            flat = ids.flatten(0, -2), mask.flatten(0, -2)
            hidden, _, pooled = model.encoder(*flat)
            logits = model.head.logits(hidden, pooled).view(*shape[:-1], -1)
        else:
            with packed_encoding(model, mode == "packed"):
                out = model(ids, mask)
            assert out.last_hidden_state.shape[1] == 1  # only the first position was computed
            logits = out.logits.reshape(*shape[:-1], -1)
        logits.square().sum().backward()
        runs.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), *others = runs
    for logits, grads in others:
        torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)
        assert grads.keys() == full_grads.keys()
        for name, grad in full_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():  # hidden states asked for: every position of every layer
        out = model(ids, mask, output_hidden_states=True)
    assert out.last_hidden_state.shape[-2] == shape[-1]


def test_packed_training_applies_dropout() -> None:
    model = _model("bert", "classification")
    model.train()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    with packed_encoding(model):
        first, _, _ = model.encoder(ids, (ids != 0).long())
        second, _, _ = model.encoder(ids, (ids != 0).long())
    assert not torch.allclose(first[0], second[0])  # dropout masks differ from call to call


def test_token_batches_respect_budget_cap_and_cover_every_index() -> None:
    lengths = [5, 300, 7, 120, 120, 3, 64, 64, 64, 64]
    batches = list(token_batches(lengths, max_tokens=256, max_size=3))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 256
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)
    with pytest.raises(ValueError, match="max_tokens"):
        list(token_batches(lengths, max_tokens=0))
