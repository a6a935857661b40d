"""GLUE: the nine tasks' TSV layouts, metrics against scikit-learn/scipy, leaderboard files, errors."""

from __future__ import annotations

import numpy as np
import pytest
from glue_helpers import write_glue
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from bertkit.tasks.glue import (
    GLUE_TASKS,
    binary_f1,
    glue_metrics,
    glue_task,
    matthews,
    pearson,
    read_glue,
    spearman,
    write_leaderboard,
)


@pytest.mark.parametrize("name", [t.name for t in GLUE_TASKS.values()])
def test_every_task_reads_its_official_layout(tmp_path, name):
    task = glue_task(name)
    folder = write_glue(tmp_path, name, n_train=6, n_dev=4, n_test=3)
    train = read_glue(task, folder / "train.tsv")
    assert len(train.texts) == len(train.labels) == 6
    assert train.texts[0].startswith("the ") and (train.pairs is None) == (task.pair is None)
    if task.regression:
        assert all(isinstance(y, float) for y in train.labels)
    else:
        assert set(train.labels) <= set(task.labels)
    for dev in task.dev:
        assert len(read_glue(task, folder / dev).labels) == 4
    for test, out in task.leaderboard_files():
        split = read_glue(task, folder / test, labelled=False)
        assert split.labels is None and split.ids == ["0", "1", "2"]
        assert out.endswith(".tsv")


def test_mrpc_cola_and_quoting(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
                    '1\t1\t2\t"Quoted" start\tHe said "no\n', encoding="utf-8")
    split = read_glue(glue_task("MRPC"), path)
    assert split.examples() == [('"Quoted" start', 'He said "no')] and split.labels == ["1"]
    cola = tmp_path / "dev.tsv"
    cola.write_text("gj04\t0\t*\tThe more we study verbs, the crazier they get get.\n", encoding="utf-8")
    assert read_glue(glue_task("cola"), cola).examples() == ["The more we study verbs, the crazier they get get."]


def test_names_and_unknown_task():
    assert glue_task("sst2") is glue_task("SST-2") and glue_task("MNLI-mm").name == "MNLI"
    assert glue_task("sts_b").regression
    with pytest.raises(ValueError, match="unknown GLUE task 'squad'; choose one of CoLA, SST-2"):
        glue_task("squad")


def test_bad_rows_name_file_and_line(tmp_path):
    rte = tmp_path / "train.tsv"
    rte.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tyes\n")
    with pytest.raises(ValueError, match=r"train.tsv, line 3: label 'yes' is not one of"):
        read_glue(glue_task("RTE"), rte)
    rte.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\n")
    with pytest.raises(ValueError, match="train.tsv, line 2: 2 fields, expected 4"):
        read_glue(glue_task("RTE"), rte)
    with pytest.raises(ValueError, match="not a GLUE QNLI file: no column question"):
        read_glue(glue_task("QNLI"), rte)
    with pytest.raises(FileNotFoundError, match="GLUE STS-B file not found"):
        read_glue(glue_task("STS-B"), tmp_path / "missing.tsv")


def test_metrics_equal_scikit_learn_and_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gold, pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        assert matthews(gold, pred) == pytest.approx(matthews_corrcoef(gold, pred), abs=1e-12)
        assert binary_f1(gold, pred) == pytest.approx(f1_score(gold, pred), abs=1e-12)
        three_gold, three_pred = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
        assert matthews(three_gold, three_pred) == pytest.approx(matthews_corrcoef(three_gold, three_pred), abs=1e-12)
        x, y = rng.normal(size=30), rng.normal(size=30)
        ties = np.round(y * 2) / 2  # many ties: Spearman must average their ranks
        assert pearson(x, y) == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
        assert spearman(x, ties) == pytest.approx(spearmanr(x, ties)[0], abs=1e-12)


def test_metrics_on_hand_checked_cases():
    # tp=2, tn=1, fp=1, fn=0: MCC = (2*1 - 1*0) / sqrt(3*2*2*1) = 2 / sqrt(12)
    gold, pred = ["1", "1", "0", "0"], ["1", "1", "1", "0"]
    scores = glue_metrics(glue_task("MRPC"), gold, pred)
    assert scores == pytest.approx({"f1": 0.8, "accuracy": 0.75})
    assert glue_metrics(glue_task("CoLA"), gold, pred)["matthews"] == pytest.approx(2 / 12**0.5)
    assert matthews(["0", "0"], ["0", "0"]) == 0.0  # undefined (one class only): 0, as scikit-learn
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert glue_metrics(glue_task("STS-B"), [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(
        {"spearman": -1.0, "pearson": -1.0})


def test_leaderboard_files(tmp_path):
    write_leaderboard(tmp_path / "STS-B.tsv", glue_task("STS-B"), ["0", "1"], [5.7, 2.12345])
    assert (tmp_path / "STS-B.tsv").read_text() == "index\tprediction\n0\t5.000\n1\t2.123\n"
    write_leaderboard(tmp_path / "MNLI-m.tsv", glue_task("MNLI"), ["0"], ["neutral"])
    assert (tmp_path / "MNLI-m.tsv").read_text().splitlines() == ["index\tprediction", "0\tneutral"]
    with pytest.raises(ValueError, match="2 test ids but 1 predictions"):
        write_leaderboard(tmp_path / "x.tsv", glue_task("RTE"), ["0", "1"], ["entailment"])
