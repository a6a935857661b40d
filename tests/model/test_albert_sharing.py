"""ALBERT's sharing of only the attention or only the feed-forward blocks (parameter counts, saving in
a layout transformers computes identically), and the albert-*-v1 presets beside v2."""

from __future__ import annotations

import pytest
import torch
import transformers as hf

from bertkit import EncoderConfig, load_model
from bertkit.config import PRESETS, UnsupportedModelError, preset
from bertkit.model import build
from bertkit.model.encoder import count_parameters

H, INTER, LAYERS, EMB, VOCAB = 32, 64, 3, 16, 100
TINY = dict(family="albert", vocab_size=VOCAB, hidden_size=H, embedding_size=EMB, num_layers=LAYERS,
            num_heads=2, intermediate_size=INTER, hidden_dropout=0.0, attention_dropout=0.0)
ATTENTION = 4 * H * H + 4 * H + 2 * H  # fused qkv + output projection + layer norm
FEED_FORWARD = 2 * H * INTER + INTER + H + 2 * H  # two projections + layer norm


@pytest.mark.parametrize(("blocks", "attention_copies", "ffn_copies"),
                         [("all", 1, 1), ("attention", 1, LAYERS), ("feed_forward", LAYERS, 1)])
def test_parameter_counts(blocks: str, attention_copies: int, ffn_copies: int) -> None:
    encoder = build(EncoderConfig(**TINY, shared_blocks=blocks)).encoder
    stack = sum(p.numel() for p in encoder.layers.parameters())  # shared tensors count once
    assert stack == attention_copies * ATTENTION + ffn_copies * FEED_FORWARD
    outside = count_parameters(encoder) - stack
    assert outside == count_parameters(build(EncoderConfig(**TINY)).encoder) - ATTENTION - FEED_FORWARD
    layers = encoder.layers
    if blocks == "attention":
        assert layers[2].attention is layers[0].attention and layers[2].feed_forward is not layers[0].feed_forward
    if blocks == "feed_forward":
        assert layers[2].feed_forward is layers[0].feed_forward and layers[2].attention is not layers[0].attention


@pytest.mark.parametrize("blocks", ["attention", "feed_forward"])
def test_partial_sharing_saves_loads_and_matches_transformers(blocks: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = build(EncoderConfig(**TINY, shared_blocks=blocks)).eval()
    model.save(tmp_path / "m")
    ids = torch.randint(5, VOCAB, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    reference = hf.AlbertModel.from_pretrained(tmp_path / "m").eval()
    assert reference.config.num_hidden_groups == LAYERS
    again = load_model(tmp_path / "m")
    assert again.config.shared_blocks == blocks
    assert count_parameters(again) == count_parameters(model)
    with torch.no_grad():
        ours = model(ids, mask).last_hidden_state
        theirs = reference(ids, attention_mask=mask).last_hidden_state
        reloaded = again(ids, mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    assert torch.equal(ours, reloaded)


def test_sharing_options_are_checked() -> None:
    with pytest.raises(ValueError, match="shared_blocks must be one of"):
        EncoderConfig(**TINY, shared_blocks="embeddings")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs share_layers"):
        EncoderConfig(family="bert", shared_blocks="attention")
    groups = EncoderConfig(**TINY).to_hf() | {"num_hidden_groups": 2}
    with pytest.raises(UnsupportedModelError, match="num_hidden_groups=2"):
        EncoderConfig.from_hf(groups)


def test_albert_v1_presets_beside_v2() -> None:
    for size in ("base", "large", "xlarge", "xxlarge"):
        v1, v2 = preset(f"albert-{size}-v1"), preset(f"albert-{size}-v2")
        assert (v1.hidden_size, v1.num_layers, v1.num_heads, v1.embedding_size) == (
            v2.hidden_size, v2.num_layers, v2.num_heads, v2.embedding_size)
        assert v1.activation == "gelu" and v2.activation == "gelu_new"
        assert v2.hidden_dropout == 0.0 and v1.hidden_dropout == (0.0 if size == "xxlarge" else 0.1)
    assert {"albert-base-v1", "albert-base-v2"} <= set(PRESETS)


def test_albert_v1_preset_converts_to_and_from_transformers(tmp_path) -> None:
    config = preset("albert-base-v1", vocab_size=VOCAB, hidden_size=H, num_layers=2, num_heads=2,
                    intermediate_size=INTER, embedding_size=EMB)
    torch.manual_seed(2)
    model = build(config, head="mlm").eval()
    model.save(tmp_path / "v1")
    reference = hf.AlbertForMaskedLM.from_pretrained(tmp_path / "v1").eval()
    assert reference.config.hidden_act == "gelu" and reference.config.hidden_dropout_prob == 0.1
    assert EncoderConfig.from_hf(reference.config.to_dict()).replace(labels=[]) == config  # HF adds LABEL_0/1
    ids = torch.randint(5, VOCAB, (2, 8))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)
