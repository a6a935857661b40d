"""Text files → documents → sentences: finding the files, splitting prose into sentences without
models, and cutting a file into documents (one per blank-line block, or the whole file)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

DocSeparator = Literal["blank_line", "file"]
DEFAULT_PATTERNS = ("*.txt", "*.rst", "*.md")

# Lines that are only markup: reST underlines/overlines, rules, code fences, directives, field lists.
_MARKUP_LINE = re.compile(r"""^\s*(?:[=\-~^*#_`+:.'"]{3,}|\.\. .*|:[\w -]+:.*)\s*$""")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|#+)\s+")
_BOUNDARY = re.compile(r"""[.!?]+["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9])""")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "jr", "sr",
                  "no", "fig", "inc", "ltd", "cf", "al"}


def find_files(inputs: Sequence[str | Path], patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[Path]:
    """The files given plus those under the folders given (recursively) that match `patterns`."""
    found: set[Path] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            found.update(p for pattern in patterns for p in item.rglob(pattern) if p.is_file())
        elif item.is_file():
            found.add(item)
        else:
            raise FileNotFoundError(f"corpus input {item} is neither a file nor a folder")
    if not found:
        raise FileNotFoundError(f"no files matching {list(patterns)} in {[str(i) for i in inputs]}")
    return sorted(found)


def split_sentences(text: str) -> list[str]:
    """Split prose at [.!?] followed by space and a capital/digit/quote, except after abbreviations
    and initials; a rule-based splitter that needs no models."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        word = text[:match.start()].rsplit(None, 1)[-1] if text[:match.start()].strip() else ""
        word = word.lstrip("(\"'“‘").lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _paragraph_sentences(lines: list[str]) -> list[str]:
    """Sentences of one paragraph; headings and list items start a new sentence."""
    segments: list[list[str]] = [[]]
    for line in lines:
        if _MARKUP_LINE.match(line):  # an underline: what came before was a heading
            segments.append([])
            continue
        marker = _LIST_MARKER.match(line)
        if marker:
            segments.append([])
            line = line[marker.end():]
        segments[-1].append(line.strip())
        if marker and marker.group().strip().startswith("#"):  # a Markdown heading
            segments.append([])
    return [s for seg in segments if seg for s in split_sentences(" ".join(seg))]


def read_documents(path: Path, doc_separator: DocSeparator = "blank_line") -> list[list[str]]:
    """Documents of a file, each a list of sentences: one per blank-line block, or the whole file."""
    if doc_separator not in ("blank_line", "file"):
        raise ValueError(f"doc_separator must be 'blank_line' or 'file', got {doc_separator!r}")
    text = path.read_text(encoding="utf-8", errors="replace")
    blocks = [b.splitlines() for b in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in (_paragraph_sentences(b) for b in blocks) if p]
    if doc_separator == "file":
        return [[s for p in paragraphs for s in p]] if paragraphs else []
    return paragraphs
