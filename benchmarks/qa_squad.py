"""Fine-tune all-MiniLM-L6-v2 for extractive QA on 30 of the 38 SQuAD v1.1 dev articles in
`xquad-en-38.json`, score EM/F1 on the other 8, with bertkit and with a plain `transformers` loop,
and decode the SQuAD v2.0 "Normans" article with a tuned null threshold (HasAns/NoAns figures).

Both sides train on the same windows (bertkit's featurising: maxlen, doc stride, question limit;
an answer outside a window points at [CLS]) from the same initial weights (the QA head bertkit
initialises is copied into `AutoModelForQuestionAnswering`), with the same recipe: AdamW (weight
decay 0.01, none on biases and LayerNorm weights), linear schedule with 10% warmup, clipping at
1.0, the same seed. The `transformers` side is the usual loop: a shuffled DataLoader padding each
batch to its longest window, loss from the model. Both are decoded by the same code (bertkit's,
which equals the `transformers` pipeline's; see tests/tasks/test_qa.py), so the comparison is of
training. Throughput = training windows per second of training (evaluation excluded).

The 8 held-out articles are every fifth from the third (they include "Normans", so the v2.0
article's contexts are never trained on).

    python benchmarks/qa_squad.py [--epochs 2] [--train-articles 30] [--out f.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import random
from pathlib import Path

import torch
from common import (
    hf_adamw,
    hf_from_pretrained,
    linear_warmup,
    minilm_path,
    report,
    shuffled_loader,
    timed,
    train_steps,
)
from tqdm.auto import tqdm

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.tasks.base import TaskData
from bertkit.tasks.inference import forward_features
from bertkit.tasks.qa import QaTask
from bertkit.tasks.squad import read_squad
from bertkit.train import TrainConfig, fit

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "squad"


def split_articles(path: Path, train_articles: int, test_articles: int, folder: Path) -> tuple[Path, Path]:
    """Write the training and held-out articles as two SQuAD files (held out: every fifth from the third)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    held = set(range(2, len(data["data"]), 5))
    test = [a for i, a in enumerate(data["data"]) if i in held][:test_articles]
    train = [a for i, a in enumerate(data["data"]) if i not in held][:train_articles]
    out = []
    for name, articles in (("train", train), ("test", test)):
        (folder / f"{name}.json").write_text(json.dumps({"version": data.get("version"), "data": articles}))
        out.append(folder / f"{name}.json")
    print(f"train: {[a['title'] for a in train]}\ntest: {[a['title'] for a in test]}")
    return out[0], out[1]


def train_bertkit(model, train, task: QaTask, args) -> tuple[float, list[float]]:
    """bertkit's loop; returns (training seconds, mean loss per epoch)."""
    config = TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, warmup=0.1, weight_decay=0.01,
                         max_grad_norm=1.0, seed=args.seed, progress=True, log_every=10**9)
    history, seconds = timed(fit, model, train, task.loss_fn(train), config, lengths=train.lengths,
                             collate=functools.partial(pad_collate, pad_id=train.pad_id))
    return seconds, _epoch_losses(history.records, args.epochs)


def _epoch_losses(records: list[dict], epochs: int) -> list[float]:
    by_epoch: dict[int, list[float]] = {}
    for r in records:
        if "loss" in r and "epoch" in r:
            by_epoch.setdefault(int(r["epoch"]), []).append(float(r["loss"]))
    return [round(sum(v) / len(v), 4) for _, v in sorted(by_epoch.items())][:epochs]


def train_transformers(hf_model, train, args) -> tuple[float, list[float]]:
    """The plain `transformers` loop over the same windows; returns (seconds, mean loss per epoch)."""
    rows = [{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions")}
            for f in train.features]
    loader = shuffled_loader(rows, args.batch_size, functools.partial(pad_collate, pad_id=train.pad_id), args.seed)
    optimizer = hf_adamw(hf_model, args.lr)
    total = len(loader) * args.epochs
    scheduler = linear_warmup(optimizer, 0.1, total)
    losses: list[list[float]] = [[] for _ in range(args.epochs)]
    bar = tqdm(total=total, desc="transformers", unit="step")

    def record(epoch: int, loss: torch.Tensor) -> None:
        losses[epoch].append(loss.item())
        bar.update(1)

    torch.manual_seed(args.seed)
    seconds = train_steps(hf_model, loader, optimizer, scheduler, epochs=args.epochs, on_step=record)
    bar.close()
    hf_model.eval()
    return seconds, [round(sum(epoch) / len(epoch), 4) for epoch in losses]


class _QaLogits(torch.nn.Module):
    """A transformers QA model seen as bertkit's forward: `.logits` of shape (batch, seq, 2)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs):
        out = self.model(**inputs)
        return type("Out", (), {"logits": torch.stack([out.start_logits, out.end_logits], -1)})


def scores(model, task: QaTask, data) -> dict[str, float]:
    outputs = forward_features(model, data.features, pad_id=data.pad_id, batch_size=32)
    return {k[4:]: round(v, 2) for k, v in task.metrics(outputs, data).items() if k != "val_loss"}


def normans_v2(model, tokenizer, args, v2_path: Path) -> dict[str, float]:
    """Normans v2.0: EM/F1 at threshold 0 and the official best-F1 threshold figures; and a
    two-fold figure (threshold tuned on half the questions, F1 on the other half)."""
    examples, answers = read_squad(v2_path)
    task = QaTask(maxlen=args.maxlen, doc_stride=args.stride, null_answers=True, tune_threshold=False)
    data = task.featurize(tokenizer, examples, answers)
    outputs = forward_features(model, data.features, pad_id=data.pad_id, batch_size=32)
    figures = {k[4:]: round(v, 4) for k, v in task.metrics(outputs, data).items() if k != "val_loss"}
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    folds, held_out = (order[::2], order[1::2]), []
    for tune, apply in (folds, folds[::-1]):
        task.null_threshold = task.metrics(*_subset(outputs, data, tune))["val_best_f1_thresh"]
        held_out.append(task.metrics(*_subset(outputs, data, apply)))
    for key in ("f1", "HasAns_f1", "NoAns_f1"):
        figures[f"two_fold_{key}"] = round(sum(m[f"val_{key}"] for m in held_out) / 2, 2)
    return figures


def _subset(outputs: list, data: TaskData, examples: list[int]) -> tuple[list, TaskData]:
    """The outputs and data of some examples only (their windows, renumbered)."""
    new_id = {old: new for new, old in enumerate(examples)}
    rows = [i for i, e in enumerate(data.example_ids) if e in new_id]
    sub = TaskData(data.task, [data.features[i] for i in rows], [new_id[data.example_ids[i]] for i in rows],
                   [data.examples[e] for e in examples], [data.targets[e] for e in examples], data.pad_id,
                   data.batch_size, [data.extras[i] for i in rows])
    return [outputs[i] for i in rows], sub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "xquad-en-38.json")
    parser.add_argument("--v2", type=Path, default=DATA / "squad-v2-dev-normans.json")
    parser.add_argument("--train-articles", type=int, default=30)
    parser.add_argument("--test-articles", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--maxlen", type=int, default=384)
    parser.add_argument("--stride", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sides", default="transformers,bertkit", help="which sides to run, in order")
    parser.add_argument("--v2-sides", default="bertkit", help="which sides' models decode the v2.0 article")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    for path in (args.data, args.v2):
        if not path.is_file():
            raise SystemExit(f"{path} not found: pass --data/--v2 (SQuAD JSON files)")
    import tempfile

    folder = Path(tempfile.mkdtemp())
    train_path, test_path = split_articles(args.data, args.train_articles, args.test_articles, folder)
    model_path = minilm_path()
    tokenizer = bertkit.Tokenizer.from_pretrained(model_path)
    task = QaTask(maxlen=args.maxlen, doc_stride=args.stride)
    train = task.featurize(tokenizer, *read_squad(train_path))
    test = task.featurize(tokenizer, *read_squad(test_path))
    print(f"{train.num_examples} training questions in {len(train)} windows; {test.num_examples} test questions "
          f"in {len(test)} windows; torch threads {torch.get_num_threads()}")
    figures: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} |
                     {"train_questions": train.num_examples, "train_windows": len(train),
                      "test_questions": test.num_examples}}
    torch.manual_seed(args.seed)
    initial = bertkit.load_model(model_path, head="qa")
    head = {k: v.clone() for k, v in initial.classifier.out.state_dict().items()}
    for side in args.sides.split(","):
        if side == "bertkit":
            model = bertkit.load_model(model_path, head="qa")
            model.classifier.out.load_state_dict(head)
            seconds, losses = train_bertkit(model, train, task, args)
        else:
            from transformers import AutoModelForQuestionAnswering

            hf = hf_from_pretrained(AutoModelForQuestionAnswering, model_path)
            hf.qa_outputs.load_state_dict(head)
            seconds, losses = train_transformers(hf, train, args)
            model = _QaLogits(hf)
        figures[side] = {**scores(model, task, test), "train_seconds": round(seconds, 1),
                         "windows_per_s": round(len(train) * args.epochs / seconds, 3), "epoch_losses": losses}
        f = figures[side]
        print(f"{side:>12}: EM {f['exact']:.2f} F1 {f['f1']:.2f} on the held-out articles; {f['windows_per_s']:.2f} "
              f"windows/s ({f['train_seconds']:.0f} s); epoch losses {losses}")
        if side in args.v2_sides.split(","):
            f["normans_v2"] = normans_v2(model, tokenizer, args, args.v2)
            print(f"{'':>12}  Normans v2.0: {json.dumps(f['normans_v2'])}")
    if "bertkit" in figures and "transformers" in figures:
        # the same windows on both sides: the ratio of training times, unrounded
        figures["throughput_ratio"] = round(figures["transformers"]["train_seconds"] / figures["bertkit"]["train_seconds"], 3)
        figures["f1_difference_points"] = round(figures["bertkit"]["f1"] - figures["transformers"]["f1"], 2)
        figures["exact_difference_points"] = round(figures["bertkit"]["exact"] - figures["transformers"]["exact"], 2)
        print(f"throughput ratio (bertkit / transformers): {figures['throughput_ratio']:.2f}; F1 difference "
              f"{figures['f1_difference_points']:+.2f}, EM difference {figures['exact_difference_points']:+.2f} points")
    report(figures, args.out)


if __name__ == "__main__":
    main()
