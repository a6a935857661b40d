"""Resuming checks what it resumes: a checkpoint made with other data, options or model is an
error listing the differences (options may be forced); a truncated newest checkpoint falls back
to the one before it with a warning; an unreadable set of checkpoints is a clear error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from finetune_helpers import emotion_data, make_tiny_model

from bertkit.api.learner import get_learner
from bertkit.api.text import Transformer
from bertkit.train.checkpoint import CheckpointMismatch, check_run, resume_point, step_dirs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return make_tiny_model(tmp_path_factory.mktemp("resume_checks") / "model", dropout=0.0)


def learner(tiny: Path, n: int = 24, maxlen: int = 16):
    preproc = Transformer(str(tiny), maxlen=maxlen, batch_size=8)
    train = preproc.preprocess_train(*emotion_data(n))
    return get_learner(preproc.get_classifier(seed=0), train, batch_size=8)


def test_changed_data_or_options_are_listed_and_can_be_forced(tiny, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    options = dict(checkpoint_dir=ckpt, checkpoint_every=1, max_steps=2, progress=False)
    learner(tiny).train(1e-3, **options)
    with pytest.raises(CheckpointMismatch, match=r"options\.lr 0\.001 -> 0\.002.*options\.max_steps 2 -> 3.*--force-resume"):
        learner(tiny).train(2e-3, **options | {"max_steps": 3})
    with pytest.raises(CheckpointMismatch, match=r"data [0-9a-f]{16} -> [0-9a-f]{16}"):
        learner(tiny, n=30).train(1e-3, **options)
    with pytest.raises(CheckpointMismatch, match=r"model\.max_positions"):
        check_run(ckpt, {"data": "x", "model": {"max_positions": 1}, "options": {}}, resume=True,
                  allow_changes=True)  # another model never resumes: its weights would not fit
    history = learner(tiny).train(1e-3, **options | {"max_steps": 3}, force_resume=True)
    assert [r["step"] for r in history.records if "loss" in r][-1] == 3
    with pytest.raises(CheckpointMismatch, match="holds checkpoints of an earlier run"):
        learner(tiny).train(1e-3, **options | {"resume": False})


def test_truncated_newest_checkpoint_falls_back_with_a_warning(tiny, tmp_path, caplog):
    ckpt = tmp_path / "ckpt"
    learner(tiny).train(1e-3, checkpoint_dir=str(ckpt), checkpoint_every=1, max_steps=2, progress=False)
    older, newest = step_dirs(ckpt)
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING):
        assert resume_point(ckpt) == older
    assert "skipped unreadable checkpoint" in caplog.text and "step-000002" in caplog.text
    history = learner(tiny).train(1e-3, checkpoint_dir=str(ckpt), checkpoint_every=1, max_steps=2,
                                  progress=False)
    assert [r["step"] for r in history.records if "loss" in r] == [2]  # redone from step 1
    caplog.clear()
    assert resume_point(ckpt) == newest and not caplog.text  # and written whole again
    for folder in step_dirs(ckpt):
        (folder / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="no readable checkpoint to resume from.*optimizer.pt"):
        resume_point(ckpt)


def test_pretraining_rerun_with_other_settings_is_refused(tmp_path):
    from test_pretrain_run import TINY, make_data

    from bertkit.pretrain.run import pretrain

    data = make_data(tmp_path)
    args = dict(model=TINY, max_steps=2, batch_size=8, checkpoint_every=1, progress=False, bf16=False)
    pretrain(data, tmp_path / "out", **args)
    with pytest.raises(CheckpointMismatch, match=r"options\.lr 0\.0001 -> 0\.001"):
        pretrain(data, tmp_path / "out", **args | {"lr": 1e-3})
    with pytest.raises(CheckpointMismatch, match=r"model\.hidden_size 32 -> 64"):  # not a size-mismatch crash
        pretrain(data, tmp_path / "out", **args | {"model": TINY | {"hidden_size": 64}})
    pretrain(data, tmp_path / "out", **args | {"max_steps": 3, "lr": 1e-3}, force_resume=True)
    assert sorted(p.name for p in step_dirs(tmp_path / "out" / "checkpoints" / "phase-1"))[-1] == "step-000003"
