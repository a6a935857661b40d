"""Multiple choice: readers (SWAG, COPA, generic JSONL), featurising, equality with transformers,
masked choices, learning on generated data, predictions and bad rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_helpers import make_tiny_model

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.tasks.inference import forward_features
from bertkit.tasks.multiple_choice import MultipleChoiceTask, read_choices

COPA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "copa"
SWAG_HEADER = "video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return bertkit.Tokenizer.from_pretrained(model_dir)


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_swag_csv_joins_the_second_sentence_to_each_ending(tmp_path):
    path = _write(tmp_path / "train.csv", SWAG_HEADER
                  + 'v1,0,x,"Someone opens a door.",He,gold,walks in.,sits down.,"eats, slowly.",flies.,2\n'
                  + "v2,1,x,A cat sleeps.,It,gold,purrs.,barks.,sings.,runs.,0\n")
    examples, labels = MultipleChoiceTask.read(path)
    assert examples[0] == ("Someone opens a door.", ["He walks in.", "He sits down.", "He eats, slowly.", "He flies."])
    assert labels == [2, 0]


def test_copa_and_generic_jsonl(tmp_path):
    copa = _write(tmp_path / "copa.jsonl", json.dumps(
        {"premise": "The man fell.", "choice1": "He slipped.", "choice2": "He won.", "question": "cause", "label": 0}) + "\n")
    examples, labels = read_choices(copa)
    assert examples == [("The man fell. What was the cause of this?", ["He slipped.", "He won."])]
    assert labels == [0]
    generic = _write(tmp_path / "g.jsonl", "\n".join(json.dumps(r) for r in (
        {"context": "2+2?", "choices": ["3", "4", "5"]}, {"context": "sky?", "choices": ["blue", "red"]})) + "\n")
    examples, labels = MultipleChoiceTask.read(generic)
    assert labels is None and examples[1] == ("sky?", ["blue", "red"])


@pytest.mark.skipif(not COPA_DIR.is_dir(), reason="the shared COPA data (../shared/data/copa) is absent")
def test_real_copa_files_read_whole():
    examples, labels = read_choices(COPA_DIR / "train.jsonl", "copa")
    assert len(examples) == len(labels) == 350
    assert all(len(choices) == 2 for _, choices in examples) and set(labels) == {0, 1}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.csv", SWAG_HEADER + "v,0,x,A dog.,It,gold,runs.,,sits.,eats.,1\n", "bad.csv, line 2: ending1 is missing"),
    ("bad.jsonl", '{"premise": "P.", "choice1": "A.", "question": "effect", "label": 0}\n',
     "bad.jsonl, line 1: choice2 is missing"),
    ("g.jsonl", '{"context": "c", "choices": ["a", "b"]}\n{"context": "c", "choices": ["a", ""]}\n',
     "g.jsonl, line 2: choice 1 is missing"),
    ("l.jsonl", '{"context": "c", "choices": ["a", "b"], "label": 2}\n', "l.jsonl, line 1: label 2 is not a choice"),
    ("m.jsonl", '{"context": "c", "choices": ["a", "b"], "label": 1}\n{"context": "c", "choices": ["a", "b"]}\n',
     "m.jsonl, line 2: no label"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, name, text, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        read_choices(_write(tmp_path / name, text))


def test_featurize_pads_missing_choices_and_matches_transformers(model_dir, tokenizer, tmp_path):
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    task = MultipleChoiceTask(maxlen=16)
    examples = [("a long context about the weather today", ["it rains", "it is sunny outside", "snow"]),
                ("short", ["yes", "no"])]
    data = task.featurize(tokenizer, examples, [1, 0])
    assert [f["choice_mask"] for f in data.features] == [[1, 1, 1], [1, 1, 0]]
    assert max(len(ids) for f in data.features for ids in f["input_ids"]) <= 16
    model = bertkit.load_model(model_dir, head=task.head)
    outputs = forward_features(model, data.features, pad_id=data.pad_id)
    reference = AutoModelForMultipleChoice.from_pretrained(model.save(tmp_path / "mc")).eval()
    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    for (context, choices), out in zip(examples, outputs, strict=True):
        enc = hf_tok([context] * len(choices), choices, truncation=True, max_length=16, padding=True,
                     return_tensors="pt")
        with torch.no_grad():
            expected = reference(**{k: v[None] for k, v in enc.items()}).logits[0].numpy()
        np.testing.assert_allclose(out[: len(choices)], expected, atol=1e-5)
    probs = task.decode(outputs, data)[1]["probabilities"]
    assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-6  # the filler choice gets no probability


def test_loss_ignores_filler_choices(model_dir, tokenizer):
    task = MultipleChoiceTask(maxlen=16)
    data = task.featurize(tokenizer, [("c", ["a", "b", "c"]), ("d", ["e", "f"])], [2, 1])
    model = bertkit.load_model(model_dir, head=task.head).eval()
    batch = pad_collate(data.features, data.pad_id)
    loss, _ = task.loss_fn(data)(model, batch)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    expected = (torch.nn.functional.cross_entropy(logits[:1], torch.tensor([2]))
                + torch.nn.functional.cross_entropy(logits[1:, :2], torch.tensor([1]))) / 2
    assert abs(loss.item() - expected.item()) < 1e-5
    with pytest.raises(ValueError, match="no training options"):
        task.loss_fn(data, class_weights="balanced")


def test_bad_examples_and_labels_name_the_record(tokenizer):
    task = MultipleChoiceTask()
    with pytest.raises(ValueError, match="example 1: choice 1 is missing"):
        task.featurize(tokenizer, [("c", ["a", "b"]), ("c", ["a", " "])])
    with pytest.raises(ValueError, match="example 0: choices must be a list of two or more"):
        task.featurize(tokenizer, [("c", ["only one"])])
    with pytest.raises(ValueError, match="label 0 is 3"):
        task.featurize(tokenizer, [("c", ["a", "b"])], [3])


COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "brown", "pink"]
OTHERS = ["table", "river", "dog", "window", "pencil", "cloud", "engine", "bread", "shoe", "garden"]


def color_questions(n: int, seed: int) -> tuple[list, list[int]]:
    """`n` questions "which one is a colour?" with 2-4 choices, one of them a colour word."""
    rng = random.Random(seed)
    examples, labels = [], []
    for _ in range(n):
        choices = rng.sample(OTHERS, rng.randint(1, 3))
        answer = rng.randrange(len(choices) + 1)
        choices.insert(answer, rng.choice(COLORS))
        examples.append(("which word names a colour?", choices))
        labels.append(answer)
    return examples, labels


def test_multiple_choice_learns_on_generated_data_through_the_facade(model_dir, tmp_path):
    import bertkit as ktrain
    from bertkit.api.preprocessor import Preprocessor

    preproc = Preprocessor(str(model_dir), MultipleChoiceTask(maxlen=16), batch_size=16)
    train = preproc.preprocess_train(*color_questions(96, seed=0))
    valid = preproc.preprocess_test(*color_questions(64, seed=1))
    learner = ktrain.get_learner(preproc.get_model(seed=0), train_data=train, val_data=valid)
    before = learner.validate(print_report=False)  # ktrain's validate: the metrics, for this task
    learner.train(5e-3, 2, seed=0, progress=False)
    report = learner.report(print_report=False)
    assert report.metrics["val_accuracy"] >= 0.9 > before["val_accuracy"]
    assert report.metrics["val_loss"] < before["val_loss"] and report.report_dict["examples"] == 64
    ktrain.get_predictor(learner.model, preproc).save(tmp_path / "mc")
    answer = ktrain.load_predictor(tmp_path / "mc").predict("which word names a colour?", ["bread", "green"])
    assert answer["choice"] == 1 and answer["probabilities"][1] > 0.5


class _OutputsOnly:
    """The part of `Predictor` a task's `predict` uses: featurise and run the model."""

    def __init__(self, model, tokenizer, task):
        self.model, self.tokenizer, self.task = model, tokenizer, task

    def outputs(self, examples):
        data = self.task.featurize(self.tokenizer, examples)
        return forward_features(self.model, data.features, pad_id=data.pad_id), data


def test_predict_records_lines_and_settings(model_dir, tokenizer):
    task = MultipleChoiceTask.from_json(MultipleChoiceTask(maxlen=24).to_json())
    assert task.maxlen == 24 and task.num_outputs is None
    predictor = _OutputsOnly(bertkit.load_model(model_dir, head=task.head), tokenizer, task)
    one = task.predict(predictor, "which is a colour?", ["red", "shoe", "cloud"])
    assert set(one) == {"choice", "probabilities"} and len(one["probabilities"]) == 3
    assert one["choice"] == int(np.argmax(one["probabilities"]))
    many = task.predict(predictor, [("q", ["a", "b"]), ("which is a colour?", ["red", "shoe", "cloud"])])
    assert many[1]["choice"] == one["choice"] and many[1]["probabilities"] == pytest.approx(one["probabilities"])
    assert len(many[0]["probabilities"]) == 2
    example = task.example_from_line('{"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.", "question": "effect"}')
    assert example == ("It rained. What happened as a result?", ["Wet.", "Dry."])
    outputs, data = predictor.outputs([example])
    record = task.records(outputs, data)[0]
    assert record["answer"] == example[1][record["choice"]]
    with pytest.raises(ValueError, match="must be JSON"):
        task.example_from_line("not json")


def test_cli_finetune_evaluate_predict_and_wrong_task(model_dir, tmp_path, capsys):
    from bertkit.api import PredictorError, load_predictor
    from bertkit.cli import main

    def write(name, n, seed):
        examples, labels = color_questions(n, seed)
        lines = [json.dumps({"context": c, "choices": ch, "label": y}) for (c, ch), y in zip(examples, labels, strict=True)]
        return _write(tmp_path / name, "\n".join(lines) + "\n")

    out = tmp_path / "predictor"
    assert main(["finetune", "multiple_choice", "--model", str(model_dir), "--train", write("train.jsonl", 96, 0),
                 "--valid", write("valid.jsonl", 32, 1), "--out", str(out), "--maxlen", "16", "--epochs", "2",
                 "--lr", "5e-3", "--batch-size", "16", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "multiple_choice" and report["metrics"]["val_accuracy"] >= 0.9
    capsys.readouterr()
    assert main(["evaluate", "--predictor", str(out), "--data", str(tmp_path / "valid.jsonl")]) == 0
    assert "accuracy: " in capsys.readouterr().out
    line = json.dumps({"context": "which word names a colour?", "choices": ["river", "blue", "dog"]})
    assert main(["predict", "--predictor", str(out), line]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["answer"] == "blue" and len(record["probabilities"]) == 3
    predictor = load_predictor(out)
    assert predictor.predict("which word names a colour?", ["pink", "shoe"])["choice"] == 0
    with pytest.raises(PredictorError, match="holds a 'multiple_choice' predictor, not a 'classification' one"):
        load_predictor(out, task="classification")
