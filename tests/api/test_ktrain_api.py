"""ktrain's calls beyond the tutorial, used the way ktrain's documentation uses them."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from finetune_helpers import EMOTIONS, emotion_data, make_tiny_model

import bertkit as ktrain
from bertkit import text

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dropout=0.0))


@pytest.fixture(scope="module")
def trained(model_dir):
    x, y = emotion_data(36)
    xv, yv = emotion_data(12, seed=1)
    trn, val, preproc = text.texts_from_array(x, y, xv, yv, class_names=EMOTIONS, maxlen=32, model_name=model_dir)
    model = text.text_classifier("bert", trn, preproc=preproc)
    learner = ktrain.get_learner(model, train_data=trn, val_data=val, batch_size=6)
    learner.fit_onecycle(5e-3, 4, progress=False)
    return learner, preproc, val


def test_validate_returns_the_confusion_matrix_of_the_predictions(trained, capsys):
    from sklearn.metrics import confusion_matrix

    learner, preproc, val = trained
    cm = learner.validate(class_names=preproc.get_classes())
    assert isinstance(cm, np.ndarray) and cm.shape == (6, 6)
    predicted = ktrain.get_predictor(learner.model, preproc).predict([x for x in val.examples])
    expected = confusion_matrix([EMOTIONS[t] for t in val.targets], predicted, labels=EMOTIONS)
    np.testing.assert_array_equal(cm, expected)
    assert "precision" in capsys.readouterr().out
    np.testing.assert_array_equal(learner.evaluate(val, print_report=False), cm)
    assert learner.report(print_report=False).metrics["val_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_top_losses_are_ordered_by_loss(trained):
    learner, _, _ = trained
    top = learner.top_losses(n=5)
    losses = [loss for _, loss, _, _ in top]
    assert len(top) == 5 and losses == sorted(losses, reverse=True)
    assert all(isinstance(i, int) and true in EMOTIONS and pred in EMOTIONS for i, _, true, pred in top)


def test_lr_plot_takes_ktrains_arguments(model_dir, tmp_path, capsys):
    x, y = emotion_data(24)
    trn, val, preproc = text.texts_from_array(x, y, class_names=EMOTIONS, maxlen=32, model_name=model_dir, val_pct=0.25)
    learner = ktrain.get_learner(text.text_classifier("bert", trn, preproc=preproc), trn, val, batch_size=6)
    learner.lr_find(num_steps=20)
    fig = learner.lr_plot(n_skip_beginning=2, n_skip_end=2, suggest=True, return_fig=True, path=str(tmp_path / "lr.png"))
    assert "suggested learning rate" in capsys.readouterr().out
    assert len(fig.axes[0].lines[0].get_xdata()) == len(learner.lr_finder.lrs) - 4
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


def test_freeze_keeps_frozen_weights_bit_identical(model_dir, capsys):
    x, y = emotion_data(12)
    trn, val, preproc = text.texts_from_array(x, y, x, y, class_names=EMOTIONS, maxlen=32, model_name=model_dir)
    learner = ktrain.get_learner(preproc.get_classifier(), trn, val, batch_size=6)
    learner.freeze()  # the whole encoder
    learner.print_layers()
    printed = capsys.readouterr().out
    assert "embeddings" in printed and "frozen" in printed and "head: classifier" in printed
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    learner.fit(1e-2, 1, progress=False)
    after = learner.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("classifier.") for k in changed)
    learner.unfreeze(exclude_range=2)  # embeddings and the first encoder layer stay frozen
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    learner.fit(1e-2, 1, progress=False)
    changed = {k for k in before if not torch.equal(before[k], learner.model.state_dict()[k])}
    assert any(k.startswith("encoder.layers.1.") for k in changed)
    assert not any(k.startswith(("encoder.embeddings.", "encoder.layers.0.")) for k in changed)


def test_weight_decay_save_model_and_load_model(trained, tmp_path):
    learner, _, _ = trained
    learner.set_weight_decay(0.1)
    assert learner.get_weight_decay() == 0.1
    with pytest.raises(ValueError, match="weight decay must be >= 0"):
        learner.set_weight_decay(-1)
    learner.save_model(str(tmp_path / "m"))
    saved = {k: v.clone() for k, v in learner.model.state_dict().items()}
    with torch.no_grad():
        for p in learner.model.parameters():
            p.add_(1.0)
    learner.load_model(str(tmp_path / "m"))
    for k, v in learner.model.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    learner.set_weight_decay(0.01)


def test_texts_from_df_csv_and_one_hot_columns(model_dir, tmp_path):
    x, y = emotion_data(30)
    frame = pd.DataFrame({"text": x, "label": y})
    trn, val, preproc = text.texts_from_df(frame, "text", label_columns=["label"], maxlen=32, model_name=model_dir,
                                           val_pct=0.2)
    assert trn.num_examples == 24 and val.num_examples == 6 and preproc.get_classes() == sorted(EMOTIONS)
    onehot = pd.get_dummies(frame["label"]).astype(int)
    frame = pd.concat([frame[["text"]], onehot], axis=1)
    frame.to_csv(tmp_path / "train.csv", index=False)
    trn, val, preproc = text.texts_from_csv(str(tmp_path / "train.csv"), "text", label_columns=list(onehot.columns),
                                            val_filepath=str(tmp_path / "train.csv"), maxlen=32, model_name=model_dir)
    assert preproc.task.kind == "multiclass" and preproc.get_classes() == list(onehot.columns)
    assert val.num_examples == 30 and [preproc.get_classes()[t] for t in val.targets] == y
    with pytest.raises(ValueError, match="not part of bertkit"):
        text.texts_from_df(frame, "text", label_columns=list(onehot.columns), preprocess_mode="standard")


def test_texts_from_folder_reads_nested_files_and_replaces_bad_bytes(model_dir, tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for label in ("neg", "pos"):
            folder = tmp_path / split / label / "sub"
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}.txt").write_bytes(f"{label} review {i} caf".encode() + b"\xe9 ok")
    trn, val, preproc = text.texts_from_folder(str(tmp_path), maxlen=32, model_name=model_dir)
    assert preproc.get_classes() == ["neg", "pos"] and trn.num_examples == 8 and val.num_examples == 4
    assert all("caf\ufffd ok" in t for t in trn.examples)
    with pytest.raises(FileNotFoundError, match="one sub-folder per class"):
        text.texts_from_folder(str(tmp_path / "missing"), model_name=model_dir)


def test_transformer_embedding_word_and_sentence_level(model_dir):
    embedder = text.TransformerEmbedding(model_dir, layers=[-2, -1])
    words = embedder.embed(["a cat", "a much longer sentence here"])
    assert words.shape[0] == 2 and words.shape[2] == 64  # two 32-wide layers concatenated
    assert np.all(words[0, 4:] == 0) and np.any(words[1, 4:] != 0)  # "a cat" is 4 tokens with [CLS]/[SEP]
    sentences = embedder.embed(["a cat"], word_level=False)
    np.testing.assert_allclose(sentences[0], words[0, :4].mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        text.TransformerEmbedding(model_dir, layers=[9])


def test_explain_weights_the_words_that_decide(trained, tmp_path):
    pytest.importorskip("captum")
    learner, preproc, _ = trained
    predictor = ktrain.get_predictor(learner.model, preproc)
    for word, label in (("furious", "anger"), ("terrified", "fear"), ("delighted", "joy")):
        doc = f"today i feel {word} about the trip"
        explanation = predictor.explain(doc, target=label)
        assert explanation.top(1)[0][0] == word, explanation.top(3)
        assert f">{word}</span>" in explanation.to_html()
    explanation.save_html(tmp_path / "e.html")
    explanation.plot(tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG" and "<span" in (tmp_path / "e.html").read_text()


def test_release_gpu_memory_runs_without_a_gpu():
    ktrain.release_gpu_memory()
