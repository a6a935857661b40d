"""`bertkit serve`: a predictor behind HTTP (FastAPI + uvicorn) with dynamic batching of requests.

POST /predict, GET /health, GET /info. Concurrent requests are gathered into one model batch (up
to `max_batch` examples; requests that queued while the model was busy always join the next batch,
even with `max_wait_ms=0`). A batch waits for more only until it holds as many examples as the last
one did (under a steady load, the clients just answered are back) or `max_wait_ms` passes, so a
lone client is never kept waiting. One worker thread runs the model.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations, and
# `Request` is imported inside `create_app` (FastAPI is an optional extra).
import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bertkit.cli_options import add_options, call
from bertkit.precision import Precision

PredictFn = Callable[[list[Any]], list[Any]]  # examples -> one JSON-able record each


class RequestError(ValueError):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_texts: int = 64  # examples per request
    max_chars: int = 20_000  # characters per text
    max_body: int = 4_000_000  # bytes per request body


def parse_request(body: bytes, limits: Limits) -> tuple[list[Any], bool]:
    """(examples, single) from a /predict body: {"text": s}, {"texts": [s, ...]}, {"pairs": [[a, b],
    ...]} or {"inputs": [example, ...]} (structured examples, as the task reads them)."""
    if len(body) > limits.max_body:
        raise RequestError(413, f"request body of {len(body)} bytes exceeds the limit of {limits.max_body}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"request body is not valid JSON: {error}") from error
    keys = [k for k in ("text", "texts", "pairs", "inputs") if isinstance(data, dict) and k in data]
    if len(keys) != 1:
        raise RequestError(422, 'send a JSON object with one of "text", "texts", "pairs" or "inputs"')
    key, value = keys[0], data[keys[0]]
    single = key == "text"
    examples = [value] if single else value
    if not isinstance(examples, list) or not examples:
        raise RequestError(422, f'"{key}" must be a non-empty list')
    if len(examples) > limits.max_texts:
        raise RequestError(413, f'{len(examples)} examples in "{key}" exceed the limit of {limits.max_texts} per request')
    for i, example in enumerate(examples):
        texts = _texts_of(key, example, i)
        for text in texts:
            if len(text) > limits.max_chars:
                raise RequestError(413, f'{key}[{i}] has {len(text)} characters; the limit is {limits.max_chars} per text')
    if key == "pairs":
        examples = [tuple(pair) for pair in examples]
    return examples, single


def _texts_of(key: str, example: Any, i: int) -> list[str]:
    where = "text" if key == "text" else f"{key}[{i}]"
    if key in ("text", "texts"):
        if not isinstance(example, str) or not example.strip():
            raise RequestError(422, f"{where} must be a non-empty string")
        return [example]
    if key == "pairs":
        if not (isinstance(example, list) and len(example) == 2 and all(isinstance(t, str) and t.strip() for t in example)):
            raise RequestError(422, f"{where} must be a [text, second text] pair of non-empty strings")
        return example
    return [json.dumps(example)]  # structured inputs: the limit applies to their JSON text


class Batcher:
    """Gathers examples of concurrent requests into batches for one model thread."""

    def __init__(self, predict: PredictFn, max_batch: int = 32, max_wait_ms: float = 5.0, enabled: bool = True) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch} and {max_wait_ms}")
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000
        self.enabled = enabled
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bertkit-model")
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker and the model thread."""
        if self.worker is not None:
            await self.queue.join()
            self.worker.cancel()
        self.pool.shutdown(wait=True)

    async def submit(self, examples: list[Any]) -> list[Any]:
        if not self.enabled:
            return await self._call(examples)
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((examples, future))
        return await future

    async def _call(self, examples: list[Any]) -> list[Any]:
        self.batches += 1
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.predict, examples)

    async def _run(self) -> None:
        last = 1  # examples in the last batch
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0][0])
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                if not self.queue.empty():  # requests that queued while the model ran join at no cost
                    job = self.queue.get_nowait()
                elif size >= last or (left := deadline - time.monotonic()) <= 0:
                    break  # as many as last time (the clients it answered are back), or the wait is over
                else:
                    try:
                        job = await asyncio.wait_for(self.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                jobs.append(job)
                size += len(job[0])
            last = size
            await self._answer(jobs)

    async def _answer(self, jobs: list[tuple[list[Any], asyncio.Future]]) -> None:
        examples = [x for batch, _ in jobs for x in batch]
        try:
            records = await self._call(examples)
            start = 0
            for batch, future in jobs:
                future.set_result(records[start : start + len(batch)])
                start += len(batch)
        except Exception as error:  # noqa: BLE001 — a failed batch fails its requests, not the server
            if len(jobs) == 1:
                jobs[0][1].set_exception(error)
            else:  # one bad request must not fail the others that shared its batch
                for batch, future in jobs:
                    try:
                        future.set_result(await self._call(batch))
                    except Exception as alone:  # noqa: BLE001
                        future.set_exception(alone)
        finally:
            for _ in jobs:
                self.queue.task_done()


def create_app(predict: PredictFn, info: dict[str, Any], *, max_batch: int = 32, max_wait_ms: float = 5.0,
               batching: bool = True, limits: Limits | None = None) -> Any:
    """The FastAPI application around `predict` (examples -> records); `info` is what /info shows."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    limits = limits or Limits()
    batcher = Batcher(predict, max_batch, max_wait_ms, batching)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="bertkit", lifespan=lifespan)
    app.state.batcher = batcher

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def show_info() -> dict[str, Any]:
        return info | {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "batching": batching,
                       "max_texts": limits.max_texts, "max_chars": limits.max_chars}

    @app.post("/predict")
    async def predict_route(request: Request) -> JSONResponse:
        try:
            examples, single = parse_request(await request.body(), limits)
        except RequestError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        try:
            records = await batcher.submit(examples)
        except ValueError as error:  # the task refused an input
            return JSONResponse({"error": str(error)}, status_code=422)
        except Exception as error:  # noqa: BLE001 — answer 500 and keep serving
            return JSONResponse({"error": f"prediction failed: {type(error).__name__}: {error}"}, status_code=500)
        return JSONResponse({"prediction": records[0]} if single else {"predictions": records})

    return app


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", timeout: float = 60.0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread on a free port; yields its base URL and shuts
    it down gracefully (in-flight requests finish) when the block ends."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def predictor_app(predictor: Any, **options: Any) -> Any:
    """`create_app` for a loaded `Predictor`: its task's records; task, labels, maxlen, precision, and
    the threads and process id of the worker that answers, in /info."""
    import torch

    from bertkit._version import __version__

    info = {"task": predictor.task.name, "labels": predictor.get_classes(),
            "maxlen": getattr(predictor.task, "maxlen", None), "precision": predictor.precision,
            "threads": torch.get_num_threads(), "pid": os.getpid(), "version": __version__}
    return create_app(predictor.records, info, **options)


SERVE_ENV = "BERTKIT_SERVE"  # how `serve` hands its settings to worker processes


def serve(predictor: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_wait_ms: float = 5.0, batching: bool = True, max_texts: int = 64, max_chars: int = 20_000,
          precision: Precision | None = None, workers: int = 1) -> int:
    """Serve a predictor folder over HTTP until interrupted (Ctrl-C / SIGTERM finish in-flight requests).

    Args:
        predictor: the predictor folder.
        host: address to listen on.
        port: TCP port.
        max_batch: most examples the model sees in one batch.
        max_wait_ms: longest a request waits for others to share its batch (0: no waiting; requests
            that queued while the model was busy still share the next batch).
        batching: gather concurrent requests into batches (--no-batching runs each request alone).
        max_texts: most texts (or pairs) per request; more gives 413.
        max_chars: most characters per text; more gives 413.
        precision: how the model runs; default: what the predictor folder records.
        workers: server processes, each with its own copy of the model and an equal share of the
            cores (BERTKIT_THREADS sets the threads of each); connections are spread over them.
    """
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError("bertkit serve needs FastAPI and uvicorn: pip install 'bertkit[serve]'") from error
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    settings = {"predictor": predictor, "precision": precision, "max_batch": max_batch, "max_wait_ms": max_wait_ms,
                "batching": batching, "max_texts": max_texts, "max_chars": max_chars}
    options = {"host": host, "port": port, "timeout_graceful_shutdown": 30, "log_level": "info"}
    if workers == 1:
        uvicorn.run(app_from_settings(settings), **options)
        return 0
    from bertkit.precision import available_cores

    _load(settings)  # a bad folder fails here, once, rather than in every worker
    os.environ[SERVE_ENV] = json.dumps(settings)
    os.environ.setdefault("BERTKIT_THREADS", str(max(1, available_cores() // workers)))
    uvicorn.run("bertkit.serve:app_from_environment", factory=True, workers=workers, **options)
    return 0


def _load(settings: dict[str, Any]) -> Any:
    """The predictor `settings` name, in their precision (else the one its folder records)."""
    from bertkit.api.predictor import load_predictor

    precision = settings["precision"]
    return load_predictor(settings["predictor"], **({"precision": precision} if precision else {}))


def app_from_settings(settings: dict[str, Any]) -> Any:
    """The app `serve` runs: its predictor loaded, the process's threads set."""
    from bertkit.precision import inference_threads

    inference_threads()
    return predictor_app(_load(settings), max_batch=settings["max_batch"], max_wait_ms=settings["max_wait_ms"],
                         batching=settings["batching"],
                         limits=Limits(max_texts=settings["max_texts"], max_chars=settings["max_chars"]))


def app_from_environment() -> Any:
    """Each worker process's app, from the settings `serve` left in the environment."""
    return app_from_settings(json.loads(os.environ[SERVE_ENV]))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve a predictor over HTTP (POST /predict)",
                                   description="Serve a predictor over HTTP with dynamic batching.")
    add_options(parser, serve)
    parser.set_defaults(func=lambda args: call(serve, args))
