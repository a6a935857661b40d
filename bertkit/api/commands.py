"""`bertkit finetune | evaluate | predict` for every registered task: thin shells over the typed
functions `finetune`, `evaluate` and `predict` defined here, which the Python API can call directly.

`bertkit finetune TASK ...` (TASK defaults to classification) takes the flags of `finetune`, of the
task's settings (its dataclass fields) and of the task's file reader (`Task.read`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Literal, TextIO

from bertkit.api.learner import get_learner
from bertkit.api.predictor import get_predictor, load_predictor
from bertkit.api.preprocessor import Preprocessor
from bertkit.api.streaming import Item, read_lines, stream_predictions, text_item
from bertkit.cli_options import add_options, call, option_names
from bertkit.io import atomic_dir, save_json
from bertkit.tasks.registry import TASKS, task_class
from bertkit.tasks.report import Evaluation
from bertkit.train.outputs import check_finetune
from bertkit.train.schedules import ScheduleName


def finetune(
    model: str, train: str, out: str, valid: str | None = None, *, task: str = "classification",
    settings: dict[str, Any] | None = None, read_options: dict[str, Any] | None = None,
    epochs: int = 1, lr: float = 5e-5, batch_size: int = 32, schedule: ScheduleName = "linear",
    warmup: float = 0.1, seed: int = 42, eval_every: int | None = None, early_stopping: int | None = None,
    checkpoint_dir: str | None = None, resume: bool = False, max_steps: int | None = None,
    class_weights: Literal["balanced"] | None = None, bf16: bool = False, grad_accum: int = 1,
    progress: bool = True, force_resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune `model` on a labelled file, validate, and write the predictor folder `out`
    (atomically: an existing `out` is replaced only when everything succeeded) with report.json,
    history.json, training_curves.png (and confusion_matrix.png for single-label classification)
    beside the predictor files. All inputs, options and `out` are validated before any training
    starts; `out` may only be a new or empty folder or an earlier predictor, never one holding an
    input.

    Args:
        model: model name or folder (e.g. all-MiniLM-L6-v2)
        train: labelled training file
        out: predictor folder to write
        valid: labelled validation file (same format)
        task: registered task name
        settings: the task's settings (its dataclass fields), e.g. {"maxlen": 64}
        read_options: options of the task's file reader, e.g. {"text_column": "sentence"}
        epochs: passes over the training data
        lr: peak learning rate
        batch_size: examples per optimizer step (per micro-batch with --grad-accum)
        schedule: learning-rate schedule
        warmup: fraction (<1) or number of warmup steps
        seed: random seed (head initialisation, data order, dropout)
        eval_every: evaluate every N steps (default: each epoch)
        early_stopping: patience in evaluations; restores the best weights
        checkpoint_dir: write resumable checkpoints here
        resume: continue from the newest checkpoint in --checkpoint-dir
        max_steps: stop after N optimizer steps (smoke runs)
        class_weights: classification: re-weight classes by inverse frequency
        bf16: bfloat16 autocast
        grad_accum: micro-batches per optimizer step
        progress: show a progress bar
        force_resume: resume even though the data or options differ from the checkpoints'
    """
    check_finetune(model, train, out, valid, checkpoint_dir=checkpoint_dir, resume=resume,
                   epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, warmup=warmup,
                   grad_accum=grad_accum, eval_every=eval_every, early_stopping=early_stopping)
    task_obj = task_class(task)(**(settings or {}))
    x, y = _read(task_obj, train, read_options, labelled=True)
    val = _read(task_obj, valid, read_options, labelled=True) if valid else None
    preproc = Preprocessor(model, task_obj, batch_size)
    train_data = preproc.preprocess_train(x, y)
    val_data = preproc.preprocess_test(*val) if val else None
    loss_options = {"class_weights": class_weights} if class_weights else {}
    learner = get_learner(preproc.get_model(seed), train_data, val_data, batch_size, **loss_options)
    start = time.perf_counter()
    history = learner.train(
        lr, epochs, schedule=schedule, warmup=warmup, seed=seed, eval_every=eval_every,
        early_stopping=early_stopping, restore_best=bool(early_stopping and val_data),
        checkpoint_dir=checkpoint_dir, resume=resume, max_steps=max_steps, bf16=bf16,
        grad_accum=grad_accum, progress=progress, force_resume=force_resume,
    )
    seconds = time.perf_counter() - start
    evaluation = learner.report() if val_data is not None else None
    steps = max((r["step"] for r in history.records), default=0)
    report = {
        "model": model, "task": task_obj.name, "settings": task_obj.to_json(), "labels": task_obj.labels,
        "train_examples": train_data.num_examples, "steps": steps, "train_seconds": round(seconds, 2),
        **(evaluation.to_json() if evaluation is not None else {}),
    }
    with atomic_dir(out) as tmp:
        get_predictor(learner.model, preproc).save(tmp)
        save_json(tmp / "report.json", report)
        history.to_json(tmp / "history.json")
        learner.plot(str(tmp / "training_curves.png"))
        if evaluation is not None and evaluation.has_confusion_plot():
            evaluation.plot_confusion(str(tmp / "confusion_matrix.png"))
    print(f"saved the predictor, report.json and plots to {out}")
    return report


def _read(task: Any, path: str, options: dict[str, Any] | None, *, labelled: bool) -> tuple[list, list | None]:
    examples, targets = task.read(path, **(options or {}))
    if labelled and targets is None:
        raise ValueError(f"{path} has no labels for the {task.name} task")
    return examples, targets


def evaluate(predictor: str, data: str, *, predictions: str | None = None,
             read_options: dict[str, Any] | None = None) -> Evaluation:
    """The task's report of a saved predictor on a labelled file (printed and returned).

    Args:
        predictor: folder written by finetune or Predictor.save
        data: labelled file in the task's format
        predictions: write the predictions here in the task's standard format (qa: the official
            SQuAD JSON, question id -> answer)
        read_options: options of the task's file reader, e.g. {"text_column": "sentence"}
    """
    loaded = load_predictor(predictor)
    examples, targets = _read(loaded.task, data, read_options, labelled=True)
    result = loaded.evaluate(examples, targets)
    print(result)
    if predictions is not None:
        if result.predictions is None:
            raise ValueError(f"the {loaded.task.name} task has no standard predictions file format")
        save_json(predictions, result.predictions)
        print(f"wrote the predictions to {predictions}")
    return result


def predict(predictor: str, texts: list[str] | None = None, file: str | None = None, *,
            text_column: str = "text", encoding: str = "utf-8", stdin: IO[Any] | None = None,
            stdout: TextIO | None = None) -> int:
    """Predict `texts`, else the examples of `file` (.txt: one per line; else a file in the task's
    format), else one example per line of stdin; write one JSON object per input, in order, to
    stdout as results are ready (a blank or undecodable line gets an error record naming its
    line number). Returns the number of records written.

    Args:
        predictor: folder written by finetune or Predictor.save
        texts: inputs to predict (default: --file, else stdin), one example each
        file: .txt (one example per line) or a file in the task's format
        text_column: the text column of a table (classification)
        encoding: text encoding of --file or stdin (e.g. latin-1)
    """
    loaded = load_predictor(predictor)
    out = stdout or sys.stdout
    if texts:
        items = (text_item(i, t) for i, t in enumerate(texts, start=1))
        return stream_predictions(loaded, items, out, number_key="text_number")
    if file is None:
        return stream_predictions(loaded, read_lines(stdin or sys.stdin, encoding), out)
    if Path(file).suffix.lower() != ".txt":
        wanted = {"text_column": text_column, "label_column": None, "encoding": encoding}  # no labels needed
        options = {k: v for k, v in wanted.items() if k in option_names(loaded.task.read)}
        examples = loaded.task.read(file, **options)[0]
        items = (Item(i, example) for i, example in enumerate(examples, start=1))
        return stream_predictions(loaded, items, out, number_key="row", parse=False)
    if not Path(file).is_file():
        raise FileNotFoundError(f"text file not found: {file}")
    with open(file, "rb") as f:
        return stream_predictions(loaded, read_lines(f, encoding, file), out)


# ----------------------------------------------------------------------------------- the CLI
_GROUPS = ("settings", "read_options")


def _finetune_command(args: argparse.Namespace) -> int:
    cls = task_class(args.task)
    settings = {k: getattr(args, k) for k in option_names(cls) if hasattr(args, k)}
    read_options = {k: getattr(args, k) for k in option_names(cls.read) if hasattr(args, k)}
    call(finetune, args, settings=settings, read_options=read_options)
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    loaded_task = _folder_task(args.predictor)
    read_options = {k: getattr(args, k) for k in option_names(task_class(loaded_task).read) if hasattr(args, k)}
    evaluate(args.predictor, args.data, predictions=args.predictions, read_options=read_options)
    return 0


def _folder_task(folder: str) -> str:
    meta = Path(folder) / "bertkit.json"
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("task", "classification")
    except (OSError, ValueError, AttributeError):
        return "classification"  # load_predictor then says what is wrong with the folder


def _predict_command(args: argparse.Namespace) -> int:
    call(predict, args)
    return 0


def _add_reader_options(parser: argparse.ArgumentParser) -> None:
    """The options of every task's reader, each once."""
    seen = {"path"}
    for name in TASKS:
        read = task_class(name).read
        add_options(parser, read, skip=[o for o in option_names(read) if o in seen])
        seen.update(option_names(read))


def rewrite_argv(argv: list[str]) -> list[str]:
    """`finetune` without a task name means classification; `--task NAME` may name the task, and
    `--task multiclass|multilabel|regression` (the classification kind) stays accepted."""
    if not argv or argv[0] != "finetune":
        return argv
    rest = list(argv[1:])
    task = None
    if "--task" in rest and rest.index("--task") + 1 < len(rest):
        i = rest.index("--task")
        value = rest[i + 1]
        if value in TASKS:
            task = value
            del rest[i : i + 2]
        elif value in ("multiclass", "multilabel", "regression"):
            rest[i] = "--kind"
    if task is None and (not rest or rest[0] not in TASKS) and not {"-h", "--help"} & set(rest[:1]):
        task = "classification"
    return ["finetune", *([task] if task else []), *rest]


def add_commands(subparsers: Any) -> None:
    """Register finetune, evaluate and predict with the `bertkit` CLI."""
    p = subparsers.add_parser("finetune", help="fine-tune a model on a labelled file (any task)",
                              description=__doc__)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    for name in TASKS:
        cls = task_class(name)
        t = tasks.add_parser(name, help=(cls.__doc__ or "").splitlines()[0], description=finetune.__doc__.split("\n\n")[0])
        add_options(t, finetune, skip=("task", *_GROUPS))
        add_options(t, cls, aliases={"labels": ["--classes"]})
        add_options(t, cls.read, skip=("path",))
        t.set_defaults(func=_finetune_command)

    e = subparsers.add_parser("evaluate", help="the task's report of a predictor on labelled data")
    add_options(e, evaluate, skip=("read_options",))
    _add_reader_options(e)  # the predictor's task takes the ones its reader knows
    e.set_defaults(func=_evaluate_command)

    r = subparsers.add_parser("predict", help="predict new inputs; JSON lines out")
    add_options(r, predict, skip=("stdin", "stdout"), positional=("texts",))
    r.set_defaults(func=_predict_command)
