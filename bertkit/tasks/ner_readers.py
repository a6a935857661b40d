"""Readers of tagged sentences: CoNLL columns, two-column `word TAG`, JSONL tokens+tags, GMB-style CSV.

Each returns (sentences, tags): lists of words and, for labelled files, their tags in IOB2 (other
schemes are converted; a tag that cannot follow is an error naming the file and line).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from bertkit.data.readers import jsonl_records
from bertkit.tasks.ner_tags import TagScheme, to_iob2

NerFormat = Literal["auto", "conll", "jsonl", "gmb"]
Tagged = tuple[list[list[str]], list[list[str]] | None]


def read_tagged(path: str | Path, format: NerFormat = "auto", *, scheme: TagScheme = "iob2",
                repair: bool = False, encoding: str = "utf-8") -> Tagged:
    """Sentences and IOB2 tags from a file; `format="auto"` goes by the extension (.jsonl/.json:
    JSONL, .csv: GMB, anything else: CoNLL columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if format == "auto":
        suffix = path.suffix.lower()
        format = "jsonl" if suffix in (".jsonl", ".json") else "gmb" if suffix == ".csv" else "conll"
    readers = {"conll": read_conll, "jsonl": read_jsonl, "gmb": read_gmb}
    if format not in readers:
        raise ValueError(f"unknown NER file format {format!r}; choose one of {('auto', *readers)}")
    return readers[format](path, scheme=scheme, repair=repair, encoding=encoding)


def _convert(path: Path, sentences: list[list[str]], tags: list[list[str]], lines: list[list[int]],
             scheme: TagScheme, repair: bool, what: str = "line") -> list[list[str]]:
    def where(n: int) -> Callable[[int], str]:
        return lambda i: f"{path}:{what} {lines[n][i]}"

    return [to_iob2(t, scheme, repair=repair, where=where(n)) for n, t in enumerate(tags)]


def read_conll(path: str | Path, *, scheme: TagScheme = "iob2", repair: bool = False,
               encoding: str = "utf-8") -> Tagged:
    """Whitespace-separated columns, the word first and the tag last (`word POS chunk TAG`, or
    `word TAG`); a blank line ends a sentence; `-DOCSTART-` lines are skipped. A file of single
    words (one column) is unlabelled: tags come back None."""
    path = Path(path)
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[list[int]] = []
    words, sentence_tags, numbers = [], [], []
    columns = None
    with open(path, encoding=encoding) as f:
        for number, raw in enumerate(f, start=1):
            parts = raw.split()
            if parts and parts[0] == "-DOCSTART-":
                continue
            if not parts:
                if words:
                    sentences.append(words), tags.append(sentence_tags), lines.append(numbers)
                words, sentence_tags, numbers = [], [], []
                continue
            if columns is None:
                columns = len(parts)
            if len(parts) != columns:
                raise ValueError(f"{path}:line {number}: {len(parts)} columns where the file's lines have "
                                 f"{columns} (word first, tag last): {raw.strip()!r}")
            words.append(parts[0])
            sentence_tags.append(parts[-1])
            numbers.append(number)
    if words:
        sentences.append(words), tags.append(sentence_tags), lines.append(numbers)
    if not sentences:
        raise ValueError(f"{path} holds no sentences (one word per line, a blank line between sentences)")
    if columns == 1:
        return sentences, None
    return sentences, _convert(path, sentences, tags, lines, scheme, repair)


def read_jsonl(path: str | Path, *, scheme: TagScheme = "iob2", repair: bool = False,
               encoding: str = "utf-8") -> Tagged:
    """One JSON object a line with the words under "tokens" (or "words") and their tags under
    "tags" (or "ner_tags", "labels"); lines without tags make an unlabelled file."""
    path = Path(path)
    sentences, tags, lines = [], [], []
    for number, record in jsonl_records(path, encoding):
        words = _field(record, ("tokens", "words"), path, number)
        sentences.append([str(w) for w in words])
        found = _field(record, ("tags", "ner_tags", "labels"), path, number, required=False)
        if found is not None:
            if len(found) != len(words) or not all(isinstance(t, str) for t in found):
                raise ValueError(f"{path}:line {number}: tags must be {len(words)} strings, one per "
                                 f"token; got {found!r}")
            tags.append(list(found))
        lines.append([number] * len(words))
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    if tags and len(tags) != len(sentences):
        raise ValueError(f"{path}: {len(sentences) - len(tags)} lines have no tags while others have them")
    return sentences, (_convert(path, sentences, tags, lines, scheme, repair) if tags else None)


def _field(record: dict, names: tuple[str, ...], path: Path, number: int, required: bool = True) -> list | None:
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, list) or not value:
                raise ValueError(f"{path}:line {number}: {name!r} must be a non-empty list")
            return value
    if required:
        raise ValueError(f"{path}:line {number}: no {' or '.join(map(repr, names))} key")
    return None


def read_gmb(path: str | Path, *, scheme: TagScheme = "iob2", repair: bool = False, encoding: str = "utf-8",
             sentence_column: str = "Sentence #", word_column: str = "Word", tag_column: str = "Tag") -> Tagged:
    """A GMB-style CSV (as the Kaggle `ner_dataset.csv`): one word a row; a sentence starts at a
    row whose sentence column is filled ("Sentence: 12") and runs while the column stays empty."""
    path = Path(path)
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[list[int]] = []
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (sentence_column, word_column, tag_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r}; the header has {reader.fieldnames}")
        for row in reader:
            number = reader.line_num
            if (row[sentence_column] or "").strip() or not sentences:
                sentences.append([]), tags.append([]), lines.append([])
            word, tag = (row[word_column] or "").strip(), (row[tag_column] or "").strip()
            if not word or not tag:
                raise ValueError(f"{path}:line {number}: empty {word_column if not word else tag_column!r}")
            sentences[-1].append(word), tags[-1].append(tag), lines[-1].append(number)
    if not sentences:
        raise ValueError(f"{path} holds no rows")
    return sentences, _convert(path, sentences, tags, lines, scheme, repair)
