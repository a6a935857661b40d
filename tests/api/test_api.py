"""The ktrain-style facade on a tiny model: every call, save/load, resume, and bad inputs."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from finetune_helpers import EMOTIONS, emotion_data, make_tiny_model

import bertkit as ktrain
from bertkit import text
from bertkit.api import PredictorError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dropout=0.0))


@pytest.fixture(scope="module")
def prepared(model_dir):
    t = text.Transformer(model_dir, maxlen=32, classes=EMOTIONS, batch_size=6)
    x, y = emotion_data(24)
    xv, yv = emotion_data(12, seed=1)
    return t, t.preprocess_train(x, y), t.preprocess_test(xv, yv)


@pytest.fixture(scope="module")
def trained(prepared):
    t, train, val = prepared
    learner = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val)
    learner.fit(1e-2, 3, progress=False)
    return t, learner


def test_preprocess_accepts_lists_arrays_series_and_int_or_str_labels(prepared):
    t, train, _ = prepared
    x, y = emotion_data(12)
    ints = [EMOTIONS.index(v) for v in y]
    for texts, labels in ((np.array(x), np.array(y)), (pd.Series(x), pd.Series(ints)), (x, ints)):
        data = t.preprocess_test(texts, labels)
        assert data.targets == ints and data.examples == x
    assert len(train) == 24 and all(f["input_ids"][0] == t.tokenizer.cls_id for f in train.features)
    assert max(train.lengths) <= 32


@pytest.mark.parametrize(
    ("texts", "labels", "message"),
    [
        (["fine", "  "], ["joy", "fear"], "text 1 is empty"),
        (["fine", "good"], ["joy", "bliss"], "'bliss', which is not one of the classes"),
        (["fine", "good"], ["joy"], "2 texts but 1 labels"),
        (["fine", "good"], ["joy", 7], "outside the class indices"),
        (["fine", None], ["joy", "joy"], "text 1 is NoneType"),
        ([], [], "no texts given"),
    ],
)
def test_bad_inputs_give_clear_errors(prepared, texts, labels, message):
    t, _, _ = prepared
    with pytest.raises(ValueError, match=message):
        t.preprocess_train(texts, labels)


def test_classes_are_inferred_from_string_labels(model_dir):
    t = text.Transformer(model_dir, maxlen=16)
    t.preprocess_train(["good film", "bad film"], ["pos", "neg"])
    assert t.get_classes() == ["neg", "pos"] and t.task.kind == "multiclass"


def test_maxlen_beyond_the_model_positions_is_refused(model_dir):
    t = text.Transformer(model_dir, maxlen=600, classes=["a", "b"])
    with pytest.raises(ValueError, match="maxlen=600 exceeds the 512 positions"):
        t.get_classifier()


def test_lr_find_plots_and_leaves_weights_unchanged(prepared, tmp_path):
    t, train, val = prepared
    learner = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val, batch_size=4)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    result = learner.lr_find(max_epochs=3)
    assert len(result.lrs) == 18 and result.lrs == sorted(result.lrs)
    assert learner.lr_estimate() == result.suggestion
    learner.lr_plot(path=str(tmp_path / "lr.png"))
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    for k, v in learner.model.state_dict().items():
        torch.testing.assert_close(v.cpu(), before[k].cpu())  # lr_find may have moved it to a GPU


def test_fit_onecycle_autofit_and_fit_train_and_record_history(prepared, tmp_path):
    t, train, val = prepared
    learner = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val)
    history = learner.fit_onecycle(1e-2, 2, progress=False)
    lrs = history.series("lr")[1]
    assert max(lrs) > 5 * lrs[-1]  # 1cycle annealed
    assert len(history.series("val_loss")[0]) == 2  # evaluated at each epoch end
    learner.plot(str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    # autofit without epochs runs until the validation loss stops improving
    history = learner.autofit(3e-2, early_stopping=1, progress=False)
    evals = history.series("val_loss")[1]
    assert 2 <= len(evals) < 30 and evals[-1] >= min(evals)
    history = learner.fit(1e-3, 1, progress=False)
    assert set(history.series("lr")[1]) == {1e-3}


def test_validate_and_view_top_losses(trained, capsys):
    t, learner = trained
    result = learner.report(class_names=EMOTIONS)
    assert result.confusion_matrix.shape == (6, 6) and result.confusion_matrix.sum() == 12
    assert "precision" in result.report and "confusion matrix" in capsys.readouterr().out
    assert 0 <= result.metrics["val_accuracy"] <= 1
    top = learner.view_top_losses(n=3, preproc=t)
    losses = [loss for _, loss, _, _ in top]
    assert len(top) == 3 and losses == sorted(losses, reverse=True)
    assert all(true in EMOTIONS and pred in EMOTIONS for _, _, true, pred in top)


def test_overfits_a_small_batch(prepared):
    t, _, _ = prepared
    x, y = emotion_data(12)
    train = t.preprocess_train(x, y)
    learner = ktrain.get_learner(t.get_classifier(), train_data=train, batch_size=12)
    history = learner.train(1e-2, max_steps=60, schedule="constant", warmup=0, progress=False)
    assert history.series("loss")[1][-1] < 0.1
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    assert predictor.predict(x) == y


def test_save_load_gives_identical_predictions(trained, tmp_path):
    t, learner = trained
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    texts = emotion_data(10, seed=3)[0]
    predictor.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "bertkit.json").read_text())
    assert meta["settings"]["labels"] == EMOTIONS and meta["settings"]["maxlen"] == 32
    device = next(learner.model.parameters()).device.type  # same device, same kernels
    reloaded = ktrain.load_predictor(tmp_path / "p", device=device)
    np.testing.assert_allclose(reloaded.predict_proba(texts), predictor.predict_proba(texts), rtol=0, atol=1e-6)
    assert reloaded.predict(texts) == predictor.predict(texts)
    assert isinstance(reloaded.predict(texts[0]), str) and reloaded.get_classes() == EMOTIONS


@pytest.mark.parametrize("damage", ["missing tokenizer", "bad json", "truncated weights", "wrong format"])
def test_corrupted_predictor_folder_is_refused_by_name(trained, tmp_path, damage):
    t, learner = trained
    folder = ktrain.get_predictor(learner.model, preproc=t).save(tmp_path / "p")
    if damage == "missing tokenizer":
        (folder / "tokenizer.json").unlink()
        expected = "tokenizer.json is missing"
    elif damage == "bad json":
        (folder / "config.json").write_text("{not json")
        expected = "config.json is corrupted"
    elif damage == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        expected = "model.safetensors is corrupted"
    else:
        (folder / "bertkit.json").write_text('{"format": "something-else"}')
        expected = "bertkit.json is not a bertkit predictor"
    with pytest.raises(PredictorError, match=expected):
        ktrain.load_predictor(folder)
    with pytest.raises(FileNotFoundError, match="no predictor folder"):
        ktrain.load_predictor(tmp_path / "nowhere")


def test_failed_save_leaves_the_existing_predictor_untouched(trained, tmp_path, monkeypatch):
    t, learner = trained
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    folder = predictor.save(tmp_path / "p")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_save(_folder):
        raise OSError("disk full")

    monkeypatch.setattr(predictor.tokenizer, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        predictor.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temp folder left behind


class _Interrupt(Exception):
    pass


class _StopAt:
    def __init__(self, step):
        self.step = step

    def on_step_end(self, state):
        if state.step == self.step:
            raise _Interrupt


def test_resume_after_interruption_gives_the_same_weights(prepared, tmp_path):
    t, train, val = prepared
    options = dict(schedule="linear", warmup=0.2, progress=False, checkpoint_every=1)
    full = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val, batch_size=4)
    full.train(1e-2, 2, checkpoint_dir=str(tmp_path / "a"), **options)
    interrupted = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val, batch_size=4)
    with pytest.raises(_Interrupt):
        interrupted.train(1e-2, 2, checkpoint_dir=str(tmp_path / "b"), callbacks=[_StopAt(7)], **options)
    resumed = ktrain.get_learner(t.get_classifier(), train_data=train, val_data=val, batch_size=4)
    resumed.train(1e-2, 2, checkpoint_dir=str(tmp_path / "b"), **options)
    for key, value in full.model.state_dict().items():
        # bitwise on CPU; CUDA's embedding backward sums in a nondeterministic order
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=1e-5)


def test_multilabel_regression_pairs_and_class_weights(model_dir):
    texts = ["sun and rain", "only sun", "only rain", "neither today"] * 3
    rows = [["sun", "rain"], ["sun"], ["rain"], []] * 3
    t = text.Transformer(model_dir, maxlen=16, classes=["sun", "rain"], batch_size=4)
    train = t.preprocess_train(texts, rows)
    learner = ktrain.get_learner(t.get_classifier(), train, t.preprocess_test(texts, rows))
    learner.fit(1e-2, 30, progress=False)
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    assert t.task.kind == "multilabel" and predictor.predict(texts[:4]) == rows[:4]
    assert predictor.predict_proba(texts[:2]).shape == (2, 2)

    pairs = [("great", "a cat"), ("awful", "the sea"), ("great", "the sea"), ("awful", "a cat")]
    scores = [5.0, 0.5, 5.0, 0.5]
    r = text.Transformer(model_dir, maxlen=16, batch_size=4)
    data = r.preprocess_train(pairs, scores)
    assert r.task.kind == "regression" and 1 in data.features[0]["token_type_ids"]
    reg = ktrain.get_learner(r.get_classifier(), data, r.preprocess_test(pairs, scores))
    reg.train(1e-2, max_steps=60, schedule="constant", warmup=0, progress=False)
    values = ktrain.get_predictor(reg.model, preproc=r).predict(pairs)
    assert all(isinstance(v, float) for v in values) and abs(values[0] - 5.0) < 1.0

    c = text.Transformer(model_dir, maxlen=16, classes=["a", "b"], batch_size=4)
    data = c.preprocess_train(["x y", "y z", "z"], ["a", "a", "b"])
    weighted = ktrain.get_learner(c.get_classifier(), data, class_weights="balanced")
    assert c.task.class_weights("balanced", data) == pytest.approx([0.75, 1.5])
    weighted.train(1e-2, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="unknown classes"):
        ktrain.get_learner(weighted.model, weighted.train_data, class_weights={"c": 2.0})


def test_sliding_windows_pool_the_logits_of_long_texts(model_dir):
    t = text.Transformer(model_dir, maxlen=12, classes=["a", "b"], long_text="sliding_window", stride=3)
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    data = t.preprocess_train([long, "short one"], ["a", "b"])
    assert data.example_ids.count(0) > 1 and data.example_ids.count(1) == 1
    learner = ktrain.get_learner(t.get_classifier(), data)
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    windows = [f for f, e in zip(data.features, data.example_ids, strict=True) if e == 0]
    with torch.no_grad():
        each = [learner.model(torch.tensor([w["input_ids"]])).logits[0] for w in windows]
    expected = torch.stack(each).mean(0).softmax(-1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(long), expected, atol=1e-5)


def test_saved_predictor_loads_in_transformers_with_the_same_logits(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    t, learner = trained
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    folder = predictor.save(tmp_path / "p")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert hf.config.id2label == dict(enumerate(EMOTIONS))
    texts = emotion_data(4, seed=5)[0]
    batch = transformers.AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**batch).logits.numpy()
    np.testing.assert_allclose(predictor.task.logits(*predictor.outputs(texts)), expected, atol=1e-5)
