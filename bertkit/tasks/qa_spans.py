"""Extractive QA in tokens: question/context windows with their training spans, and span decoding
over every window of a context (as the `transformers` question-answering pipeline decodes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertkit.tokenizer import Tokenizer

# The pipeline's value for positions that may not be part of an answer (before the softmax).
_MASKED = -10000.0


@dataclass
class Span:
    """A candidate answer: character offsets into the context and its probability score."""

    start: int
    end: int
    score: float


def truncate_questions(tokenizer: Tokenizer, questions: Sequence[str], limit: int) -> list[str]:
    """Questions cut after their first `limit` tokens (the cut falls at a token's end)."""
    enc = tokenizer(list(questions), truncation=False, return_offsets=True, return_special_tokens_mask=True)
    out = []
    for question, offsets, special in zip(questions, enc["offsets"], enc["special_tokens_mask"], strict=True):
        tokens = [o for o, s in zip(offsets, special, strict=True) if not s]
        out.append(question if len(tokens) <= limit else question[: tokens[limit - 1][1]])
    return out


def windows(tokenizer: Tokenizer, questions: list[str], contexts: list[str], *, maxlen: int,
            stride: int) -> dict[str, Any]:
    """Question + context windows of at most `maxlen` tokens, consecutive windows of one context
    sharing `stride` tokens; with offsets, word ids, sequence ids and overflow_to_sample."""
    try:
        return tokenizer(questions, contexts, max_length=maxlen, truncation="only_second",
                         stride=stride, return_overflowing=True, return_offsets=True,
                         return_word_ids=True, return_sequence_ids=True)
    except ValueError as err:
        raise ValueError(f"cannot cut contexts into windows: {err} (max_question_len limits the "
                         "question's share)") from err


def context_mask(sequence_ids: Sequence[int | None]) -> np.ndarray:
    """(seq,) bool: the tokens of the context (the second text)."""
    return np.array([s == 1 for s in sequence_ids], dtype=bool)


def answer_tokens(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None],
                  start_char: int, end_char: int) -> tuple[int, int]:
    """(start, end) token positions of an answer's characters in one window; (0, 0), the [CLS]
    token, when the answer is not wholly inside the window's part of the context."""
    ctx = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not ctx or offsets[ctx[0]][0] > start_char or offsets[ctx[-1]][1] < end_char:
        return 0, 0
    start = max(i for i in ctx if offsets[i][0] <= start_char)
    end = min(i for i in ctx if offsets[i][1] >= end_char)
    return start, max(start, end)


def window_spans(logits: np.ndarray, allowed: np.ndarray, top_k: int, max_answer_len: int
                 ) -> tuple[float, list[tuple[int, int, float]]]:
    """The null score and the `top_k` best (start token, end token, score) spans of one window.

    logits: (seq, 2) start and end logits. Probabilities are a softmax over the context tokens
    and [CLS]; a span scores p_start * p_end, ends no earlier than it starts and is at most
    `max_answer_len` tokens long; the null score is p_start * p_end of [CLS].
    """
    keep = allowed.copy()
    keep[0] = True  # [CLS] stays in the softmax: it is where "no answer" points
    start = _softmax(np.where(keep, logits[:, 0], _MASKED).astype(np.float32))
    end = _softmax(np.where(keep, logits[:, 1], _MASKED).astype(np.float32))
    null = float(start[0] * end[0])
    start[0] = end[0] = 0.0
    scores = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)  # (seq, seq)
    flat = scores.ravel()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:
        order = np.argsort(-flat)
    else:
        part = np.argpartition(-flat, top_k)[:top_k]
        order = part[np.argsort(-flat[part])]
    starts, ends = np.unravel_index(order, scores.shape)
    spans = [(int(s), int(e), float(scores[s, e])) for s, e in zip(starts, ends, strict=True)
             if allowed[s] and allowed[e]]
    return null, spans


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def char_span(extra: dict[str, Any], start: int, end: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens start..end of one window; with `align_to_words`
    they widen to the words those tokens belong to (as far as the window holds them)."""
    offsets, words = extra["offsets"], extra["word_ids"]
    if not align_to_words:
        return offsets[start][0], offsets[end][1]
    ctx = extra["context_tokens"]
    first = [i for i in ctx if words[i] == words[start]]
    last = [i for i in ctx if words[i] == words[end]]
    return offsets[first[0]][0], offsets[last[-1]][1]


def best_spans(outputs: Sequence[np.ndarray], extras: Sequence[dict[str, Any]], *, top_k: int,
               max_answer_len: int, align_to_words: bool) -> tuple[float, list[Span]]:
    """The lowest null score over one example's windows and its `top_k` best answers over all
    windows (the same characters found in two windows count once, at their best score)."""
    null = 1e6  # the pipeline's start value: larger than any probability
    found: dict[tuple[int, int], float] = {}
    for logits, extra in zip(outputs, extras, strict=True):
        window_null, spans = window_spans(logits, extra["allowed"], top_k, max_answer_len)
        null = min(null, window_null)
        for s, e, score in spans:
            key = char_span(extra, s, e, align_to_words)
            found[key] = max(found.get(key, -1.0), score)
    ranked = sorted(found.items(), key=lambda kv: -kv[1])[:top_k]
    return null, [Span(s, e, score) for (s, e), score in ranked]
