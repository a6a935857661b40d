"""The `transformers` question-answering pipeline, for equality tests on the same weights.

transformers 5 removed `pipeline("question-answering")`; where it is gone, this runs the 4.x
pipeline's steps around transformers' own pieces: the fast tokenizer's overflowing windows,
`AutoModelForQuestionAnswering`, and `select_starts_ends` (kept, unchanged, in the
document-question-answering pipeline), then the same word alignment and ranking.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch


def pipeline_answers(folder: str, question: str, context: str, *, max_seq_len: int, doc_stride: int,
                     max_answer_len: int, top_k: int = 1, handle_impossible_answer: bool = False
                     ) -> list[dict[str, Any]]:
    """The pipeline's answers (best first) for one question, each {"score", "start", "end", "answer"}."""
    import transformers

    kwargs = dict(max_seq_len=max_seq_len, doc_stride=doc_stride, max_answer_len=max_answer_len, top_k=top_k,
                  handle_impossible_answer=handle_impossible_answer)
    try:
        qa = transformers.pipeline("question-answering", model=folder, tokenizer=folder)
    except (KeyError, ValueError):
        return _reassembled(folder, question, context, **kwargs)
    out = qa(question=question, context=context, **kwargs)
    return out if isinstance(out, list) else [out]


@functools.lru_cache(maxsize=4)
def _load(folder: str) -> tuple[Any, Any]:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModelForQuestionAnswering.from_pretrained(folder).eval()


def _reassembled(folder: str, question: str, context: str, *, max_seq_len: int, doc_stride: int,
                 max_answer_len: int, top_k: int, handle_impossible_answer: bool) -> list[dict[str, Any]]:
    from transformers.pipelines.document_question_answering import select_starts_ends

    tokenizer, model = _load(folder)
    enc = tokenizer(text=question, text_pair=context, truncation="only_second", max_length=max_seq_len,
                    stride=doc_stride, return_token_type_ids=True, return_overflowing_tokens=True,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    min_null_score, answers = 1000000, []
    for span in range(len(enc["input_ids"])):
        ids = enc["input_ids"][span]
        p_mask = np.array([tok != 1 for tok in enc.sequence_ids(span)], dtype=np.int64)
        p_mask[np.array(ids) == tokenizer.cls_token_id] = 0  # [CLS] stays: it means "no answer"
        inputs = {k: torch.tensor([enc[k][span]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            out = model(**inputs)
        starts, ends, scores, min_null_score = select_starts_ends(
            out.start_logits.numpy(), out.end_logits.numpy(), p_mask, inputs["attention_mask"].numpy(),
            min_null_score, top_k, handle_impossible_answer, max_answer_len)
        encoding = enc[span]
        for s, e, score in zip(starts, ends, scores, strict=True):
            try:  # the pipeline's get_indices(align_to_words=True)
                start = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
                end = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
            except Exception:
                start, end = encoding.offsets[s][0], encoding.offsets[e][1]
            answers.append({"score": score.item(), "start": start, "end": end, "answer": context[start:end]})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
