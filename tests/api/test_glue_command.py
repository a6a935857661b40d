"""`bertkit glue` on tiny files in the official layouts: learning-rate choice on dev, dev metrics
printed, leaderboard files, regression, MNLI's two halves, and clear errors."""

from __future__ import annotations

import json

import pytest
from finetune_helpers import make_tiny_model
from glue_helpers import write_glue

from bertkit.api import load_predictor
from bertkit.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dropout=0.0))


def _run(model_dir, data, out, task, *extra):
    return main(["glue", "--task", task, "--data-dir", str(data), "--model", model_dir, "--out", str(out),
                 "--maxlen", "32", "--batch-size", "8", "--epochs", "1", "--no-progress", *extra])


def test_rte_chooses_the_best_lr_on_dev_and_writes_the_leaderboard_file(model_dir, tmp_path, capsys):
    write_glue(tmp_path / "glue", "RTE", n_train=24, n_dev=16, n_test=5)
    out = tmp_path / "out"
    assert _run(model_dir, tmp_path / "glue", out, "rte", "--lrs", "1e-2", "1e-6") == 0
    printed = capsys.readouterr().out
    assert "RTE lr 0.01: dev.tsv accuracy" in printed and "RTE best lr" in printed
    results = json.loads((out / "results.json").read_text())
    assert [r["lr"] for r in results["runs"]] == [0.01, 1e-06]
    best = max(results["runs"], key=lambda r: r["dev"]["dev.tsv"]["accuracy"])
    assert results["best_lr"] == best["lr"] and results["dev"] == best["dev"]
    lines = (out / "RTE.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 6
    assert all(line.split("\t")[1] in ("entailment", "not_entailment") for line in lines[1:])
    predictor = load_predictor(out / "predictor")
    assert predictor.get_classes() == ["entailment", "not_entailment"]


def test_stsb_regression_and_mnli_both_halves(model_dir, tmp_path, capsys):
    write_glue(tmp_path, "STS-B", n_train=16, n_dev=8, n_test=4)
    assert _run(model_dir, tmp_path / "STS-B", tmp_path / "sts", "STS-B", "--lrs", "1e-3", "--no-save-predictor") == 0
    assert "spearman" in capsys.readouterr().out
    scores = [float(line.split("\t")[1]) for line in (tmp_path / "sts" / "STS-B.tsv").read_text().splitlines()[1:]]
    assert len(scores) == 4 and all(0.0 <= s <= 5.0 for s in scores)
    assert not (tmp_path / "sts" / "predictor").exists()
    write_glue(tmp_path, "MNLI", n_train=12, n_dev=6, n_test=3)
    assert _run(model_dir, tmp_path, tmp_path / "mnli", "MNLI", "--lrs", "1e-3", "--max-steps", "1",
                "--limit", "8", "--dev-limit", "4", "--no-save-predictor") == 0
    results = json.loads((tmp_path / "mnli" / "results.json").read_text())
    assert set(results["dev"]) == {"dev_matched.tsv", "dev_mismatched.tsv"} and results["train_examples"] == 8
    for name in ("MNLI-m.tsv", "MNLI-mm.tsv"):
        assert len((tmp_path / "mnli" / name).read_text().splitlines()) == 4


def test_unknown_task_and_missing_folder_are_clear_errors(model_dir, tmp_path, capsys):
    assert _run(model_dir, tmp_path, tmp_path / "out", "squad") == 1
    assert "unknown GLUE task 'squad'; choose one of CoLA, SST-2, MRPC" in capsys.readouterr().err
    assert _run(model_dir, tmp_path, tmp_path / "out", "cola") == 1
    assert "no CoLA train.tsv in" in capsys.readouterr().err and not (tmp_path / "out").exists()
