"""The Task interface: what one kind of problem needs around the encoder, and the data it makes.

A task object is small and serialisable (its settings go to a predictor's `bertkit.json`). It
owns: the head it asks for, featurising examples (long inputs windowed), the loss, turning
per-feature model outputs into per-example predictions, metrics and the printed report, and the
JSON records `bertkit predict` writes. `Learner`, `Predictor`, `load_predictor` and the CLI only
talk to this interface; adding a task is one module in `bertkit/tasks/` plus one entry in
`bertkit/tasks/registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from bertkit.tasks.report import Evaluation
from bertkit.tokenizer import Tokenizer

LossFn = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TaskData:
    """Featurised examples of one task: what the training loop batches and evaluation reads.

    `features[i]` is a dict of model inputs (and, for labelled data, the training targets under
    keys the task's loss reads: "label", "labels", "start_positions", ...). Long examples become
    several features; `example_ids[i]` is the example feature i came from. `examples` and
    `targets` keep the examples as the user gave them (per example, not per feature), and
    `extras[i]` whatever per-feature bookkeeping decoding needs (offsets, word ids, ...).
    """

    task: Task
    features: list[dict[str, Any]]
    example_ids: list[int]
    examples: list[Any]
    targets: list[Any] | None
    pad_id: int
    batch_size: int = 32
    extras: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]

    @property
    def lengths(self) -> list[int]:
        """Tokens per feature (the longest choice for multiple choice): drives length bucketing."""
        return [_length(f["input_ids"]) for f in self.features]

    @property
    def num_examples(self) -> int:
        return len(self.examples)

    @property
    def labelled(self) -> bool:
        return self.targets is not None


def _length(ids: Any) -> int:
    if len(ids) and isinstance(ids[0], (list, tuple, np.ndarray)):
        return max(len(row) for row in ids)
    return len(ids)


@runtime_checkable
class Task(Protocol):
    """One kind of problem. Implementations are dataclasses; see `ClassificationTask` for a model.

    Outputs: `bertkit.tasks.inference.forward_features` runs the model over `TaskData.features`
    and returns one float32 array per feature — the head's logits for that feature, token-level
    logits cut to the feature's real length. Everything after that is the task's.

    Optional: `soft_targets`, how distillation compares a student's outputs with a teacher's —
    "softmax" over the last axis (the default when absent), "sigmoid" (independent labels),
    "mse" (regression) or "positions" (a distribution over tokens, as a span head's).
    """

    name: ClassVar[str]  # registry key, written as "task" in bertkit.json
    head: ClassVar[str]  # head name for `bertkit.load_model(..., head=...)`
    maxlen: int

    @property
    def labels(self) -> list[str]:
        """Class or tag names in output order (empty where the head has no label set)."""
        ...

    @property
    def num_outputs(self) -> int | None:
        """The head's output size (`num_labels`), or None where the head fixes it (QA, choice)."""
        ...

    def prepare(self, examples: Sequence[Any], targets: Sequence[Any]) -> None:
        """Fix what training data decides when the user did not say (label set, kind). Idempotent."""
        ...

    def featurize(self, tokenizer: Tokenizer, examples: Sequence[Any], targets: Sequence[Any] | None = None,
                  *, batch_size: int = 32) -> TaskData:
        """Validate examples (and targets, when given) and tokenise them; bad records raise
        `ValueError` naming the record's index and what is wrong."""
        ...

    def loss_fn(self, train_data: TaskData | None = None, **options: Any) -> LossFn:
        """`loss_fn(model, batch) -> (loss, metrics)` for `bertkit.train.fit`. `options` are the
        task's own training options (classification: `class_weights`); unknown ones are an error."""
        ...

    def decode(self, outputs: list[np.ndarray], data: TaskData) -> list[Any]:
        """One prediction per example, in the task's user-facing form."""
        ...

    def metrics(self, outputs: list[np.ndarray], data: TaskData) -> dict[str, float]:
        """Validation metrics of labelled `data` ("val_loss" where a loss is defined, "val_...")."""
        ...

    def evaluate(self, outputs: list[np.ndarray], data: TaskData,
                 class_names: Sequence[str] | None = None) -> Evaluation:
        """The full report of labelled `data`: printable, JSON-able, with metrics."""
        ...

    def records(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """One JSON-able record per example (what `bertkit predict` writes as a line), from the
        per-feature outputs, as `Predictor.records` calls it."""
        ...

    def predict(self, predictor: Any, *inputs: Any, **options: Any) -> Any:
        """`Predictor.predict` of this task: user inputs in the task's natural form (a text, a list
        of texts, a (question, context) pair, ...) → predictions in ktrain's shapes. Runs the
        model through `predictor.outputs(examples)`, which featurises and calls `forward_features`."""
        ...

    def example_from_line(self, line: str) -> Any:
        """One example from one line of `bertkit predict`'s input (a text; JSON for structured
        inputs); a bad line raises `ValueError` saying what the line should look like."""
        ...

    @classmethod
    def read(cls, path: str, **options: Any) -> tuple[list[Any], list[Any] | None]:
        """(examples, targets) from a file in the task's standard formats; targets None when the
        file has none. Keyword options are typed and documented (an "Args:" docstring section):
        the CLI generates its flags from them. Errors name the file and line or record."""
        ...

    def to_json(self) -> dict[str, Any]:
        ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        ...


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The keys of a batch that the model's forward takes."""
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}
