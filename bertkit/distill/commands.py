"""`bertkit distill general|task`: flags generated from `distill_general` and `distill_task`."""

from __future__ import annotations

import argparse
from typing import Any

from bertkit.cli_options import add_options, call


def _general(args: argparse.Namespace) -> int:
    from bertkit.distill.general import distill_general  # imports torch: only when asked for
    from bertkit.train import is_main

    model_dir = call(distill_general, args)
    if is_main():
        print(f"distilled student -> {model_dir}")
    return 0


def _task(args: argparse.Namespace) -> int:
    from bertkit.api.commands import _folder_task
    from bertkit.cli_options import option_names
    from bertkit.distill.facade import distill_task
    from bertkit.tasks.registry import task_class

    read = task_class(_folder_task(args.teacher)).read
    call(distill_task, args, read_options={k: getattr(args, k) for k in option_names(read) if hasattr(args, k)})
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `bertkit distill` and its sub-commands."""
    from bertkit.api.commands import _add_reader_options
    from bertkit.distill.facade import distill_task
    from bertkit.distill.general import distill_general

    parser = subparsers.add_parser("distill", help="distillation: general (masked-LM) or task-specific",
                                   description="Distil a teacher into a smaller student (DistilBERT's recipe).")
    sub = parser.add_subparsers(dest="distill_command", metavar="KIND", required=True)
    general = sub.add_parser("general", help="triple-loss distillation on a prepared pre-training corpus; "
                                             "torchrun-ready",
                             description="General distillation: soft targets + MLM + cosine on prepared "
                                         "shards. Under torchrun it uses DDP.")
    add_options(general, distill_general, skip=("callbacks", "device"), positional=("data",))
    general.set_defaults(func=_general)
    task = sub.add_parser("task", help="distil a saved predictor of any task into a smaller predictor",
                          description="Task-specific distillation: soft targets at a temperature (teacher "
                                      "logits cached) plus the labels; writes an ordinary predictor folder.")
    add_options(task, distill_task, skip=("read_options",))
    _add_reader_options(task)
    task.set_defaults(func=_task)
