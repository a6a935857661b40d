"""`Predictor`: a fine-tuned model of any task with its tokenizer and task settings, saved as one folder.

The folder holds Hugging Face-layout model files (config.json, model.safetensors), the tokenizer
files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) and `bertkit.json` (the
task's name and settings — labels, maxlen, long-text policy, ... — and the bertkit version). It
loads offline, without the training data, and appears whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from bertkit._version import __version__
from bertkit.io import atomic_dir, save_json
from bertkit.model import BertkitModel, load_model
from bertkit.model.checkpoint import write_model_files
from bertkit.precision import apply_precision, check_precision
from bertkit.tasks.base import Task, TaskData
from bertkit.tasks.inference import forward_features
from bertkit.tasks.registry import task_class
from bertkit.tokenizer import Tokenizer
from bertkit.train.hardware import default_device

META_FILE = "bertkit.json"
FORMAT = "bertkit-predictor"
FORMAT_VERSION = 2  # 2: any task ("task" names it); 1: classification only
REQUIRED_FILES = (META_FILE, "config.json", "model.safetensors", "tokenizer.json")


class PredictorError(ValueError):
    """A predictor folder is missing a file or holds a corrupted one."""


class Predictor:
    """A trained model that answers new inputs; `predict` takes the task's natural inputs."""

    def __init__(self, model: BertkitModel, tokenizer: Tokenizer, task: Task, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.batch_size = batch_size

    @property
    def precision(self) -> str:
        """How the model runs: "fp32", "bf16" (autocast), "int8" (dynamic quantisation) or "onnx"."""
        return getattr(self.model, "precision", "fp32")

    def get_classes(self) -> list[str]:
        return list(self.task.labels)

    def outputs(self, examples: Sequence[Any]) -> tuple[list[np.ndarray], TaskData]:
        """Featurise `examples` and run the model: (per-feature logits, the featurised data)."""
        data = self.task.featurize(self.tokenizer, list(examples), None, batch_size=self.batch_size)
        return forward_features(self.model, data.features, pad_id=data.pad_id, batch_size=self.batch_size), data

    def predict(self, *inputs: Any, **options: Any) -> Any:
        """The task's prediction (classification: `predict(texts, return_proba=False)` gives class
        names, label lists or numbers for one text or a list; see the task's `predict`)."""
        return self.task.predict(self, *inputs, **options)

    def predict_proba(self, texts: Any) -> np.ndarray:
        """Class probabilities: (classes,) for one text, (n, classes) for a list (classification)."""
        return self.predict(texts, return_proba=True)

    def explain(self, doc: str, target: str | int | None = None, n_steps: int = 50) -> Any:
        """Which words drove the prediction of `doc` (integrated gradients, needs Captum): an
        `Explanation` with word weights, `.to_html()`, `.save_html(path)` and `.plot(path)`."""
        from bertkit.api.explain import explain

        return explain(self, doc, target, n_steps)

    def records(self, examples: Sequence[Any]) -> list[dict[str, Any]]:
        """One JSON-able record per example (what `bertkit predict` writes)."""
        outputs, data = self.outputs(examples)
        return self.task.records(outputs, data)

    def stream(self, examples: Iterable[Any], chunk_size: int = 1024, progress: bool = False,
               ) -> Iterator[dict[str, Any]]:
        """Records (as `records`) of any number of examples, in input order, `chunk_size` examples
        in memory at a time: a generator over a generator, e.g. the lines of a file."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        from tqdm.auto import tqdm

        iterator = iter(examples)
        with tqdm(unit="example", disable=not progress, desc="predict") as bar:
            while chunk := list(islice(iterator, chunk_size)):
                yield from self.records(chunk)
                bar.update(len(chunk))

    def evaluate(self, examples: Sequence[Any], targets: Sequence[Any]) -> Any:
        """The task's report on labelled examples (printable, with metrics)."""
        data = self.task.featurize(self.tokenizer, list(examples), list(targets), batch_size=self.batch_size)
        outputs = forward_features(self.model, data.features, pad_id=data.pad_id, batch_size=self.batch_size)
        return self.task.evaluate(outputs, data)

    def save(self, folder: str | Path, precision: str | None = None) -> Path:
        """Write the predictor folder atomically: an existing folder is replaced only on success.

        `precision` ("fp32", "bf16", "int8"; default: this predictor's) is recorded in bertkit.json
        as the mode `load_predictor` uses unless told otherwise; the weights are always fp32.
        """
        if not isinstance(self.model, BertkitModel) or self.precision in ("int8", "onnx"):
            raise ValueError(f"a predictor running {self.precision} has no fp32 weights to save; load the "
                             "folder with precision='fp32', then save(folder, precision=...)")
        precision = check_precision(precision or self.precision)
        if precision == "onnx":
            raise ValueError("save an fp32 predictor, then run `bertkit export --onnx FOLDER` on it")
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            write_model_files(self.model, tmp)
            self.tokenizer.save(tmp)
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": self.task.name,
                    "settings": self.task.to_json(), "precision": precision,
                    "bertkit_version": __version__}
            save_json(tmp / META_FILE, meta)
        return folder


def get_predictor(model: BertkitModel, preproc: Any, batch_size: int = 32) -> Predictor:
    """A predictor from a trained model and the preprocessor (e.g. `text.Transformer`) of its data."""
    task = preproc.task
    expected = task.num_outputs
    if expected is not None and getattr(model, "num_labels", None) != expected:
        raise ValueError(f"the model has {getattr(model, 'num_labels', None)} outputs but "
                         f"{preproc.model_name!r} was set up for {expected}")
    return Predictor(model, preproc.tokenizer, task, batch_size)


def load_predictor(folder: str | Path, batch_size: int = 32, device: str | None = None,
                   task: str | None = None, precision: str | None = None) -> Predictor:
    """Load a folder written by `Predictor.save`, checking every file first; no network needed.

    `device`: "cpu", "cuda", ...; None uses a GPU when there is one. `task`: the task the caller
    expects (a folder of another task is then an error). `precision`: "fp32", "bf16", "int8"
    (CPU) or "onnx" (needs `bertkit export --onnx`); None takes the one the folder records.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no predictor folder at {folder}; save one with predictor.save(folder)")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise PredictorError(f"{folder} is not a complete predictor: {name} is missing "
                                 "(re-save it with predictor.save(folder))")
    settings = _read_task(folder / META_FILE)
    if task is not None and settings.name != task:
        raise PredictorError(f"{folder} holds a {settings.name!r} predictor, not a {task!r} one")
    _check_json(folder / "config.json")
    _check_weights(folder / "model.safetensors")
    try:
        tokenizer = Tokenizer.from_pretrained(folder)
    except Exception as error:
        raise PredictorError(f"{folder / 'tokenizer.json'} is corrupted: {error}") from error
    try:
        model = load_model(folder, head=settings.head, num_labels=settings.num_outputs,
                           labels=settings.labels or None)
    except Exception as error:
        raise PredictorError(f"could not load the model in {folder} (config.json, model.safetensors) "
                             f"for the task in {META_FILE}: {error}") from error
    precision = check_precision(precision or _check_json(folder / META_FILE).get("precision", "fp32"))
    if precision in ("int8", "onnx"):
        device = "cpu"  # quantised linear layers and our ONNX session run on the CPU
    model.to(default_device(device))
    return Predictor(apply_precision(model, precision, folder), tokenizer, settings, batch_size)


def _read_task(path: Path) -> Task:
    meta = _check_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PredictorError(f"{path} is not a bertkit predictor description (no \"format\": \"{FORMAT}\")")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise PredictorError(f"{path} was written by a newer bertkit ({meta.get('bertkit_version')}); upgrade bertkit")
    name = meta.get("task", "classification")
    try:
        return task_class(name).from_json(meta["settings"])
    except (KeyError, TypeError, ValueError) as error:
        raise PredictorError(f"{path} has invalid task settings: {error}") from error


def _check_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictorError(f"{path} is corrupted (not valid JSON: {error}); re-save the predictor") from error


def _check_weights(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 — safe_open handles have no __iter__
                f.get_slice(key)
    except Exception as error:
        raise PredictorError(f"{path} is corrupted ({error}); re-save the predictor") from error
