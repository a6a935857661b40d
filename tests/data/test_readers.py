"""Table readers: every supported format, and the error messages for bad input."""

import numpy as np
import pandas as pd
import pytest

from bertkit.data import read_table, to_list

ROWS = pd.DataFrame({"text": ['a "quoted" film', "bad"], "label": ["pos", "neg"], "b": ["x", "y"]})


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "parquet"])
def test_read_every_format(tmp_path, ext):
    path = tmp_path / f"data.{ext}"
    if ext == "csv":
        ROWS.to_csv(path, index=False)
    elif ext == "tsv":
        ROWS.to_csv(path, sep="\t", index=False, quoting=3)
    elif ext == "jsonl":
        ROWS.to_json(path, orient="records", lines=True)
    else:
        ROWS.to_parquet(path)
    frame = read_table(path, text_column="text", label_column="label", text_pair_column="b")
    assert frame["text"].tolist() == ROWS["text"].tolist()
    assert frame["label"].tolist() == ["pos", "neg"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_table(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_table(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("text,label\n")
    with pytest.raises(ValueError, match="no rows"):
        read_table(tmp_path / "h.csv")


def test_missing_column_names_existing_ones(tmp_path):
    ROWS.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ValueError, match=r"'sentiment'.*\['text', 'label', 'b'\]"):
        read_table(tmp_path / "d.csv", label_column="sentiment")


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file extension '.xlsx'"):
        read_table(tmp_path / "d.xlsx")


def test_to_list_gives_python_objects():
    for x in ([1, 2], np.array([1, 2]), pd.Series([1, 2]), (np.int64(1), np.int64(2))):
        out = to_list(x)
        assert out == [1, 2] and all(type(v) is int for v in out)
    assert to_list(np.array([[0.0, 1.0]])) == [[0.0, 1.0]]
    with pytest.raises(TypeError, match="single string"):
        to_list("text")
