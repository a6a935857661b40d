"""Property-based fuzzing of the readers, the tokenizer and `predict` over arbitrary Unicode,
control characters, empty and huge strings: only the documented errors, one output per input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from finetune_helpers import EMOTIONS, make_tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertkit.api.predictor import get_predictor, load_predictor
from bertkit.api.streaming import read_lines, stream_predictions
from bertkit.api.text import Transformer
from bertkit.data import read_table

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# any code point (surrogates included, as undecodable bytes give them), and the line breaks
# and controls that trip line splitting
TEXT = st.text(st.characters(codec=None) | st.sampled_from(["\n", "\r", "\x85", "\u2028", "\x00", "\x0b"]))
HUGE = st.builds(lambda c, n: c * n, st.characters(), st.integers(5_000, 50_000))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    preproc = Transformer(str(make_tiny_model(root / "model", dropout=0.0)), maxlen=16, classes=EMOTIONS)
    return load_predictor(get_predictor(preproc.get_classifier(seed=0), preproc).save(root / "p"), device="cpu")


@FAST
@given(st.binary(max_size=400))
def test_read_lines_gives_one_item_per_newline(data):
    items = list(read_lines(io.BytesIO(data)))
    assert len(items) == data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)
    assert [i.number for i in items] == list(range(1, len(items) + 1))
    assert all((i.text is None) == (i.error is not None) for i in items)


@FAST
@given(st.lists(TEXT | HUGE, max_size=6))
def test_tokenizer_never_crashes(predictor, texts):
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]  # text_item refuses lone surrogates
    encoded = predictor.tokenizer(texts, max_length=16, truncation=True)
    assert len(encoded["input_ids"]) == len(texts)
    assert all(2 <= len(ids) <= 16 for ids in encoded["input_ids"])


@FAST
@given(st.lists(TEXT | HUGE, min_size=1, max_size=6))
def test_predict_gives_one_record_per_line(predictor, texts):
    data = "\n".join(texts).encode("utf-8", "surrogatepass")
    out = io.StringIO()
    written = stream_predictions(predictor, read_lines(io.BytesIO(data)), out, progress=False)
    lines = out.getvalue().splitlines()  # escaped line breaks: splitlines is safe on the output
    expected = data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)
    assert written == len(lines) == expected
    records = [json.loads(line) for line in lines]
    assert [r["line"] for r in records] == list(range(1, expected + 1))
    assert all(("label" in r) != ("error" in r) for r in records)


@FAST
@given(st.lists(st.tuples(TEXT, st.sampled_from(["joy", "fear", "", "x,y"])), min_size=1, max_size=5),
       st.sampled_from(["csv", "tsv", "jsonl"]))
def test_readers_give_rows_or_a_documented_error(tmp_path_factory, rows, ext):
    path = Path(tmp_path_factory.mktemp("r")) / f"d.{ext}"
    if ext == "jsonl":
        body = "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
    else:
        sep = "," if ext == "csv" else "\t"
        body = f"text{sep}label\n" + "".join(f"{t}{sep}{y}\n" for t, y in rows)
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    try:
        frame = read_table(path, "text", "label")
    except ValueError as error:  # the documented errors: one line, naming the file
        assert str(path) in str(error) and "\n" not in str(error).strip()
        return
    assert len(frame) >= 1 and frame["label"].notna().all()
