"""The PyTorch floor: pyproject.toml, the import-time check and the installed torch agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertkit._torch_floor import TORCH_FLOOR, check_torch, version_tuple

ROOT = Path(__file__).resolve().parents[1]


def pyproject_torch_range() -> tuple[tuple[int, int], int]:
    """(floor, major bound) of the torch requirement in pyproject.toml, e.g. ((2, 7), 3)."""
    # a regular expression, not tomllib: that needs Python 3.11 and bertkit supports 3.10
    (spec,) = re.findall(r'^\s*"(torch\b[^"]*)",?\s*$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    floor = re.search(r">=\s*(\d+)\.(\d+)", spec)
    ceiling = re.search(r"<\s*(\d+)", spec)
    assert floor and ceiling, f"torch requirement {spec!r} needs a floor and an upper bound"
    return (int(floor[1]), int(floor[2])), int(ceiling[1])


def test_installed_torch_satisfies_pyproject():
    floor, ceiling = pyproject_torch_range()
    assert floor <= version_tuple(torch.__version__) and version_tuple(torch.__version__)[0] < ceiling


def test_import_check_uses_the_pyproject_floor():
    assert pyproject_torch_range()[0] == TORCH_FLOOR


@pytest.mark.parametrize(("version", "parsed"), [("2.13.0+cpu", (2, 13)), ("2.7.1", (2, 7)),
                                                  ("2.8.0a0+git1234", (2, 8)), ("2.10.0.dev20250101", (2, 10))])
def test_version_strings(version, parsed):
    assert version_tuple(version) == parsed


def test_too_old_torch_is_refused_with_install_advice():
    older = f"{TORCH_FLOOR[0]}.{TORCH_FLOOR[1] - 1}.0+cpu"
    with pytest.raises(ImportError, match=rf"needs PyTorch >= {TORCH_FLOOR[0]}\.{TORCH_FLOOR[1]}.*{re.escape(older)}.*"
                                          r"download\.pytorch\.org/whl/cpu"):
        check_torch(older)
    check_torch(f"{TORCH_FLOOR[0]}.{TORCH_FLOOR[1]}.0")  # the floor itself is fine


def test_import_bertkit_refuses_an_old_torch():
    """End to end: `import bertkit` under a torch that reports an older version fails at once."""
    code = "import torch; torch.__version__ = '2.1.2'; import bertkit"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImportError: bertkit needs PyTorch >= " in result.stderr and "whl/cpu" in result.stderr
