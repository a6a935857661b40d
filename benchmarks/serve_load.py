"""HTTP load test on loopback: `bertkit serve` with and without batching, and a FastAPI endpoint
calling the transformers pipeline per request, each under 16 and 64 concurrent clients.

    python -m benchmarks.serve_load --predictor FOLDER [--seconds 30] [--clients 16 64]

Every server runs in its own process (as deployed); clients are threads on keep-alive connections
sending single Rotten Tomatoes reviews until the time is up. Prints requests/s, p50/p95/p99
latency and failed requests per setting, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
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

from .common import movie_reviews


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], port: int, timeout: float = 300) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start within {timeout:.0f} s")


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
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "seconds": wall, "requests": len(latencies), "failed": failures[0],
            "requests_per_s": len(latencies) / wall,
            **{f"p{q}_ms": float(np.percentile(ms, q)) if len(ms) else None for q in (50, 95, 99)}}


def hf_endpoint(folder: str, port: int) -> None:
    """The baseline server: one FastAPI route calling the transformers pipeline per request."""
    import transformers
    import uvicorn
    from fastapi import FastAPI

    pipe = transformers.pipeline("text-classification", model=folder, device="cpu")
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict) -> dict:  # a plain `def`: FastAPI runs it in its thread pool
        return {"prediction": pipe(body["text"], truncation=True)[0]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def settings(predictor: str, port: int, max_batch: int, max_wait_ms: float, precision: str) -> dict[str, list[str]]:
    serve = [sys.executable, "-m", "bertkit.cli", "serve", "--predictor", predictor, "--port", str(port),
             "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--precision", precision]
    return {"bertkit serve, dynamic batching": serve, "bertkit serve, --no-batching": [*serve, "--no-batching"],
            "FastAPI + transformers pipeline per request":
                [sys.executable, "-m", "benchmarks.serve_load", "--hf-endpoint", predictor, "--port", str(port)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", help="a classification predictor folder")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--precision", default="fp32", help="bertkit's mode (the transformers endpoint runs fp32)")
    parser.add_argument("--out", default="benchmarks/results/serve_load_cpu2.json")
    parser.add_argument("--hf-endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_endpoint:
        return hf_endpoint(args.hf_endpoint, args.port)
    if not args.predictor or not Path(args.predictor).is_dir():
        raise SystemExit("--predictor FOLDER is required (e.g. the one `python -m benchmarks` trains)")
    texts = movie_reviews("rotten_tomatoes")["text"].sample(2000, random_state=0).tolist()
    rows = []
    for name, command in settings(args.predictor, port := free_port(), args.max_batch, args.max_wait_ms, args.precision).items():
        command[command.index("--port") + 1] = str(port := free_port())
        server = start_server(command, port)
        try:
            load(port, texts, 4, 3.0)  # warm-up
            for clients in args.clients:
                row = {"server": name} | load(port, texts, clients, args.seconds)
                rows.append(row)
                print(f"{name}, {clients} clients: {row['requests_per_s']:.1f} requests/s, p50 {row['p50_ms']:.0f} ms, "
                      f"p95 {row['p95_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, {row['failed']} failed", flush=True)
        finally:
            stop_server(server)
    ratios = {}
    for clients in args.clients:
        rate = {r["server"]: r["requests_per_s"] for r in rows if r["clients"] == clients}
        batching = rate["bertkit serve, dynamic batching"]
        ratios[clients] = {"vs_no_batching": batching / rate["bertkit serve, --no-batching"],
                           "vs_transformers_endpoint": batching / rate["FastAPI + transformers pipeline per request"]}
        print(f"{clients} clients: batching {ratios[clients]['vs_no_batching']:.2f}× no batching, "
              f"{ratios[clients]['vs_transformers_endpoint']:.2f}× the transformers endpoint")
    save_json(args.out, {"benchmark": "serve_load", "seconds": args.seconds, "max_batch": args.max_batch,
                         "precision": args.precision, "predictor": args.predictor,
                         "max_wait_ms": args.max_wait_ms, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
