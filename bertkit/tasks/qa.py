"""Extractive question answering (SQuAD v1.1 and v2.0): an answer is a span of the context.

Contexts longer than the window are cut into overlapping windows; every window is a training
item (pointing at [CLS] when the answer is not inside it) and answers are decoded over all of
a context's windows. v2.0 adds questions without an answer: "" is predicted when the null score
beats the best span's by more than `null_threshold`, which `evaluate` can tune on dev data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.tasks import qa_spans
from bertkit.tasks.base import LossFn, TaskData, model_inputs
from bertkit.tasks.report import Evaluation
from bertkit.tasks.squad import Answer, QaExample, read_squad, squad_metrics
from bertkit.tokenizer import Tokenizer


@dataclass
class QaTask:
    """Extractive question answering (SQuAD v1.1/v2.0): the answer is a span of the context.

    Args:
        maxlen: tokens per window (question + context + special tokens)
        doc_stride: tokens two consecutive windows of a long context share
        max_question_len: questions are cut to this many tokens
        max_answer_len: longest answer, in tokens
        null_answers: allow "no answer" (SQuAD v2.0); default: decided by the training data
            (true when it has unanswerable questions)
        null_threshold: answer "" when the null score beats the best span's score by more than this
        tune_threshold: evaluating data with unanswerable questions sets null_threshold to the
            best-F1 threshold (as the official v2.0 evaluation finds it)
        align_to_words: widen answers to whole words (as the transformers pipeline does)
    """

    name: ClassVar[str] = "qa"
    head: ClassVar[str] = "qa"
    soft_targets: ClassVar[str] = "positions"  # distillation: start/end distributions over tokens

    maxlen: int = 384
    doc_stride: int = 128
    max_question_len: int = 64
    max_answer_len: int = 30
    null_answers: bool | None = None
    null_threshold: float = 0.0
    tune_threshold: bool = True
    align_to_words: bool = True

    def __post_init__(self) -> None:
        if self.maxlen < 16:
            raise ValueError(f"maxlen must be at least 16 tokens, got {self.maxlen}")
        if not 0 <= self.doc_stride < self.maxlen:
            raise ValueError(f"doc_stride must be in [0, maxlen), got {self.doc_stride} for maxlen {self.maxlen}")
        if self.max_question_len < 1 or self.max_answer_len < 1:
            raise ValueError("max_question_len and max_answer_len must be at least 1 token")

    @property
    def labels(self) -> list[str]:
        return []

    @property
    def num_outputs(self) -> int | None:
        return None

    def prepare(self, examples: Sequence[Any], targets: Sequence[Any]) -> None:
        if self.null_answers is None:
            self.null_answers = any(len(t) == 0 for t in targets)

    # -------------------------------------------------------------------------- features
    def featurize(self, tokenizer: Tokenizer, examples: Sequence[Any], targets: Sequence[Any] | None = None,
                  *, batch_size: int = 32) -> TaskData:
        """Windows of every (question, context); with targets, each window's start/end tokens."""
        items = [as_example(x, i) for i, x in enumerate(examples)]
        if not items:
            raise ValueError("no questions given: pass at least one (question, context)")
        golds = None if targets is None else [check_answers(t, items[i], i) for i, t in enumerate(targets)]
        if golds is not None and len(golds) != len(items):
            raise ValueError(f"got {len(items)} questions but {len(golds)} answer lists")
        questions = qa_spans.truncate_questions(tokenizer, [x.question for x in items], self.max_question_len)
        enc = qa_spans.windows(tokenizer, questions, [x.context for x in items], maxlen=self.maxlen,
                               stride=self.doc_stride)
        features, extras = [], []
        for row, example_id in enumerate(enc["overflow_to_sample"]):
            feature = {k: enc[k][row] for k in ("input_ids", "attention_mask", "token_type_ids")}
            seq_ids, offsets = enc["sequence_ids"][row], enc["offsets"][row]
            if golds is not None:
                feature["start_positions"], feature["end_positions"] = _target(golds[example_id], offsets, seq_ids)
            allowed = qa_spans.context_mask(seq_ids)
            features.append(feature)
            extras.append({"offsets": offsets, "word_ids": enc["word_ids"][row], "allowed": allowed,
                           "context_tokens": np.flatnonzero(allowed).tolist()})
        pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
        return TaskData(self, features, list(enc["overflow_to_sample"]), items, golds, pad_id,
                        batch_size, extras)

    # -------------------------------------------------------------------------- training
    def loss_fn(self, train_data: TaskData | None = None, **options: Any) -> LossFn:
        """Mean of the start and end cross-entropies over each window's real tokens."""
        if options:
            raise ValueError(f"the qa task takes no training options, got {sorted(options)}")

        def loss_fn(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            logits = model(**model_inputs(batch)).logits.float()  # (batch, seq, 2)
            padding = (batch["attention_mask"] == 0).unsqueeze(-1)
            logits = logits.masked_fill(padding, torch.finfo(torch.float32).min)
            loss = (F.cross_entropy(logits[..., 0], batch["start_positions"])
                    + F.cross_entropy(logits[..., 1], batch["end_positions"])) / 2
            return loss, {}

        return loss_fn

    # -------------------------------------------------------------------------- decoding
    def n_best(self, outputs: list[np.ndarray], data: TaskData, top_k: int = 1) -> list[list[dict[str, Any]]]:
        """The `top_k` best answers of each example, best first: dicts of answer, score, start,
        end (character offsets of the context); "" (start = end = 0) is a candidate under
        `null_answers`, ranked by its null score less `null_threshold`."""
        out = []
        for example, (null, spans) in zip(data.examples, self._spans(outputs, data, top_k), strict=True):
            found = [_answer(example.context, s.start, s.end, s.score) for s in spans]
            if self.null_answers:
                no_answer = {"answer": "", "score": null, "start": 0, "end": 0}
                rank = [(a["score"], a) for a in found] + [(null - self.null_threshold, no_answer)]
                found = [a for _, a in sorted(rank, key=lambda r: -r[0])][:top_k]
            out.append(found or [{"answer": "", "score": 0.0, "start": 0, "end": 0}])
        return out

    def decode(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """The best answer of each example: {"answer", "score", "start", "end"}."""
        return [best[0] for best in self.n_best(outputs, data, top_k=1)]

    def _spans(self, outputs: list[np.ndarray], data: TaskData, top_k: int) -> list[tuple[float, list]]:
        by_example: list[list[int]] = [[] for _ in range(data.num_examples)]
        for feature, example_id in enumerate(data.example_ids):
            by_example[example_id].append(feature)
        return [qa_spans.best_spans([outputs[i] for i in rows], [data.extras[i] for i in rows],
                                    top_k=top_k, max_answer_len=self.max_answer_len,
                                    align_to_words=self.align_to_words) for rows in by_example]

    # -------------------------------------------------------------------------- metrics
    def metrics(self, outputs: list[np.ndarray], data: TaskData) -> dict[str, float]:
        """val_loss, val_exact and val_f1 (in %), HasAns/NoAns and best-threshold figures for v2.0."""
        return self._scores(outputs, data)[0]

    def _scores(self, outputs: list[np.ndarray], data: TaskData) -> tuple[dict[str, float], list[str]]:
        if data.targets is None:
            raise ValueError("this data has no answers; pass answers to evaluate it")
        spans = self._spans(outputs, data, top_k=1)
        best = [_answer(x.context, *_first(s)) for x, (_, s) in zip(data.examples, spans, strict=True)]
        odds = [null - b["score"] for (null, _), b in zip(spans, best, strict=True)]
        predictions = [
            "" if self.null_answers and o > self.null_threshold else b["answer"] for b, o in zip(best, odds, strict=True)
        ]
        scores = squad_metrics(data.targets, predictions, odds, [b["answer"] for b in best])
        if all(data.targets):  # no unanswerable question: the threshold figures say nothing
            scores = {k: v for k, v in scores.items() if not k.startswith("best_")}
        return {"val_loss": _loss(outputs, data), **{f"val_{k}": v for k, v in scores.items()}}, predictions

    def evaluate(self, outputs: list[np.ndarray], data: TaskData,
                 class_names: Sequence[str] | None = None) -> Evaluation:
        """EM/F1 at the current threshold (and HasAns/NoAns, the best thresholds) as the official
        SQuAD evaluation prints them; `predictions` holds the official predictions JSON
        ({question id: answer}). With `tune_threshold` and unanswerable questions, null answers
        are allowed from then on and `null_threshold` becomes the best-F1 threshold (a predictor
        saved afterwards keeps it)."""
        scores, predictions = self._scores(outputs, data)
        lines = [f"{k[4:]}: {int(v)}" if k.endswith("total") else f"{k[4:]}: {v:.4f}" for k, v in scores.items()]
        if self.null_answers:
            lines.append(f"null_threshold: {self.null_threshold:.6f}")
        if self.tune_threshold and "val_best_f1_thresh" in scores:
            self.null_answers = True
            self.null_threshold = float(scores["val_best_f1_thresh"])
            lines.append(f"null_threshold set to {self.null_threshold:.6f} from now on (the best-F1 threshold)")
        official = {x.id or str(i): p for i, (x, p) in enumerate(zip(data.examples, predictions, strict=True))}
        return Evaluation("\n".join(lines), {k[4:]: v for k, v in scores.items()}, None, [], scores,
                          predictions=official)

    # -------------------------------------------------------------------------- predictor
    def records(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """{"id", "question", "answer", "score", "start", "end"} per question."""
        return [{"id": x.id, "question": x.question, **p}
                for x, p in zip(data.examples, self.decode(outputs, data), strict=True)]

    def predict(self, predictor: Any, *inputs: Any, top_k: int = 1) -> Any:
        """`predict(question, context)` → {"answer", "score", "start", "end"}; a list of
        (question, context) pairs (or dicts) → a list of them; `top_k` > 1 → lists of the best."""
        if len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
            single, examples = True, [QaExample(inputs[0], inputs[1])]
        elif len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            single, examples = False, [as_example(x, i) for i, x in enumerate(inputs[0])]
        else:
            raise ValueError("qa predict takes (question, context) or a list of (question, context) pairs")
        outputs, data = predictor.outputs(examples)
        answers = self.n_best(outputs, data, top_k) if top_k > 1 else self.decode(outputs, data)
        return answers[0] if single else answers

    def example_from_line(self, line: str) -> QaExample:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'a qa input line is JSON {{"question": ..., "context": ...}}: {err}') from err
        return as_example(record, 0)

    @classmethod
    def read(cls, path: str, *, skip_mismatched: bool = False) -> tuple[list[QaExample], list[list[Answer]]]:
        """Questions and gold answers of a SQuAD v1.1/v2.0 JSON file.

        Args:
            skip_mismatched: leave out (and count) questions whose answer_start does not point at
                the answer text, instead of stopping with an error naming the question id
        """
        return read_squad(path, skip_mismatched=skip_mismatched)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QaTask:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# ------------------------------------------------------------------------------ helpers


def as_example(item: Any, index: int) -> QaExample:
    """A QaExample from a QaExample, a (question, context) pair or a dict with those keys."""
    if isinstance(item, QaExample):
        example = item
    elif isinstance(item, dict) and {"question", "context"} <= item.keys():
        example = QaExample(item["question"], item["context"], str(item.get("id", "")))
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        example = QaExample(item[0], item[1])
    else:
        raise ValueError(f"question {index} is {item!r}; give a (question, context) pair or "
                         "a dict with 'question' and 'context'")
    for field in ("question", "context"):
        value = getattr(example, field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"question {index} ({example.id or 'no id'}): the {field} is empty or not a string")
    return example


def check_answers(answers: Any, example: QaExample, index: int) -> list[Answer]:
    """Gold answers as [{"text", "answer_start"}] ([] = no answer); each must match the context."""
    if isinstance(answers, dict):
        answers = [answers]
    out = []
    for answer in answers or []:
        if not isinstance(answer, dict) or not {"text", "answer_start"} <= answer.keys():
            raise ValueError(f"question {index} ({example.id or 'no id'}): an answer is "
                             "{'text': ..., 'answer_start': ...}")
        start, text = int(answer["answer_start"]), answer["text"]
        if example.context[start : start + len(text)] != text:
            raise ValueError(f"question {index} ({example.id or 'no id'}): answer {text!r} does not match "
                             f"the context at answer_start {start}")
        out.append({"text": text, "answer_start": start})
    return out


def _target(gold: list[Answer], offsets: list, seq_ids: list) -> tuple[int, int]:
    if not gold:
        return 0, 0
    start = gold[0]["answer_start"]  # the first gold answer trains, as in the reference scripts
    return qa_spans.answer_tokens(offsets, seq_ids, start, start + len(gold[0]["text"]))


def _answer(context: str, start: int, end: int, score: float) -> dict[str, Any]:
    return {"answer": context[start:end], "score": float(score), "start": int(start), "end": int(end)}


def _first(spans: list[qa_spans.Span]) -> tuple[int, int, float]:
    return (spans[0].start, spans[0].end, spans[0].score) if spans else (0, 0, 0.0)


def _loss(outputs: list[np.ndarray], data: TaskData) -> float:
    """Mean window loss, as in training (each window's own real tokens)."""
    total = 0.0
    for logits, feature in zip(outputs, data.features, strict=True):
        t = torch.from_numpy(logits)
        total += float(F.cross_entropy(t[:, 0], torch.tensor(feature["start_positions"]))
                       + F.cross_entropy(t[:, 1], torch.tensor(feature["end_positions"]))) / 2
    return total / max(len(outputs), 1)
