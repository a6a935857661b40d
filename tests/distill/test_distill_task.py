"""Task-specific distillation over the Task interface: the memory-mapped teacher-logits cache, the
soft-target + hard-label loss (unlabelled rows only in the soft part), and tiny students keeping
their tiny teachers' accuracy on generated data — one label per text, and one tag per token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from distill_helpers import TextLabels, WordTags, accuracy, train
from finetune_helpers import emotion_data, make_tiny_model

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.distill import soft_target_loss
from bertkit.distill import task as distill_task
from bertkit.distill.task import SoftTargetTask, prepare_student, soft_target_data, teacher_logits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> bertkit.Tokenizer:
    return bertkit.Tokenizer.from_pretrained(tokenizer_dir)


def tiny_teacher(folder: Path, task, layers: int = 2) -> bertkit.BertkitModel:
    """A 2-layer, 32-wide BERT with the task's head (MiniLM's vocabulary), freshly initialised."""
    torch.manual_seed(0)
    config = bertkit.load_model(folder).config.replace(num_layers=layers, hidden_dropout=0.0, attention_dropout=0.0,
                                                       classifier_dropout=0.0)
    return bertkit.build(config, head=task.head, num_labels=task.num_outputs)


def test_teacher_logits_are_cached_memory_mapped_and_reused(tokenizer, tokenizer_dir, tmp_path, monkeypatch) -> None:
    task = WordTags()
    data = task.featurize(tokenizer, *emotion_data(10, seed=1))
    model = tiny_teacher(tokenizer_dir, task).eval()
    fresh = teacher_logits(model, data)
    cached = teacher_logits(model, data, tmp_path / "cache")
    assert [a.shape for a in cached] == [(len(f["input_ids"]), 2) for f in data.features]
    assert isinstance(cached[0].base, np.memmap) or isinstance(cached[0], np.memmap)
    for a, b in zip(fresh, cached, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)
    monkeypatch.setattr(distill_task, "forward_features", lambda *a, **k: pytest.fail("recomputed"))
    teacher_logits(model, data, tmp_path / "cache")  # same teacher, same features: read back
    other = task.featurize(tokenizer, *emotion_data(10, seed=2))
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        teacher_logits(model, other, tmp_path / "cache")


def test_token_logits_pad_with_zero_rows() -> None:
    rows = [{"input_ids": [1, 2, 3], "t": np.ones((3, 2), np.float32)}, {"input_ids": [4], "t": np.full((1, 2), 2.0, np.float32)}]
    batch = pad_collate(rows)
    assert batch["t"].shape == (2, 3, 2) and batch["t"][1, 0].tolist() == [2.0, 2.0]
    assert batch["t"][1, 1:].abs().sum() == 0


def test_loss_mixes_soft_and_hard_and_skips_unlabelled_rows(tokenizer, tokenizer_dir) -> None:
    task = TextLabels()
    texts, labels = emotion_data(6, seed=3)
    labelled = task.featurize(tokenizer, texts[:4], labels[:4])
    extra = task.featurize(tokenizer, texts[4:])
    teacher = tiny_teacher(tokenizer_dir, task).eval()
    data = soft_target_data(labelled, teacher_logits(teacher, labelled), extra, teacher_logits(teacher, extra))
    assert [f["has_label"] for f in data.features] == [True] * 4 + [False] * 2
    batch = pad_collate(data.features, tokenizer.pad_id)
    student = tiny_teacher(tokenizer_dir, task, layers=1).eval()
    logits = student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    soft = soft_target_loss(logits, batch["teacher_logits"], 3.0)
    hard = torch.nn.functional.cross_entropy(logits[:4], batch["label"][:4])
    for alpha in (0.0, 0.3, 1.0):
        loss, metrics = SoftTargetTask(task, temperature=3.0, alpha=alpha, labelled=labelled).loss_fn()(student, batch)
        assert loss.item() == pytest.approx(alpha * soft.item() + (1 - alpha) * hard.item(), rel=1e-5)
    assert metrics["soft_loss"] == pytest.approx(soft.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"alpha .* must be in \[0, 1\]"):
        SoftTargetTask(task, alpha=1.5)


@pytest.mark.parametrize("task_class", [TextLabels, WordTags])
def test_distilled_student_keeps_most_of_its_teachers_accuracy(task_class, tokenizer, tokenizer_dir, tmp_path) -> None:
    task = task_class()
    texts, labels = emotion_data(240, seed=4)
    train_data = task.featurize(tokenizer, texts[:120], labels[:120])
    valid = task.featurize(tokenizer, texts[120:180], labels[120:180])
    teacher = tiny_teacher(tokenizer_dir, task)
    train(teacher, train_data, epochs=12, lr=1e-2)
    teacher_accuracy = accuracy(teacher, valid)
    student, data = prepare_student(teacher, tokenizer, train_data, layers=1, unlabeled=texts[180:],
                                    temperature=2.0, alpha=0.7, cache=tmp_path / "cache")
    assert len(data) == 180 and student.config.num_layers == 1 and data.task.name == task.name
    train(student, data, epochs=12, lr=1e-2)
    student_accuracy = accuracy(student, valid)
    assert teacher_accuracy > 0.8, teacher_accuracy
    assert student_accuracy >= 0.9 * teacher_accuracy, (student_accuracy, teacher_accuracy)
    assert (tmp_path / "cache" / "unlabeled" / "logits.npy").is_file()
