"""Fine-tuning at small batch sizes: bertkit's `fit_onecycle` against a plain `transformers` loop and
the `transformers` `Trainer`, on the same weights, data and recipe, at batch 6 and 16.

all-MiniLM-L6-v2 with one fresh classification head (built once by bertkit, saved in Hugging Face
layout and loaded by every side), the first `--train-examples` reviews of the fixed rotten_tomatoes
split, maxlen 512 (the reviews are short), one epoch, AdamW lr 2e-5 (weight decay 0.01, none on
biases and LayerNorm weights), the 1cycle schedule (cosine rise from lr/25 over 30% of the steps,
anneal to ~0, momentum not cycled), gradient clipping at 1.0, seed 42.
- bertkit: `text.Transformer` -> `get_learner` -> `fit_onecycle`, its length-bucketed batches.
- transformers, plain loop: the same batches in the same order (taken from bertkit's sampler),
  `DataCollatorWithPadding`, `torch.optim.AdamW`, `OneCycleLR`, `clip_grad_norm_`.
- transformers `Trainer`: length-grouped batches (`group_by_length=True`, called
  `train_sampling_strategy="group_by_length"` since transformers 5), SDPA attention, the same AdamW and OneCycleLR.
Throughput = training examples per second of training (tokenisation and validation excluded).

    python benchmarks/finetune_small_batch.py [--train-examples 1200] [--batch-sizes 6 16]
    python benchmarks/finetune_small_batch.py --seeds 3              # mean accuracy over three seeds
    python benchmarks/finetune_small_batch.py --dropout 0          # no masks: accuracy compares the recipes alone
    python benchmarks/finetune_small_batch.py --profile-steps 40   # where a batch-6 step's time goes
Target at batch 6: throughput ratio bertkit / plain loop >= 2.0 at accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import (
    hf_accuracy,
    hf_adamw,
    hf_from_pretrained,
    minilm_path,
    one_cycle,
    timed,
    train_steps,
)

from bertkit import text
from bertkit.api import get_learner
from bertkit.data.batching import LengthBucketSampler
from bertkit.data.movie_reviews import rotten_tomatoes_split
from bertkit.train import param_groups

CLASSES = ["negative", "positive"]
PHASES = ("data", "forward", "backward", "clip", "optimizer", "scheduler", "logging")


def prepare(args, batch_size: int, folder: Path) -> dict:
    """Tokenise once with bertkit and save the shared starting weights (HF layout) to `folder`."""
    train, valid = rotten_tomatoes_split()
    train, valid = train[: args.train_examples], valid[: args.valid_examples]
    preproc = text.Transformer(minilm_path(), maxlen=args.maxlen, classes=CLASSES, batch_size=batch_size)
    train_data = preproc.preprocess_train(train["text"], train["label"])
    valid_data = preproc.preprocess_test(valid["text"], valid["label"])
    preproc.get_classifier(seed=args.seed).save(folder)
    _copy_tokenizer(folder)
    if args.dropout is not None:
        _set_dropout(folder, args.dropout)
    return {"train": train, "valid": valid, "preproc": preproc, "train_data": train_data,
            "valid_data": valid_data, "folder": str(folder)}


def _set_dropout(folder: Path, rate: float) -> None:
    """Every dropout of the shared starting point (encoder, attention, head) set to `rate`, for all sides."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config |= {"hidden_dropout_prob": rate, "attention_probs_dropout_prob": rate, "classifier_dropout": rate}
    config_path.write_text(json.dumps(config, indent=2))


def _copy_tokenizer(folder: Path) -> None:
    import shutil

    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(minilm_path()) / name, folder / name)


def run_bertkit(shared: dict, args, batch_size: int) -> dict:
    import bertkit

    model = bertkit.load_model(shared["folder"], head="classification", labels=CLASSES)
    learner = get_learner(model, shared["train_data"], batch_size=batch_size)
    _, seconds = timed(learner.fit_onecycle, args.lr, args.epochs, seed=args.seed, progress=False)
    accuracy = learner.report(shared["valid_data"], print_report=False).metrics["val_accuracy"]
    return _figures(accuracy, len(shared["train_data"]) * args.epochs, seconds)


def bertkit_batches(shared: dict, args, batch_size: int) -> list[list[int]]:
    """The micro-batches bertkit's loop draws, epoch by epoch (same sampler, same seed)."""
    sampler = LengthBucketSampler(shared["train_data"].lengths, batch_size, seed=args.seed, bucket=True)
    order = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        order += list(sampler)
    return order


def _hf_rows(shared: dict, tokenizer, args, frame) -> list[dict]:
    enc = tokenizer(frame["text"].tolist(), truncation=True, max_length=args.maxlen)
    labels = [CLASSES.index(y) if isinstance(y, str) else int(y) for y in frame["label"]]
    return [{"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": y}
            for ids, types, mask, y in zip(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"],
                                           labels, strict=True)]


def _hf_setup(shared: dict, args, steps: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared["folder"])
    model = hf_from_pretrained(AutoModelForSequenceClassification, shared["folder"])
    optimizer = hf_adamw(model, args.lr)
    return tokenizer, model, optimizer, one_cycle(optimizer, args.lr, steps)


def run_plain_loop(shared: dict, args, batch_size: int) -> dict:
    from transformers import DataCollatorWithPadding

    batches = bertkit_batches(shared, args, batch_size)
    tokenizer, model, optimizer, scheduler = _hf_setup(shared, args, len(batches))
    rows = _hf_rows(shared, tokenizer, args, shared["train"])
    collate = DataCollatorWithPadding(tokenizer)
    torch.manual_seed(args.seed)
    # collated lazily, inside the timed loop, as a DataLoader would
    seconds = train_steps(model, (collate([rows[i] for i in indices]) for indices in batches), optimizer, scheduler)
    accuracy = hf_accuracy(model, _hf_rows(shared, tokenizer, args, shared["valid"]), collate)
    return _figures(accuracy, sum(map(len, batches)), seconds)


def run_trainer(shared: dict, args, batch_size: int, out_dir: str) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    steps = -(-len(shared["train"]) // batch_size) * args.epochs
    tokenizer, model, optimizer, scheduler = _hf_setup(shared, args, steps)
    rows = _hf_rows(shared, tokenizer, args, shared["train"])
    training = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=batch_size, num_train_epochs=args.epochs,
        learning_rate=args.lr, weight_decay=0.01, max_grad_norm=1.0, train_sampling_strategy="group_by_length",
        seed=args.seed, data_seed=args.seed, report_to=[], save_strategy="no", logging_steps=50,
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training, train_dataset=rows,
                      data_collator=DataCollatorWithPadding(tokenizer), optimizers=(optimizer, scheduler))
    _, seconds = timed(trainer.train)
    collate = DataCollatorWithPadding(tokenizer)
    accuracy = hf_accuracy(model, _hf_rows(shared, tokenizer, args, shared["valid"]), collate)
    return _figures(accuracy, len(rows) * args.epochs, seconds)


def _figures(accuracy: float, examples: int, seconds: float) -> dict:
    return {"accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2),
            "examples_per_s": round(examples / seconds, 2)}


def profile_steps(shared: dict, args, batch_size: int) -> dict:
    """Profile bertkit's loop over `--profile-steps` steps: ms per step in each phase of the step,
    as labelled in `bertkit.train.loop`. `--baseline` profiles the step as it was before the
    row-wise optimizer: PyTorch's default AdamW and `clip_grad_norm_` over dense gradients."""
    from torch.profiler import ProfilerActivity, profile

    import bertkit

    model = bertkit.load_model(shared["folder"], head="classification", labels=CLASSES)
    learner = get_learner(model, shared["train_data"], batch_size=batch_size)
    n = args.profile_steps
    with _baseline_step(args.baseline), _full_last_layer(args.full_last_layer), \
            profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        learner.train(args.lr, 1, schedule="onecycle", max_steps=n, seed=args.seed, progress=True)
        seconds = time.perf_counter() - start
    phases = {e.key[len("step.") :]: e.cpu_time_total / 1e3 / n for e in prof.key_averages()
              if e.key.startswith("step.")}
    figures = {name: round(phases.get(name, 0.0), 1) for name in PHASES}
    figures["sum"] = round(sum(figures.values()), 1)
    figures["wall"] = round(1e3 * seconds / n, 1)
    label = "baseline" if args.baseline else "full last layer" if args.full_last_layer else "bertkit"
    print(f"{label} batch {batch_size}, ms per step (profiled): " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return figures


@contextlib.contextmanager
def _baseline_step(enabled: bool):
    import bertkit.train.loop as loop

    saved = loop.build_optimizer, loop.clip_grad_norm
    if enabled:
        def plain_adamw(model, name, *, lr, weight_decay, betas, eps):
            return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps or 1e-8)

        loop.build_optimizer, loop.clip_grad_norm = plain_adamw, torch.nn.utils.clip_grad_norm_
    try:
        yield
    finally:
        loop.build_optimizer, loop.clip_grad_norm = saved


@contextlib.contextmanager
def _full_last_layer(enabled: bool):
    """The classifier's last layer computed at every position, as before `first_only`."""
    from bertkit.model.heads import SequenceClassifier

    saved = SequenceClassifier.first_only
    SequenceClassifier.first_only = saved and not enabled
    try:
        yield
    finally:
        SequenceClassifier.first_only = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=1200, help="first N training reviews (7677 in all)")
    parser.add_argument("--valid-examples", type=int, default=853, help="first N validation reviews")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[6, 16])
    parser.add_argument("--sides", nargs="+", default=["bertkit", "transformers", "trainer"],
                        choices=["bertkit", "transformers", "trainer"])
    parser.add_argument("--maxlen", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat the comparison with seeds SEED, SEED+1, ..., each run starting with the next side; "
                             "report mean accuracy and median ratio")
    parser.add_argument("--dropout", type=float,
                        help="every dropout rate of every side (default: the checkpoint's, 0.1); 0 takes the masks' "
                             "noise out of the accuracy comparison")
    parser.add_argument("--profile-steps", type=int, default=0, help="profile N bertkit steps instead")
    parser.add_argument("--baseline", action="store_true", help="profile the step before the row-wise optimizer")
    parser.add_argument("--full-last-layer", action="store_true",
                        help="profile the step with the last layer computed at every position (before first_only)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    figures: dict = {"settings": vars(args) | {"threads": torch.get_num_threads()}}
    _warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in args.batch_sizes:
            if args.profile_steps:
                shared = prepare(args, batch_size, Path(tmp) / f"start-{batch_size}")
                figures[f"profile_batch_{batch_size}"] = profile_steps(shared, args, batch_size)
                continue
            runs = []
            for turn in range(args.seeds):  # a fresh head and data order each
                seeded = argparse.Namespace(**vars(args) | {"seed": args.seed + turn})
                shared = prepare(seeded, batch_size, Path(tmp) / f"start-{batch_size}-{seeded.seed}")
                runs.append(compare(shared, seeded, batch_size, tmp, turn))
            figures[f"batch_{batch_size}"] = runs[0] if len(runs) == 1 else summarise(runs, batch_size)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


def _warm_up() -> None:
    """Throwaway steps of each optimizer path: the first step imports torch's lazy modules (~1 s),
    which must not be charged to whichever side happens to run first."""
    from bertkit.train.rowwise import RowAdamW, row_gradients

    table = torch.nn.Embedding(2048, 4)
    for fused in (True, False):
        optimizer = RowAdamW(table.parameters(), fused=fused)
        with row_gradients(table, optimizer):
            table(torch.tensor([1, 2])).sum().backward()
            optimizer.step()
    table(torch.tensor([1, 2])).sum().backward()
    torch.optim.AdamW(table.parameters()).step()


def compare(shared: dict, args, batch_size: int, tmp: str, turn: int = 0) -> dict:
    """One side-by-side run of `args.sides`; `turn` rotates which side goes first (the machine's
    speed drifts over minutes, so repeated runs take turns)."""
    runners = {"bertkit": lambda: run_bertkit(shared, args, batch_size),
               "transformers": lambda: run_plain_loop(shared, args, batch_size),
               "trainer": lambda: run_trainer(shared, args, batch_size, str(Path(tmp) / "trainer"))}
    first = turn % len(args.sides)
    result = {side: runners[side]() for side in args.sides[first:] + args.sides[:first]}
    result = {side: result[side] for side in args.sides}  # printed and saved in the usual order
    for side, f in result.items():
        print(f"batch {batch_size:>2} {side:>12}: accuracy {f['accuracy']:.4f}, {f['examples_per_s']:.1f} "
              f"examples/s ({f['train_seconds']:.1f} s)")
    if "bertkit" in result:
        for other in ("transformers", "trainer"):
            if other in result:
                ratio = result["bertkit"]["examples_per_s"] / result[other]["examples_per_s"]
                points = 100 * (result["bertkit"]["accuracy"] - result[other]["accuracy"])
                result[f"ratio_vs_{other}"] = round(ratio, 3)
                result[f"accuracy_points_vs_{other}"] = round(points, 2)
                print(f"batch {batch_size:>2} bertkit / {other}: {ratio:.2f}x, accuracy {points:+.2f} points")
    return result


def summarise(runs: list[dict], batch_size: int) -> dict:
    """Several seeds' comparisons: each side's mean (sd) accuracy and median examples/s, bertkit's
    median ratio to each side (each ratio from one seed's side-by-side run) and mean accuracy gap."""
    summary: dict = {"seeds": runs}
    for side in [k for k in runs[0] if isinstance(runs[0][k], dict)]:
        accuracies = [r[side]["accuracy"] for r in runs]
        summary[side] = {"accuracy_mean": round(statistics.mean(accuracies), 4),
                         "accuracy_sd": round(statistics.stdev(accuracies), 4),
                         "examples_per_s_median": statistics.median(r[side]["examples_per_s"] for r in runs)}
        f = summary[side]
        print(f"batch {batch_size:>2} {side:>12}, {len(runs)} seeds: accuracy {f['accuracy_mean']:.4f} "
              f"± {f['accuracy_sd']:.4f}, {f['examples_per_s_median']:.1f} examples/s (median)")
    for other in ("transformers", "trainer"):
        if f"ratio_vs_{other}" in runs[0]:
            ratio = statistics.median(r[f"ratio_vs_{other}"] for r in runs)
            points = statistics.mean(r[f"accuracy_points_vs_{other}"] for r in runs)
            summary[f"ratio_vs_{other}"], summary[f"accuracy_points_vs_{other}"] = round(ratio, 3), round(points, 2)
            print(f"batch {batch_size:>2} bertkit / {other}, {len(runs)} seeds: {ratio:.2f}x (median), "
                  f"accuracy {points:+.2f} points (mean)")
    return summary


if __name__ == "__main__":
    main()
