"""COPA through bertkit's multiple-choice task and through a plain `transformers` loop
(AutoModelForMultipleChoice), side by side: accuracy on COPA's dev and test files, training speed.

Both sides: all-MiniLM-L6-v2, the same examples (`read_choices`: "premise + what was the
cause/what happened as a result?" paired with each choice), maxlen 64, batch 16, 3 epochs, AdamW
lr 5e-5 (weight decay 0.01, none on biases and LayerNorm weights), linear schedule with 10%
warmup, gradient clipping at 1.0, seed 42. The `transformers` side pads each batch to its longest
pair (run_swag's collator) over a shuffled DataLoader; bertkit uses its own loop (length-bucketed
batches). Throughput = training examples (each with its two choices) per second of training.

    python benchmarks/copa_choice.py [--data-dir ../shared/data/copa] [--epochs 3] [--out figures.json]
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from common import (
    hf_accuracy,
    hf_adamw,
    hf_from_pretrained,
    linear_warmup,
    minilm_path,
    report,
    shuffled_loader,
    timed,
    train_steps,
    warm_up,
)

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.tasks.inference import forward_features
from bertkit.tasks.multiple_choice import MultipleChoiceTask, read_choices
from bertkit.train.loop import TrainConfig, fit

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "copa"


def run_bertkit(model_path: str, splits: dict, args) -> dict:
    task = MultipleChoiceTask(maxlen=args.maxlen)
    tokenizer = bertkit.Tokenizer.from_pretrained(model_path)
    data = {name: task.featurize(tokenizer, *split) for name, split in splits.items()}
    train = data["train"]
    torch.manual_seed(args.seed)
    model = bertkit.load_model(model_path, head=task.head)
    config = TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, warmup=args.warmup,
                         weight_decay=0.01, max_grad_norm=1.0, seed=args.seed, progress=False)
    _, seconds = timed(fit, model, train, task.loss_fn(train), config, lengths=train.lengths,
                       collate=functools.partial(pad_collate, pad_id=train.pad_id))
    accuracy = {name: task.metrics(forward_features(model, d.features, pad_id=d.pad_id), d)["val_accuracy"]
                for name, d in data.items() if name != "train"}
    return _figures(accuracy, len(train) * args.epochs, seconds)


def run_transformers(model_path: str, splits: dict, args) -> dict:
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def encode(examples, labels):
        rows = []
        for (context, choices), label in zip(examples, labels, strict=True):
            enc = tokenizer([context] * len(choices), choices, truncation=True, max_length=args.maxlen)
            rows.append({k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask")} | {"labels": label})
        return rows

    def collate(rows):  # run_swag's DataCollatorForMultipleChoice: flatten, pad, reshape
        choices = len(rows[0]["input_ids"])
        flat = [{k: row[k][c] for k in ("input_ids", "token_type_ids", "attention_mask")}
                for row in rows for c in range(choices)]
        batch = tokenizer.pad(flat, return_tensors="pt")
        batch = {k: v.view(len(rows), choices, -1) for k, v in batch.items()}
        return batch | {"labels": torch.tensor([row["labels"] for row in rows])}

    rows = {name: encode(*split) for name, split in splits.items()}
    torch.manual_seed(args.seed)
    model = hf_from_pretrained(AutoModelForMultipleChoice, model_path).to(device)
    loader = shuffled_loader(rows["train"], args.batch_size, collate, args.seed)
    optimizer = hf_adamw(model, args.lr)
    scheduler = linear_warmup(optimizer, args.warmup, len(loader) * args.epochs)
    seconds = train_steps(model, loader, optimizer, scheduler, epochs=args.epochs, device=device)
    accuracy = {name: hf_accuracy(model, rows[name], collate, device) for name in rows if name != "train"}
    return _figures(accuracy, len(rows["train"]) * args.epochs, seconds)


def _figures(accuracy: dict, examples: int, seconds: float) -> dict:
    return {"accuracy": {k: round(v, 4) for k, v in accuracy.items()}, "train_seconds": round(seconds, 2),
            "examples_per_s": round(examples / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder with COPA's train/dev/test.jsonl")
    parser.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2 from its PyPI package)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    folder = Path(args.data_dir)
    if not (folder / "train.jsonl").is_file():
        raise SystemExit(f"no COPA data at {folder}: pass --data-dir with train/dev/test.jsonl")
    splits = {name: read_choices(folder / f"{name}.jsonl", "copa") for name in ("train", "dev", "test")}
    model_path = args.model or minilm_path()
    print(f"COPA: {', '.join(f'{k} {len(v[0])}' for k, v in splits.items())} examples; torch threads "
          f"{torch.get_num_threads()}; device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    warm_up()
    figures = {"transformers": run_transformers(model_path, splits, args), "bertkit": run_bertkit(model_path, splits, args)}
    figures["throughput_ratio"] = round(figures["bertkit"]["examples_per_s"] / figures["transformers"]["examples_per_s"], 3)
    figures["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "model")}
    for side in ("transformers", "bertkit"):
        f = figures[side]
        print(f"{side:>12}: accuracy dev {f['accuracy']['dev']:.4f}, test {f['accuracy']['test']:.4f}; "
              f"{f['examples_per_s']:.1f} examples/s ({f['train_seconds']:.1f} s training)")
    print(f"throughput ratio (bertkit / transformers): {figures['throughput_ratio']:.2f}")
    report(figures, args.out)


if __name__ == "__main__":
    main()
