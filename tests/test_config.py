"""Presets have the published sizes; config.json round-trips for every family."""

from __future__ import annotations

import pytest
import torch

from bertkit import EncoderConfig, UnsupportedModelError, build, preset
from bertkit.config import PRESETS

# Parameter counts of the published base models (encoder + pooler), from their checkpoints.
PUBLISHED = {
    "bert-base-uncased": 109_482_240,
    "bert-base-cased": 108_310_272,
    "bert-large-uncased": 335_141_888,
    "roberta-base": 124_645_632,
    "roberta-large": 355_359_744,
    "distilbert-base-uncased": 66_362_880,
    "albert-base-v2": 11_683_584,
    "albert-large-v2": 17_683_968,
    "albert-xxlarge-v2": 222_595_584,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_sizes_match_published_models(name):
    with torch.device("meta"):
        model = build(preset(name))
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_hf_config_round_trip(name):
    config = preset(name, labels=["neg", "pos"])
    hf = config.to_hf("X")
    assert hf["model_type"] in ("bert", "roberta", "distilbert", "albert")
    assert hf["id2label"] == {"0": "neg", "1": "pos"}
    assert EncoderConfig.from_hf(hf) == config


def test_preset_by_hub_name_and_changes():
    config = preset("google-bert/bert-base-uncased", num_layers=4)
    assert config.num_layers == 4 and config.hidden_size == 768
    with pytest.raises(KeyError, match="No preset named 'gpt2'"):
        preset("gpt2")


def test_bad_configs_are_clear():
    with pytest.raises(ValueError, match="not divisible"):
        EncoderConfig(hidden_size=30, num_heads=4)
    with pytest.raises(UnsupportedModelError, match="relative_key"):
        EncoderConfig.from_hf({"model_type": "bert", "vocab_size": 10, "position_embedding_type": "relative_key"})
    with pytest.raises(UnsupportedModelError, match="num_hidden_groups=2"):
        EncoderConfig.from_hf({"model_type": "albert", "vocab_size": 10, "num_hidden_groups": 2})


def test_only_albert_shares_layers_and_factorises_embeddings():
    assert EncoderConfig(family="albert", embedding_size=16, hidden_size=32, num_heads=4).share_layers
    assert not EncoderConfig(family="bert").share_layers
    with pytest.raises(ValueError, match="ALBERT shares one layer"):
        EncoderConfig(family="albert", share_layers=False)
    with pytest.raises(ValueError, match="ALBERT shares one layer"):
        EncoderConfig(family="bert", share_layers=True)
    with pytest.raises(ValueError, match="only ALBERT factorises"):
        EncoderConfig(family="roberta", embedding_size=128)
