"""CLI flags generated from a typed function's signature: every option and default is written once.

`add_options(parser, func)` adds one flag per parameter (`batch_size` -> `--batch-size`), taking
the type, default and choices from the annotations (`Literal[...]` gives choices, `bool` gives
`--x/--no-x`, `list[...]` takes several values, `X | None` an optional X) and the help text from
the docstring's "Args:" section. `call(func, args)` calls the function with the parsed values.
"""

from __future__ import annotations

import argparse
import dataclasses
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
                help: dict[str, str] | None = None, aliases: dict[str, Sequence[str]] | None = None,
                flags: dict[str, str] | None = None) -> None:
    """Add a flag for every parameter of `func` except `skip`; `positional` ones become arguments.

    `func` may be a dataclass: its fields are the parameters. List values may also be given
    comma-separated (`--labels a,b`); `aliases` adds other flag names (`{"labels": ["--classes"]}`)
    and `flags` replaces the generated one (`{"out_dir": "--out"}`), the value keeping its name.
    """
    hints = typing.get_type_hints(func)
    helps = option_help(func) | (help or {})
    for name, param in _parameters(func).items():
        if name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = _unwrap_optional(hints.get(name, str))
        required = param.default is inspect.Parameter.empty
        kwargs: dict[str, Any] = {"help": helps.get(name)}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) in (list, tuple, typing.get_origin(Sequence[int])):
            args = typing.get_args(hint)
            kwargs |= _scalar(args[0] if args else str) | {"nargs": "+", "action": _ListAction}
        else:
            kwargs |= _scalar(hint)
        if not required:
            kwargs["default"] = param.default
            if kwargs["help"] is not None and param.default is not None and not isinstance(param.default, bool):
                kwargs["help"] += f" (default: {param.default})"
        if name in positional:
            if kwargs.get("action") is _ListAction:
                kwargs["action"] = _WordsAction
            if not required:
                kwargs["nargs"] = kwargs.get("nargs", "?") if kwargs.get("nargs") != "+" else "*"
            parser.add_argument(name, **kwargs)
        else:
            names = [(flags or {}).get(name, "--" + name.replace("_", "-")), *(aliases or {}).get(name, ())]
            parser.add_argument(*names, dest=name, required=required, **kwargs)


class _ListAction(argparse.Action):
    """Collect list values; a comma-separated string value gives several items."""

    split = True

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        if not values:  # an optional positional given nothing keeps its default
            setattr(namespace, self.dest, self.default)
            return
        items = []
        for value in values:
            items.extend(value.split(",") if self.split and isinstance(value, str) else [value])
        setattr(namespace, self.dest, items)


class _WordsAction(_ListAction):
    """Positional list values stay as typed: a text (or a JSON line) may hold commas."""

    split = False


def _parameters(func: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    if dataclasses.is_dataclass(func):
        return {f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_field_default(f))
                for f in dataclasses.fields(func) if f.init and not f.metadata.get("derived")}
    return dict(inspect.signature(func).parameters)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return inspect.Parameter.empty


def option_names(func: Callable[..., Any]) -> list[str]:
    """The parameter (or dataclass field) names `add_options` makes flags of."""
    return list(_parameters(func))


def call(func: Callable[..., Any], args: argparse.Namespace, **extra: Any) -> Any:
    """Call `func` with the parsed values of its parameters (plus `extra`)."""
    names = _parameters(func)
    values = {k: v for k, v in vars(args).items() if k in names}
    return func(**(values | extra))
