"""Task distillation through the facade (`ktrain.distill` → Learner → ordinary predictor) and the
`bertkit distill task` CLI, on a tiny classifier trained on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from finetune_helpers import EMOTIONS, emotion_data, make_tiny_model

import bertkit as ktrain
from bertkit import text
from bertkit.cli import main
from bertkit.tasks.classification import ClassificationTask

TRAIN, VALID, EXTRA = slice(0, 120), slice(120, 180), slice(180, 240)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data() -> tuple[list[str], list[str]]:
    return emotion_data(240, seed=4)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, data) -> tuple[Path, float]:
    """A 2-layer tiny classifier fine-tuned on the generated emotions; (predictor folder, accuracy)."""
    root = tmp_path_factory.mktemp("teacher")
    x, y = data
    t = text.Transformer(str(make_tiny_model(root / "base", dropout=0.0)), maxlen=32, classes=EMOTIONS, batch_size=16)
    learner = ktrain.get_learner(t.get_classifier(), t.preprocess_train(x[TRAIN], y[TRAIN]),
                                 t.preprocess_test(x[VALID], y[VALID]))
    learner.fit_onecycle(1e-2, 12, progress=False)
    accuracy = learner.report(print_report=False).metrics["val_accuracy"]
    ktrain.get_predictor(learner.model, preproc=t).save(root / "predictor")
    return root / "predictor", accuracy


def test_facade_distils_into_an_ordinary_predictor(teacher, data, tmp_path: Path) -> None:
    folder, teacher_accuracy = teacher
    x, y = data
    predictor = ktrain.load_predictor(folder, device="cpu")
    learner = ktrain.distill(predictor, (x[TRAIN], y[TRAIN]), (x[VALID], y[VALID]), layers=1,
                             unlabeled=x[EXTRA], temperature=2.0, alpha=0.7, cache=tmp_path / "cache")
    assert learner.model.config.num_layers == 1 and len(learner.train_data) == 180
    learner.fit_onecycle(1e-2, 12, progress=False)
    accuracy = learner.report(print_report=False).metrics["val_accuracy"]
    assert teacher_accuracy > 0.8 and accuracy >= 0.9 * teacher_accuracy, (accuracy, teacher_accuracy)
    ktrain.get_predictor(learner.model, preproc=predictor).save(tmp_path / "student")
    student = ktrain.load_predictor(tmp_path / "student", device="cpu")
    assert student.model.config.num_layers == 1 and student.get_classes() == EMOTIONS
    assert student.predict(["today i feel furious about the news"]) == ["anger"]
    with pytest.raises(ValueError, match="an .examples, targets. pair"):
        ktrain.distill(predictor, x[TRAIN])


def test_cli_distill_task_writes_a_predictor_that_bertkit_predict_uses(teacher, data, tmp_path, capsys) -> None:
    folder, _ = teacher
    x, y = data
    pd.DataFrame({"sentence": x[TRAIN], "label": y[TRAIN]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"sentence": x[VALID], "label": y[VALID]}).to_csv(tmp_path / "valid.csv", index=False)
    (tmp_path / "extra.txt").write_text("\n".join(x[EXTRA]) + "\n")
    out = tmp_path / "student"
    argv = ["distill", "task", "--teacher", str(folder), "--train", str(tmp_path / "train.csv"),
            "--valid", str(tmp_path / "valid.csv"), "--text-column", "sentence", "--unlabeled",
            str(tmp_path / "extra.txt"), "--layers", "1", "--out", str(out), "--epochs", "2", "--lr", "1e-2",
            "--batch-size", "16", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["student_layers"] == 1 and report["teacher_layers"] == 2 and report["unlabeled_examples"] == 60
    assert 0 <= report["metrics"]["val_accuracy"] <= 1
    assert (tmp_path / "student.cache" / "unlabeled" / "logits.npy").is_file()
    capsys.readouterr()
    assert main(["predict", "--predictor", str(out), "today i feel sad about the trip"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["label"] in EMOTIONS
    bad = list(argv)
    bad[bad.index("--layers") + 1] = "3"
    assert main(bad) == 1  # a 2-layer teacher has layers 0 and 1
    assert "lie in 0..1" in capsys.readouterr().err


def test_classification_kinds_choose_their_soft_targets() -> None:
    kinds = {k: ClassificationTask(kind=k, labels=[] if k == "regression" else ["a", "b"]).soft_targets
             for k in ("multiclass", "multilabel", "regression")}
    assert kinds == {"multiclass": "softmax", "multilabel": "sigmoid", "regression": "mse"}


def test_ner_teacher_distils_through_the_same_code(tmp_path: Path, data) -> None:
    """The NER task on main, unchanged: token-level soft targets with padding masked out."""
    from distill_helpers import EMOTION_WORDS

    from bertkit.api.predictor import Predictor
    from bertkit.tasks.ner import NerTask

    texts, _ = data
    words = [t.split() for t in texts]
    tags = [["B-EMO" if w in EMOTION_WORDS else "O" for w in row] for row in words]
    base = make_tiny_model(tmp_path / "base", dropout=0.0)
    t = text.Transformer(str(base), maxlen=32, classes=EMOTIONS, batch_size=16)  # only its tokenizer
    task = NerTask(maxlen=32)
    task.prepare(words[TRAIN], tags[TRAIN])
    train_data = task.featurize(t.tokenizer, words[TRAIN], tags[TRAIN], batch_size=16)
    valid = task.featurize(t.tokenizer, words[VALID], tags[VALID], batch_size=16)
    model = ktrain.load_model(base, head=task.head, num_labels=task.num_outputs, labels=task.labels)
    teacher = ktrain.get_learner(model, train_data, valid)
    teacher.fit_onecycle(1e-2, 10, progress=False)
    teacher_f1 = teacher.report(print_report=False).metrics["val_f1"]
    predictor = Predictor(teacher.model, t.tokenizer, task)
    learner = ktrain.distill(predictor, train_data, valid, layers=1, unlabeled=words[EXTRA], alpha=0.7)
    learner.fit_onecycle(1e-2, 10, progress=False)
    student_f1 = learner.report(print_report=False).metrics["val_f1"]
    assert teacher_f1 > 0.8 and student_f1 >= 0.9 * teacher_f1, (student_f1, teacher_f1)
