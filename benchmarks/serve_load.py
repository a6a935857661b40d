"""HTTP load test on loopback: `bertkit serve` with and without batching, and a FastAPI endpoint
calling the transformers pipeline per request, each under 16 and 64 concurrent clients.

    python -m benchmarks.serve_load --predictor FOLDER [--seconds 30] [--clients 16 64] [--workers 1]

Every server runs in its own process (as deployed), all three at once; clients are threads on
keep-alive connections sending single Rotten Tomatoes reviews. Each server gets `--seconds` of load
per client count, in `--rounds` turns that rotate between the servers, so the machine's changes of
speed fall on all of them. Prints requests/s, p50/p95/p99 latency and failed requests per setting,
and writes them as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from bertkit.io import save_json
from bertkit.precision import available_cores, inference_threads

from .common import movie_reviews


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str]) -> subprocess.Popen:
    """Launch a server; `wait_until_up` tells when it serves."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process.log = []  # its stderr, read as it comes so that the pipe never fills
    threading.Thread(target=lambda: process.log.extend(iter(process.stderr.readline, "")), daemon=True).start()
    return process


def wait_until_up(process: subprocess.Popen, port: int, timeout: float = 300, workers: int = 1) -> subprocess.Popen:
    """Wait until the server answers and every worker process has started (each loads its own
    model; the first one up answers alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            time.sleep(0.5)
            raise RuntimeError(f"server exited: {''.join(process.log)[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            if sum("Application startup complete" in line for line in process.log) >= workers:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start within {timeout:.0f} s: {''.join(process.log)[-2000:]}")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)  # graceful: uvicorn finishes in-flight requests
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def load(port: int, texts: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads posting one review each until `seconds` pass: rate, latency, failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = k
        while time.monotonic() < deadline:
            body = json.dumps({"text": texts[i % len(texts)]})
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed) if ok else None
                failures[0] += 0 if ok else 1
            i += clients
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {"clients": clients, "seconds": wall, "failed": failures[0], "latencies": latencies}


def combine(parts: list[dict]) -> dict:
    """One setting's rounds as one row: requests/s over their summed time, latency percentiles
    over all their requests, and each round's rate."""
    ms = np.concatenate([np.asarray(p["latencies"]) for p in parts]) * 1000
    seconds = sum(p["seconds"] for p in parts)
    return {"clients": parts[0]["clients"], "seconds": seconds, "requests": len(ms),
            "failed": sum(p["failed"] for p in parts), "requests_per_s": len(ms) / seconds,
            "rounds_requests_per_s": [len(p["latencies"]) / p["seconds"] for p in parts],
            **{f"p{q}_ms": float(np.percentile(ms, q)) if len(ms) else None for q in (50, 95, 99)}}


HF_ENV = "BERTKIT_BENCH_ENDPOINT"  # the baseline's predictor folder, for its worker processes


def hf_app(folder: str | None = None):
    """The baseline server: one FastAPI route calling the transformers pipeline per request."""
    import transformers
    from fastapi import FastAPI

    inference_threads()  # as `bertkit serve` sets its own: BERTKIT_THREADS, else every core
    pipe = transformers.pipeline("text-classification", model=folder or os.environ[HF_ENV], device="cpu")
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict) -> dict:  # a plain `def`: FastAPI runs it in its thread pool
        return {"prediction": pipe(body["text"], truncation=True)[0]}

    return app


def hf_endpoint(folder: str, port: int, workers: int) -> None:
    """Run the baseline like `bertkit serve --workers`: processes sharing the cores equally."""
    import uvicorn

    options = {"host": "127.0.0.1", "port": port, "log_level": "info", "access_log": False}
    if workers == 1:
        return uvicorn.run(hf_app(folder), **options)
    os.environ[HF_ENV] = folder
    os.environ.setdefault("BERTKIT_THREADS", str(max(1, available_cores() // workers)))
    uvicorn.run("benchmarks.serve_load:hf_app", factory=True, workers=workers, **options)


def settings(predictor: str, port: int, max_batch: int, max_wait_ms: float, precision: str,
             workers: int = 1) -> dict[str, list[str]]:
    serve = [sys.executable, "-m", "bertkit.cli", "serve", "--predictor", predictor, "--port", str(port),
             "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--precision", precision,
             "--workers", str(workers)]
    return {"bertkit serve, dynamic batching": serve, "bertkit serve, --no-batching": [*serve, "--no-batching"],
            "FastAPI + transformers pipeline per request":
                [sys.executable, "-m", "benchmarks.serve_load", "--hf-endpoint", predictor, "--port", str(port),
                 "--workers", str(workers)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", help="a classification predictor folder")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="turns each server takes per client count")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes, for bertkit and the transformers endpoint alike")
    parser.add_argument("--precision", default="fp32", help="bertkit's mode (the transformers endpoint runs fp32)")
    parser.add_argument("--out", default="benchmarks/results/serve_load_cpu2.json")
    parser.add_argument("--hf-endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_endpoint:
        return hf_endpoint(args.hf_endpoint, args.port, args.workers)
    if not args.predictor or not Path(args.predictor).is_dir():
        raise SystemExit("--predictor FOLDER is required (e.g. the one `python -m benchmarks` trains)")
    texts = movie_reviews("rotten_tomatoes")["text"].sample(2000, random_state=0).tolist()
    # every server runs at once, idle but for its turn: the load visits them in rotating order,
    # `--rounds` times per client count, so the machine's drift falls on all of them alike
    servers = {}
    try:
        for name, command in settings(args.predictor, 0, args.max_batch, args.max_wait_ms, args.precision,
                                        args.workers).items():
            command[command.index("--port") + 1] = str(port := free_port())
            servers[name] = (start_server(command), port)
        for process, port in servers.values():
            wait_until_up(process, port, workers=args.workers)
            load(port, texts, 4 * args.workers, 3.0)  # warm-up
        names = list(servers)
        rows = []
        for clients in args.clients:
            parts: dict[str, list[dict]] = {name: [] for name in names}
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[: r % len(names)]:
                    parts[name].append(load(servers[name][1], texts, clients, args.seconds / args.rounds))
            for name in names:
                row = {"server": name} | combine(parts[name])
                rows.append(row)
                print(f"{name}, {clients} clients: {row['requests_per_s']:.1f} requests/s "
                      f"(rounds: {', '.join(f'{x:.1f}' for x in row['rounds_requests_per_s'])}), "
                      f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                      f"{row['failed']} failed", flush=True)
    finally:
        for process, _ in servers.values():
            stop_server(process)
    ratios = {}
    for clients in args.clients:
        rate = {r["server"]: r["requests_per_s"] for r in rows if r["clients"] == clients}
        batching = rate["bertkit serve, dynamic batching"]
        ratios[clients] = {"vs_no_batching": batching / rate["bertkit serve, --no-batching"],
                           "vs_transformers_endpoint": batching / rate["FastAPI + transformers pipeline per request"]}
        print(f"{clients} clients: batching {ratios[clients]['vs_no_batching']:.2f}× no batching, "
              f"{ratios[clients]['vs_transformers_endpoint']:.2f}× the transformers endpoint")
    save_json(args.out, {"benchmark": "serve_load", "seconds": args.seconds, "rounds": args.rounds,
                         "workers": args.workers,
                         "max_batch": args.max_batch,
                         "precision": args.precision, "predictor": args.predictor,
                         "max_wait_ms": args.max_wait_ms, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
