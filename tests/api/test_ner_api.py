"""NER through the ktrain facade (`import bertkit as ktrain`) and `bertkit finetune ner` / evaluate / predict."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from finetune_helpers import emotion_data, make_tiny_model
from test_ner import _toy

import bertkit as ktrain
from bertkit import text
from bertkit.api import PredictorError, load_predictor
from bertkit.cli import main


def _write_conll(path: Path, words: list[list[str]], tags: list[list[str]]) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence, row in zip(words, tags, strict=True):
        lines += [f"{w} NN I-NP {t}" for w, t in zip(sentence, row, strict=True)] + [""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ner")
    model = make_tiny_model(root / "model", dropout=0.0)
    return model, _write_conll(root / "train.txt", *_toy(96, seed=0)), _write_conll(root / "valid.txt", *_toy(32, seed=1))


def test_the_ktrain_ner_workflow(files: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model_path, train_file, valid_file = files
    trn, val, preproc = text.entities_from_conll2003(str(train_file), val_filepath=str(valid_file))
    assert preproc.get_classes() == ["O", "B-LOC", "B-PER", "I-PER"]
    model = text.sequence_tagger("bert", preproc, bert_model=str(model_path))
    learner = ktrain.get_learner(model, train_data=trn, val_data=val, batch_size=16)
    learner.fit_onecycle(5e-3, 3)
    f1 = learner.validate(class_names=preproc.get_classes())
    assert "micro avg" in capsys.readouterr().out and f1 > 0.95
    predictor = ktrain.get_predictor(learner.model, preproc)
    sentence = "Mr anna smith went to paris today"  # words of the toy data (no punctuation in it)
    assert predictor.predict(sentence) == [("Mr", "O"), ("anna", "B-PER"), ("smith", "I-PER"), ("went", "O"),
                                           ("to", "O"), ("paris", "B-LOC"), ("today", "O")]
    assert predictor.predict(sentence, merge_tokens=True) == [("anna smith", "PER"), ("paris", "LOC")]
    entities = predictor.predict(sentence, merge_tokens=True, return_offsets=True)
    assert [(e["start"], e["end"]) for e in entities] == [(3, 13), (22, 27)] and 0 < entities[0]["score"] <= 1
    assert predictor.predict(["in", "rome", "we", "met", "maria"])[1] == ("rome", "B-LOC")
    predictor.save(tmp_path / "p")
    loaded = ktrain.load_predictor(str(tmp_path / "p"))
    assert loaded.predict(sentence, merge_tokens=True) == [("anna smith", "PER"), ("paris", "LOC")]


def test_held_out_split_bilstm_tagger_and_errors(files: tuple[Path, Path, Path]) -> None:
    model_path, train_file, _ = files
    trn, val, preproc = text.entities_from_txt(str(train_file), val_pct=0.25)
    assert (trn.num_examples, val.num_examples) == (72, 24)
    model = text.sequence_tagger("bilstm-bert", preproc, bert_model=str(model_path))
    assert model.head_name == "bilstm_tagger" and len(trn) == 72
    assert not any(p.requires_grad for p in model.encoder.parameters())
    with pytest.raises(ValueError, match="unknown sequence tagger 'bilstm-crf'"):
        text.sequence_tagger("bilstm-crf", preproc, bert_model=str(model_path))
    _, _, fresh = text.entities_from_txt(str(train_file))
    with pytest.raises(ValueError, match="no encoder yet"):
        fresh.preprocess_test([["paris"]])


def test_finetune_evaluate_predict_on_the_command_line(files: tuple[Path, Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    model_path, train_file, valid_file = files
    out = tmp_path / "predictor"
    assert main(["finetune", "ner", "--model", str(model_path), "--train", str(train_file), "--valid",
                 str(valid_file), "--maxlen", "32", "--epochs", "3", "--batch-size", "16", "--lr", "5e-3",
                 "--no-progress", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "ner" and report["metrics"]["val_f1"] > 0.9
    capsys.readouterr()
    assert main(["evaluate", "--predictor", str(out), "--data", str(valid_file)]) == 0
    assert "micro avg" in capsys.readouterr().out
    stdout = io.StringIO()
    from bertkit.api.commands import predict

    assert predict(str(out), ["in oslo we met john", '["in", "berlin"]'], stdout=stdout) == 2
    records = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [e["entity_group"] for e in records[0]["entities"]] == ["LOC", "PER"]
    assert records[1]["tags"] == ["O", "B-LOC"] and stdout.getvalue().count("\n") == 2


def test_a_predictor_of_another_task_is_not_loaded_as_ner(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model_path, _, _ = files
    preproc = text.Transformer(str(model_path), maxlen=16, classes=["joy", "sadness", "anger", "fear", "love",
                                                                    "surprise"])
    x, y = emotion_data(6)
    preproc.preprocess_train(x, y)
    ktrain.get_predictor(preproc.get_classifier(), preproc).save(tmp_path / "cls")
    with pytest.raises(PredictorError, match="holds a 'classification' predictor, not a 'ner' one"):
        load_predictor(tmp_path / "cls", task="ner")
