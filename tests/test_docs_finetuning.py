"""Every ```python block of docs/finetuning.md runs, in order, in one namespace, offline.

To stay fast, the names "all-MiniLM-L6-v2" resolve to a tiny random BERT with MiniLM's tokenizer,
and the rotten_tomatoes split is cut to its first rows. Blocks fenced ```python no-run (they need
the network) are skipped; there must be none other than those.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
from finetune_helpers import make_tiny_model

import bertkit.data.movie_reviews
import bertkit.hub
import bertkit.tokenizer

matplotlib.use("Agg")
DOC = Path(__file__).resolve().parents[1] / "docs" / "finetuning.md"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    return [(info.strip(), code) for info, code in FENCE.findall(DOC.read_text(encoding="utf-8"))]


def test_doc_has_runnable_and_network_blocks():
    kinds = [info for info, _ in _blocks()]
    assert kinds.count("") >= 4 and set(kinds) <= {"", "no-run"}


def test_runnable_blocks_execute(tmp_path, monkeypatch):
    tiny = make_tiny_model(tmp_path / "tiny")
    real_resolve, real_split = bertkit.hub.resolve, bertkit.data.movie_reviews.rotten_tomatoes_split

    def resolve(name):
        return tiny if str(name) == "all-MiniLM-L6-v2" else real_resolve(name)

    def small_split():
        train, valid = real_split()
        return train[:96], valid[:32]

    monkeypatch.setattr(bertkit.hub, "resolve", resolve)
    monkeypatch.setattr(bertkit.tokenizer, "resolve", resolve)
    monkeypatch.setattr(bertkit.data.movie_reviews, "rotten_tomatoes_split", small_split)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for info, code in _blocks():
        if info == "":
            exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 — our own documentation
    for name in ("rt_predictor", "lr_find.png", "training_curves.png", "confusion_matrix.png"):
        assert (tmp_path / name).exists(), name
    assert namespace["result"].confusion_matrix.sum() == 32
    assert len(namespace["data"]) > 1


def test_network_blocks_call_only_existing_functions():
    """The skipped blocks still call only functions that exist (a cheap guard against rot)."""
    import bertkit

    code = "\n".join(c for i, c in _blocks() if i == "no-run")
    for name in re.findall(r"ktrain\.(\w+)\(", code):
        assert hasattr(bertkit, name), name
    for name in re.findall(r"learner\.(\w+)\(", code):
        assert hasattr(bertkit.api.Learner, name), name
