"""General distillation: the student learns the teacher's masked-LM, exact resume after a crash,
a teacher without an MLM head is refused, and `bertkit distill general` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_pretrain_run import Crash, CrashAt, make_data

import bertkit
from bertkit.cli import main
from bertkit.distill.general import distill_general
from bertkit.pretrain import PretrainDataset
from bertkit.pretrain.objectives import evaluate_pretraining
from bertkit.pretrain.run import pretrain

TINY = dict(vocab_size=300, hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64,
            hidden_dropout=0.1, attention_dropout=0.1)
QUIET = dict(progress=False, bf16=False)  # float32 whatever the CPU: exact comparisons


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # few documents and fixed masks: a teacher learns them within seconds
    return make_data(tmp_path_factory.mktemp("distill_general"), n_docs=3, max_length=32,
                     fmt="full_sentences", masking="static")


@pytest.fixture(scope="module")
def teacher(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer masked-LM briefly pre-trained on the corpus: distributions worth learning."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    shape = {k: v for k, v in TINY.items() if k != "vocab_size"}
    return pretrain(data, out, model=shape, dropout=0.0, max_steps=60, batch_size=32, lr=1e-2, warmup=3,
                    checkpoint_every=None, **QUIET)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_student_learns_the_teachers_distributions(data: Path, teacher: Path, tmp_path: Path) -> None:
    out = distill_general(str(data), str(tmp_path / "out"), teacher=str(teacher), num_layers=2,
                          family="distilbert", lr=3e-3, warmup=2, max_steps=30, batch_size=16,
                          log_every=5, checkpoint_every=None, eval_data=str(data), **QUIET)
    rows = [r for r in records(tmp_path / "out") if "kl_loss" in r]
    held_out = PretrainDataset(data)
    student_mlm = evaluate_pretraining(bertkit.load_model(out, head="mlm"), held_out)["mlm_accuracy"]
    teacher_mlm = evaluate_pretraining(bertkit.load_model(teacher, head="mlm"), held_out)["mlm_accuracy"]
    assert teacher_mlm > 0.1 and student_mlm > 0.9 * teacher_mlm, (student_mlm, teacher_mlm)
    assert rows[-1]["kl_loss"] < 0.6 * rows[0]["kl_loss"], [r["kl_loss"] for r in rows]
    assert {"mlm_loss", "cos_loss", "mlm_accuracy", "perplexity"} <= set(rows[-1])
    assert any("val_mlm_accuracy" in r for r in records(tmp_path / "out"))
    assert (tmp_path / "out" / "distillation.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "distilbert" and config["n_layers"] == 2
    assert (out / "tokenizer.json").is_file()
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out).eval()
    ours = bertkit.load_model(out, head="mlm")
    ids = torch.tensor([[2, 40, 41, 42, 3]])
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-4)


def test_frozen_position_embeddings_stay_the_teachers(data: Path, teacher: Path, tmp_path: Path) -> None:
    out = distill_general(str(data), str(tmp_path / "out"), teacher=str(teacher), layers=[0, 3],
                          freeze_positions=True, max_steps=3, batch_size=8, checkpoint_every=None, **QUIET)
    key = "bert.embeddings.position_embeddings.weight"
    torch.testing.assert_close(load_file(str(out / "model.safetensors"))[key],
                               load_file(str(teacher / "model.safetensors"))[key])


def test_resume_after_a_crash_equals_an_uninterrupted_run(data: Path, teacher: Path, tmp_path: Path) -> None:
    args = dict(teacher=str(teacher), num_layers=2, max_steps=8, batch_size=8, grad_accum=2, lr=2e-3,
                log_every=1, checkpoint_every=3, **QUIET)
    distill_general(str(data), str(tmp_path / "whole"), **args)
    with pytest.raises(Crash):
        distill_general(str(data), str(tmp_path / "killed"), callbacks=[CrashAt(5)], **args)
    distill_general(str(data), str(tmp_path / "killed"), **args)
    whole = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    for key, tensor in whole.items():
        torch.testing.assert_close(resumed[key], tensor, atol=1e-6, rtol=0)
    assert [r["loss"] for r in records(tmp_path / "killed")] == pytest.approx(
        [r["loss"] for r in records(tmp_path / "whole")], abs=1e-6)


def test_teacher_without_an_mlm_head_is_refused(data: Path, teacher: Path, tmp_path: Path) -> None:
    bertkit.build(bertkit.EncoderConfig(**TINY)).save(tmp_path / "encoder")
    with pytest.raises(ValueError, match="has no masked-LM head"):
        distill_general(str(data), str(tmp_path / "out"), teacher=str(tmp_path / "encoder"), **QUIET)
    with pytest.raises(ValueError, match="not both"):
        distill_general(str(data), str(tmp_path / "out"), teacher=str(teacher), layers=[0],
                        num_layers=1, **QUIET)


def test_cli_distill_general(data: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["distill", "general", str(data), "--out", str(out), "--teacher", str(teacher), "--layers", "1", "3",
            "--max-steps", "2", "--batch-size", "8", "--log-every", "1", "--no-progress", "--no-bf16",
            "--alpha-cos", "0"]
    assert main(argv) == 0
    assert "distilled student" in capsys.readouterr().out
    assert [r["step"] for r in records(out)] == [1, 2] and "cos_loss" not in records(out)[0]
    assert json.loads((out / "model" / "config.json").read_text())["num_hidden_layers"] == 2


def test_resume_with_other_options_is_refused_unless_forced(data: Path, teacher: Path, tmp_path: Path) -> None:
    from bertkit.train.checkpoint import CheckpointMismatch

    args = dict(teacher=str(teacher), num_layers=2, batch_size=8, lr=2e-3, checkpoint_every=2, **QUIET)
    with pytest.raises(Crash):
        distill_general(str(data), str(tmp_path / "out"), max_steps=6, callbacks=[CrashAt(3)], **args)
    with pytest.raises(CheckpointMismatch, match="temperature"):
        distill_general(str(data), str(tmp_path / "out"), max_steps=6, temperature=4.0, **args)
    out = distill_general(str(data), str(tmp_path / "out"), max_steps=6, temperature=4.0, force_resume=True, **args)
    assert (out / "model.safetensors").is_file()
