"""Named entities: a tag per word from the first sub-token's logits, long sentences in windows, CoNLL scores.

Tags are IOB2 (the readers convert IOB1 and BIOES). Training labels the first sub-token of each
word (the BERT paper's choice; the others are ignored by the loss), or every sub-token with
`label_all_subtokens`. A sentence longer than `maxlen` tokens is cut, between words, into windows
that overlap by `stride` tokens; each word is read from the window where it has the most context.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.tasks.base import LossFn, TaskData, model_inputs
from bertkit.tasks.ner_readers import NerFormat, read_tagged
from bertkit.tasks.ner_tags import TagScheme, entity_scores, report_text
from bertkit.tasks.ner_text import (
    AGGREGATIONS,
    Aggregation,
    Sentence,
    TaggedWord,
    aggregate,
    as_sentence,
    merge_entities,
    softmax,
    token_words,
    windows,
)
from bertkit.tasks.report import Evaluation
from bertkit.tokenizer import Tokenizer

IGNORE = -100


@dataclass
class NerTask:
    """Named entities: a tag per word (IOB2), entity-level CoNLL scores; the settings a predictor keeps.

    Args:
        tags: the tag set in output order (default: the training data's tags, O first)
        maxlen: tokens per window, start and end tokens included
        stride: tokens shared by the overlapping windows of a long sentence (default: maxlen // 4)
        label_all_subtokens: train on every sub-token of a word, not only the first
        aggregation: how a word's tag comes from its sub-tokens at prediction (as the transformers
            pipeline's strategies)
        tagger: linear fine-tunes the encoder (the paper's fine-tuning approach); bilstm trains a
            BiLSTM over the frozen encoder's top four layers (its feature-based approach)
    """

    name: ClassVar[str] = "ner"

    tags: list[str] = field(default_factory=list)  # empty: the training data's tags, "O" first
    maxlen: int = 128
    stride: int | None = None  # overlap of the windows of a long sentence; None: maxlen // 4
    label_all_subtokens: bool = False
    aggregation: Aggregation = "first"
    # "linear": fine-tune the encoder with a linear layer (the paper's fine-tuning approach);
    # "bilstm": a BiLSTM over a frozen encoder's top four layers (its feature-based approach)
    tagger: Literal["linear", "bilstm"] = "linear"

    def __post_init__(self) -> None:
        if self.maxlen < 8:
            raise ValueError(f"maxlen must be at least 8 tokens, got {self.maxlen}")
        if self.stride is not None and not 0 <= self.stride < (self.maxlen - 2) // 2:
            raise ValueError(f"stride must be in [0, {(self.maxlen - 2) // 2}) for maxlen {self.maxlen}, "
                             f"got {self.stride}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; choose one of {AGGREGATIONS}")
        if self.tagger not in ("linear", "bilstm"):
            raise ValueError(f"unknown tagger {self.tagger!r}; choose 'linear' or 'bilstm'")

    @property
    def group_by_length(self) -> bool:
        """Whether training batches group sentences of similar length. Not for the linear tagger:
        after one CoNLL-2003 epoch it scored about 3 dev F1 points lower on length-alike batches
        than on random ones (docs/ner.md); random batches are encoded packed, without padding, so
        they keep most of the speed. The BiLSTM tagger reads every layer's states, which packed
        encoding does not give, so it keeps grouped batches."""
        return self.tagger == "bilstm"

    @property
    def head(self) -> str:
        return "bilstm_tagger" if self.tagger == "bilstm" else "token_classification"

    @property
    def labels(self) -> list[str]:
        return list(self.tags)

    @property
    def num_outputs(self) -> int:
        return len(self.tags)

    def prepare(self, examples: Sequence[Any], targets: Sequence[Any]) -> None:
        if not self.tags:
            found = {t for row in targets for t in row}
            self.tags = ["O", *sorted(found - {"O"})]

    # -------------------------------------------------------------------------- features

    def featurize(self, tokenizer: Tokenizer, examples: Sequence[Any], targets: Sequence[Any] | None = None,
                  *, batch_size: int = 32) -> TaskData:
        """One feature per window of each sentence; labels at first sub-tokens (or all, if asked)."""
        if len(examples) == 0:
            raise ValueError("no sentences given: pass at least one example")
        sentences = [as_sentence(e, i) for i, e in enumerate(examples)]
        tag_ids = self._tag_ids(sentences, targets) if targets is not None else None
        enc = tokenizer([" ".join(s.words) for s in sentences], truncation=False, return_offsets=True,
                        return_special_tokens_mask=True)
        budget = self.maxlen - 2  # room for the start and end tokens
        stride = self.stride if self.stride is not None else self.maxlen // 4
        features, example_ids, extras = [], [], []
        for i, sentence in enumerate(sentences):
            ids, words = _word_tokens(enc, i, sentence)
            firsts = [w is not None and (k == 0 or words[k - 1] != w) for k, w in enumerate(words)]
            for start, end in windows(firsts, budget, min(stride, budget // 2)):
                row = [tokenizer.cls_id, *ids[start:end], tokenizer.sep_id]
                feature = {"input_ids": row, "attention_mask": [1] * len(row), "token_type_ids": [0] * len(row)}
                if tag_ids is not None:
                    feature["labels"] = [IGNORE, *self._token_labels(tag_ids[i], words, firsts, start, end), IGNORE]
                features.append(feature)
                example_ids.append(i)
                extras.append({"sentence": sentence, "start": start, "words": words[start:end],
                               "firsts": firsts[start:end], "length": len(words)})
        return TaskData(self, features, example_ids, list(examples), None if targets is None else
                        [list(t) for t in targets], tokenizer.pad_id, batch_size, extras)

    def _tag_ids(self, sentences: list[Sentence], targets: Sequence[Any]) -> list[list[int]]:
        if len(targets) != len(sentences):
            raise ValueError(f"got {len(sentences)} sentences but {len(targets)} tag sequences")
        if not self.tags:
            raise ValueError("the task has no tag set: call prepare(examples, targets) on training data first")
        index = {t: k for k, t in enumerate(self.tags)}
        out = []
        for i, (sentence, row) in enumerate(zip(sentences, targets, strict=True)):
            if isinstance(row, str) or len(row) != len(sentence.words):
                raise ValueError(f"example {i} has {len(sentence.words)} words but "
                                 f"{'a string' if isinstance(row, str) else len(row)} tags")
            unknown = [t for t in row if t not in index]
            if unknown:
                raise ValueError(f"example {i} has the tag {unknown[0]!r}, which is not one of {self.tags}")
            out.append([index[t] for t in row])
        return out

    def _token_labels(self, tags: list[int], words: list[int | None], firsts: list[bool],
                      start: int, end: int) -> list[int]:
        out = []
        for k in range(start, end):
            if firsts[k]:
                out.append(tags[words[k]])
            elif self.label_all_subtokens and words[k] is not None and k > start:
                out.append(self._inside(tags[words[k]]))
            else:
                out.append(IGNORE)
        return out

    def _inside(self, tag_id: int) -> int:
        """A word's later sub-tokens continue its entity: B-X becomes I-X when the tag set has it."""
        tag = self.tags[tag_id]
        inside = "I-" + tag[2:]
        return self.tags.index(inside) if tag.startswith("B-") and inside in self.tags else tag_id

    # -------------------------------------------------------------------------- training

    def loss_fn(self, train_data: TaskData | None = None, **options: Any) -> LossFn:
        """Cross-entropy over the labelled sub-tokens (in float32 whatever the autocast dtype)."""
        if options:
            raise ValueError(f"the NER task takes no loss options, got {sorted(options)}")

        def loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            logits = model(**model_inputs(batch)).logits.float()  # (batch, seq, tags)
            return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE), {}

        return loss

    # -------------------------------------------------------------------------- decoding

    def decode(self, outputs: list[np.ndarray], data: TaskData,
               aggregation: Aggregation | None = None) -> list[list[TaggedWord]]:
        """Each sentence's words with their tag, its probability and character offsets."""
        strategy = aggregation or self.aggregation
        by_example: list[list[int]] = [[] for _ in range(data.num_examples)]
        for f, i in enumerate(data.example_ids):
            by_example[i].append(f)
        return [self._decode_sentence([outputs[f] for f in fs], [data.extras[f] for f in fs], strategy)
                for fs in by_example]

    def _decode_sentence(self, outputs: list[np.ndarray], extras: list[dict[str, Any]],
                         strategy: Aggregation) -> list[TaggedWord]:
        sentence: Sentence = extras[0]["sentence"]
        best: dict[int, tuple[int, int]] = {}  # word -> (context, window)
        for n, extra in enumerate(extras):
            size = len(extra["words"])
            for k, (w, first) in enumerate(zip(extra["words"], extra["firsts"], strict=True)):
                context = min(k, size - 1 - k)
                if first and (w not in best or context > best[w][0]):
                    best[w] = (context, n)
        out = []
        for w, word in enumerate(sentence.words):
            start, end = sentence.spans[w]
            if w not in best:  # no sub-token at all (a character the tokenizer drops)
                out.append(TaggedWord(word, "O", 0.0, start, end))
                continue
            n = best[w][1]
            rows = [k + 1 for k, v in enumerate(extras[n]["words"]) if v == w]  # +1: the start token
            probs = aggregate(softmax(outputs[n][rows].astype(np.float64)), strategy)
            tag = int(probs.argmax())
            out.append(TaggedWord(word, self.tags[tag], float(probs[tag]), start, end))
        return out

    def records(self, outputs: list[np.ndarray], data: TaskData) -> list[dict[str, Any]]:
        """{"words", "tags", "entities"} per sentence; entities with type, score and character offsets."""
        predictions = self.decode(outputs, data)
        first = {i: f for f, i in reversed(list(enumerate(data.example_ids)))}
        return [{"words": [w.word for w in p], "tags": [w.tag for w in p],
                 "entities": merge_entities(p, data.extras[first[i]]["sentence"].text)}
                for i, p in enumerate(predictions)]

    def predict(self, predictor: Any, sentence: str | Sequence[str], *, merge_tokens: bool = False,
                return_proba: bool = False, return_offsets: bool = False,
                aggregation: Aggregation | None = None) -> list[Any]:
        """`[(word, tag), ...]` for one sentence (a string, split by the documented rule, or a list
        of words); `merge_tokens=True`: `[(entity text, type), ...]`. `return_proba` adds the score
        to each tuple; `return_offsets` gives dicts with word/entity, score, start and end instead
        (the `transformers` pipeline's keys)."""
        outputs, data = predictor.outputs([sentence])
        words = self.decode(outputs, data, aggregation)[0]
        if merge_tokens:
            found = merge_entities(words, data.extras[0]["sentence"].text)
            if return_offsets:
                return found
            return [(e["word"], e["entity_group"], *([e["score"]] if return_proba else [])) for e in found]
        if return_offsets:
            return [{"word": w.word, "entity": w.tag, "score": w.score, "start": w.start, "end": w.end}
                    for w in words]
        return [(w.word, w.tag, *([w.score] if return_proba else [])) for w in words]

    def example_from_line(self, line: str) -> str | list[str]:
        """A line of text, or a JSON list of words (a line starting with "[")."""
        text = line.strip()
        if text.startswith("["):
            try:
                words = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"a line starting with '[' must be a JSON list of words ({error.msg})") from None
            return words
        if not text:
            raise ValueError("empty line: give a sentence, or a JSON list of words")
        return text

    # -------------------------------------------------------------------------- metrics

    def metrics(self, outputs: list[np.ndarray], data: TaskData) -> dict[str, float]:
        """val_loss (labelled sub-tokens), entity-level micro precision/recall/F1, word accuracy."""
        predicted = self._predicted_tags(outputs, data)
        rows = entity_scores(self._targets(data), predicted)
        gold = [t for row in self._targets(data) for t in row]
        pred = [t for row in predicted for t in row]
        micro = rows["micro avg"]
        return {"val_loss": self._loss(outputs, data), "val_precision": micro["precision"],
                "val_recall": micro["recall"], "val_f1": micro["f1-score"],
                "val_accuracy": float(np.mean([a == b for a, b in zip(gold, pred, strict=True)]))}

    def evaluate(self, outputs: list[np.ndarray], data: TaskData,
                 class_names: Sequence[str] | None = None) -> Evaluation:
        """The entity report (per type and averaged, CoNLL rules); `class_names`, when given, must
        be the task's tags (ktrain passes `preproc.get_classes()`)."""
        if class_names is not None and sorted(class_names) != sorted(self.tags):
            raise ValueError(f"class_names {list(class_names)} are not this task's tags {self.tags}")
        rows = entity_scores(self._targets(data), self._predicted_tags(outputs, data))
        types = [k for k in rows if not k.endswith(" avg")]
        scores = self.metrics(outputs, data)
        return Evaluation(report_text(rows), rows, None, types, scores, value=scores["val_f1"])

    def _targets(self, data: TaskData) -> list[list[str]]:
        if data.targets is None:
            raise ValueError("this data set has no tags; pass tags to evaluate it")
        return data.targets

    def _predicted_tags(self, outputs: list[np.ndarray], data: TaskData) -> list[list[str]]:
        return [[w.tag for w in sentence] for sentence in self.decode(outputs, data)]

    def _loss(self, outputs: list[np.ndarray], data: TaskData) -> float:
        total, count = 0.0, 0
        for logits, feature in zip(outputs, data.features, strict=True):
            labels = torch.as_tensor(feature["labels"])
            total += float(F.cross_entropy(torch.from_numpy(logits), labels, ignore_index=IGNORE, reduction="sum"))
            count += int((labels != IGNORE).sum())
        return total / max(count, 1)

    # -------------------------------------------------------------------------- files, JSON

    @classmethod
    def read(cls, path: str, format: NerFormat = "auto", scheme: TagScheme = "iob2", repair: bool = False,
             encoding: str = "utf-8") -> tuple[list[list[str]], list[list[str]] | None]:
        """Sentences and IOB2 tags from a tagged file.

        Args:
            format: conll (word ... TAG columns, or word TAG), jsonl (tokens and tags), gmb (CSV with
                Sentence #, Word and Tag columns); auto goes by the file's extension.
            scheme: the file's tag scheme, converted to IOB2 and checked.
            repair: let a tag that cannot follow the one before start a new entity instead of failing.
            encoding: the file's text encoding.
        """
        return read_tagged(path, format, scheme=scheme, repair=repair, encoding=encoding)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NerTask:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _word_tokens(enc: dict[str, Any], i: int, sentence: Sentence) -> tuple[list[int], list[int | None]]:
    """Sentence i's token ids without special tokens, and the word of each."""
    keep = [k for k, special in enumerate(enc["special_tokens_mask"][i]) if not special]
    ids = [enc["input_ids"][i][k] for k in keep]
    return ids, token_words([enc["offsets"][i][k] for k in keep], _joined_spans(sentence.words))


def _joined_spans(words: list[str]) -> list[tuple[int, int]]:
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return spans
