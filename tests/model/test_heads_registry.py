"""Heads by composition: a head added through the registry builds, trains, saves and reloads; heads
compose with a built encoder; run folders of earlier releases (older head key names) still load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import safetensors.torch
import torch
from torch import nn

import bertkit
from bertkit import EncoderConfig
from bertkit.families import FAMILY_TABLE
from bertkit.model import HEADS, BertkitModel, Encoder, HeadSpec, build
from bertkit.model.heads import SequenceClassifier, TaskHead

TINY = dict(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=20, max_positions=32)


class MeanPoolRegressor(TaskHead):
    """A throwaway head: the mean of the real tokens' states -> one number per row."""

    slot = "regressor"

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, encoder, input_ids, attention_mask=None, token_type_ids=None, *,
                output_hidden_states=False, mlm_mask=None):
        out = super().forward(encoder, input_ids, attention_mask, token_type_ids,
                              output_hidden_states=output_hidden_states)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        weights = mask.unsqueeze(-1).float() / mask.sum(1, keepdim=True).unsqueeze(-1)
        out.logits = self.out((out.last_hidden_state * weights).sum(1)).squeeze(-1)  # (batch,)
        return out

    def logits(self, hidden: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        return self.out(hidden.mean(1)).squeeze(-1)


@pytest.fixture
def regressor_head() -> Iterator[str]:
    HEADS["mean_regression"] = HeadSpec(lambda config, n: MeanPoolRegressor(config.hidden_size), "ForMeanRegression")
    yield "mean_regression"
    del HEADS["mean_regression"]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 50, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("family", sorted(FAMILY_TABLE))
def test_a_registered_head_builds_trains_and_round_trips(family, regressor_head, tmp_path, one_thread) -> None:
    torch.manual_seed(0)
    table = FAMILY_TABLE[family]
    pad = table.default_pad_token_id
    config = EncoderConfig(family=family, embedding_size=8 if table.factorised_embeddings else None,
                           type_vocab_size=2 if table.token_types else 0, pad_token_id=pad,
                           position_offset=table.position_offset(pad), **TINY)
    model = build(config, head=regressor_head)
    assert model.head_name == regressor_head and isinstance(model.head, MeanPoolRegressor)
    assert model.encoder.pooler is None  # the head does not read the pooled output
    assert all(k.startswith(("encoder.", "regressor.")) for k in model.state_dict())
    ids, mask = _batch()
    out = model(ids, mask)
    assert out.logits.shape == (3,)
    out.logits.pow(2).mean().backward()
    assert model.regressor.out.weight.grad.abs().sum() > 0
    assert model.encoder.layers[0].attention.qkv.weight.grad.abs().sum() > 0

    model.eval().save(tmp_path / "saved")
    again = bertkit.load_model(tmp_path / "saved", head="auto").eval()
    assert again.head_name == regressor_head
    torch.testing.assert_close(again(ids, mask).logits, model(ids, mask).logits)


def test_the_registry_is_back_to_the_built_in_heads() -> None:
    assert "mean_regression" not in HEADS
    with pytest.raises(ValueError, match="Unknown head 'mean_regression'"):
        build(EncoderConfig(**TINY), head="mean_regression")


def test_a_head_module_composes_with_a_built_encoder(one_thread) -> None:
    torch.manual_seed(1)
    config = EncoderConfig(**TINY)
    named = build(config, head="classification", num_labels=3).eval()
    head = SequenceClassifier(config.hidden_size, 3, config.head_dropout, config.table.classifier)
    composed = BertkitModel(Encoder(config), head, num_labels=3, head_name="classification").eval()
    composed.load_state_dict(named.state_dict())
    ids, mask = _batch()
    torch.testing.assert_close(composed(ids, mask).logits, named(ids, mask).logits)
    with pytest.raises(TypeError, match="head_name"):
        BertkitModel(Encoder(config), head)
    with pytest.raises(TypeError, match="name the head"):
        BertkitModel(config, head)


def test_multiple_choice_head_owns_its_reshaping(one_thread) -> None:
    torch.manual_seed(2)
    model = build(EncoderConfig(**TINY), head="multiple_choice").eval()
    ids = torch.randint(5, 50, (2, 4, 6))  # (batch, choices, seq)
    logits = model(ids).logits
    assert logits.shape == (2, 4)
    # each choice is scored on its own: the same row alone gives the same score
    torch.testing.assert_close(model(ids[:1, 2:3]).logits[0, 0], logits[0, 2])


def test_run_folders_with_the_earlier_pair_head_names_still_load(tmp_path, one_thread) -> None:
    torch.manual_seed(3)
    model = build(EncoderConfig(**TINY), head="pretraining")
    old = {k.replace("mlm.pair.", "pair."): v for k, v in model.state_dict().items()}
    assert "pair.classifier.weight" in old
    safetensors.torch.save_file(old, str(tmp_path / "model.safetensors"))
    fresh = build(EncoderConfig(**TINY), head="pretraining")
    missing, unexpected = safetensors.torch.load_model(fresh, str(tmp_path / "model.safetensors"))
    assert not missing and not unexpected
    torch.testing.assert_close(fresh.mlm.pair.classifier.weight, model.mlm.pair.classifier.weight)
