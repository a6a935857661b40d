"""Pre-training runs: loss falls, the output loads for fine-tuning and in transformers, continued
pre-training, exact resume, two phases, time budget, and the `bertkit pretrain` CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_vocab import write_corpus

import bertkit
from bertkit.cli import main
from bertkit.pretrain import prepare_corpus, train_vocab
from bertkit.pretrain.run import pretrain
from bertkit.tokenizer import Tokenizer

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
QUIET = dict(progress=False, bf16=False)  # float32 whatever the CPU: exact comparisons


def make_data(root: Path, n_docs: int = 30, max_length: int = 48, fmt: str = "nsp",
              masking: str = "dynamic") -> Path:
    """A tiny prepared corpus (vocab of 300 trained on made-up prose) under `root`."""
    files = write_corpus(root / "text", n_docs=n_docs, seed=3)
    if not (root / "vocab").is_dir():
        train_vocab(files, "bert", 300, root / "vocab", show_progress=False)
    out = root / f"data-{fmt}-{max_length}-{masking}"
    prepare_corpus([root / "text"], root / "vocab", out, format=fmt, max_length=max_length,
                   masking=masking, workers=1, show_progress=False)
    return out


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / "model.safetensors"))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("pretrain_run"))


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    pretrain(data, out, model=TINY, max_steps=6, batch_size=8, lr=2e-3, log_every=2,
             checkpoint_every=3, eval_data=data, eval_every=3, **QUIET)
    return out


def test_loss_falls_when_overfitting_a_tiny_corpus(tmp_path: Path) -> None:
    small = make_data(tmp_path, n_docs=3, max_length=32, masking="static")  # fixed masks: learnable
    config = TINY | dict(hidden_dropout=0.0, attention_dropout=0.0)
    pretrain(small, tmp_path / "out", model=config, max_steps=60, batch_size=32, lr=1e-2,
             warmup=3, log_every=10, checkpoint_every=None, **QUIET)
    losses = [r["mlm_loss"] for r in records(tmp_path / "out") if "mlm_loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    assert records(tmp_path / "out")[-1]["mlm_accuracy"] > 0.3


def test_outputs_metrics_and_plot(run: Path) -> None:
    rows = records(run)
    train = [r for r in rows if "loss" in r]
    held_out = [r for r in rows if "val_mlm_accuracy" in r]
    assert [r["global_step"] for r in train] == [2, 4, 6] and len(held_out) == 2
    for key in ("mlm_loss", "mlm_accuracy", "perplexity", "nsp_accuracy", "nsp_loss", "lr"):
        assert key in train[-1]
    assert train[-1]["perplexity"] == pytest.approx(torch.tensor(train[-1]["mlm_loss"]).exp().item(), rel=1e-5)
    assert 0 <= held_out[-1]["val_mlm_accuracy"] <= 1 and held_out[-1]["val_perplexity"] > 1
    assert (run / "pretraining.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"] and config["vocab_size"] == 300


def test_output_loads_for_fine_tuning_and_in_transformers(run: Path, data: Path) -> None:
    transformers = pytest.importorskip("transformers")
    folder = run / "model"
    classifier = bertkit.load_model(folder, head="classification", num_labels=2)
    tokenizer = Tokenizer.from_pretrained(folder)
    batch = tokenizer(["one small text", "and another"], padding=True, return_tensors="pt")
    assert classifier(**batch).logits.shape == (2, 2)
    ours = bertkit.load_model(folder, head="pretraining")
    theirs = transformers.AutoModelForPreTraining.from_pretrained(folder).eval()
    mlm = transformers.AutoModelForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = ours(**batch)
        got = theirs(**batch)
        torch.testing.assert_close(got.prediction_logits, expected.logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got.seq_relationship_logits, expected.pair_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(mlm(**batch).logits, expected.logits, atol=1e-4, rtol=1e-4)
    assert transformers.AutoTokenizer.from_pretrained(folder)("one small text")["input_ids"] == \
        tokenizer("one small text")["input_ids"]
    text = pytest.importorskip("bertkit.api.text")
    facade = text.Transformer(str(folder), maxlen=16, classes=["neg", "pos"])
    assert facade.get_tokenizer().vocab_size == 300


def test_continued_pretraining_initialises_a_tied_head(data: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    base = bertkit.build(bertkit.EncoderConfig(vocab_size=300, **TINY))  # no MLM head
    base.save(tmp_path / "base")
    out = pretrain(data, tmp_path / "out", model=str(tmp_path / "base"), max_steps=3, batch_size=8,
                   lr=1e-3, checkpoint_every=None, **QUIET)
    saved = load_file(str(out / "model.safetensors"))
    assert "cls.predictions.transform.dense.weight" in saved and "cls.seq_relationship.weight" in saved
    assert "cls.predictions.decoder.weight" not in saved  # tied: the embeddings are the decoder
    before = base.encoder.embeddings.word.weight.detach()
    after = saved["bert.embeddings.word_embeddings.weight"]
    fresh = bertkit.build(bertkit.EncoderConfig(vocab_size=300, **TINY)).encoder.embeddings.word.weight
    # trained from the base weights, not from a new random initialisation
    assert (after - before).norm() < 0.2 * (fresh.detach() - before).norm()
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out)
    assert hf.get_output_embeddings().weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()


class Crash(Exception):
    pass


class CrashAt:
    """Simulates a killed process: raises after the loop has written step `step`'s checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            raise Crash


def test_resume_after_a_crash_equals_an_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    # Dropout on (RNG restored), accumulation, and a second epoch (dynamic masks depend on the
    # epoch). 165 samples / 8 = 21 micro-batches: epoch 0 ends at step 11, which is checkpointed;
    # the crash at 13 leaves step 11, an epoch-end checkpoint, as the newest.
    args = dict(model=TINY, max_steps=16, batch_size=8, grad_accum=2, lr=2e-3, log_every=1,
                checkpoint_every=5, **QUIET)
    pretrain(data, tmp_path / "whole", **args)
    with pytest.raises(Crash):
        pretrain(data, tmp_path / "killed", callbacks=[CrashAt(13)], **args)
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints" / "phase-1").iterdir()) == [
        "run.json", "step-000010", "step-000011"]
    pretrain(data, tmp_path / "killed", **args)
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert records(tmp_path / "whole")[-1]["epoch"] >= 1
    for key, tensor in whole.items():
        torch.testing.assert_close(resumed[key], tensor, atol=1e-6, rtol=0)
    assert [r["loss"] for r in records(tmp_path / "killed")] == pytest.approx(
        [r["loss"] for r in records(tmp_path / "whole")], abs=1e-6)


class DropoutSeen:
    def __init__(self) -> None:
        self.seen: set[tuple[float, float]] = set()

    def on_step_end(self, state) -> None:
        config = state.model.config
        self.seen.add((config.hidden_dropout, config.attention_dropout))
        self.seen |= {(m.p, -1.0) for m in state.model.modules() if isinstance(m, torch.nn.Dropout)}


def test_dropout_override_applies_to_pretraining_only(data: Path, tmp_path: Path) -> None:
    seen = DropoutSeen()
    out = pretrain(data, tmp_path / "out", model=TINY, dropout=0.0, max_steps=2, batch_size=8,
                   checkpoint_every=None, callbacks=[seen], **QUIET)
    assert seen.seen == {(0.0, 0.0), (0.0, -1.0)}  # config and every nn.Dropout module
    saved = json.loads((out / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == saved["attention_probs_dropout_prob"] == 0.1
    with pytest.raises(ValueError, match="dropout must be in"):
        pretrain(data, tmp_path / "bad", model=TINY, dropout=1.5, max_steps=1, batch_size=8, **QUIET)


def test_two_phases_and_time_budget(data: Path, tmp_path: Path) -> None:
    long = make_data(data.parent, max_length=64)
    pretrain(None, tmp_path / "two", phases=[(data, 0.5), (long, 0.5)], model=TINY, max_steps=4,
             batch_size=8, log_every=1, checkpoint_every=None, **QUIET)
    rows = records(tmp_path / "two")
    assert [(r["phase"], r["step"], r["global_step"]) for r in rows] == [
        (1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4)]
    assert (tmp_path / "two" / "checkpoints" / "phase-2").is_dir()
    out = pretrain(data, tmp_path / "budget", model=TINY, max_steps=1000, max_minutes=0.0,
                   batch_size=8, log_every=1, checkpoint_every=None, **QUIET)
    assert len(records(tmp_path / "budget")) == 1 and (out / "model.safetensors").is_file()


def test_cli_vocab_prepare_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_corpus(tmp_path / "text", n_docs=20, seed=5)
    assert main(["pretrain", "vocab", str(tmp_path / "text"), "--out", str(tmp_path / "vocab"),
                 "--vocab-size", "300", "--quiet"]) == 0
    assert main(["pretrain", "prepare", str(tmp_path / "text"), "--tokenizer", str(tmp_path / "vocab"),
                 "--out", str(tmp_path / "data"), "--format", "sop", "--max-length", "40",
                 "--workers", "1", "--quiet"]) == 0
    (tmp_path / "tiny.json").write_text(json.dumps({"family": "albert", "embedding_size": 16, "share_layers": True} | TINY))
    run = ["pretrain", "run", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--model",
           str(tmp_path / "tiny.json"), "--max-steps", "3", "--batch-size", "8", "--optimizer",
           "lamb", "--lr", "1e-3", "--log-every", "1", "--dropout", "0", "--quiet"]
    assert main(run) == 0
    assert main(run) == 0  # resumes the finished run: nothing to do, same output
    assert "pre-trained model" in capsys.readouterr().out
    assert [r["step"] for r in records(tmp_path / "out")] == [1, 2, 3]
    assert "sop_accuracy" in records(tmp_path / "out")[0]
    model = bertkit.load_model(tmp_path / "out" / "model", head="classification", num_labels=3)
    assert model.config.family == "albert" and model.config.embedding_size == 16
    assert model.config.hidden_dropout == 0.1  # --dropout 0 was for pre-training only
    assert main(["pretrain", "run", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1


def test_ablation_switches_left_to_right_no_nsp_mask_mix(data: Path, tmp_path: Path) -> None:
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    out = tmp_path / "ltr"
    assert main(["pretrain", "run", str(data), "--out", str(out), "--model", str(tmp_path / "tiny.json"),
                 "--objective", "left_to_right", "--max-steps", "2", "--batch-size", "8", "--log-every", "1",
                 "--eval-data", str(data), "--eval-every", "2", "--no-bf16", "--quiet"]) == 0
    rows = records(out)
    assert "lm_loss" in rows[0] and "mlm_loss" not in rows[0] and "nsp_loss" not in rows[0]
    assert "val_lm_accuracy" in rows[-1] and "perplexity" in rows[0]
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["is_decoder"] and saved["architectures"] == ["BertForMaskedLM"]
    assert bertkit.load_model(out / "model", head="classification", num_labels=2).config.causal
    # MLM without NSP on the same NSP samples, with BERT's [MASK]-only row of Table 8
    with pytest.warns(UserWarning, match=r"fine-tuning inputs never contain \[MASK\]"):
        assert main(["pretrain", "run", str(data), "--out", str(tmp_path / "mlm"), "--model", str(tmp_path / "tiny.json"),
                     "--no-pair-objective", "--mask-mix", "100/0/0", "--max-steps", "2", "--batch-size", "8",
                     "--log-every", "1", "--no-bf16", "--quiet"]) == 0
    assert "nsp_loss" not in records(tmp_path / "mlm")[0] and "mlm_loss" in records(tmp_path / "mlm")[0]
    assert not any(k.startswith("cls.seq_relationship") for k in weights(tmp_path / "mlm"))
    with pytest.raises(ValueError, match="must sum to 1"):
        pretrain(data, tmp_path / "bad", model=TINY, mask_mix="80/10/20", max_steps=1, **QUIET)
    static = make_data(tmp_path, masking="static")
    with pytest.raises(ValueError, match="unmasked text"):
        pretrain(static, tmp_path / "static", model=TINY, objective="left_to_right", max_steps=1, batch_size=4, **QUIET)
