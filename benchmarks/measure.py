"""Measurements the suite reports: the machine's fp32 matmul peak, useful FLOPs, peak memory."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence

import torch

MATMUL_SHAPES = ((4096, 384, 1536), (4096, 1536, 384), (2048, 1024, 1024))


def matmul_peak_gflops(repeats: int = 5) -> float:
    """The best median fp32 GFLOPS of `torch.mm` over a few shapes like an encoder's linear layers."""
    best = 0.0
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        best = max(best, 2 * m * k * n / statistics.median(times) / 1e9)
    return best


def encoder_flops(lengths: Sequence[int], hidden: int, intermediate: int, layers: int, labels: int) -> float:
    """Useful FLOPs of a sequence classifier (encoder + pooler + classifier) over sequences of
    `lengths`: the work its logits need, no padding.

    Per layer and sequence of n tokens: 2·n·(4h² + 2h·i) for the query/key/value, output and
    feed-forward matrices, plus 4·n²·h for attention scores and their weighted sum. The logits read
    the first position alone, so the last layer needs the keys and values of every token
    (2·n·2h²) but the query, attention, output and feed-forward work of that one position only
    (2·(2h² + 2h·i) + 4·n·h). 2h² + 2h·k for the pooler and classifier. Embedding look-ups, norms
    and activations are not counted.
    """
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    full = sum((layers - 1) * (n * per_token + 4 * n * n * hidden) for n in lengths)
    last = sum(4 * n * hidden * hidden + 2 * (2 * hidden * hidden + 2 * hidden * intermediate) + 4 * n * hidden
               for n in lengths)
    return float(full + last + len(lengths) * (2 * hidden * hidden + 2 * hidden * labels))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 5 ms while the block runs."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._base = _rss_bytes()
        self._peak = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = (self._peak - self._base) / 2**20
