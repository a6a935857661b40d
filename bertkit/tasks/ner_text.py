"""Words of a sentence and what NER decoding does with them: splitting, windows, aggregation, merging.

A sentence given as a string is split into words at white space and around every punctuation
character (the rule of BERT's basic tokenizer and of ktrain); a list of words is taken as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

Aggregation = Literal["first", "average", "max"]
AGGREGATIONS = ("first", "average", "max")
_WORD = re.compile(r"[^\W_]+|\S")  # runs of letters and digits; any other visible character alone


@dataclass
class Sentence:
    """Words with their character spans in `text` (the original string, or the words joined by spaces)."""

    words: list[str]
    spans: list[tuple[int, int]]
    text: str


class TaggedWord(NamedTuple):
    word: str
    tag: str
    score: float
    start: int  # character offsets in the sentence's text
    end: int


def split_words(text: str) -> Sentence:
    """The documented split: words are runs of letters/digits, every other non-space character is a word."""
    matches = list(_WORD.finditer(text))
    return Sentence([m.group() for m in matches], [m.span() for m in matches], text)


def as_sentence(example: Any, index: int) -> Sentence:
    """A string (split by `split_words`) or a list of words; anything else is an error naming the example."""
    if isinstance(example, str):
        sentence = split_words(example)
        if not sentence.words:
            raise ValueError(f"example {index} has no words: {example!r}")
        return sentence
    if not isinstance(example, (list, tuple)) or not example:
        raise ValueError(f"example {index} is {type(example).__name__} {example!r}: give a string or a "
                         f"non-empty list of words")
    spans, position = [], 0
    for k, word in enumerate(example):
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"word {k} of example {index} is {word!r}: words must be non-empty strings")
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return Sentence(list(example), spans, " ".join(example))


def token_words(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int | None]:
    """The word of each token (None for special or empty tokens), by the token's last character:
    tokens never cross the spaces between words, while their start may include a space (BPE)."""
    starts = np.asarray([s for s, _ in spans])
    out: list[int | None] = []
    for start, end in offsets:
        if end <= start:
            out.append(None)
            continue
        w = int(np.searchsorted(starts, end - 1, side="right")) - 1
        out.append(w if w >= 0 and end - 1 < spans[w][1] else None)
    return out


def windows(firsts: Sequence[bool], budget: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most `budget` tokens, cut between words where a word fits,
    each overlapping the one before by about `stride` tokens."""
    n = len(firsts)
    if n <= budget:
        return [(0, n)]
    boundaries = [k for k in range(1, n) if firsts[k]]
    out, start = [], 0
    while True:
        end = start + budget
        if end >= n:
            out.append((start, n))
            return out
        fitting = [k for k in boundaries if start < k <= end]
        end = fitting[-1] if fitting else end  # a word longer than the budget is cut
        out.append((start, end))
        later = [k for k in boundaries if max(start + 1, end - stride) <= k < end]
        start = later[0] if later else end


def aggregate(probs: np.ndarray, strategy: Aggregation) -> np.ndarray:
    """One probability row for a word from its sub-tokens' rows (sub-tokens, tags), as the
    `transformers` token-classification pipeline: the first's, the mean, or the most confident."""
    if strategy == "first":
        return probs[0]
    if strategy == "average":
        return probs.mean(axis=0)
    if strategy == "max":
        return probs[int(probs.max(axis=1).argmax())]
    raise ValueError(f"unknown aggregation {strategy!r}; choose one of {AGGREGATIONS}")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _bi_type(tag: str) -> tuple[str, str]:
    if tag.startswith(("B-", "I-")):
        return tag[0], tag[2:]
    return "I", tag  # "O" and bare types group with their like


def merge_entities(words: Sequence[TaggedWord], text: str) -> list[dict[str, Any]]:
    """Runs of words of one type (a B- tag starts a new run) as entities with the mean word score
    and the character span; "O" runs are left out. The pipeline's `group_entities` rule."""
    groups: list[list[TaggedWord]] = []
    for word in words:
        bi, type_ = _bi_type(word.tag)
        if groups and bi != "B" and _bi_type(groups[-1][-1].tag)[1] == type_:
            groups[-1].append(word)
        else:
            groups.append([word])
    out = []
    for group in groups:
        type_ = _bi_type(group[0].tag)[1]
        if type_ == "O":
            continue
        start, end = group[0].start, group[-1].end
        out.append({"entity_group": type_, "score": float(np.mean([w.score for w in group])),
                    "word": text[start:end], "start": start, "end": end})
    return out
