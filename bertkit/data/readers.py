"""Read tabular text data (CSV, TSV, JSONL, Parquet) into a DataFrame with clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# TSV uses QUOTE_NONE (3) so quote characters inside the text stay as they are
_READERS = {
    ".csv": lambda p, enc: pd.read_csv(p, encoding=enc),
    ".tsv": lambda p, enc: pd.read_csv(p, sep="\t", quoting=3, encoding=enc),
    ".jsonl": lambda p, enc: _read_jsonl(p, enc),
    ".parquet": lambda p, enc: _read_parquet(p),
}


def read_table(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str | None = None,
    text_pair_column: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read `path` (format chosen by extension) and check that the named columns exist and that
    no row lacks its text or label.

    Returns the whole table; the caller picks the columns it needs. Raises `FileNotFoundError`
    for a missing file and `ValueError` (naming the file, and the line or row where there is one)
    for an empty or malformed file, undecodable bytes, an unknown extension, a missing column or
    an empty cell.
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
        frame = _READERS[suffix](path, encoding)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"data file has no rows: {path}") from err
    except UnicodeDecodeError as err:
        raise ValueError(_decode_message(path, encoding)) from err
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} is not a well-formed {suffix[1:].upper()} file: {_one_line(err)}") from err
    if len(frame) == 0:
        raise ValueError(f"data file has a header but no rows: {path}")
    for role, column in (
        ("text", text_column),
        ("label", label_column),
        ("text pair", text_pair_column),
    ):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{role} column {column!r} not found in {path}; columns are "
                             f"{list(frame.columns)}{_separator_hint(path, frame)}")
        if column is not None:
            _check_filled(frame[column], role, path)
    return frame


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    records = [record for _, record in jsonl_records(path, encoding)]
    if not records:
        raise pd.errors.EmptyDataError(str(path))
    return pd.DataFrame.from_records(records)


def jsonl_records(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of a JSONL file (blank lines skipped); a line that is
    not a JSON object is an error naming the file and line."""
    with open(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {number} is not valid JSON ({err.msg} at column "
                                 f"{err.colno}); JSONL needs one object per line") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path} line {number} is a JSON {type(record).__name__}, not an "
                                 "object; JSONL needs one {\"column\": value, ...} per line")
            yield number, record


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as err:
        raise ValueError(f"reading {path} needs pyarrow: pip install 'bertkit[parquet]'") from err
    except Exception as err:  # pyarrow's own errors: not a Parquet file, truncated, ...
        if "Parquet" in type(err).__name__ or "arrow" in type(err).__module__:
            raise ValueError(f"{path} is not a readable Parquet file: {_one_line(err)}") from err
        raise


def _decode_message(path: Path, encoding: str) -> str:
    """Where the first undecodable byte is: file, line and encoding, with the way out."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as err:
                return (f"{path} line {number} is not valid {encoding} (byte {err.start + 1} of the "
                        "line); pass the file's encoding with --encoding (e.g. --encoding latin-1)")
    return f"{path} is not valid {encoding}; pass the file's encoding with --encoding"


def _separator_hint(path: Path, frame: pd.DataFrame) -> str:
    header = " ".join(map(str, frame.columns))
    if path.suffix.lower() == ".csv" and "\t" in header:
        return "; the file looks tab-separated: rename it to .tsv"
    if path.suffix.lower() == ".tsv" and "," in header and len(frame.columns) == 1:
        return "; the file looks comma-separated: rename it to .csv"
    return ""


def _check_filled(column: pd.Series, role: str, path: Path) -> None:
    """Name the first row whose cell is empty or missing (NaN), counting data rows from 1."""
    empty = column.isna().to_numpy() | column.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0]) + 1
        raise ValueError(f"row {row} of {path} has an empty {role} (column {column.name!r}); "
                         "fill it in or remove the row")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def to_list(x: Sequence[Any] | np.ndarray | pd.Series | pd.Index) -> list[Any]:
    """Turn a list, tuple, numpy array or pandas Series into a list of plain Python objects."""
    if isinstance(x, (pd.Series, pd.Index)):
        x = x.to_numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()  # tolist converts numpy scalars (and rows of 2-D arrays) to Python types
    if isinstance(x, (str, bytes)):
        raise TypeError("expected a sequence of items, got a single string; wrap it in a list")
    return [v.item() if isinstance(v, np.generic) else v for v in x]
