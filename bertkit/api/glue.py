"""`bertkit glue`: the BERT paper's GLUE recipe on one task — fine-tune with each learning rate,
keep the one with the best dev score, print the dev metrics, write the leaderboard's test files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bertkit.api.learner import get_learner
from bertkit.api.predictor import Predictor
from bertkit.api.preprocessor import Preprocessor
from bertkit.cli_options import add_options, call
from bertkit.io import atomic_dir, save_json
from bertkit.tasks.base import TaskData
from bertkit.tasks.classification import ClassificationTask
from bertkit.tasks.glue import (
    GlueSplit,
    GlueTask,
    glue_metrics,
    glue_task,
    read_glue,
    write_leaderboard,
)

PAPER_LRS = [5e-5, 4e-5, 3e-5, 2e-5]


def glue(task: str, data_dir: str, model: str, *, out: str = "glue-results", lrs: list[float] | None = None,
         epochs: int = 3, batch_size: int = 32, maxlen: int = 128, warmup: float = 0.1, seed: int = 42,
         max_steps: int | None = None, limit: int | None = None, dev_limit: int | None = None,
         save_predictor: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run the paper's GLUE recipe on one task and write `out` (atomically): results.json, the
    leaderboard's prediction file(s) for the test set, and the best run's predictor.

    Args:
        task: CoLA, SST-2, MRPC, STS-B, QQP, MNLI (matched and mismatched), QNLI, RTE or WNLI
        data_dir: the task's folder of GLUE TSV files (or the GLUE folder holding it)
        model: model name or folder
        out: folder to write
        lrs: learning rates to try; the best on dev is kept (default: 5e-5 4e-5 3e-5 2e-5)
        epochs: passes over the training data
        batch_size: examples per step
        maxlen: tokens per text or pair
        warmup: fraction of the steps with a rising learning rate
        seed: random seed (head initialisation, data order, dropout) of every run
        max_steps: stop each run after N steps (smoke runs)
        limit: train on the first N training rows only (smoke runs)
        dev_limit: score the first N rows of each dev file only (smoke runs)
        save_predictor: also save the best run as a predictor folder (out/predictor)
        progress: show progress bars
    """
    spec = glue_task(task)
    folder = _task_folder(spec, Path(data_dir))
    train = _first(read_glue(spec, folder / "train.tsv"), limit)
    devs = {name: _first(read_glue(spec, folder / name), dev_limit) for name in spec.dev}
    tests = {name: read_glue(spec, folder / name, labelled=False)
             for name, _ in spec.leaderboard_files() if (folder / name).is_file()}
    settings = ClassificationTask(kind="regression" if spec.regression else "multiclass",
                                  labels=list(spec.labels), maxlen=maxlen)
    preproc = Preprocessor(model, settings, batch_size)
    train_data = preproc.preprocess_train(train.examples(), train.labels)
    dev_data = {name: preproc.preprocess_test(split.examples(), split.labels) for name, split in devs.items()}
    runs, best = [], None
    for lr in lrs or PAPER_LRS:
        learner = get_learner(preproc.get_model(seed), train_data, batch_size=batch_size)
        start = time.perf_counter()
        learner.train(lr, epochs, warmup=warmup, seed=seed, max_steps=max_steps, progress=progress)
        scores = {name: _dev_scores(spec, learner, data, devs[name]) for name, data in dev_data.items()}
        run = {"lr": lr, "train_seconds": round(time.perf_counter() - start, 2), "dev": scores}
        runs.append(run)
        print(f"{spec.name} lr {lr:g}: " + "; ".join(f"{n} {_format(s)}" for n, s in scores.items()))
        if best is None or _key(spec, run) > _key(spec, best[0]):
            best = (run, learner.model)
    assert best is not None
    run, best_model = best
    result = {"task": spec.name, "model": model, "train_examples": len(train.texts), "runs": runs,
              "best_lr": run["lr"], "dev": run["dev"], "test_files": {}}
    predictor = Predictor(best_model, preproc.tokenizer, settings, batch_size)
    _write_out(Path(out), spec, predictor, tests, result, save_predictor)
    print(f"{spec.name} best lr {run['lr']:g}: " + "; ".join(f"{n} {_format(s)}" for n, s in run["dev"].items()))
    return result


def _task_folder(spec: GlueTask, folder: Path) -> Path:
    """`folder` itself when it holds train.tsv, else its subfolder named after the task."""
    for candidate in (folder, folder / spec.name):
        if (candidate / "train.tsv").is_file():
            return candidate
    raise FileNotFoundError(f"no {spec.name} train.tsv in {folder} or {folder / spec.name}")


def _first(split: GlueSplit, n: int | None) -> GlueSplit:
    if n is None:
        return split
    return GlueSplit(split.texts[:n], None if split.pairs is None else split.pairs[:n],
                     None if split.labels is None else split.labels[:n], split.ids[:n])


def _dev_scores(spec: GlueTask, learner: Any, data: TaskData, split: GlueSplit) -> dict[str, float]:
    predicted = learner.task.decode(learner.outputs(data), data)
    return {k: round(v, 4) for k, v in glue_metrics(spec, split.labels, predicted).items()}


def _key(spec: GlueTask, run: dict[str, Any]) -> float:
    """The score the learning rate is chosen by: the task's first metric on its first dev file."""
    return run["dev"][spec.dev[0]][spec.metrics[0]]


def _format(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in scores.items())


def _write_out(out: Path, spec: GlueTask, predictor: Predictor, tests: dict[str, GlueSplit],
               result: dict[str, Any], save_predictor: bool) -> None:
    with atomic_dir(out) as tmp:
        for test_name, file_name in spec.leaderboard_files():
            if test_name not in tests:
                continue  # a data folder without test files still gets its dev figures
            split = tests[test_name]
            write_leaderboard(tmp / file_name, spec, split.ids, predictor.predict(split.examples()))
            result["test_files"][test_name] = file_name
        if save_predictor:
            predictor.save(tmp / "predictor")
        save_json(tmp / "results.json", result)
    print(f"wrote {', '.join(result['test_files'].values()) or 'no test predictions'} and results.json to {out}")


def add_commands(subparsers: Any) -> None:
    """Register `bertkit glue`."""
    parser = subparsers.add_parser("glue", help="the BERT paper's GLUE recipe on one task",
                                   description=glue.__doc__.split("\n\n")[0])
    add_options(parser, glue)
    parser.set_defaults(func=_glue_command)


def _glue_command(args: Any) -> int:
    call(glue, args)
    return 0
