"""Streaming prediction: one JSON record per input line, in order, written chunk by chunk, so memory
stays bounded for any input size and results appear while the input is still being read."""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TextIO

from tqdm.auto import tqdm

from bertkit.api.predictor import Predictor

# besides "\n" and "\r" (which json.dumps escapes): what str.splitlines also splits on
_LINE_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
CHUNK_LINES = 256  # lines predicted together: big enough for full batches, small enough to stream


@dataclass(frozen=True)
class Item:
    """One input: its line (or row) number, and its text or why it has none."""

    number: int
    text: Any  # a line's text, or (parsed) the task's example
    error: str | None = None


def read_lines(stream: IO[Any], encoding: str = "utf-8", source: str = "stdin") -> Iterator[Item]:
    """The lines of `stream`, split on "\\n" only (a "\\r\\n" ending is dropped whole).

    A binary stream is decoded line by line, so an undecodable line becomes an error item naming
    its line number instead of ending the run. Blank lines become error items too: every line
    gets exactly one output, so outputs line up with inputs.
    """
    binary = _binary(stream)
    lines = binary if binary is not None else _text_lines(stream)
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            if number == 1 and encoding.replace("-", "").lower() == "utf8":
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError as error:
                yield Item(number, None, f"{source} line {number} is not valid {encoding} (byte "
                                         f"{error.start + 1}); pass --encoding to read it")
                continue
        else:
            text = line.removesuffix("\n").removesuffix("\r")
        yield text_item(number, text, f"{source} line")


def text_item(number: int, text: Any, what: str = "text") -> Item:
    """An `Item` for one text: an error item when it is missing, not a string, or blank."""
    if not isinstance(text, str):
        return Item(number, None, f"{what} {number} has no text")
    if not text.strip():
        return Item(number, None, f"{what} {number} is blank")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes in a command-line argument
        return Item(number, None, f"{what} {number} is not valid Unicode text")
    return Item(number, text)


def _binary(stream: IO[Any]) -> IO[bytes] | None:
    if isinstance(stream, io.TextIOBase):
        return getattr(stream, "buffer", None)
    return stream  # a binary file or pipe


def _text_lines(stream: IO[Any]) -> Iterator[str]:
    # readline on a text stream opened with newline="" or a StringIO splits on "\n" only
    # (universal newlines would also split on "\r"); then split the rest ourselves to be sure
    for line in stream:
        parts = line.split("\n")
        for part in parts[:-1]:
            yield part + "\n"
        if parts[-1]:
            yield parts[-1]


def stream_predictions(predictor: Predictor, items: Iterable[Item], out: TextIO, *,
                       chunk_lines: int = CHUNK_LINES, progress: bool | None = None,
                       number_key: str = "line", parse: bool = True) -> int:
    """Predict `items` chunk by chunk and write one JSON line per item to `out`; return the count.

    A record is the task's record of the prediction (`Predictor.records`) after `number_key`; an
    error item, or a line the task cannot read (`parse`: through `Task.example_from_line`), gives
    `{number_key: n, "error": why}`. `progress=None` shows a bar on stderr when `out` is not a
    terminal (a file or a pipe), where it does not mix with the results.
    """
    if progress is None:
        progress = not _is_tty(out)
    written = 0
    with tqdm(desc="predict", unit="line", file=sys.stderr, disable=not progress) as bar:
        iterator = iter(items)
        while chunk := [_parsed(predictor, item) if parse else item
                        for item in itertools.islice(iterator, chunk_lines)]:
            examples = [item.text for item in chunk if item.error is None]
            predictions = iter(predictor.records(examples) if examples else [])
            for item in chunk:
                if item.error is None:
                    record = {number_key: item.number, **next(predictions)}
                else:
                    record = {number_key: item.number, "error": item.error}
                out.write(json_line(record))
            out.flush()
            written += len(chunk)
            bar.update(len(chunk))
    return written


def _parsed(predictor: Predictor, item: Item) -> Item:
    """The item with its line turned into the task's example (a text, a pair, a JSON record)."""
    if item.error is not None:
        return item
    try:
        return Item(item.number, predictor.task.example_from_line(item.text))
    except ValueError as error:
        return Item(item.number, None, f"line {item.number}: {' '.join(str(error).split())}")


def json_line(record: dict[str, Any]) -> str:
    """One JSON line, readable as UTF-8; the characters that `str.splitlines` and some JSON
    readers take for line breaks are escaped, so a consumer never sees a record split in two."""
    text = json.dumps(record, ensure_ascii=False)
    for char in _LINE_BREAKS:
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
