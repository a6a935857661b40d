"""The Task interface: registry, TaskData, shared inference (order, trimming, window pooling)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from finetune_helpers import make_tiny_model

import bertkit
from bertkit.tasks.base import Task, TaskData
from bertkit.tasks.classification import ClassificationTask
from bertkit.tasks.inference import forward_features, mean_by_example
from bertkit.tasks.registry import TASKS, task_class, task_from_json


def test_every_registered_task_implements_the_interface():
    for name in TASKS:
        cls = task_class(name)
        assert cls.name == name
        task = cls()  # every setting has a default
        members = [m for m in dir(Task) if not m.startswith("_")] + ["maxlen", "labels"]
        missing = [m for m in members if not _has(task, m)]
        assert not missing, f"{name} lacks {missing}"
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        task_class("poetry")


def _has(obj, name) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def test_task_settings_round_trip_through_json():
    task = ClassificationTask(labels=["a", "b"], maxlen=32, long_text="sliding_window", stride=4)
    again = task_from_json("classification", task.to_json())
    assert again.to_json() == task.to_json() and again.kind == "multiclass" and again.stride == 4


def test_task_data_lengths_handle_multiple_choice_rows():
    data = TaskData(ClassificationTask(), [{"input_ids": [[1, 2, 3], [1, 2]]}, {"input_ids": [4]}], [0, 1],
                    ["x", "y"], None, 0)
    assert data.lengths == [3, 1] and len(data) == 2 and not data.labelled and data.num_examples == 2


@pytest.mark.parametrize("head", ["classification", "token_classification"])
def test_forward_features_keeps_order_and_cuts_token_outputs(tmp_path, head):
    folder = make_tiny_model(tmp_path / "m", dropout=0.0)
    model = bertkit.load_model(folder, head=head, num_labels=3)
    lengths = [7, 3, 12, 5, 3]
    features = [{"input_ids": [101, *range(1000, 1000 + n - 2), 102], "attention_mask": [1] * n} for n in lengths]
    outputs = forward_features(model, features, pad_id=0, batch_size=2)
    for feature, out in zip(features, outputs, strict=True):
        with torch.no_grad():
            alone = model(torch.tensor([feature["input_ids"]])).logits[0].numpy()
        assert out.shape == alone.shape
        np.testing.assert_allclose(out, alone, atol=1e-5)
    if head == "token_classification":
        assert [o.shape[0] for o in outputs] == lengths


def test_mean_by_example_averages_windows():
    outputs = [np.array([1.0, 0.0]), np.array([3.0, 2.0]), np.array([5.0, 5.0])]
    pooled = mean_by_example(outputs, [0, 0, 1], 2)
    np.testing.assert_allclose(pooled, [[2.0, 1.0], [5.0, 5.0]])
