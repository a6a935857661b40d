"""Read tabular text data (CSV, TSV, JSONL, Parquet) into a DataFrame with clear errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# TSV uses QUOTE_NONE (3) so quote characters inside the text stay as they are
_READERS = {
    ".csv": lambda p: pd.read_csv(p),
    ".tsv": lambda p: pd.read_csv(p, sep="\t", quoting=3),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".parquet": lambda p: pd.read_parquet(p),
}


def read_table(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str | None = None,
    text_pair_column: str | None = None,
) -> pd.DataFrame:
    """Read `path` (format chosen by extension) and check that the named columns exist.

    Returns the whole table; the caller picks the columns it needs. Raises `FileNotFoundError`
    for a missing file and `ValueError` for an empty file, an unknown extension or a missing column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {path} (check the path and working directory)"
        )
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(
            f"unsupported file extension {suffix!r} for {path}; use one of {sorted(_READERS)}"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"data file is empty: {path}")
    try:
        frame = _READERS[suffix](path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"data file has no rows: {path}") from err
    if len(frame) == 0:
        raise ValueError(f"data file has a header but no rows: {path}")
    for role, column in (
        ("text", text_column),
        ("label", label_column),
        ("text pair", text_pair_column),
    ):
        if column is not None and column not in frame.columns:
            raise ValueError(
                f"{role} column {column!r} not found in {path}; columns are {list(frame.columns)}"
            )
    return frame


def to_list(x: Sequence[Any] | np.ndarray | pd.Series | pd.Index) -> list[Any]:
    """Turn a list, tuple, numpy array or pandas Series into a list of plain Python objects."""
    if isinstance(x, (pd.Series, pd.Index)):
        x = x.to_numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()  # tolist converts numpy scalars (and rows of 2-D arrays) to Python types
    if isinstance(x, (str, bytes)):
        raise TypeError("expected a sequence of items, got a single string; wrap it in a list")
    return [v.item() if isinstance(v, np.generic) else v for v in x]
