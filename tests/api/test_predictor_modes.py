"""Predictor: precision recorded in the folder and chosen at load time; streaming in input order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from finetune_helpers import emotion_data, make_tiny_model

import bertkit
from bertkit import text


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple:
    tmp = tmp_path_factory.mktemp("modes")
    folder = make_tiny_model(tmp / "base")
    texts, labels = emotion_data(30)
    t = text.Transformer(str(folder), maxlen=32, classes=sorted(set(labels)), batch_size=4)
    t.preprocess_train(texts, labels)
    predictor = bertkit.get_predictor(t.get_classifier(), preproc=t)
    predictor.save(tmp / "fp32")
    predictor.save(tmp / "int8", precision="int8")
    return tmp, texts


def test_folder_records_precision_and_load_can_override(saved) -> None:
    tmp, texts = saved
    assert json.loads((tmp / "int8" / "bertkit.json").read_text())["precision"] == "int8"
    fp32 = bertkit.load_predictor(tmp / "fp32")
    int8 = bertkit.load_predictor(tmp / "int8")
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert bertkit.load_predictor(tmp / "int8", precision="fp32").precision == "fp32"
    bf16 = bertkit.load_predictor(tmp / "fp32", precision="bf16")
    reference = fp32.predict_proba(texts)
    for other in (int8, bf16):
        assert np.abs(other.predict_proba(texts) - reference).max() < 2e-2, other.precision
    with pytest.raises(ValueError, match="no fp32 weights"):
        int8.save(tmp / "again")
    with pytest.raises(ValueError, match="precision must be one of"):
        bertkit.load_predictor(tmp / "fp32", precision="half")


def test_stream_yields_records_in_input_order_chunk_by_chunk(saved) -> None:
    tmp, texts = saved
    predictor = bertkit.load_predictor(tmp / "fp32")
    seen: list[str] = []

    def lines():  # a generator, as a file's lines would be; records what was consumed so far
        for t in texts[:10]:
            seen.append(t)
            yield t

    stream = predictor.stream(lines(), chunk_size=3)
    first = next(stream)
    assert len(seen) == 3  # only the first chunk was read
    records = [first, *stream]
    assert [r["text"] for r in records] == texts[:10]
    expected = predictor.records(texts[:10])
    assert [r["label"] for r in records] == [r["label"] for r in expected]
    with pytest.raises(ValueError, match="chunk_size"):
        next(predictor.stream(texts, chunk_size=0))
