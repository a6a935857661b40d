"""`Predictor`: a fine-tuned classifier with its tokenizer and labels, saved as one folder.

The folder holds Hugging Face-layout model files (config.json, model.safetensors), the tokenizer
files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) and `bertkit.json` (task
kind, labels, maxlen, long-text policy, thresholds, bertkit version). It loads offline, without the
training data, and appears whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertkit.io import atomic_dir, save_json
from bertkit.model import BertkitModel, load_model
from bertkit.model.checkpoint import write_model_files
from bertkit.tasks.classification import (
    TaskSettings,
    check_texts,
    decode,
    featurize,
    predict_logits,
    probabilities,
)
from bertkit.tokenizer import Tokenizer

META_FILE = "bertkit.json"
FORMAT = "bertkit-predictor"
FORMAT_VERSION = 1
REQUIRED_FILES = (META_FILE, "config.json", "model.safetensors", "tokenizer.json")


class PredictorError(ValueError):
    """A predictor folder is missing a file or holds a corrupted one."""


class Predictor:
    """Classify texts (or text pairs): `predict` gives labels, `predict_proba` probabilities."""

    def __init__(self, model: BertkitModel, tokenizer: Tokenizer, settings: TaskSettings,
                 batch_size: int = 32) -> None:  # fmt: skip
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.batch_size = batch_size

    def get_classes(self) -> list[str]:
        return list(self.settings.labels)

    def predict(self, texts: Any, return_proba: bool = False) -> Any:
        """Label of one text (a str or a (text, second text) tuple) or a list of labels for a list.

        Multiclass gives class names, multilabel lists of class names (probability >= the label's
        threshold), regression floats. `return_proba=True` gives `predict_proba`'s arrays instead.
        """
        probs = self.predict_proba(texts)
        if return_proba:
            return probs
        single = _is_single(texts)
        labels = decode(probs[None] if single else probs, self.settings)
        return labels[0] if single else labels

    def predict_proba(self, texts: Any) -> np.ndarray:
        """Class probabilities: (classes,) for one text, (n, classes) for a list; regression gives
        the predicted values."""
        probs = probabilities(self.logits(texts), self.settings.kind)
        return probs[0] if _is_single(texts) else probs

    def logits(self, texts: Any) -> np.ndarray:
        """Raw model outputs (n, outputs), windows of long texts averaged (see the long-text policy)."""
        items = [texts] if _is_single(texts) else list(texts)
        firsts = [x[0] if isinstance(x, tuple) else x for x in items]
        pairs = [x[1] for x in items] if items and all(isinstance(x, tuple) for x in items) else None
        if pairs is None and any(isinstance(x, tuple) for x in items):
            raise ValueError("mix of single texts and (text, second text) pairs; pass one kind")
        check_texts(firsts, pairs)
        features, example_ids = featurize(self.tokenizer, firsts, pairs, self.settings)
        return predict_logits(self.model, features, example_ids, len(items),
                              pad_id=self.tokenizer.pad_id or 0, batch_size=self.batch_size)  # fmt: skip

    def save(self, folder: str | Path) -> Path:
        """Write the predictor folder atomically: an existing folder is replaced only on success."""
        import bertkit

        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            write_model_files(self.model, tmp)
            self.tokenizer.save(tmp)
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": "classification",
                    "settings": self.settings.to_json(), "bertkit_version": bertkit.__version__}  # fmt: skip
            save_json(tmp / META_FILE, meta)
        return folder


def _is_single(texts: Any) -> bool:
    return isinstance(texts, str) or (isinstance(texts, tuple) and len(texts) == 2
                                      and all(isinstance(t, str) for t in texts))  # fmt: skip


def get_predictor(model: BertkitModel, preproc: Any, batch_size: int = 32) -> Predictor:
    """A predictor from a trained model and the `text.Transformer` that prepared its data."""
    settings = preproc._require_settings()
    if getattr(model, "num_labels", None) != settings.num_outputs:
        raise ValueError(f"the model has {getattr(model, 'num_labels', None)} outputs but "
                         f"{preproc.model_name!r} was set up for {settings.num_outputs}")  # fmt: skip
    return Predictor(model, preproc.tokenizer, settings, batch_size)


def load_predictor(folder: str | Path, batch_size: int = 32, device: str | None = None) -> Predictor:
    """Load a folder written by `Predictor.save`, checking every file first; no network needed.

    `device`: "cpu", "cuda", ...; None uses a GPU when there is one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no predictor folder at {folder}; save one with predictor.save(folder)")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise PredictorError(f"{folder} is not a complete predictor: {name} is missing "
                                 "(re-save it with predictor.save(folder))")  # fmt: skip
    settings = _read_settings(folder / META_FILE)
    _check_json(folder / "config.json")
    _check_weights(folder / "model.safetensors")
    try:
        tokenizer = Tokenizer.from_pretrained(folder)
    except Exception as error:
        raise PredictorError(f"{folder / 'tokenizer.json'} is corrupted: {error}") from error
    try:
        model = load_model(folder, head="classification", num_labels=settings.num_outputs,
                           labels=settings.labels)  # fmt: skip
    except Exception as error:
        raise PredictorError(f"could not load the model in {folder} (config.json, model.safetensors) "
                             f"for the task in {META_FILE}: {error}") from error  # fmt: skip
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Predictor(model, tokenizer, settings, batch_size)


def _read_settings(path: Path) -> TaskSettings:
    meta = _check_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PredictorError(f"{path} is not a bertkit predictor description (no \"format\": \"{FORMAT}\")")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise PredictorError(f"{path} was written by a newer bertkit ({meta.get('bertkit_version')}); upgrade bertkit")
    try:
        return TaskSettings.from_json(meta["settings"])
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


def predict_texts(predictor: Predictor, texts: Sequence[str]) -> list[dict[str, Any]]:
    """One record per text: {"text", "label", "probabilities": {class: p}} (regression: "value")."""
    probs = predictor.predict_proba(list(texts))
    labels = decode(probs, predictor.settings)
    if predictor.settings.kind == "regression":
        return [{"text": t, "value": v} for t, v in zip(texts, labels, strict=True)]
    names = predictor.settings.labels
    return [{"text": t, "label": label, "probabilities": dict(zip(names, map(float, row), strict=True))}
            for t, label, row in zip(texts, labels, probs, strict=True)]  # fmt: skip
