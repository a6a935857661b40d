"""`bertkit finetune | evaluate | predict`: flags mirror the typed functions `finetune`,
`evaluate` and `predict` defined here, which the Python API can call directly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO, Any, TextIO

from bertkit.api.learner import get_learner
from bertkit.api.outputs import check_finetune
from bertkit.api.predictor import get_predictor, load_predictor
from bertkit.api.streaming import read_lines, stream_predictions, text_item
from bertkit.api.text import Transformer
from bertkit.data.readers import read_table, to_list
from bertkit.io import atomic_dir, save_json
from bertkit.tasks.classification import POLICIES, Evaluation, encode_labels
from bertkit.tasks.classification import evaluate as evaluate_logits

SCHEDULES = ("linear", "constant", "cosine", "onecycle", "triangular")
MULTILABEL_SEPARATOR = "|"  # a multilabel row's labels, in one column: "sports|politics"


def _columns(path: str, text_column: str, label_column: str | None, pair_column: str | None,
             task: str | None = None, encoding: str = "utf-8") -> tuple[list[Any], list[Any] | None, list[Any] | None]:  # fmt: skip
    """(texts, labels, pairs) of a CSV/TSV/JSONL/Parquet file; missing columns are a clear error."""
    frame = read_table(path, text_column, label_column, pair_column, encoding)
    texts = to_list(frame[text_column])
    pairs = to_list(frame[pair_column]) if pair_column else None
    labels = to_list(frame[label_column]) if label_column else None
    if labels is not None and task == "multilabel":
        labels = [str(v).split(MULTILABEL_SEPARATOR) if str(v) else [] for v in labels]
    return texts, labels, pairs


def finetune(
    model: str, train: str, out: str, valid: str | None = None, *,
    text_column: str = "text", label_column: str = "label", text_pair_column: str | None = None,
    classes: list[str] | None = None, task: str | None = None, maxlen: int = 128, epochs: int = 1,
    lr: float = 5e-5, batch_size: int = 32, schedule: str = "linear", warmup: float = 0.1,
    seed: int = 42, eval_every: int | None = None, early_stopping: int | None = None,
    checkpoint_dir: str | None = None, resume: bool = False, max_steps: int | None = None,
    long_text: str = "truncate", stride: int | None = None, class_weights: str | None = None,
    bf16: bool = False, grad_accum: int = 1, progress: bool = True, encoding: str = "utf-8",
    force_resume: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Fine-tune `model` on a table, validate, and write the predictor folder `out` (atomically:
    an existing `out` is replaced only when everything succeeded) with report.json,
    history.json, confusion_matrix.png and training_curves.png beside the predictor files.
    All inputs, options and `out` are validated before any training starts; `out` may only be a
    new or empty folder or an earlier predictor, never one holding an input. Returns the report."""
    check_finetune(model, train, out, valid, checkpoint_dir=checkpoint_dir, resume=resume,
                   epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, warmup=warmup,
                   grad_accum=grad_accum, eval_every=eval_every, early_stopping=early_stopping,
                   stride=stride)  # fmt: skip
    x, y, pairs = _columns(train, text_column, label_column, text_pair_column, task, encoding)
    val = _columns(valid, text_column, label_column, text_pair_column, task, encoding) if valid else None
    preproc = Transformer(model, maxlen, classes, batch_size, task=task, long_text=long_text, stride=stride)
    train_data = preproc.preprocess_train(x, y, pairs)
    val_data = preproc.preprocess_test(val[0], val[1], val[2]) if val else None
    learner = get_learner(preproc.get_classifier(seed), train_data, val_data, batch_size,
                          class_weights=class_weights)  # fmt: skip
    start = time.perf_counter()
    history = learner.train(
        lr, epochs, schedule=schedule, warmup=warmup, seed=seed, eval_every=eval_every,
        early_stopping=early_stopping, restore_best=bool(early_stopping and val_data),
        checkpoint_dir=checkpoint_dir, resume=resume, max_steps=max_steps, bf16=bf16,
        grad_accum=grad_accum, progress=progress, force_resume=force_resume,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    evaluation = learner.validate() if val_data is not None else None
    steps = max((r["step"] for r in history.records), default=0)
    report = {
        "model": model, "task": preproc.settings.kind, "labels": preproc.get_classes(),
        "train_examples": train_data.num_examples, "steps": steps, "train_seconds": round(seconds, 2),
        **(evaluation.to_json() if evaluation is not None else {}),
    }  # fmt: skip
    with atomic_dir(out) as tmp:
        get_predictor(learner.model, preproc).save(tmp)
        save_json(tmp / "report.json", report)
        history.to_json(tmp / "history.json")
        learner.plot(str(tmp / "training_curves.png"))
        if evaluation is not None and preproc.settings.kind == "multiclass":
            evaluation.plot_confusion(str(tmp / "confusion_matrix.png"))
    print(f"saved the predictor, report.json and plots to {out}")
    return report


def evaluate(predictor: str, data: str, *, text_column: str = "text", label_column: str = "label",
             text_pair_column: str | None = None) -> Evaluation:  # fmt: skip
    """Report and confusion matrix of a saved predictor on a labelled table (printed and returned)."""
    loaded = load_predictor(predictor)
    texts, labels, pairs = _columns(data, text_column, label_column, text_pair_column, loaded.settings.kind)
    targets = encode_labels(labels, loaded.settings)
    items = texts if pairs is None else list(zip(texts, pairs, strict=True))
    result = evaluate_logits(loaded.logits(items), _array(targets), loaded.settings)
    print(result)
    return result


def _array(values: list[Any]) -> Any:
    import numpy as np

    return np.asarray(values)


def predict(predictor: str, texts: list[str] | None = None, file: str | None = None, *,
            text_column: str = "text", encoding: str = "utf-8", stdin: IO[Any] | None = None,
            stdout: TextIO | None = None, progress: bool | None = None) -> int:  # fmt: skip
    """Classify `texts`, else the texts of `file` (.txt: one per line; or a table's `text_column`),
    else one text per line of stdin; write one JSON object per input, in order, to stdout, as
    results are ready (a blank or undecodable line gets an error record naming its line number).
    Returns the number of records written."""
    loaded = load_predictor(predictor)
    out = stdout or sys.stdout
    if texts:
        items = (text_item(i, t) for i, t in enumerate(texts, start=1))
        return stream_predictions(loaded, items, out, progress=progress, number_key="text_number")
    if file is None:
        items = read_lines(stdin or sys.stdin, encoding)
        return stream_predictions(loaded, items, out, progress=progress)
    if Path(file).suffix.lower() != ".txt":
        column = read_table(file, text_column, encoding=encoding)[text_column]
        items = (text_item(i, t, f"{file} row") for i, t in enumerate(to_list(column), start=1))
        return stream_predictions(loaded, items, out, progress=progress, number_key="row")
    if not Path(file).is_file():
        raise FileNotFoundError(f"text file not found: {file}")
    with open(file, "rb") as f:
        return stream_predictions(loaded, read_lines(f, encoding, file), out, progress=progress)


def _finetune_command(args: argparse.Namespace) -> int:
    classes = args.classes.split(",") if args.classes else None
    options = {k: v for k, v in vars(args).items() if k not in ("command", "func", "classes", "no_progress")}
    finetune(**options, classes=classes, progress=not args.no_progress)
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    evaluate(args.predictor, args.data, text_column=args.text_column, label_column=args.label_column,
             text_pair_column=args.text_pair_column)  # fmt: skip
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    predict(args.predictor, args.texts, args.file, text_column=args.text_column, encoding=args.encoding)
    return 0


def add_commands(subparsers: Any) -> None:
    """Register finetune, evaluate and predict with the `bertkit` CLI."""
    p = subparsers.add_parser("finetune", help="fine-tune a classifier on a CSV/TSV/JSONL/Parquet table",
                              description=finetune.__doc__)  # fmt: skip
    p.add_argument("--model", required=True, help="model name or folder (e.g. all-MiniLM-L6-v2)")
    p.add_argument("--train", required=True, help="training table (.csv .tsv .jsonl .parquet)")
    p.add_argument("--valid", help="validation table (same columns)")
    p.add_argument("--out", required=True, help="predictor folder to write")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--text-pair-column", help="second text of sentence-pair tasks")
    p.add_argument("--classes", help="comma-separated class names (fixes their order)")
    p.add_argument("--task", choices=("multiclass", "multilabel", "regression"),
                   help=f"default: inferred; multilabel labels are joined by {MULTILABEL_SEPARATOR!r}")
    p.add_argument("--maxlen", type=int, default=128, help="tokens per text (or window)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--schedule", choices=SCHEDULES, default="linear")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction (<1) or number of warmup steps")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--eval-every", type=int, help="evaluate every N steps (default: each epoch)")
    p.add_argument("--early-stopping", type=int, help="patience in evaluations; restores the best weights")
    p.add_argument("--checkpoint-dir", help="write resumable checkpoints here")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    p.add_argument("--force-resume", action="store_true",
                   help="resume even though the data or options differ from the checkpoints'")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps (smoke runs)")
    p.add_argument("--long-text", choices=POLICIES, default="truncate")
    p.add_argument("--stride", type=int, help="overlap of sliding windows in tokens (default maxlen/4)")
    p.add_argument("--class-weights", choices=("balanced",), help="re-weight classes by inverse frequency")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--encoding", default="utf-8", help="text encoding of --train/--valid (default utf-8)")
    p.set_defaults(func=_finetune_command)

    e = subparsers.add_parser("evaluate", help="report + confusion matrix of a predictor on labelled data")
    e.add_argument("--predictor", required=True, help="folder written by finetune or Predictor.save")
    e.add_argument("--data", required=True, help="labelled table (.csv .tsv .jsonl .parquet)")
    e.add_argument("--text-column", default="text")
    e.add_argument("--label-column", default="label")
    e.add_argument("--text-pair-column")
    e.set_defaults(func=_evaluate_command)

    r = subparsers.add_parser("predict", help="classify texts; JSON lines out")
    r.add_argument("--predictor", required=True, help="folder written by finetune or Predictor.save")
    r.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    r.add_argument("--file", help=".txt (one text per line) or a table with --text-column")
    r.add_argument("--text-column", default="text")
    r.add_argument("--encoding", default="utf-8", help="encoding of --file / stdin (default utf-8)")
    r.set_defaults(func=_predict_command)
