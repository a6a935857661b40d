"""CLI flags generated from a typed function's signature: every option and default is written once.

`add_options(parser, func)` adds one flag per parameter (`batch_size` -> `--batch-size`), taking
the type, default and choices from the annotations (`Literal[...]` gives choices, `bool` gives
`--x/--no-x`, `list[...]` takes several values, `X | None` an optional X) and the help text from
the docstring's "Args:" section. `call(func, args)` calls the function with the parsed values.
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

_ARG_LINE = re.compile(r"^    (\w+):\s*(.*)$")  # "    name: help", at the section's indent


def option_help(func: Callable[..., Any]) -> dict[str, str]:
    """`{parameter: help}` from a Google-style "Args:" section (indented continuation lines joined)."""
    doc = inspect.getdoc(func) or ""
    helps: dict[str, str] = {}
    current = None
    for line in doc.partition("Args:")[2].splitlines():
        if line and not line.startswith(" "):
            break  # the next section
        match = _ARG_LINE.match(line)
        if match:
            current = match.group(1)
            helps[current] = match.group(2).strip()
        elif current and line.strip():
            helps[current] += " " + line.strip()
    return helps


def _unwrap_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _scalar(hint: Any) -> dict[str, Any]:
    if typing.get_origin(hint) is Literal:
        values = typing.get_args(hint)
        return {"choices": values, "type": type(values[0])}
    if hint in (int, float, str):
        return {"type": hint}
    return {"type": str}


def add_options(parser: argparse.ArgumentParser, func: Callable[..., Any], *,
                skip: Sequence[str] = (), positional: Sequence[str] = (),
                help: dict[str, str] | None = None) -> None:  # fmt: skip
    """Add a flag for every parameter of `func` except `skip`; `positional` ones become arguments."""
    hints = typing.get_type_hints(func)
    helps = option_help(func) | (help or {})
    for name, param in inspect.signature(func).parameters.items():
        if name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = _unwrap_optional(hints.get(name, str))
        required = param.default is inspect.Parameter.empty
        kwargs: dict[str, Any] = {"help": helps.get(name)}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) in (list, tuple, Sequence, typing.get_origin(Sequence[int])):
            args = typing.get_args(hint)
            kwargs |= _scalar(args[0] if args else str) | {"nargs": "+"}
        else:
            kwargs |= _scalar(hint)
        if not required:
            kwargs["default"] = param.default
            if kwargs["help"] is not None and param.default not in (None, False, True):
                kwargs["help"] += f" (default: {param.default})"
        if name in positional:
            if not required:
                kwargs["nargs"] = kwargs.get("nargs", "?") if kwargs.get("nargs") != "+" else "*"
            parser.add_argument(name, **kwargs)
        else:
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, dest=name, required=required, **kwargs)


def call(func: Callable[..., Any], args: argparse.Namespace, **extra: Any) -> Any:
    """Call `func` with the parsed values of its parameters (plus `extra`)."""
    names = inspect.signature(func).parameters
    values = {k: v for k, v in vars(args).items() if k in names}
    return func(**(values | extra))
