"""`bertkit <command>`: a thin shell over the library's typed functions."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add sub-commands: each has `add_commands(subparsers)`.
COMMAND_MODULES = (
    "bertkit.api.feature_commands", "bertkit.api.commands", "bertkit.api.glue", "bertkit.pretrain.commands",
    "bertkit.distill.commands", "bertkit.export", "bertkit.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description="BERT-family encoders: pre-train, fine-tune, predict.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.add_commands(subparsers)
    return parser


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
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"bertkit {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
