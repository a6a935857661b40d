"""Extractive QA end to end: a tiny model learns through the ktrain-style API, the predictor
answers, saves and loads; `bertkit finetune qa | evaluate | predict` on SQuAD files."""

from __future__ import annotations

import io
import json

import pytest
from finetune_helpers import make_tiny_model
from qa_helpers import code_squad

import bertkit as ktrain
from bertkit import text
from bertkit.api.predictor import PredictorError
from bertkit.cli import main as cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on 300 generated questions through text.qa_from_squad → get_learner."""
    root = tmp_path_factory.mktemp("qa_api")
    folder = make_tiny_model(root / "tiny", seed=1, dropout=0.0)
    trn, val, preproc = text.qa_from_squad(str(code_squad(root / "train.json", 300, 0)),
                                           str(code_squad(root / "dev.json", 60, 1)), model_name=str(folder),
                                           maxlen=32, doc_stride=8, max_answer_len=5, batch_size=32)
    learner = ktrain.get_learner(preproc.get_model(seed=0), train_data=trn, val_data=val)
    learner.train(3e-3, 3, seed=0, progress=False)
    return root, trn, val, preproc, learner


def test_a_tiny_model_learns_spans_and_no_answer(trained):
    root, trn, val, preproc, learner = trained
    assert len(trn) > trn.num_examples  # long contexts became several windows
    assert preproc.task.null_answers is True  # the training data has unanswerable questions
    dev = learner.report(print_report=False)  # tunes the null threshold on dev
    assert dev.metrics["val_best_f1"] >= 95, str(dev)
    test = preproc.preprocess_test(*preproc.task.read(str(code_squad(root / "test.json", 60, 2))))
    scores = learner.report(test, print_report=False).metrics
    assert scores["val_HasAns_exact"] >= 85 and scores["val_NoAns_exact"] >= 85, scores


def test_predictor_answers_saves_and_loads(trained, tmp_path):
    root, _, _, preproc, learner = trained
    predictor = ktrain.get_predictor(learner.model, preproc)
    context = "stone river the code is purple garden window"
    answer = predictor.predict("what is the code?", context)
    assert answer["answer"] == "purple" and context[answer["start"] : answer["end"]] == "purple"
    assert 0 < answer["score"] <= 1
    batch = predictor.predict([("what is the code?", context), ("what is the code?", "stone river garden")])
    assert batch[0] == answer and batch[1]["answer"] == ""
    best = predictor.predict("what is the code?", context, top_k=3)
    spans = [a["score"] for a in best if a["answer"]]  # "" ranks by its score less the threshold
    assert len(best) == 3 and best[0] == answer and spans == sorted(spans, reverse=True)
    predictor.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "bertkit.json").read_text())
    assert meta["task"] == "qa" and meta["settings"]["null_threshold"] == preproc.task.null_threshold
    loaded = ktrain.load_predictor(tmp_path / "p")
    assert loaded.task == preproc.task and loaded.predict("what is the code?", context) == answer
    with pytest.raises(PredictorError, match="holds a 'qa' predictor, not a 'classification' one"):
        ktrain.load_predictor(tmp_path / "p", task="classification")
    with pytest.raises(ValueError, match=r"\(question, context\)"):
        predictor.predict("only a question")


def test_cli_finetune_evaluate_predict(tmp_path, capsys):
    folder = make_tiny_model(tmp_path / "tiny", seed=2)
    train, dev = code_squad(tmp_path / "train.json", 40, 0), code_squad(tmp_path / "dev.json", 12, 1)
    out = tmp_path / "predictor"
    assert cli(["finetune", "qa", "--model", str(folder), "--train", str(train), "--valid", str(dev),
                "--out", str(out), "--maxlen", "32", "--doc-stride", "8", "--max-steps", "2",
                "--batch-size", "16", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "qa" and "HasAns_f1" in report["report"] and "best_f1_thresh" in report["report"]
    assert json.loads((out / "bertkit.json").read_text())["settings"]["doc_stride"] == 8
    capsys.readouterr()
    assert cli(["evaluate", "--predictor", str(out), "--data", str(dev), "--predictions", str(tmp_path / "p.json")]) == 0
    assert "HasAns_exact" in capsys.readouterr().out
    predictions = json.loads((tmp_path / "p.json").read_text())
    assert sorted(predictions) == sorted(f"1-{i}" for i in range(12)) and all(isinstance(v, str) for v in predictions.values())
    line = json.dumps({"question": "what is the code?", "context": "the code is red"})
    assert cli(["predict", "--predictor", str(out), line]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert {"answer", "score", "start", "end", "question"} <= record.keys()
    from bertkit.api.commands import predict

    stdout = io.StringIO()  # a bad line gets an error record with its number; the others still answer
    assert predict(str(out), stdin=io.StringIO(f"not json\n{line}\n"), stdout=stdout) == 2
    bad_line, good_line = map(json.loads, stdout.getvalue().splitlines())
    assert bad_line["line"] == 1 and 'JSON {"question"' in bad_line["error"] and "answer" in good_line
    bad = tmp_path / "bad.json"
    bad.write_text(train.read_text().replace('"answer_start": ', '"answer_start": 1', 1))
    assert cli(["finetune", "qa", "--model", str(folder), "--train", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "does not match" in capsys.readouterr().err and not (tmp_path / "x").exists()
