"""Bad checkpoints and unreachable models give clear errors that say what is wrong."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from bertkit import (
    CheckpointError,
    EncoderConfig,
    ModelNotFoundError,
    UnsupportedModelError,
    build,
    hub,
    load_model,
)

TINY = EncoderConfig(vocab_size=60, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=24, max_positions=32)


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "tiny"
    build(TINY).save(folder)
    return folder


def test_round_trip(saved):
    model = load_model(saved)
    ids = torch.randint(3, 60, (2, 9))
    torch.testing.assert_close(model(ids).last_hidden_state, load_model(saved)(ids).last_hidden_state)


def test_folder_without_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="No weights in .*model.safetensors or pytorch_model.bin"):
        load_model(saved)


def test_unsupported_model_type(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model_type"] = "gpt2"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="model_type='gpt2'.*supports"):
        load_model(saved)


def test_missing_tensor_is_named(saved):
    state = load_file(saved / "model.safetensors")
    del state["encoder.layer.1.attention.self.key.weight"]
    save_file(state, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"lacks 1 tensor.*encoder\.layer\.1\.attention\.self\.key\.weight"):
        load_model(saved)


def test_misshaped_tensor_is_named(saved):
    state = load_file(saved / "model.safetensors")
    state["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(25, 16)
    save_file(state, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"intermediate\.dense\.weight: checkpoint has \(25, 16\), the model expects \(24, 16\)"):
        load_model(saved)


def test_unknown_tensor_is_named(saved):
    state = load_file(saved / "model.safetensors")
    state["encoder.layer.0.adapter.weight"] = torch.zeros(3)
    save_file(state, saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"does not know.*adapter\.weight"):
        load_model(saved)


def test_pytorch_bin_loads_with_weights_only(saved):
    state = load_file(saved / "model.safetensors")
    torch.save(state, saved / "pytorch_model.bin")
    (saved / "model.safetensors").unlink()
    assert load_model(saved).config.num_layers == 2


def test_head_weights_missing_are_initialised(saved):
    model = load_model(saved, head="classification", num_labels=4)
    assert model(torch.randint(3, 60, (2, 5))).logits.shape == (2, 4)


def test_hub_name_offline_is_clear(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="Could not find model 'no-such-org/no-such-bert'.*local folder"):
        hub.resolve("no-such-org/no-such-bert")


def test_missing_local_path_is_clear(tmp_path):
    with pytest.raises(ModelNotFoundError, match="No such folder"):
        hub.resolve(str(tmp_path / "nowhere" / "deeper" / "model"))


def test_hub_download_prefers_safetensors_and_uses_cache_first(monkeypatch, tmp_path):
    import huggingface_hub

    calls = []
    only_bin = tmp_path / "snapshot"  # a repo that has only pytorch_model.bin

    def fake_snapshot(repo_id, allow_patterns, local_files_only=False):
        calls.append((tuple(allow_patterns), local_files_only))
        if local_files_only:
            raise FileNotFoundError("not cached")
        only_bin.mkdir(exist_ok=True)
        if "pytorch_model.bin" in allow_patterns:
            build(TINY).save(tmp_path / "built")
            torch.save(load_file(tmp_path / "built" / "model.safetensors"), only_bin / "pytorch_model.bin")
            (only_bin / "config.json").write_text((tmp_path / "built" / "config.json").read_text())
        return str(only_bin)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    folder = hub.resolve("some-org/tiny-bert")
    assert folder == only_bin
    assert [local for _, local in calls] == [True, False, True, False]
    assert "pytorch_model.bin" not in calls[1][0] and calls[3][0] == ("pytorch_model.bin",)
    assert load_model("some-org/tiny-bert").config.num_layers == 2
