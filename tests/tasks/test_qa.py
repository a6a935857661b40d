"""Extractive QA: SQuAD reading, the official metrics, windows and their spans, and decoding equal
to the transformers question-answering pipeline (learning, predictor and CLI: test_qa_api.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_helpers import TOKENIZER_FILES, make_tiny_model
from qa_reference import pipeline_answers

import bertkit
from bertkit.tasks.inference import forward_features
from bertkit.tasks.qa import QaTask
from bertkit.tasks.squad import (
    QaExample,
    best_threshold,
    f1_score,
    normalize_answer,
    question_scores,
    read_squad,
    squad_metrics,
    write_predictions,
)

SQUAD_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "squad"
NORMANS = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
           "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland "
           "and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III of West "
           "Francia. Through generations of assimilation and mixing with the native Frankish and "
           "Roman-Gaulish populations, their descendants would gradually merge with the Carolingian-based "
           "cultures of West Francia.")


def squad_file(path: Path, qas: list[dict], context: str = "Paris is the capital of France.",
               version: str = "v2.0") -> Path:
    data = {"version": version, "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------ reading


def test_read_squad_v2_with_unanswerable_questions(tmp_path):
    path = squad_file(tmp_path / "dev.json", [
        {"id": "q1", "question": "What is the capital of France?",
         "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}]},
        {"id": "q2", "question": "What is the capital of Spain?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Paris", "answer_start": 0}]},
    ])
    examples, answers = QaTask.read(str(path))
    assert examples == [QaExample("What is the capital of France?", "Paris is the capital of France.", "q1"),
                        QaExample("What is the capital of Spain?", "Paris is the capital of France.", "q2")]
    assert answers == [[{"text": "Paris", "answer_start": 0}] * 2, []]


def test_mismatched_answer_start_names_the_question_or_is_skipped(tmp_path, capsys):
    path = squad_file(tmp_path / "bad.json", [
        {"id": "good", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "off-by-one", "question": "Country?", "answers": [{"text": "France", "answer_start": 23}]},
    ])
    with pytest.raises(ValueError, match="question off-by-one: answer 'France' does not match"):
        read_squad(path)
    examples, _ = read_squad(path, skip_mismatched=True)
    assert [x.id for x in examples] == ["good"]
    assert "skipped 1 of 2 questions" in capsys.readouterr().err


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="SQuAD file not found"):
        read_squad(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a SQuAD JSON file"):
        read_squad(tmp_path / "x.json")
    path = squad_file(tmp_path / "noans.json", [{"id": "q9", "question": "Why?", "answers": []}])
    with pytest.raises(ValueError, match="question q9: no answers and not marked is_impossible"):
        read_squad(path)


@pytest.mark.skipif(not (SQUAD_DIR / "xquad-en-38.json").is_file(), reason="shared SQuAD data absent")
def test_real_squad_files_read():
    examples, answers = read_squad(SQUAD_DIR / "xquad-en-38.json")
    assert len(examples) == 970 and all(answers)
    examples, answers = read_squad(SQUAD_DIR / "squad-v2-dev-normans.json")
    assert len(examples) == 208 and sum(not a for a in answers) == 112


# ------------------------------------------------------------------------------ metrics


def test_normalisation_and_scores_as_the_official_script():
    assert normalize_answer("The  Cat, sat on A mat!") == "cat sat on mat"
    assert normalize_answer("an apple") == "apple" and normalize_answer("theatre") == "theatre"
    assert f1_score("the cat sat", "cat") == pytest.approx(2 * (1 / 1) * (1 / 2) / (1 + 1 / 2))
    assert f1_score("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)  # overlap counts tokens
    assert f1_score("", "") == 1.0 and f1_score("", "cat") == 0.0 and f1_score("a", "cat") == 0.0
    # max over gold answers; a gold answer that normalises to "" does not count
    assert question_scores([{"text": "Denver Broncos"}, {"text": "Broncos"}], "the Broncos") == (1, 1.0)
    assert question_scores([{"text": "10th century"}, {"text": "the"}], "10th") == (0, pytest.approx(2 / 3))
    assert question_scores([], "") == (1, 1.0) and question_scores([], "x") == (0, 0.0)


def test_v2_breakdown_and_best_threshold_by_hand():
    golds = [[{"text": "Paris"}], [{"text": "blue sky"}], [], []]
    spans = ["Paris", "sky", "Lyon", "Rome"]
    odds = [-0.5, 0.2, 0.1, 0.6]  # null score minus best span score
    preds = ["Paris", "", "", ""]  # threshold 0: answer where odds <= 0
    m = squad_metrics(golds, preds, odds, spans)
    assert m["total"] == 4 and m["HasAns_total"] == 2 and m["NoAns_total"] == 2
    assert m["exact"] == pytest.approx(75.0) and m["f1"] == pytest.approx(75.0)
    assert m["HasAns_exact"] == 50.0 and m["NoAns_exact"] == 100.0
    # by hand: thresholds -0.5 → 3 correct, 0.1 → 2, 0.2 → 2 + 2/3 (F1), 0.6 → 1 + 2/3
    assert m["best_exact"] == pytest.approx(75.0) and m["best_exact_thresh"] == -0.5
    assert m["best_f1"] == pytest.approx(75.0) and m["best_f1_thresh"] == -0.5
    assert best_threshold([1.0, 1.0], [True, True], [True, True], [0.3, 0.1]) == (100.0, 0.3)


def test_predictions_file_is_the_official_json(tmp_path):
    write_predictions(tmp_path / "p.json", {"q1": "Paris", "q2": ""})
    assert json.loads((tmp_path / "p.json").read_text()) == {"q1": "Paris", "q2": ""}


# ------------------------------------------------------------------------------ windows


QUESTIONS = ["In what country is Normandy located?", "Who was the leader of the Norse?",
             "When did the Normans give their name to Normandy?", "What culture did they merge with?",
             "Who did they swear fealty to?", "Where did the raiders come from?"]
CONTEXTS = [NORMANS, NORMANS[:150], NORMANS[200:]]
PAIRS = [(q, CONTEXTS[i % 3]) for i, q in enumerate(QUESTIONS)]


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory) -> Path:
    """A random tiny BERT with a QA head, saved with MiniLM's tokenizer (transformers loads it too).

    The head leans towards the mean [CLS] state of the test windows, so that "no answer" (the
    null score of [CLS]) beats every span for about half of the test questions.
    """
    root = tmp_path_factory.mktemp("qa")
    make_tiny_model(root / "base", seed=3)
    torch.manual_seed(5)
    model = bertkit.load_model(root / "base", head="qa").eval()
    tokenizer = bertkit.Tokenizer.from_pretrained(root / "base")
    data = QaTask(maxlen=48, doc_stride=16).featurize(tokenizer, PAIRS)
    with torch.no_grad():
        cls = torch.stack([model(torch.tensor([f["input_ids"]])).last_hidden_state[0, 0] for f in data.features])
        direction = cls.mean(0) / cls.mean(0).norm()
        model.classifier.out.weight.mul_(5).add_(0.34 * direction)
    model.save(root / "qa")
    for name in TOKENIZER_FILES:
        shutil.copy(root / "base" / name, root / "qa" / name)
    return root / "qa"


def test_windows_stride_question_limit_and_answer_tokens(qa_folder):
    tokenizer = bertkit.Tokenizer.from_pretrained(qa_folder)
    task = QaTask(maxlen=40, doc_stride=12, max_question_len=5)
    start = NORMANS.index("Rollo")
    question = "who was the leader of the norse raiders and pirates"
    data = task.featurize(tokenizer, [(question, NORMANS)], [[{"text": "Rollo", "answer_start": start}]])
    assert len(data) > 3 and data.example_ids == [0] * len(data)
    found = 0
    for feature, extra in zip(data.features, data.extras, strict=True):
        ids = feature["input_ids"]
        assert len(ids) <= 40 and ids[1:6] == tokenizer(question)["input_ids"][1:6] and ids[6] == tokenizer.sep_id
        s, e = feature["start_positions"], feature["end_positions"]
        if s == 0:
            assert e == 0  # answer not inside this window → [CLS]
            continue
        found += 1
        assert NORMANS[extra["offsets"][s][0] : extra["offsets"][e][1]] == "Rollo"
    assert found >= 1
    # consecutive windows share doc_stride context tokens
    first, second = (np.array(f["input_ids"])[x["allowed"]] for f, x in zip(data.features[:2], data.extras[:2], strict=True))
    assert first[-12:].tolist() == second[:12].tolist()


def test_bad_inputs_name_the_question(qa_folder):
    tokenizer = bertkit.Tokenizer.from_pretrained(qa_folder)
    task = QaTask(maxlen=64, doc_stride=16)
    with pytest.raises(ValueError, match="question 1 .*context is empty"):
        task.featurize(tokenizer, [("q?", "a context"), ("q?", " ")])
    with pytest.raises(ValueError, match=r"question 0 \(no id\): answer 'Lyon' does not match"):
        task.featurize(tokenizer, [("q?", "Paris is big")], [[{"text": "Lyon", "answer_start": 0}]])
    with pytest.raises(ValueError, match="doc_stride must be"):
        QaTask(maxlen=64, doc_stride=64)
    with pytest.raises(ValueError, match="cannot cut contexts into windows.*max_question_len"):
        QaTask(maxlen=24, doc_stride=12).featurize(tokenizer, [("a long question " * 3, NORMANS)])
    with pytest.raises(ValueError, match='JSON {"question"'):
        task.example_from_line("what is this")


# ------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("null_answers", [False, True])
def test_answers_and_scores_equal_the_transformers_pipeline(qa_folder, null_answers):
    tokenizer = bertkit.Tokenizer.from_pretrained(qa_folder)
    model = bertkit.load_model(qa_folder, head="qa")
    task = QaTask(maxlen=48, doc_stride=16, max_answer_len=15, null_answers=null_answers)
    pairs = PAIRS
    data = task.featurize(tokenizer, pairs)
    assert len(data) > 2 * len(pairs)  # several windows per context
    outputs = forward_features(model, data.features, pad_id=data.pad_id, batch_size=4)
    ours = task.n_best(outputs, data, top_k=3)
    nulls = 0
    for (question, context), mine in zip(pairs, ours, strict=True):
        ref = pipeline_answers(str(qa_folder), question, context, max_seq_len=48, doc_stride=16,
                               max_answer_len=15, top_k=3, handle_impossible_answer=null_answers)
        assert [(a["answer"], a["start"], a["end"]) for a in mine] == [(a["answer"], a["start"], a["end"]) for a in ref]
        np.testing.assert_allclose([a["score"] for a in mine], [a["score"] for a in ref], rtol=1e-4)
        nulls += mine[0]["answer"] == ""
    assert (nulls > 0) == null_answers and nulls < len(pairs)  # both kinds of answer were compared


def test_threshold_turns_null_answers_on_and_off(qa_folder):
    tokenizer = bertkit.Tokenizer.from_pretrained(qa_folder)
    model = bertkit.load_model(qa_folder, head="qa")
    pairs = [(q, NORMANS) for q in QUESTIONS]
    task = QaTask(maxlen=48, doc_stride=16, null_answers=True, null_threshold=-1.0)
    data = task.featurize(tokenizer, pairs)
    outputs = forward_features(model, data.features, pad_id=data.pad_id)
    assert all(a["answer"] == "" for a in task.decode(outputs, data))
    task.null_threshold = 1.0
    assert all(a["answer"] != "" for a in task.decode(outputs, data))


def test_evaluate_tunes_the_threshold_to_the_best_f1(qa_folder):
    tokenizer = bertkit.Tokenizer.from_pretrained(qa_folder)
    model = bertkit.load_model(qa_folder, head="qa")
    task = QaTask(maxlen=48, doc_stride=16, max_answer_len=15)
    pairs = [(q, NORMANS) for q in QUESTIONS]
    # gold: whatever the model answers for the first three, "no answer" for the others
    unlabelled = task.featurize(tokenizer, pairs)
    spans = task.decode(forward_features(model, unlabelled.features, pad_id=unlabelled.pad_id), unlabelled)
    golds = [[{"text": a["answer"], "answer_start": a["start"]}] for a in spans[:3]] + [[]] * 3
    task.prepare(pairs, golds)
    assert task.null_answers is True
    data = task.featurize(tokenizer, pairs, golds)
    outputs = forward_features(model, data.features, pad_id=data.pad_id)
    report = task.evaluate(outputs, data)
    m = report.metrics
    assert m["val_HasAns_total"] == 3 and m["val_NoAns_total"] == 3 and m["val_best_f1"] >= m["val_f1"]
    assert task.null_threshold == m["val_best_f1_thresh"] and "null_threshold set to" in str(report)
    assert task.metrics(outputs, data)["val_f1"] == pytest.approx(m["val_best_f1"])
