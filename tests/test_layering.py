"""The floors of docs/architecture.md hold: no module imports one on a higher floor (lazy imports
included), and module-level imports never run in a circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bertkit"

# (module prefix, floor), the longest matching prefix wins; 0 is the bottom floor
FLOORS = [
    ("bertkit.io", 0), ("bertkit.hub", 0), ("bertkit.tokenizer", 0), ("bertkit.tokenizer_files", 0),
    ("bertkit.data", 0), ("bertkit.plotting", 0), ("bertkit._version", 0), ("bertkit._torch_floor", 0),
    ("bertkit.families", 1), ("bertkit.config", 1), ("bertkit.model", 1), ("bertkit.precision", 1),
    ("bertkit.train", 2), ("bertkit.pretrain", 2), ("bertkit.distill", 2),
    ("bertkit.tasks", 3), ("bertkit.distill.task", 3),
    ("bertkit.api", 4), ("bertkit.cli", 4), ("bertkit.cli_options", 4), ("bertkit.serve", 4),
    ("bertkit.export", 4), ("bertkit.pretrain.commands", 4), ("bertkit.distill.facade", 4),
    ("bertkit.distill.commands", 4), ("bertkit", 4),
]


def floor(module: str) -> int:
    matches = [(len(prefix), level) for prefix, level in FLOORS
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(module-level, inside functions) imports of bertkit modules; `if TYPE_CHECKING` ones skipped."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    top, inner = set(), set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(kept + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            if target in known and target != name:
                (top if node in tree.body else inner).add(target)
    return top, inner


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    known = modules()
    top, inner = defaultdict(set), defaultdict(set)
    for name, path in known.items():
        top[name], inner[name] = imports(name, path, known)
    return top, inner


def test_no_import_runs_upward(graph) -> None:
    top, inner = graph
    upward = [f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
              for a in top for b in top[a] | inner[a]
              if floor(b) > floor(a) and not _reexport(a, b)]
    assert not upward, "\n".join(upward)


def _reexport(importer: str, imported: str) -> bool:
    # a package's __init__ may re-export its own facade modules (bertkit.distill -> distill.facade)
    return imported.startswith(importer + ".")


def test_no_import_cycle(graph) -> None:
    top, _ = graph
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(top[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(top):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    known = {"bertkit.model.x": tmp_path / "x.py", "bertkit.api.learner": tmp_path / "learner.py"}
    known["bertkit.model.x"].write_text("def f():\n    from bertkit.api import learner\n")
    _, inner = imports("bertkit.model.x", known["bertkit.model.x"], known)
    assert inner == {"bertkit.api.learner"} and floor("bertkit.api.learner") > floor("bertkit.model.x")
