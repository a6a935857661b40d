"""Multiple choice (SWAG, COPA, any context + choices): one score per (context, choice) pair,
softmax across the choices, accuracy.

An example is `(context, choices)`; its target is the index of the right choice. Each pair is
encoded as `[CLS] context [SEP] choice [SEP]` and cut to `maxlen` tokens (the longer text first),
as `transformers`' run_swag does. Examples with fewer choices than the longest in a data set get
empty filler choices that a `choice_mask` hides from the loss, the softmax and the decision.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.tasks.base import LossFn, TaskData, model_inputs
from bertkit.tasks.report import Evaluation
from bertkit.tokenizer import Tokenizer

Example = tuple[str, list[str]]
FileFormat = Literal["auto", "swag", "copa", "jsonl"]
SWAG_ENDINGS = ("ending0", "ending1", "ending2", "ending3")
# COPA's question as words, after the SuperGLUE baselines: the premise plus what is asked for
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


@dataclass
class MultipleChoiceTask:
    """Pick one of several choices for a context (the head scores each pair; softmax over choices).

    Args:
        maxlen: tokens per (context, choice) pair; longer pairs are cut, the longer text first
    """

    name: ClassVar[str] = "multiple_choice"
    head: ClassVar[str] = "multiple_choice"
    maxlen: int = 128

    def __post_init__(self) -> None:
        if self.maxlen < 8:
            raise ValueError(f"maxlen must be at least 8 tokens, got {self.maxlen}")

    @property
    def labels(self) -> list[str]:
        return []

    @property
    def num_outputs(self) -> int | None:
        return None  # one score per choice: the head's size does not depend on the data

    def prepare(self, examples: Sequence[Any], targets: Sequence[Any]) -> None:
        """Nothing to learn from the data: the choices come with every example."""

    # -------------------------------------------------------------------------- featurising

    def featurize(self, tokenizer: Tokenizer, examples: Sequence[Any], targets: Sequence[Any] | None = None,
                  *, batch_size: int = 32) -> TaskData:
        """Every (context, choice) pair tokenised; one feature per example, its choices stacked."""
        items = [check_example(x, f"example {i}") for i, x in enumerate(examples)]
        if not items:
            raise ValueError("no examples given: pass at least one (context, choices) example")
        labels = check_targets(targets, items) if targets is not None else None
        width = max(len(choices) for _, choices in items)
        ragged = width > min(len(choices) for _, choices in items)
        contexts = [context for context, choices in items for _ in choices]
        endings = [choice for _, choices in items for choice in choices]
        enc = tokenizer(contexts, endings, max_length=self.maxlen, truncation=True)
        filler = _filler(tokenizer)
        features, start = [], 0
        for i, (_, choices) in enumerate(items):
            rows = range(start, start + len(choices))
            start += len(choices)
            feature = {k: [enc[k][r] for r in rows] + [filler[k]] * (width - len(choices))
                       for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            if ragged:
                feature["choice_mask"] = [1] * len(choices) + [0] * (width - len(choices))
            if labels is not None:
                feature["label"] = labels[i]
            features.append(feature)
        return TaskData(self, features, list(range(len(items))), items, labels,
                        pad_id=tokenizer.pad_id or 0, batch_size=batch_size,
                        extras=[{"num_choices": len(c)} for _, c in items])

    # -------------------------------------------------------------------------- loss, decoding

    def loss_fn(self, train_data: TaskData | None = None, **options: Any) -> LossFn:
        """Cross-entropy over each example's choices (filler choices masked out)."""
        if options:
            raise ValueError(f"multiple choice has no training options; got {sorted(options)}")

        def loss_fn(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            logits = model(**model_inputs(batch)).logits.float()  # (batch, choices)
            if "choice_mask" in batch:
                logits = logits.masked_fill(batch["choice_mask"] == 0, torch.finfo(logits.dtype).min)
            return F.cross_entropy(logits, batch["label"].long()), {}

        return loss_fn

    def probabilities(self, outputs: list[np.ndarray], data: TaskData) -> list[np.ndarray]:
        """Softmax over each example's real choices (one feature per example)."""
        probs = []
        for logits, extra in zip(outputs, data.extras, strict=True):
            scores = torch.from_numpy(np.asarray(logits[: extra["num_choices"]], dtype=np.float32))
            probs.append(scores.softmax(-1).numpy())
        return probs

    def decode(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """`{"choice": index, "probabilities": [p per choice]}` per example."""
        return [{"choice": int(p.argmax()), "probabilities": [float(v) for v in p]}
                for p in self.probabilities(outputs, data)]

    def example_losses(self, outputs: list[np.ndarray], data: TaskData) -> np.ndarray:
        """Cross-entropy of each example's right choice (for the mean loss and top losses)."""
        probs = self.probabilities(outputs, data)
        return np.asarray([-np.log(max(float(p[t]), 1e-12)) for p, t in zip(probs, self.target_names(data), strict=True)])

    def target_names(self, data: TaskData) -> list[int]:
        """The right choices' indices."""
        if data.targets is None:
            raise ValueError("this data set has no labels; pass the right choices to evaluate")
        return list(data.targets)

    def metrics(self, outputs: list[np.ndarray], data: TaskData) -> dict[str, float]:
        """val_loss (mean cross-entropy) and val_accuracy."""
        picked = np.asarray([p.argmax() for p in self.probabilities(outputs, data)])
        accuracy = float((picked == np.asarray(self.target_names(data))).mean())
        return {"val_loss": float(self.example_losses(outputs, data).mean()), "val_accuracy": accuracy}

    def evaluate(self, outputs: list[np.ndarray], data: TaskData,
                 class_names: Sequence[str] | None = None) -> Evaluation:
        """Accuracy over all examples and by number of choices (`class_names` does not apply)."""
        scores = self.metrics(outputs, data)
        picked = np.asarray([p.argmax() for p in self.probabilities(outputs, data)])
        right = picked == np.asarray(data.targets)
        counts = np.asarray([e["num_choices"] for e in data.extras])
        by_count = {int(n): {"examples": int((counts == n).sum()), "accuracy": float(right[counts == n].mean())}
                    for n in sorted(set(counts.tolist()))}
        lines = [f"accuracy: {scores['val_accuracy']:.4f} ({int(right.sum())} of {len(right)} right)",
                 f"loss: {scores['val_loss']:.4f}"]
        lines += [f"{n} choices: accuracy {v['accuracy']:.4f} over {v['examples']} examples"
                  for n, v in by_count.items()]
        report = {"accuracy": scores["val_accuracy"], "correct": int(right.sum()),
                  "examples": len(right), "by_num_choices": by_count}
        return Evaluation("\n".join(lines), report, None, [], scores)

    def records(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """`{"context", "choices", "choice", "answer", "probabilities"}` per example."""
        predictions = self.decode(outputs, data)
        return [{"context": context, "choices": choices, "choice": p["choice"], "answer": choices[p["choice"]],
                 "probabilities": p["probabilities"]}
                for (context, choices), p in zip(data.examples, predictions, strict=True)]

    def predict(self, predictor: Any, *inputs: Any, **options: Any) -> Any:
        """`predict(context, choices)` → `{"choice", "probabilities"}`; a list of (context, choices)
        examples → a list of them."""
        if options:
            raise ValueError(f"multiple-choice prediction has no options; got {sorted(options)}")
        if len(inputs) == 2 and isinstance(inputs[0], str):
            outputs, data = predictor.outputs([(inputs[0], list(inputs[1]))])
            return self.decode(outputs, data)[0]
        if len(inputs) != 1 or isinstance(inputs[0], str):
            raise ValueError("pass predict(context, choices) or predict([(context, choices), ...])")
        outputs, data = predictor.outputs(list(inputs[0]))
        return self.decode(outputs, data)

    def example_from_line(self, line: str) -> Example:
        """A JSON object per line: {"context", "choices"} or COPA's {"premise", "choice1", ...}."""
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError('each input line must be JSON: {"context": "...", "choices": ["...", "..."]}'
                             f" ({error})") from error
        return example_from_record(record, "input line")[0]

    @classmethod
    def read(cls, path: str, *, format: FileFormat = "auto") -> tuple[list[Example], list[int] | None]:
        """Examples and right-choice indices of a SWAG CSV, a COPA JSONL or a generic JSONL file.

        Args:
            format: "swag" (sent1, sent2, ending0..3, label), "copa" (premise, choice1, choice2,
                question, label), "jsonl" (context, choices, label), or "auto": by the file's
                suffix and first record
        """
        return read_choices(path, format)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MultipleChoiceTask:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _filler(tokenizer: Tokenizer) -> dict[str, list[int]]:
    """The encoding of an empty pair: what stands in for a missing choice (masked everywhere)."""
    ids = [i for i in (tokenizer.cls_id, tokenizer.sep_id) if i is not None]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids)}


def check_example(example: Any, where: str) -> Example:
    """A `(context, choices)` pair or a {"context", "choices"} dict, checked: two or more non-empty
    string choices and a string context."""
    if isinstance(example, dict):
        example = (example.get("context"), example.get("choices"))
    if not isinstance(example, (tuple, list)) or len(example) != 2:
        raise ValueError(f"{where} is {example!r}; pass (context, [choice, choice, ...])")
    context, choices = example
    if not isinstance(context, str):
        raise ValueError(f"{where}: the context is {type(context).__name__} {context!r}, not a string")
    if isinstance(choices, str) or not isinstance(choices, Sequence) or len(choices) < 2:
        raise ValueError(f"{where}: choices must be a list of two or more texts, got {choices!r}")
    for j, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            raise ValueError(f"{where}: choice {j} is missing ({choice!r}); every choice needs some text")
    return context, list(choices)


def check_targets(targets: Sequence[Any], items: Sequence[Example]) -> list[int]:
    if len(targets) != len(items):
        raise ValueError(f"got {len(items)} examples but {len(targets)} labels")
    out = []
    for i, (target, (_, choices)) in enumerate(zip(targets, items, strict=True)):
        if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)) \
                or not 0 <= int(target) < len(choices):
            raise ValueError(f"label {i} is {target!r}; it must be a choice index 0..{len(choices) - 1}")
        out.append(int(target))
    return out


# ------------------------------------------------------------------------------ readers


def read_choices(path: str | Path, format: FileFormat = "auto") -> tuple[list[Example], list[int] | None]:
    """(examples, labels or None) of a SWAG CSV or a COPA / generic JSONL file; a bad row is an
    error naming the file and row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multiple-choice file not found: {path}")
    if format == "auto":
        format = "swag" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"
    if format == "swag":
        rows = _swag_rows(path)
    elif format in ("copa", "jsonl"):
        rows = _jsonl_rows(path, format == "copa")
    else:
        raise ValueError(f"unknown multiple-choice format {format!r}; choose auto, swag, copa or jsonl")
    if not rows:
        raise ValueError(f"{path} holds no examples")
    labelled = [label is not None for _, _, label in rows]
    if any(labelled) and not all(labelled):
        where = next(row for row, _, label in rows if label is None)
        raise ValueError(f"{path}, {where}: no label, while other rows have one")
    examples = [example for _, example, _ in rows]
    return examples, ([label for _, _, label in rows] if all(labelled) else None)


def _swag_rows(path: Path) -> list[tuple[str, Example, int | None]]:
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        missing = [c for c in ("sent1", "sent2", *SWAG_ENDINGS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a SWAG file: no column {', '.join(missing)}")
        for record in reader:
            where = f"line {reader.line_num}"
            for key in ("sent1", *SWAG_ENDINGS):
                if not (record.get(key) or "").strip():
                    raise ValueError(f"{path}, {where}: {key} is missing")
            header = (record.get("sent2") or "").strip()
            choices = [f"{header} {record[k].strip()}".strip() for k in SWAG_ENDINGS]
            label = _label((record.get("label") or "").strip() or None, len(choices), path, where)
            rows.append((where, (record["sent1"].strip(), choices), label))
    return rows


def _jsonl_rows(path: Path, copa: bool) -> list[tuple[str, Example, int | None]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, {where}: not valid JSON ({error})") from error
            if copa and not (isinstance(record, dict) and "premise" in record):
                raise ValueError(f"{path}, {where}: a COPA record needs a premise")
            try:
                example, label = example_from_record(record, where)
            except ValueError as error:
                raise ValueError(f"{path}, {error}") from error
            rows.append((where, example, _label(label, len(example[1]), path, where)))
    return rows


def example_from_record(record: Any, where: str) -> tuple[Example, Any]:
    """(example, raw label or None) of a COPA record or a generic {"context", "choices"} one."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {record!r}")
    if "premise" in record:
        for key in ("premise", "choice1", "choice2"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"{where}: {key} is missing")
        question = record.get("question")
        if question not in COPA_QUESTIONS:
            raise ValueError(f"{where}: question is {question!r}; COPA asks for 'cause' or 'effect'")
        example = (f"{record['premise']} {COPA_QUESTIONS[question]}", [record["choice1"], record["choice2"]])
        return example, record.get("label")
    if "context" not in record or "choices" not in record:
        raise ValueError(f"{where}: expected keys context and choices (or COPA's premise, choice1, choice2)")
    return check_example((record["context"], record["choices"]), where), record.get("label")


def _label(value: Any, num_choices: int, path: Path, where: str) -> int | None:
    if value is None:
        return None
    try:
        label = int(value)
    except (TypeError, ValueError):
        label = -1
    if isinstance(value, bool) or str(value).strip() != str(label) or not 0 <= label < num_choices:
        raise ValueError(f"{path}, {where}: label {value!r} is not a choice index 0..{num_choices - 1}")
    return label
