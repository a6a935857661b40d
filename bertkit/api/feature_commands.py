"""`bertkit encode` (sentence similarities) and `bertkit features` (sentence or token vectors from
chosen layers, to .npy or .parquet): flags generated from the typed functions defined here."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from bertkit.cli_options import add_options, call
from bertkit.data.batching import pad_vectors
from bertkit.io import atomic_write_bytes
from bertkit.tasks.features import DEFAULT_MODEL, FeatureExtractor, LayerChoice, similarity_table


def read_texts(texts: list[str] | None, file: str | None, text_column: str = "text",
               stdin: TextIO | None = None) -> list[str]:
    """`texts`, then those of `file` (.txt: one per line; else a table's `text_column`), else one
    text per line of stdin."""
    from bertkit.data.readers import read_table, to_list

    items = list(texts or [])
    if file:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"text file not found: {path}")
        if path.suffix.lower() == ".txt":
            items += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            items += [str(t) for t in to_list(read_table(str(path), text_column)[text_column])]
    stdin = stdin or sys.stdin
    if not items and not stdin.isatty():
        items = [line.strip() for line in stdin if line.strip()]
    if not items:
        raise ValueError("no texts given: pass them as arguments, with --file, or on standard input")
    return items


def encode(texts: list[str] | None = None, *, file: str | None = None, model: str = DEFAULT_MODEL,
           pooling: Literal["mean", "first", "pooler"] = "mean", layers: list[int] | None = None,
           maxlen: int = 256, batch_size: int = 32, out: str | None = None) -> np.ndarray:
    """Encode texts into unit-length sentence vectors and print their cosine similarities.

    Args:
        texts: texts to encode (else --file or standard input)
        file: a text file, one text per line
        model: model name or folder
        pooling: mean over tokens, the first token, or BERT's pooler
        layers: hidden layers to average (default: -1, the last)
        maxlen: tokens per text
        batch_size: texts per forward pass
        out: save the vectors as a .npy file instead of printing similarities
    """
    items = read_texts(texts, file)
    extractor = FeatureExtractor(model, pooling=pooling, layers=layers or [-1], maxlen=maxlen,
                                 batch_size=batch_size)
    vectors = extractor.encode(items)
    if out:
        _save_npy(out, vectors)
        print(json.dumps({"texts": len(items), "dim": int(vectors.shape[1]), "out": str(out)}))
    else:
        print(similarity_table(items, vectors))
    return vectors


def features(texts: list[str] | None = None, *, out: str, file: str | None = None, text_column: str = "text",
             model: str = DEFAULT_MODEL, level: Literal["sentence", "token"] = "sentence",
             layers: LayerChoice = "last", pooling: Literal["cls", "mean"] = "cls", normalize: bool = False,
             maxlen: int = 512, batch_size: int = 32, progress: bool = True) -> dict[str, Any]:
    """Write the vectors of texts from chosen encoder layers to a .npy or .parquet file.

    Sentence level: one vector per text (.npy: (texts, dim); .parquet: text_id, text, vector).
    Token level: one vector per word piece, [CLS] and [SEP] included (.npy: (texts, longest,
    dim), zeros after each text's tokens; .parquet: text_id, position, token, vector). With
    layers "all" every vector gains an axis: the embedding output and each layer.

    Args:
        texts: texts (else --file or standard input)
        out: the .npy or .parquet file to write
        file: .txt (one text per line) or a table (.csv .tsv .jsonl .parquet) with --text-column
        text_column: the text column of a table
        model: model name or folder
        level: one vector per text, or one per token
        layers: last, second_to_last, sum_last_four, concat_last_four or all (embeddings + each layer)
        pooling: sentence vectors from the first token ([CLS]) or the mean over tokens
        normalize: scale sentence vectors to unit length
        maxlen: tokens per text (longer texts are cut)
        batch_size: texts per forward pass
        progress: show a progress bar
    """
    suffix = Path(out).suffix.lower()
    if suffix not in (".npy", ".parquet"):
        raise ValueError(f"--out must end in .npy or .parquet, got {out!r}")
    items = read_texts(texts, file, text_column)
    extractor = FeatureExtractor(model, pooling=pooling, layers=layers, normalize=normalize, maxlen=maxlen,
                                 batch_size=batch_size)
    if level == "sentence":
        vectors = extractor.encode(items, progress=progress)
        shape = list(vectors.shape)
        _save_npy(out, vectors) if suffix == ".npy" else _save_sentences_parquet(out, items, vectors)
    else:
        tokens = extractor.token_vectors(items, progress=progress)
        shape = [sum(len(t) for t, _ in tokens), *tokens[0][1].shape[1:]]
        _save_npy(out, pad_vectors([v for _, v in tokens], max(len(t) for t, _ in tokens))) if suffix == ".npy" else _save_tokens_parquet(out, tokens)
    summary = {"texts": len(items), "level": level, "layers": layers, "shape": shape, "out": str(out)}
    print(json.dumps(summary))
    return summary


def _save_npy(path: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def _save_parquet(path: str, columns: dict[str, Any]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ValueError("writing .parquet needs pyarrow: pip install 'bertkit[parquet]'") from error
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _save_sentences_parquet(path: str, texts: list[str], vectors: np.ndarray) -> None:
    _save_parquet(path, {"text_id": list(range(len(texts))), "text": texts, "vector": vectors.tolist()})


def _save_tokens_parquet(path: str, tokens: list[tuple[list[str], np.ndarray]]) -> None:
    rows = [(i, p, token, vector) for i, (words, vectors) in enumerate(tokens)
            for p, (token, vector) in enumerate(zip(words, vectors.tolist(), strict=True))]
    _save_parquet(path, {"text_id": [r[0] for r in rows], "position": [r[1] for r in rows],
                         "token": [r[2] for r in rows], "vector": [r[3] for r in rows]})


def add_commands(subparsers: Any) -> None:
    """Register encode and features with the `bertkit` CLI."""
    for func, help_text in ((encode, "encode texts into sentence vectors; print their similarities"),
                            (features, "sentence or token vectors from chosen layers, to .npy or .parquet")):
        parser = subparsers.add_parser(func.__name__, help=help_text, description=func.__doc__.split("\n\n")[0])
        add_options(parser, func, positional=["texts"])
        parser.set_defaults(func=_runner(func))


def _runner(func: Any) -> Any:
    def run(args: Any) -> int:
        call(func, args)
        return 0

    return run
