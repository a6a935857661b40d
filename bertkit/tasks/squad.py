"""SQuAD v1.1/v2.0 files and metrics: the JSON reader, the official answer normalisation, EM/F1
(max over gold answers), HasAns/NoAns breakdowns, the best-F1 null threshold, predictions JSON."""

from __future__ import annotations

import collections
import json
import os
import re
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.io import save_json

_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True)
class QaExample:
    """One question about one context; `id` is the SQuAD question id ("" when not given)."""

    question: str
    context: str
    id: str = ""


# A gold answer: {"text": ..., "answer_start": character offset}; no answers: unanswerable (v2.0).
Answer = dict[str, Any]


# ------------------------------------------------------------------------------ reading


def read_squad(path: str | os.PathLike, *, skip_mismatched: bool = False
               ) -> tuple[list[QaExample], list[list[Answer]]]:
    """Questions and gold answers of a SQuAD v1.1 or v2.0 JSON file, in file order.

    An answer whose `answer_start` does not point at its text in the context is an error naming
    the question id; with `skip_mismatched` such questions are left out and counted on stderr.
    Unanswerable v2.0 questions (`is_impossible`) get an empty answer list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a SQuAD JSON file (want {{'data': [articles]}}): {err}") from err
    examples: list[QaExample] = []
    answers: list[list[Answer]] = []
    skipped = total = 0
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_field(article, "paragraphs", path, f"article {a}")):
            where = f"article {a} paragraph {p}"
            context = _field(paragraph, "context", path, where)
            for qa in _field(paragraph, "qas", path, where):
                total += 1
                example, gold = _question(qa, context, path, where)
                bad = _mismatch(gold, context)
                if bad is not None and not skip_mismatched:
                    raise ValueError(f"{path}: question {example.id}: {bad} (pass skip_mismatched to skip it)")
                if bad is None:
                    examples.append(example)
                    answers.append(gold)
                else:
                    skipped += 1
    if skipped:
        print(f"{path}: skipped {skipped} of {total} questions whose answer_start does not match "
              "the answer text", file=sys.stderr)
    if not examples:
        raise ValueError(f"{path}: no questions found")
    return examples, answers


def _field(record: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{path}: {where} has no {key!r} field")
    return record[key]


def _question(qa: Any, context: str, path: Path, where: str) -> tuple[QaExample, list[Answer]]:
    qid = str(_field(qa, "id", path, where))
    question = _field(qa, "question", path, f"{where} question {qid}")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{path}: question {qid}: the question text is empty")
    gold = [] if qa.get("is_impossible", False) else list(qa.get("answers", []))
    for answer in gold:
        if not isinstance(answer, dict) or not {"text", "answer_start"} <= answer.keys():
            raise ValueError(f"{path}: question {qid}: an answer needs 'text' and 'answer_start'")
    if not gold and not qa.get("is_impossible", False):
        raise ValueError(f"{path}: question {qid}: no answers and not marked is_impossible")
    return QaExample(question, context, qid), [
        {"text": a["text"], "answer_start": int(a["answer_start"])} for a in gold
    ]


def _mismatch(gold: list[Answer], context: str) -> str | None:
    for answer in gold:
        start, text = answer["answer_start"], answer["text"]
        found = context[start : start + len(text)]
        if found != text:
            return f"answer {text!r} does not match the context at answer_start {start} ({found!r})"
    return None


def write_predictions(path: str | os.PathLike, predictions: Mapping[str, str]) -> None:
    """The official predictions file: {question id: answer text} ("" for no answer), atomically."""
    save_json(path, dict(predictions))


# ------------------------------------------------------------------------------ metrics
# As in the official evaluation script of SQuAD v2.0 (which equals v1.1's for non-empty answers).


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, the articles a/an/the and extra white space."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    """Token-overlap F1 of the normalised texts; two empty answers score 1, one empty scores 0."""
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[Answer]) -> list[str]:
    """The gold texts that count: non-empty after normalisation; [""] for an unanswerable question."""
    texts = [a["text"] for a in answers if normalize_answer(a["text"])]
    return texts or [""]


def question_scores(answers: Sequence[Answer], prediction: str) -> tuple[int, float]:
    """(EM, F1) of one prediction: the best over the gold answers."""
    golds = gold_texts(answers)
    return max(exact_match(g, prediction) for g in golds), max(f1_score(g, prediction) for g in golds)


def squad_metrics(golds: Sequence[Sequence[Answer]], predictions: Sequence[str],
                  null_odds: Sequence[float] | None = None,
                  span_predictions: Sequence[str] | None = None) -> dict[str, float]:
    """exact/f1 (in %) and total; HasAns_/NoAns_ figures when there are unanswerable questions;
    with `null_odds` (higher: more likely no answer) and the best non-null answers
    `span_predictions`, the official best_exact/best_f1 and their thresholds on `null_odds`."""
    scores = [question_scores(g, p) for g, p in zip(golds, predictions, strict=True)]
    has_ans = [bool(g) for g in golds]
    out = _totals(scores, "", lambda i: True)
    if not all(has_ans):
        out.update(_totals(scores, "HasAns_", lambda i: has_ans[i]))
        out.update(_totals(scores, "NoAns_", lambda i: not has_ans[i]))
    if null_odds is not None and span_predictions is not None:
        spans = [question_scores(g, p) for g, p in zip(golds, span_predictions, strict=True)]
        for k, name in ((0, "exact"), (1, "f1")):
            best, thresh = best_threshold([s[k] for s in spans], [p != "" for p in span_predictions],
                                          has_ans, null_odds)
            out[f"best_{name}"], out[f"best_{name}_thresh"] = best, thresh
    return out


def _totals(scores: list[tuple[int, float]], prefix: str, keep: Any) -> dict[str, float]:
    chosen = [s for i, s in enumerate(scores) if keep(i)]
    n = len(chosen)
    return {f"{prefix}exact": 100.0 * sum(s[0] for s in chosen) / max(n, 1),
            f"{prefix}f1": 100.0 * sum(s[1] for s in chosen) / max(n, 1),
            f"{prefix}total": float(n)}


def best_threshold(span_scores: Sequence[float], answered: Sequence[bool], has_ans: Sequence[bool],
                   null_odds: Sequence[float]) -> tuple[float, float]:
    """The official v2.0 `find_best_thresh`: answer a question when its null odds are at most the
    threshold, else say "". Returns (best score in %, threshold); a score of an all-"" run first."""
    score = best = float(sum(not h for h in has_ans))
    thresh = 0.0
    for i in sorted(range(len(null_odds)), key=lambda i: null_odds[i]):
        if has_ans[i]:
            score += span_scores[i]
        elif answered[i]:
            score -= 1
        if score > best:
            best, thresh = score, float(null_odds[i])
    return 100.0 * best / max(len(null_odds), 1), thresh
