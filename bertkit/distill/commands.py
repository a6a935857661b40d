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


def add_commands(subparsers: Any) -> None:
    """Register `bertkit distill` and its sub-commands."""
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
