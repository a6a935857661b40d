"""`bertkit <command>`: a thin shell over the library's typed functions."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

# Modules that add sub-commands: each has `add_commands(subparsers)`.
COMMAND_MODULES = (
    "bertkit.api.feature_commands", "bertkit.api.commands", "bertkit.api.glue", "bertkit.pretrain.commands",
    "bertkit.distill.commands", "bertkit.export", "bertkit.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description="BERT-family encoders: pre-train, fine-tune, predict.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


# Bad input of every kind ends in one line naming the problem and its place, never a traceback;
# anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in COMMAND_MODULES:  # modules may accept older spellings of their commands
        rewrite = getattr(sys.modules.get(name), "rewrite_argv", None)
        argv = rewrite(argv) if rewrite else argv
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        print(f"bertkit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bertkit {args.command}: interrupted. {interruption_advice(args)}".rstrip(), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away (`bertkit predict ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def interruption_advice(args: argparse.Namespace) -> str:
    """Where the newest checkpoint of an interrupted run is, and the command that continues it."""
    if getattr(args, "checkpoint_dir", None):
        root, how = Path(args.checkpoint_dir), "rerun the same command with --resume to continue"
    elif getattr(args, "pretrain_command", None) == "run":
        root, how = Path(args.out) / "checkpoints", "rerun the same command to continue"
    elif args.command == "finetune":
        return "No checkpoints were kept: pass --checkpoint-dir to make a run resumable."
    else:
        return ""
    steps = [p for p in root.rglob("step-*") if p.is_dir() and not p.name.endswith(".tmp")]
    if not steps:
        return f"No checkpoint was written yet in {root}; a rerun starts from the beginning."
    newest = max(steps, key=lambda p: (p.stat().st_mtime, p.name))
    return f"The last checkpoint is {newest}; {how}."


def _one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split())


if __name__ == "__main__":
    sys.exit(main())
