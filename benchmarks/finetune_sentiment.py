"""Fine-tune all-MiniLM-L6-v2 on the fixed rotten_tomatoes split with bertkit and with a plain
`transformers` loop (same hyperparameters and seed), and compare validation accuracy and training
throughput.

Both sides: maxlen 64, batch 32, 2 epochs, AdamW lr 5e-5 (weight decay 0.01, none on biases and
LayerNorm weights), linear schedule with 10% warmup, gradient clipping at 1.0, seed 42, the same
tokenizer files. The `transformers` side is the usual loop: a shuffled DataLoader with
`DataCollatorWithPadding` (each batch padded to its longest text). bertkit uses its own loop, whose
sampler groups texts of similar length (less padding). Throughput = training examples processed
per second of training (tokenisation and validation excluded on both sides).

    python benchmarks/finetune_sentiment.py [--epochs 2] [--limit N] [--out figures.json]
Targets: accuracy within 1 point of the transformers run; throughput ratio >= 1.3.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import (
    hf_accuracy,
    hf_adamw,
    hf_from_pretrained,
    linear_warmup,
    minilm_path,
    shuffled_loader,
    timed,
    train_steps,
    warm_up,
)

from bertkit import text
from bertkit.api import get_learner
from bertkit.data.movie_reviews import rotten_tomatoes_split

CLASSES = ["negative", "positive"]


def load_data(limit: int | None, valid_limit: int | None):
    train, valid = rotten_tomatoes_split()
    return train[:limit] if limit else train, valid[:valid_limit] if valid_limit else valid


def run_bertkit(model_path: str, train, valid, args) -> dict:
    preproc = text.Transformer(model_path, maxlen=args.maxlen, classes=CLASSES, batch_size=args.batch_size)
    train_data = preproc.preprocess_train(train["text"], train["label"])
    valid_data = preproc.preprocess_test(valid["text"], valid["label"])
    learner = get_learner(preproc.get_classifier(seed=args.seed), train_data, batch_size=args.batch_size)
    _, seconds = timed(learner.train, args.lr, args.epochs, schedule="linear", warmup=args.warmup, seed=args.seed,
                       weight_decay=0.01, max_grad_norm=1.0, progress=False)
    accuracy = learner.report(valid_data, print_report=False).metrics["val_accuracy"]
    return _figures(accuracy, len(train) * args.epochs, seconds)


def run_transformers(model_path: str, train, valid, args) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
    )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    label_ids = {name: i for i, name in enumerate(CLASSES)}

    def encode(frame):
        enc = tokenizer(frame["text"].tolist(), truncation=True, max_length=args.maxlen)
        return [{"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": label_ids[y]}
                for ids, types, mask, y in zip(enc["input_ids"], enc["token_type_ids"],
                                               enc["attention_mask"], frame["label"], strict=True)]

    train_rows, valid_rows = encode(train), encode(valid)
    torch.manual_seed(args.seed)
    model = hf_from_pretrained(AutoModelForSequenceClassification, model_path, num_labels=2).to(device)
    collate = DataCollatorWithPadding(tokenizer)
    loader = shuffled_loader(train_rows, args.batch_size, collate, args.seed)
    optimizer = hf_adamw(model, args.lr)
    scheduler = linear_warmup(optimizer, args.warmup, len(loader) * args.epochs)
    seconds = train_steps(model, loader, optimizer, scheduler, epochs=args.epochs, device=device)
    return _figures(hf_accuracy(model, valid_rows, collate, device), len(train) * args.epochs, seconds)


def _figures(accuracy: float, examples: int, seconds: float) -> dict:
    return {"accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2),
            "examples_per_s": round(examples / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, help="use only the first N training reviews (smoke runs)")
    parser.add_argument("--valid-limit", type=int, help="use only the first N validation reviews")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    model_path = minilm_path()
    train, valid = load_data(args.limit, args.valid_limit)
    print(f"rotten_tomatoes: {len(train)} training, {len(valid)} validation reviews; "
          f"torch threads {torch.get_num_threads()}; device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    warm_up()
    figures = {"transformers": run_transformers(model_path, train, valid, args),
               "bertkit": run_bertkit(model_path, train, valid, args)}
    ratio = figures["bertkit"]["examples_per_s"] / figures["transformers"]["examples_per_s"]
    figures["throughput_ratio"] = round(ratio, 3)
    figures["accuracy_difference_points"] = round(100 * (figures["bertkit"]["accuracy"] - figures["transformers"]["accuracy"]), 2)
    figures["settings"] = {k: v for k, v in vars(args).items() if k != "out"} | {"train": len(train), "valid": len(valid)}
    for side in ("transformers", "bertkit"):
        f = figures[side]
        print(f"{side:>12}: validation accuracy {f['accuracy']:.4f}, {f['examples_per_s']:.1f} examples/s "
              f"({f['train_seconds']:.1f} s training)")
    print(f"throughput ratio (bertkit / transformers): {ratio:.2f}; accuracy difference "
          f"{figures['accuracy_difference_points']:+.2f} points")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
