"""ktrain's data loaders for text classification: `texts_from_df / _csv / _array / _folder` return
ktrain's (train, val, preproc) triple; `text_classifier` builds the model for a preprocessor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertkit.api.transformer import Transformer
from bertkit.data.readers import to_list
from bertkit.model import BertkitModel
from bertkit.tasks.base import TaskData

MAXLEN = 400  # ktrain's default
# ktrain's transformer preprocess modes and the checkpoints they stand for; any other value is
# taken as a model name or folder (e.g. "all-MiniLM-L6-v2")
PREPROCESS_MODES = {"bert": "bert-base-uncased", "distilbert": "distilbert-base-uncased"}
Triple = tuple[TaskData, TaskData, Transformer]


def _model_name(preprocess_mode: str, model_name: str | None) -> str:
    if model_name:
        return model_name
    if preprocess_mode == "standard":
        raise ValueError("preprocess_mode='standard' (a word-index model) is not part of bertkit: use "
                         "preprocess_mode='bert' or 'distilbert', or model_name='all-MiniLM-L6-v2' (any checkpoint)")
    return PREPROCESS_MODES.get(preprocess_mode, preprocess_mode)


def _split(x: list[Any], y: list[Any], val_pct: float, random_state: int | None) -> tuple[list, list, list, list]:
    """A stratified (where possible) train/validation split, like ktrain's train_test_split."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_pct < 1:
        raise ValueError(f"val_pct must be between 0 and 1, got {val_pct}")
    hashable = [tuple(v) if isinstance(v, list) else v for v in y]
    counts = pd.Series(hashable).value_counts()
    stratify = hashable if counts.min() >= 2 and len(counts) <= len(x) * val_pct else None
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=val_pct, random_state=random_state,
                                                      stratify=stratify)
    return x_train, x_val, y_train, y_val


def _labels_from_columns(frame: pd.DataFrame, label_columns: str | Sequence[str], where: str) -> tuple[list, list[str] | None]:
    """Labels of one column (names or indices), or of several 0/1 columns (one-hot or multi-hot)."""
    columns = [label_columns] if isinstance(label_columns, str) else list(label_columns)
    if not columns:
        raise ValueError("label_columns is empty: name the column(s) holding the labels")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"label column(s) {missing} not found in {where}; columns are {list(frame.columns)}")
    if len(columns) == 1:
        values = frame[columns[0]]
        if values.isna().any():
            raise ValueError(f"{where} row {int(values.isna().to_numpy().argmax())} has no label in {columns[0]!r}")
        return to_list(values), None
    rows = frame[columns].to_numpy()
    if not np.isin(rows, (0, 1)).all():
        raise ValueError(f"several label_columns must hold 0/1 values (one-hot or multi-hot) in {where}")
    if (rows.sum(1) == 1).all():  # one-hot: a single class per row
        return [columns[i] for i in rows.argmax(1)], [str(c) for c in columns]
    return rows.astype(int).tolist(), [str(c) for c in columns]


def texts_from_df(train_df: pd.DataFrame, text_column: str, label_columns: str | Sequence[str] = (),
                  val_df: pd.DataFrame | None = None, maxlen: int = MAXLEN, val_pct: float = 0.1,
                  preprocess_mode: str = "bert", *, model_name: str | None = None, batch_size: int = 32,
                  random_state: int | None = 42, verbose: int = 1, **ignored: Any) -> Triple:
    """ktrain's `texts_from_df`: texts and labels from DataFrames → (train, val, preproc).

    `label_columns`: one column of class names or indices, or several 0/1 columns (their names
    are the classes; more than one 1 in a row means multilabel). Without `val_df`, `val_pct` of
    the training rows are held out. `model_name` picks any checkpoint (else `preprocess_mode`:
    "bert" → bert-base-uncased, "distilbert" → distilbert-base-uncased). ktrain's options for
    word-index models (max_features, ngram_range, lang) are accepted and ignored.
    """
    if text_column not in train_df.columns:
        raise ValueError(f"text column {text_column!r} not found; columns are {list(train_df.columns)}")
    x = to_list(train_df[text_column].fillna(""))
    y, classes = _labels_from_columns(train_df, label_columns, "train_df")
    if val_df is not None:
        x_val = to_list(val_df[text_column].fillna(""))
        y_val, _ = _labels_from_columns(val_df, label_columns, "val_df")
        x_train, y_train = x, y
    else:
        x_train, x_val, y_train, y_val = _split(x, y, val_pct, random_state)
    return _triple(x_train, y_train, x_val, y_val, classes, maxlen, preprocess_mode, model_name, batch_size)


def texts_from_csv(train_filepath: str, text_column: str, label_columns: str | Sequence[str] = (),
                   val_filepath: str | None = None, maxlen: int = MAXLEN, val_pct: float = 0.1,
                   preprocess_mode: str = "bert", encoding: str | None = None, sep: str = ",", *,
                   model_name: str | None = None, batch_size: int = 32, random_state: int | None = 42,
                   verbose: int = 1, **ignored: Any) -> Triple:
    """ktrain's `texts_from_csv`: `texts_from_df` on CSV files (`encoding` default UTF-8)."""
    def read(path: str) -> pd.DataFrame:
        try:
            return pd.read_csv(path, encoding=encoding or "utf-8", sep=sep)
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not {encoding or 'utf-8'} text ({error.reason} at byte "
                             f"{error.start}); pass encoding=... (e.g. 'latin-1')") from error
        except FileNotFoundError as error:
            raise FileNotFoundError(f"CSV file not found: {path}") from error

    val_df = read(val_filepath) if val_filepath else None
    return texts_from_df(read(train_filepath), text_column, label_columns, val_df, maxlen, val_pct, preprocess_mode,
                         model_name=model_name, batch_size=batch_size, random_state=random_state)


def texts_from_array(x_train: Sequence[str], y_train: Sequence[Any], x_test: Sequence[str] | None = None,
                     y_test: Sequence[Any] | None = None, class_names: Sequence[str] = (), maxlen: int = MAXLEN,
                     val_pct: float = 0.1, preprocess_mode: str = "bert", *, model_name: str | None = None,
                     batch_size: int = 32, random_state: int | None = 42, verbose: int = 1,
                     **ignored: Any) -> Triple:
    """ktrain's `texts_from_array`: texts and labels (names, indices, label lists or 0/1 rows)
    → (train, val, preproc); without `x_test`/`y_test`, `val_pct` of the training data is held out."""
    x, y = to_list(x_train), _rows(y_train)
    if x_test is None or y_test is None:
        x, x_val, y, y_val = _split(x, y, val_pct, random_state)
    else:
        x_val, y_val = to_list(x_test), _rows(y_test)
    return _triple(x, y, x_val, y_val, [str(c) for c in class_names] or None, maxlen, preprocess_mode,
                   model_name, batch_size)


def _rows(y: Any) -> list[Any]:
    return np.asarray(y).tolist() if isinstance(y, np.ndarray) and np.asarray(y).ndim == 2 else to_list(y)


def texts_from_folder(datadir: str, classes: Sequence[str] | None = None, maxlen: int = MAXLEN,
                      train_test_names: Sequence[str] = ("train", "test"), preprocess_mode: str = "bert",
                      encoding: str | None = None, val_pct: float = 0.1, *, model_name: str | None = None,
                      batch_size: int = 32, random_state: int | None = 42, verbose: int = 1,
                      **ignored: Any) -> Triple:
    """ktrain's `texts_from_folder`: `datadir/train/<class>/*` (and `datadir/test/<class>/*`) text
    files, one document each, any depth below the class folder. Files are read as `encoding`
    (default UTF-8); bytes that do not decode become U+FFFD instead of failing. Without a test
    folder, `val_pct` of the training documents are held out."""
    if not 1 <= len(train_test_names) <= 2:
        raise ValueError("train_test_names must name the training folder and, optionally, the test folder")
    root = Path(datadir)
    x, y, names = _read_folder(root / train_test_names[0], classes, encoding)
    test = root / train_test_names[1] if len(train_test_names) == 2 else None
    if test is not None and test.is_dir():
        x_val, y_val, _ = _read_folder(test, names, encoding)
    else:
        x, x_val, y, y_val = _split(x, y, val_pct, random_state)
    return _triple(x, y, x_val, y_val, names, maxlen, preprocess_mode, model_name, batch_size)


def _read_folder(folder: Path, classes: Sequence[str] | None, encoding: str | None) -> tuple[list, list, list[str]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: texts_from_folder expects one sub-folder per class there")
    names = list(classes) if classes else sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"{folder} has no class sub-folders")
    texts, labels = [], []
    for name in names:
        files = sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"class folder {folder / name} holds no documents")
        for path in files:
            texts.append(path.read_bytes().decode(encoding or "utf-8", errors="replace"))
            labels.append(name)
    return texts, labels, names


def _triple(x_train: list, y_train: list, x_val: list, y_val: list, classes: list[str] | None, maxlen: int,
            preprocess_mode: str, model_name: str | None, batch_size: int) -> Triple:
    preproc = Transformer(_model_name(preprocess_mode, model_name), maxlen=maxlen, classes=classes,
                          batch_size=batch_size)
    train = preproc.preprocess_train(x_train, y_train)
    return train, preproc.preprocess_test(x_val, y_val), preproc


def text_classifier(name: str, train_data: TaskData, preproc: Transformer | None = None, multilabel: bool | None = None,
                    metrics: Sequence[str] = ("accuracy",), verbose: int = 1) -> BertkitModel:
    """ktrain's `text_classifier` for transformer models ("bert", "distilbert" or any name the
    preprocessor was built for): the preprocessor's encoder with a fresh classification head."""
    if preproc is None:
        raise ValueError("text_classifier needs the preprocessor: text_classifier(name, train_data, preproc=preproc)")
    wrong = {"fasttext", "logreg", "nbsvm", "bigru", "standard_gru"}
    if name in wrong:
        raise ValueError(f"{name!r} is a word-index model that bertkit does not implement; use 'bert' or 'distilbert'")
    if multilabel is not None and multilabel != (preproc.task.resolved_kind() == "multilabel"):
        raise ValueError(f"multilabel={multilabel} contradicts the data, which is {preproc.task.resolved_kind()}")
    return preproc.get_classifier()
