"""ktrain's NER workflow: `entities_from_conll2003` / `_txt` / `_array` → `sequence_tagger` → learner.

The readers return data sets of words and tags and a preprocessor; `sequence_tagger` names the
encoder, which fixes the tokenizer, and tokenises those data sets in place, as ktrain does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from bertkit.api.preprocessor import task_model
from bertkit.model import BertkitModel
from bertkit.tasks.base import TaskData
from bertkit.tasks.ner import NerTask
from bertkit.tasks.ner_readers import read_tagged
from bertkit.tasks.ner_tags import TagScheme
from bertkit.tokenizer import Tokenizer

__all__ = ["NERPreprocessor", "entities_from_array", "entities_from_conll2003", "entities_from_txt",
           "sequence_tagger"]
TAGGERS = {"bert": "linear", "bilstm-bert": "bilstm"}


class NERPreprocessor:
    """The NER task plus, once `sequence_tagger` has named the encoder, its tokenizer."""

    def __init__(self, task: NerTask, batch_size: int = 32) -> None:
        self.task = task
        self.batch_size = batch_size
        self.tokenizer: Tokenizer | None = None
        self.model_name: str | None = None
        self._pending: list[TaskData] = []

    @property
    def maxlen(self) -> int:
        return self.task.maxlen

    def get_classes(self) -> list[str]:
        return self.task.labels

    def get_tokenizer(self) -> Tokenizer | None:
        return self.tokenizer

    def set_encoder(self, model_name: str) -> None:
        """Load the encoder's tokenizer and tokenise the data sets the reader returned."""
        self.model_name = str(model_name)
        self.tokenizer = Tokenizer.from_pretrained(model_name)
        for data in self._pending:
            done = self.task.featurize(self.tokenizer, data.examples, data.targets, batch_size=data.batch_size)
            data.features, data.example_ids, data.extras = done.features, done.example_ids, done.extras
            data.pad_id = done.pad_id
        self._pending = []

    def preprocess_test(self, sentences: Sequence[Any], tags: Sequence[Sequence[str]] | None = None) -> TaskData:
        """Tokenised data of more sentences (strings or word lists), tagged or not."""
        if self.tokenizer is None:
            raise ValueError("no encoder yet: call text.sequence_tagger(name, preproc, bert_model=...) first")
        return self.task.featurize(self.tokenizer, sentences, tags, batch_size=self.batch_size)

    def _untokenised(self, sentences: list[list[str]], tags: list[list[str]]) -> TaskData:
        data = TaskData(self.task, [], [], sentences, tags, 0, self.batch_size)
        self._pending.append(data)
        return data


def entities_from_array(x_train: Sequence[Sequence[str]], y_train: Sequence[Sequence[str]],
                        x_test: Sequence[Sequence[str]] | None = None,
                        y_test: Sequence[Sequence[str]] | None = None, *, val_pct: float = 0.1,
                        maxlen: int = 128, batch_size: int = 32, seed: int = 42,
                        ) -> tuple[TaskData, TaskData | None, NERPreprocessor]:
    """(train, val, preproc) from lists of word lists and IOB2 tag lists; without `x_test`, a
    random `val_pct` of the training sentences (seeded) becomes the validation set."""
    x_train, y_train = [list(w) for w in x_train], [list(t) for t in y_train]
    if len(x_train) != len(y_train):
        raise ValueError(f"got {len(x_train)} training sentences but {len(y_train)} tag sequences")
    if x_test is None and val_pct:
        order = list(range(len(x_train)))
        random.Random(seed).shuffle(order)
        cut = max(1, int(round(val_pct * len(order))))
        val_rows, train_rows = order[:cut], order[cut:]
        x_test, y_test = [x_train[i] for i in val_rows], [y_train[i] for i in val_rows]
        x_train, y_train = [x_train[i] for i in train_rows], [y_train[i] for i in train_rows]
    task = NerTask(maxlen=maxlen)
    task.prepare(x_train, y_train)
    preproc = NERPreprocessor(task, batch_size)
    train = preproc._untokenised(x_train, y_train)
    if x_test is None:
        return train, None, preproc
    if y_test is None:
        raise ValueError("x_test needs its tags y_test to be a validation set")
    return train, preproc._untokenised([list(w) for w in x_test], [list(t) for t in y_test]), preproc


def entities_from_txt(train_filepath: str, val_filepath: str | None = None, *,
                      data_format: Literal["conll2003", "gmb"] = "conll2003", encoding: str = "utf-8",
                      val_pct: float = 0.1, scheme: TagScheme = "iob2", repair: bool = False, maxlen: int = 128,
                      batch_size: int = 32, seed: int = 42) -> tuple[TaskData, TaskData | None, NERPreprocessor]:
    """(train, val, preproc) from CoNLL-2003 column files (the tag last) or GMB-style CSVs
    (`Sentence #`, `Word`, `Tag`); without `val_filepath`, `val_pct` of train is held out."""
    formats = {"conll2003": "conll", "gmb": "gmb"}
    if data_format not in formats:
        raise ValueError(f"unknown data_format {data_format!r}; choose one of {sorted(formats)}")

    def read(path: str) -> tuple[list[list[str]], list[list[str]]]:
        words, tags = read_tagged(path, formats[data_format], scheme=scheme, repair=repair, encoding=encoding)
        if tags is None:
            raise ValueError(f"{path} has no tag column: training and validation files need tags")
        return words, tags

    x_train, y_train = read(train_filepath)
    x_test, y_test = read(val_filepath) if val_filepath else (None, None)
    return entities_from_array(x_train, y_train, x_test, y_test, val_pct=val_pct, maxlen=maxlen,
                               batch_size=batch_size, seed=seed)


def entities_from_conll2003(train_filepath: str, val_filepath: str | None = None, *, encoding: str = "utf-8",
                            val_pct: float = 0.1, **options: Any) -> tuple[TaskData, TaskData | None, NERPreprocessor]:
    """`entities_from_txt` for CoNLL-2003 files (options: scheme, repair, maxlen, batch_size, seed)."""
    return entities_from_txt(train_filepath, val_filepath, data_format="conll2003", encoding=encoding,
                             val_pct=val_pct, **options)


def sequence_tagger(name: Literal["bert", "bilstm-bert"], preproc: NERPreprocessor,
                    bert_model: str = "bert-base-cased", *, seed: int | None = 42) -> BertkitModel:
    """The tagging model: "bert" fine-tunes the encoder with a linear layer over each token (the
    paper's fine-tuning approach); "bilstm-bert" keeps the encoder frozen, without dropout, and
    trains a BiLSTM over its top four layers (the paper's feature-based approach)."""
    if name not in TAGGERS:
        raise ValueError(f"unknown sequence tagger {name!r}; bertkit has {sorted(TAGGERS)}")
    preproc.task.tagger = TAGGERS[name]
    preproc.set_encoder(bert_model)
    return task_model(bert_model, preproc.task, seed)
