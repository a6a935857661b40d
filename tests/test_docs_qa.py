"""Every ```python block of docs/qa.md runs, in order, offline: "all-MiniLM-L6-v2" resolves to a
tiny random BERT and the SQuAD file names to small generated files."""

from __future__ import annotations

import re
from pathlib import Path

from finetune_helpers import make_tiny_model
from qa_helpers import code_squad

import bertkit.hub
import bertkit.tokenizer

DOC = Path(__file__).resolve().parents[1] / "docs" / "qa.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_qa_doc_blocks_run(tmp_path, monkeypatch, capsys):
    tiny = make_tiny_model(tmp_path / "tiny")
    real_resolve = bertkit.hub.resolve

    def resolve(name):
        return tiny if str(name) == "all-MiniLM-L6-v2" else real_resolve(name)

    monkeypatch.setattr(bertkit.hub, "resolve", resolve)
    monkeypatch.setattr(bertkit.tokenizer, "resolve", resolve)
    monkeypatch.chdir(tmp_path)
    code_squad(tmp_path / "train-v1.1.json", 24, 0)
    code_squad(tmp_path / "dev-v1.1.json", 6, 1)
    blocks = FENCE.findall(DOC.read_text(encoding="utf-8"))
    assert blocks
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 — our own documentation
    out = capsys.readouterr().out
    assert "'answer':" in out and "f1:" in out
    assert (tmp_path / "squad-predictor" / "bertkit.json").is_file()
    assert namespace["reloaded"].task.name == "qa"
