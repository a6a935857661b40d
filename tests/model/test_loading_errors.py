"""Bad checkpoints and unreachable models give clear errors that say what is wrong."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from bertkit import (
    BertkitModel,
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


FAMILY_CONFIGS = {
    "bert": {},
    "roberta": dict(pad_token_id=1, position_offset=2, type_vocab_size=1, max_positions=34),
    "distilbert": dict(type_vocab_size=0),
    "albert": dict(embedding_size=8, share_layers=True),
}
ROUND_TRIP_HEADS = (None, "mlm", "pretraining", "classification", "token_classification", "qa", "multiple_choice")


def distinct_model(family: str, head: str | None) -> BertkitModel:
    """A tiny model whose every float tensor is moved off its initial value, so a tensor that saving
    dropped (and loading re-initialised: head and pooler weights may be absent) cannot match by chance."""
    torch.manual_seed(0)
    labels = ["a", "b", "c"] if head in ("classification", "token_classification") else []
    # classifier_dropout set: None (use hidden_dropout) reloads as that value from some families' files
    config = TINY.replace(family=family, labels=labels, classifier_dropout=0.2, **FAMILY_CONFIGS[family])
    model = build(config, head=head)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.1 * torch.randn_like(tensor))
    return model.eval()


def mismatches(saved: BertkitModel, loaded: BertkitModel) -> list[str]:
    """Names of the state-dict tensors and outputs in which `loaded` differs from `saved`."""
    ours, theirs = saved.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    bad = [k for k in ours if ours[k].shape != theirs[k].shape or not torch.equal(ours[k], theirs[k])]
    generator = torch.Generator().manual_seed(1)
    shape = (2, 3, 9) if saved.head_name == "multiple_choice" else (2, 9)  # (batch[, choices], seq)
    ids = torch.randint(3, 60, shape, generator=generator)
    mask = torch.ones_like(ids)
    mask[..., 7:] = 0  # padding, so the attention mask takes part
    with torch.no_grad():
        a, b = saved(ids, mask), loaded(ids, mask)
    for name in ("last_hidden_state", "pooled_output", "logits", "pair_logits"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not torch.allclose(x, y, atol=1e-6, rtol=0)):
            bad.append(name)
    return bad


@pytest.mark.parametrize("head", ROUND_TRIP_HEADS)
@pytest.mark.parametrize("family", FAMILY_CONFIGS)
def test_round_trip(tmp_path, family, head):
    model = distinct_model(family, head)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model", head=head)
    assert loaded.num_labels == model.num_labels
    assert loaded.config == model.config
    assert mismatches(model, loaded) == []


@pytest.mark.parametrize("head", ["pretraining", "classification", "qa"])
@pytest.mark.parametrize("family", FAMILY_CONFIGS)
def test_round_trip_catches_every_corrupted_or_dropped_tensor(tmp_path, family, head):
    """Perturb, then delete, each tensor of the saved file in turn: the reload must differ from the
    saved model (or loading must refuse the file), so the round trip cannot pass a faulty save.
    The encoder's tensors are checked under the pre-training head (the second layer repeats the
    first's names, so it is skipped to keep this quick); the task heads' under their own."""
    model = distinct_model(family, head)
    folder = model.save(tmp_path / "model")
    state = load_file(folder / "model.safetensors")
    if head == "pretraining":
        keys = [k for k in state if "layer.1." not in k]
    else:  # the head's own tensors: those saved outside the base model's prefix
        keys = [k for k in state if not k.startswith(f"{family}.")]
    assert keys
    for key in keys:
        perturbed = dict(state)
        perturbed[key] = state[key] + 1e-3
        save_file(perturbed, folder / "model.safetensors")
        assert mismatches(model, load_model(folder, head=head)), f"perturbing {key} went unnoticed"
        save_file({k: v for k, v in state.items() if k != key}, folder / "model.safetensors")
        try:
            loaded = load_model(folder, head=head)
        except CheckpointError:
            continue
        assert mismatches(model, loaded), f"dropping {key} went unnoticed"


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
