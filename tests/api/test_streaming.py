"""`bertkit predict` streams: one record per input line (split on "\\n" only), error records for
blank and undecodable lines, bounded memory over 100,000 lines, results equal to non-streaming."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from finetune_helpers import EMOTIONS, make_tiny_model

from bertkit.api.commands import predict
from bertkit.api.predictor import get_predictor, load_predictor
from bertkit.api.streaming import read_lines, stream_predictions
from bertkit.api.text import Transformer
from bertkit.cli import main


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny classifier (maxlen 16): predictions are arbitrary but deterministic."""
    root = tmp_path_factory.mktemp("streaming")
    preproc = Transformer(str(make_tiny_model(root / "model", dropout=0.0)), maxlen=16, classes=EMOTIONS)
    return get_predictor(preproc.get_classifier(seed=0), preproc).save(root / "predictor")


def test_lines_split_on_newline_only():
    data = "a\u2028b\nc\u0085d\n\n  \nx\r\ny\tz\x0cw\nlast".encode() + b"\n\xff\xfe bad\n"
    items = list(read_lines(io.BytesIO(data)))
    assert [i.number for i in items] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [i.text for i in items[:2]] == ["a\u2028b", "c\u0085d"]
    assert "line 3 is blank" in items[2].error and "line 4 is blank" in items[3].error
    assert items[4].text == "x" and items[5].text == "y\tz\x0cw" and items[6].text == "last"
    assert items[7].text is None and "line 8 is not valid utf-8" in items[7].error
    assert "--encoding" in items[7].error
    assert [i.text for i in read_lines(io.BytesIO(b"\xef\xbb\xbfbom\n"))] == ["bom"]
    assert [i.text for i in read_lines(io.BytesIO("caf\xe9\n".encode("latin-1")), "latin-1")] == ["caf\xe9"]
    assert [i.text for i in read_lines(io.StringIO("p\u2028q\nr\n"))] == ["p\u2028q", "r"]


def test_cli_gives_one_record_per_stdin_line_in_order(predictor_dir, capsys, monkeypatch):
    data = "happy\u2028news\n\nsad\u0085day\n\xff\n".encode().replace(b"\xc3\xbf", b"\xff") + b"last"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["predict", "--predictor", str(predictor_dir)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["text"] == "happy\u2028news" and records[2]["text"] == "sad\u0085day"
    assert "blank" in records[1]["error"] and "not valid utf-8" in records[3]["error"]
    assert records[4]["label"] in EMOTIONS


def _line(rng: random.Random) -> str:
    """A few words and one 700-letter word: a large input that tokenises fast (an over-long word
    is a single [UNK]), so the test measures streaming, not the tokenizer."""
    words = ["happy", "sad", "film", "day", "news", "really", "not", "the", "a", "trip"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + " " + "z" * 700


def _peak_rss_growth(run) -> int:
    """Bytes by which the process's peak resident memory rose while `run()` ran (Linux)."""
    def status(key: str) -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
        return int(line.split()[1]) * 1024

    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    before = status("VmRSS")
    run()
    return status("VmHWM") - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak memory")
def test_100k_lines_stream_in_bounded_memory_and_match_the_batch_result(predictor_dir, tmp_path):
    torch.set_num_threads(1)  # tiny batches: extra threads only contend on a busy machine
    rng = random.Random(0)
    distinct = [_line(rng) for _ in range(1000)]
    lines = 100_000
    source = tmp_path / "in.txt"
    with open(source, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(distinct[i % len(distinct)] + "\n")
    budget = 48 * 2**20
    assert source.stat().st_size > budget  # reading the input whole would already break it
    loaded = load_predictor(predictor_dir, device="cpu", batch_size=512)
    loaded.records(distinct[:8])  # first-call allocations (kernels, caches) are not growth
    counted = []

    def run() -> None:
        with open(source, "rb") as f, open(tmp_path / "out.jsonl", "w", encoding="utf-8") as out:
            counted.append(stream_predictions(loaded, read_lines(f), out, progress=False, chunk_lines=512))

    growth = _peak_rss_growth(run)
    print(f"streamed {lines} lines ({source.stat().st_size / 2**20:.0f} MiB): peak RSS grew {growth / 2**20:.1f} MiB")
    assert counted == [lines]
    assert growth < budget, f"peak memory grew by {growth / 2**20:.1f} MiB"
    expected = loaded.records(distinct)  # the non-streaming result of every distinct line
    worst = 0.0
    with open(tmp_path / "out.jsonl", encoding="utf-8") as f:
        for number, row in enumerate(f, start=1):
            record, want = json.loads(row), expected[(number - 1) % len(distinct)]
            assert (record["line"], record["text"], record["label"]) == (number, want["text"], want["label"])
            worst = max(worst, *(abs(record["probabilities"][k] - v) for k, v in want["probabilities"].items()))
    assert number == lines and worst < 1e-5


def test_file_and_arguments_give_one_record_per_input(predictor_dir, tmp_path):
    (tmp_path / "t.txt").write_bytes("one\r\n\r\ntwo\u2028".encode())
    out = io.StringIO()
    assert predict(str(predictor_dir), file=str(tmp_path / "t.txt"), stdout=out) == 3
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["text"] == "one" and "line 2 is blank" in records[1]["error"]
    assert out.getvalue().count("\n") == 3 and "\\u2028" in out.getvalue()  # escaped: still one line
    out = io.StringIO()
    assert predict(str(predictor_dir), texts=["fine", " "], stdout=out) == 2
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["label"] in EMOTIONS and "text 2 is blank" in records[1]["error"]
