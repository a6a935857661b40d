"""Throughput against sequence length and batch size, bertkit beside transformers (the suite's PNG)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .common import hf_from_pretrained

LENGTHS = (32, 128, 512)
BATCHES = (1, 8, 32)


@torch.inference_mode()
def sweep(folder: Path, lengths: tuple[int, ...] = LENGTHS, batches: tuple[int, ...] = BATCHES,
          repeats: int = 2) -> list[dict]:
    """Sequences/s of both classifiers on random ids of every (length, batch size), no padding."""
    import transformers

    import bertkit

    ours = bertkit.load_model(folder, head="classification")
    theirs = hf_from_pretrained(transformers.AutoModelForSequenceClassification, folder).eval()
    points = []
    for length in lengths:
        for batch in batches:
            ids = torch.randint(1000, 20000, (batch, length))
            mask, types = torch.ones_like(ids), torch.zeros_like(ids)
            runs = {"bertkit": lambda a=ids, m=mask, t=types: ours(a, m, t),
                    "transformers": lambda a=ids, m=mask, t=types: theirs(input_ids=a, attention_mask=m, token_type_ids=t)}
            times: dict[str, list[float]] = {k: [] for k in runs}
            for run in runs.values():
                run()  # warm-up
            for _ in range(repeats):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
            point = {"length": length, "batch": batch}
            point |= {name: batch / statistics.median(t) for name, t in times.items()}
            points.append(point)
            print(f"  sweep length {length} batch {batch}: bertkit {point['bertkit']:.1f}, "
                  f"transformers {point['transformers']:.1f} sequences/s", flush=True)
    return points


def plot_sweep(points: list[dict], path: str) -> None:
    from bertkit.plotting import finish_figure, new_figure

    fig, axes = new_figure(figsize=(11, 4), cols=2)
    left, right = axes[0]
    for batch in sorted({p["batch"] for p in points}):
        rows = [p for p in points if p["batch"] == batch]
        for name, style in (("bertkit", "-o"), ("transformers", "--x")):
            left.plot([p["length"] for p in rows], [p[name] for p in rows], style, label=f"{name}, batch {batch}")
    for length in sorted({p["length"] for p in points}):
        rows = [p for p in points if p["length"] == length]
        for name, style in (("bertkit", "-o"), ("transformers", "--x")):
            right.plot([p["batch"] for p in rows], [p[name] for p in rows], style, label=f"{name}, {length} tokens")
    for ax, xlabel in ((left, "sequence length (tokens)"), (right, "batch size")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("sequences / s")
        ax.legend(fontsize=7)
    left.set_title("throughput against sequence length")
    right.set_title("throughput against batch size")
    finish_figure(fig, path)
