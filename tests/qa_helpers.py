"""Generated SQuAD v2.0 data that a tiny model learns in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_FILLER = ["river", "stone", "market", "winter", "garden", "letter", "window", "silver", "forest", "candle"]
_CODES = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]


def code_squad(path: Path, n: int, seed: int) -> Path:
    """A SQuAD v2.0 file of generated questions: contexts of filler words, two thirds of which say
    "the code is COLOUR" somewhere (the answer); the others have no code (no answer)."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for i in range(n):
        words = [str(w) for w in rng.choice(_FILLER, size=int(rng.integers(8, 30)))]
        qa = {"id": f"{seed}-{i}", "question": "what is the code?", "answers": [], "is_impossible": True}
        if i % 3:
            code, cut = str(rng.choice(_CODES)), int(rng.integers(0, len(words)))
            start = len(" ".join([*words[:cut], "the", "code", "is"])) + 1
            words = [*words[:cut], "the", "code", "is", code, *words[cut:]]
            qa.update(answers=[{"text": code, "answer_start": start}], is_impossible=False)
        paragraphs.append({"context": " ".join(words), "qas": [qa]})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "codes", "paragraphs": paragraphs}]}))
    return path
