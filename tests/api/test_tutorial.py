"""The seed ktrain tutorial, verbatim except `import bertkit as ktrain` and a tiny local model."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from finetune_helpers import EMOTIONS, emotion_data, make_tiny_model

matplotlib.use("Agg")  # show_plot=True must not open (or wait on) a window


@pytest.fixture
def tutorial_inputs(tmp_path):
    x_train, y_train = emotion_data(36, seed=0)
    x_test, y_test = emotion_data(12, seed=1)
    return {
        "MODEL_NAME": str(make_tiny_model(tmp_path / "tiny-bert")),
        "class_label_names": list(EMOTIONS),
        "x_train": np.array(x_train), "y_train": np.array(y_train),  # the tutorial passes arrays
        "x_test": x_test, "y_test": y_test,
        "predictor_folder": str(tmp_path / "emotion_predictor"),
    }


def test_tutorial_runs_verbatim(tutorial_inputs, capsys):
    MODEL_NAME = tutorial_inputs["MODEL_NAME"]
    class_label_names = tutorial_inputs["class_label_names"]
    x_train, y_train = tutorial_inputs["x_train"], tutorial_inputs["y_train"]
    x_test, y_test = tutorial_inputs["x_test"], tutorial_inputs["y_test"]
    folder = tutorial_inputs["predictor_folder"]

    # ---- the tutorial, verbatim but for the import and a tmp folder for the predictor ----
    import bertkit as ktrain
    from bertkit import text

    t = text.Transformer(MODEL_NAME, maxlen=500, classes=class_label_names, batch_size=6)
    train = t.preprocess_train(x_train, y_train)
    val = t.preprocess_test(x_test, y_test)
    model = t.get_classifier()
    learner = ktrain.get_learner(model, train_data=train, val_data=val, batch_size=6)
    learner.lr_find(show_plot=True, max_epochs=2)
    learner.fit_onecycle(2e-5, 3)
    learner.validate(class_names=class_label_names)
    learner.view_top_losses(n=10, preproc=t)
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    predictor.predict('I am so happy today')
    predictor.get_classes()
    predictor.save(folder)
    reloaded = ktrain.load_predictor(folder)
    reloaded.predict(['I feel scared of the dark', 'what a lovely surprise'])
    reloaded.predict_proba('I adore you')
    # ---- end of tutorial ----

    out = capsys.readouterr().out
    assert "suggested learning rate" in out
    assert "confusion matrix" in out and "surprise" in out
    assert out.count("----------") == 10  # view_top_losses printed ten examples
    assert learner.lr_finder is not None and len(learner.lr_finder.lrs) > 3
    assert predictor.predict('I am so happy today') in class_label_names
    assert reloaded.get_classes() == class_label_names
    probs = reloaded.predict_proba('I adore you')
    assert probs.shape == (6,) and abs(float(probs.sum()) - 1) < 1e-5
    np.testing.assert_allclose(reloaded.predict_proba(x_test), predictor.predict_proba(x_test), atol=1e-6)
