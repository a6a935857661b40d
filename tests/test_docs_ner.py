"""Every ```python block of docs/ner.md runs, in order, offline: "all-MiniLM-L6-v2" resolves to a
tiny random BERT with MiniLM's tokenizer and the CoNLL files are small generated ones."""

from __future__ import annotations

import re
from pathlib import Path

from finetune_helpers import make_tiny_model
from test_ner import _toy
from test_ner_api import _write_conll

import bertkit.hub
import bertkit.tokenizer

DOC = Path(__file__).resolve().parents[1] / "docs" / "ner.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_python_blocks_execute(tmp_path: Path, monkeypatch, capsys) -> None:
    tiny = make_tiny_model(tmp_path / "tiny")
    real_resolve = bertkit.hub.resolve

    def resolve(name):
        return tiny if str(name) == "all-MiniLM-L6-v2" else real_resolve(name)

    monkeypatch.setattr(bertkit.hub, "resolve", resolve)
    monkeypatch.setattr(bertkit.tokenizer, "resolve", resolve)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conll2003").mkdir()
    _write_conll(tmp_path / "conll2003" / "eng.train", *_toy(40, seed=0))
    _write_conll(tmp_path / "conll2003" / "eng.testa", *_toy(16, seed=1))
    blocks = FENCE.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 — our own documentation
    assert (tmp_path / "ner-predictor" / "bertkit.json").is_file()
    assert namespace["reloaded"].task.name == "ner" and 0 <= namespace["f1"] <= 1
    assert "micro avg" in capsys.readouterr().out
