"""Documents (`documents.py`) → NSP / SOP / full-sentence / doc-sentence samples → token shards.

Two stages. Reading, sentence splitting and tokenising run per file in `workers` processes;
sample building (which for NSP draws B from other documents) then runs in this process with one
RNG per document seeded from (seed, dupe round, document index), so the shards are byte-identical
whatever the number of workers. Samples are written in document order: shuffle when training.
"""

from __future__ import annotations

import multiprocessing
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.families import family_of_tokenizer
from bertkit.io import atomic_write_bytes
from bertkit.pretrain.documents import DEFAULT_PATTERNS, DocSeparator, find_files, read_documents
from bertkit.pretrain.masking import (
    DEFAULT_MIX,
    MaskMix,
    batch_seed,
    mask_tokens,
    parse_mask_mix,
    word_start_table,
)
from bertkit.pretrain.shards import MANIFEST, Manifest, Sample, ShardWriter
from bertkit.tokenizer import Tokenizer

Format = Literal["nsp", "sop", "full_sentences", "doc_sentences"]
FORMATS: tuple[str, ...] = get_args(Format)
Masking = Literal["dynamic", "static"]
MASKINGS: tuple[str, ...] = get_args(Masking)
PACKED = ("full_sentences", "doc_sentences")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ----------------------------------------------------------------------------- tokenising
@dataclass
class _Doc:
    """A tokenised document: one id array (and word-start array, if needed) per sentence."""

    ids: list[np.ndarray]
    starts: list[np.ndarray] | None


_TOKENIZER: Tokenizer | None = None
_STARTS: np.ndarray | None = None


def _init_worker(tokenizer_dir: str, whole_word: bool) -> None:
    global _TOKENIZER, _STARTS
    _TOKENIZER = load_tokenizer(tokenizer_dir)
    scheme = "wordpiece" if type(_TOKENIZER.backend.model).__name__ == "WordPiece" else "prefix"
    _STARTS = word_start_table(_TOKENIZER.backend.get_vocab(), scheme) if whole_word else None


def load_tokenizer(tokenizer_dir: str | Path) -> Tokenizer:
    """The one place the corpus code gets its tokenizer (needs encode_ids and special ids)."""
    return Tokenizer.from_pretrained(tokenizer_dir)


def _tokenize_file(job: tuple[str, str]) -> list[_Doc]:
    path, doc_separator = job
    assert _TOKENIZER is not None, "worker not initialised"
    # Byte-level BPE marks a word's leading space; give non-first sentences theirs, as if the
    # document had been tokenised whole.
    lead = " " if type(_TOKENIZER.backend.pre_tokenizer).__name__ == "ByteLevel" else ""
    docs = []
    for sentences in read_documents(Path(path), doc_separator):  # type: ignore[arg-type]
        texts = [s if i == 0 else lead + s for i, s in enumerate(sentences)]
        ids = [np.asarray(x, dtype=np.int32) for x in _TOKENIZER.encode_ids(texts) if x]
        starts = None
        if _STARTS is not None:
            starts = [_STARTS[x] for x in ids]
            for s in starts:
                s[0] = True  # a sentence never continues the word before it
        if ids:
            docs.append(_Doc(ids, starts))
    return docs


def _tokenize_all(files: list[Path], tokenizer_dir: Path, doc_separator: str, whole_word: bool,
                  workers: int, show_progress: bool) -> list[_Doc]:
    jobs = [(str(f), doc_separator) for f in files]
    bar = dict(total=len(jobs), desc="tokenising", unit="file", disable=not show_progress)
    if workers <= 1:
        _init_worker(str(tokenizer_dir), whole_word)
        return [d for docs in tqdm(map(_tokenize_file, jobs), **bar) for d in docs]
    with multiprocessing.get_context().Pool(workers, _init_worker, (str(tokenizer_dir), whole_word)) as pool:
        # imap keeps input order, so the documents come back in file order.
        return [d for docs in tqdm(pool.imap(_tokenize_file, jobs, chunksize=4), **bar) for d in docs]


# ----------------------------------------------------------------------------- samples
@dataclass
class _Specials:
    cls: int
    sep: int
    roberta: bool  # <s> A </s></s> B </s>, all token types 0; else [CLS] A [SEP] B [SEP]


Pair = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, int]


def _concat(doc: _Doc, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
    ids = np.concatenate(doc.ids[lo:hi])
    return ids, (np.concatenate(doc.starts[lo:hi]) if doc.starts is not None else None)


def _random_b(docs: list[_Doc], index: int, rng: random.Random, target: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Sentences from a random other document, from a random start, until `target` tokens."""
    other = rng.randrange(len(docs) - 1)
    doc = docs[other + (other >= index)]
    start = rng.randrange(len(doc.ids))
    end, length = start, 0
    while end < len(doc.ids) and length < target:
        length += len(doc.ids[end])
        end += 1
    return _concat(doc, start, end)


def _split_chunk(docs: list[_Doc], index: int, lo: int, hi: int, rng: random.Random, fmt: str,
                 target: int) -> tuple[Pair | None, int]:
    """Cut sentences lo..hi of a document into A and B; return the pair and how many sentences
    to hand back to the next chunk (NSP's random B leaves the real continuation unused)."""
    doc = docs[index]
    ids, starts = _concat(doc, lo, hi)
    if hi - lo >= 2:
        a_sentences = rng.randint(1, hi - lo - 1)
        cut = sum(len(x) for x in doc.ids[lo:lo + a_sentences])
    elif len(ids) >= 2:  # one long sentence: cut inside it, so every chunk gives a 50/50 label
        a_sentences, cut = 1, rng.randint(1, len(ids) - 1)
    else:
        return None, 0
    a, b = ids[:cut], ids[cut:]
    sa, sb = (starts[:cut], starts[cut:]) if starts is not None else (None, None)
    if fmt == "nsp" and rng.random() < 0.5:
        b, sb = _random_b(docs, index, rng, max(1, target - len(a)))
        return (a, b, sa, sb, 1), (hi - lo) - a_sentences
    if fmt == "sop" and rng.random() < 0.5:
        return (b, a, sb, sa, 1), 0
    return (a, b, sa, sb, 0), 0


def _pair_chunks(docs: list[_Doc], index: int, rng: random.Random, fmt: str, max_tokens: int,
                 short_seq_prob: float) -> Iterator[Pair]:
    """BERT's create_instances_from_document; the target length is drawn per chunk, not per
    document, so the short-sequence fraction holds for documents of any size."""
    doc, lo, i, length = docs[index], 0, 0, 0
    target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
    while i < len(doc.ids):
        length += len(doc.ids[i])
        if i == len(doc.ids) - 1 or length >= target:
            pair, unused = _split_chunk(docs, index, lo, i + 1, rng, fmt, target)
            if pair is not None:
                yield _truncate(pair, max_tokens, rng)
            i -= unused
            lo, length = i + 1, 0
            target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        i += 1


def _truncate(pair: Pair, max_tokens: int, rng: random.Random) -> Pair:
    """Trim the longer segment, from its front or back at random, until the pair fits."""
    a, b, sa, sb, label = pair
    bounds = [[0, len(a)], [0, len(b)]]
    while sum(hi - lo for lo, hi in bounds) > max_tokens:
        seg = bounds[0] if bounds[0][1] - bounds[0][0] > bounds[1][1] - bounds[1][0] else bounds[1]
        if rng.random() < 0.5:
            seg[0] += 1
        else:
            seg[1] -= 1
    (a0, a1), (b0, b1) = bounds
    return (a[a0:a1], b[b0:b1], None if sa is None else sa[a0:a1],
            None if sb is None else sb[b0:b1], label)


def _pair_sample(pair: Pair, sp: _Specials) -> Sample:
    a, b, sa, sb, label = pair
    mid = [sp.sep, sp.sep] if sp.roberta else [sp.sep]
    ids = np.concatenate([[sp.cls], a, mid, b, [sp.sep]]).astype(np.int32)
    b_start = len(ids) if sp.roberta else len(a) + 2
    starts = None
    if sa is not None and sb is not None:
        starts = np.concatenate([[True], sa, [True] * len(mid), sb, [True]]).astype(bool)
    return Sample(ids, b_start, label, starts)


def _packed(docs: list[_Doc], sp: _Specials, max_tokens: int, cross_documents: bool = True) -> Iterator[Sample]:
    """RoBERTa FULL-SENTENCES: contiguous sentences up to `max_tokens`, crossing documents with
    an extra separator; a sentence longer than a whole sample is cut into pieces. With
    `cross_documents=False`, DOC-SENTENCES: a document's end also ends the sample (so samples near
    the end of a document are shorter)."""
    ids: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    whole_word = bool(docs) and docs[0].starts is not None

    def emit() -> Sample:
        body = np.concatenate([[sp.cls], *ids, [sp.sep]]).astype(np.int32)
        ws = np.concatenate([[True], *starts, [True]]).astype(bool) if whole_word else None
        ids.clear(), starts.clear()
        return Sample(body, len(body), None, ws)

    for d, doc in enumerate(docs):
        pieces = [(x[k:k + max_tokens], None if doc.starts is None else doc.starts[j][k:k + max_tokens], False)
                  for j, x in enumerate(doc.ids) for k in range(0, len(x), max_tokens)]
        if d > 0 and not cross_documents and ids:
            yield emit()
        if d > 0 and cross_documents:
            pieces.insert(0, (np.array([sp.sep], np.int32), np.array([True]), True))
        for piece, piece_starts, is_separator in pieces:
            if sum(map(len, ids)) + len(piece) > max_tokens:
                yield emit()
            if is_separator and not ids:
                continue  # a separator never opens a sample
            ids.append(piece)
            starts.append(piece_starts if piece_starts is not None else np.zeros(0, bool))
    if ids:
        yield emit()


def _static_mask(samples: list[Sample], seed: int, special_ids: list[int], mask_id: int,
                 vocab_size: int, mlm_probability: float, mask_mix: MaskMix = DEFAULT_MIX) -> None:
    """Mask a group of samples in place: ids become the corrupted ids, mlm_labels the targets."""
    length = max(len(s.ids) for s in samples)
    ids = torch.zeros((len(samples), length), dtype=torch.long)
    special = torch.ones((len(samples), length), dtype=torch.bool)
    starts = torch.zeros((len(samples), length), dtype=torch.bool) if samples[0].word_starts is not None else None
    for row, s in enumerate(samples):
        ids[row, : len(s.ids)] = torch.from_numpy(s.ids.astype(np.int64))
        special[row, : len(s.ids)] = torch.isin(ids[row, : len(s.ids)], torch.tensor(special_ids))
        if starts is not None:
            starts[row, : len(s.ids)] = torch.from_numpy(s.word_starts)
    generator = torch.Generator().manual_seed(seed)
    masked, labels = mask_tokens(ids, special_mask=special, mask_id=mask_id, vocab_size=vocab_size,
                                 mlm_probability=mlm_probability, generator=generator,
                                 word_starts=starts, special_ids=special_ids, mask_mix=mask_mix)
    for row, s in enumerate(samples):
        s.ids = masked[row, : len(s.ids)].numpy().astype(np.int32)
        s.mlm_labels = labels[row, : len(s.ids)].numpy().astype(np.int32)


def _sample_groups(docs: list[_Doc], fmt: str, sp: _Specials, max_length: int,
                   short_seq_prob: float, seed: int, dupe_round: int) -> Iterator[tuple[int, list[Sample]]]:
    """(group key, samples) per document for nsp/sop, per 256 packed samples otherwise."""
    if fmt in PACKED:
        packed = list(_packed(docs, sp, max_length - 2, cross_documents=fmt == "full_sentences"))
        for g in range(0, len(packed), 256):
            yield g, packed[g:g + 256]
        return
    max_tokens = max_length - (4 if sp.roberta else 3)
    for index in range(len(docs)):
        rng = random.Random(batch_seed(seed, dupe_round, [index]))
        pairs = _pair_chunks(docs, index, rng, fmt, max_tokens, short_seq_prob)
        yield index, [_pair_sample(p, sp) for p in pairs]


def _round_samples(docs: list[_Doc], fmt: str, tokenizer: Tokenizer, max_length: int,
                   short_seq_prob: float, seed: int, dupe_round: int,
                   static_probability: float | None, mask_mix: MaskMix = DEFAULT_MIX) -> Iterator[Sample]:
    """One dupe round's samples, masked group by group when `static_probability` is set."""
    sp = _Specials(tokenizer.cls_id, tokenizer.sep_id, tokenizer.cls_token == "<s>")
    groups = _sample_groups(docs, fmt, sp, max_length, short_seq_prob, seed, dupe_round)
    for key, samples in groups:
        if samples and static_probability is not None:
            _static_mask(samples, batch_seed(seed, dupe_round, [key, -1]),
                         sorted(tokenizer.special_ids), tokenizer.mask_id, tokenizer.vocab_size,
                         static_probability, mask_mix)
        yield from samples


def _check_args(fmt: str, max_length: int, masking: str, dupe_factor: int, workers: int) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if masking not in MASKINGS:
        raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
    if max_length < 8:
        raise ValueError(f"max_length={max_length} is too short for a sample (8 or more)")
    if dupe_factor < 1 or workers < 1:
        raise ValueError(f"dupe_factor and workers must be >= 1, got {dupe_factor} and {workers}")


def _clear(out: Path) -> None:
    """Remove a previous run's manifest first: until the new one is written the folder is invalid."""
    (out / MANIFEST).unlink(missing_ok=True)
    for old in out.glob("shard-*.npy"):
        old.unlink()
    shutil.rmtree(out / "tokenizer", ignore_errors=True)


def prepare_corpus(inputs: Sequence[str | Path], tokenizer_dir: str | Path, out_dir: str | Path, *,
                   format: Format = "nsp", max_length: int = 128, short_seq_prob: float = 0.1,
                   dupe_factor: int = 1, masking: Masking = "dynamic",
                   mlm_probability: float = 0.15, mask_mix: str | Sequence[float] = DEFAULT_MIX,
                   whole_word: bool = False, seed: int = 12345,
                   workers: int = 2, doc_separator: DocSeparator = "blank_line",
                   patterns: Sequence[str] = DEFAULT_PATTERNS, samples_per_shard: int = 100_000,
                   show_progress: bool = True) -> Manifest:
    """Turn text files (or folders, searched for `patterns`) into pre-training shards in `out_dir`.

    `mask_mix` is the (mask, random, unchanged) split of selected tokens; dynamic masking reads it
    from the manifest. With dynamic masking, nsp/sop still make `dupe_factor` differently cut
    copies. manifest.json is written last, so a folder without one is incomplete.

    Args:
        inputs: text files or folders (searched recursively)
        tokenizer_dir: tokenizer folder (e.g. from `pretrain vocab`)
        out_dir: output folder (shards + manifest.json + tokenizer/)
        format: nsp (BERT pairs; next_sentence_label 1 = B is random), sop (ALBERT;
            sentence_order_label 1 = swapped), full_sentences (RoBERTa, packed across documents, no
            pair label), doc_sentences (packed, never crossing a document)
        max_length: tokens per sample, special tokens included
        short_seq_prob: share of nsp/sop samples made shorter than max_length (BERT's recipe)
        dupe_factor: differently cut (or, with static masking, masked) copies of the corpus
        masking: dynamic (masks drawn per batch while training) or static (dupe_factor masked
            copies stored in the shards)
        mlm_probability: share of tokens selected for masking
        mask_mix: shares of selected tokens replaced by [MASK] / a random token / left unchanged,
            e.g. 80/10/10
        whole_word: mask whole words
        seed: random seed of the sampling (and of static masks)
        workers: tokenising processes
        doc_separator: what ends a document: a blank line, or the end of a file
        patterns: file patterns searched for in folders
        samples_per_shard: samples per shard file
        show_progress: show progress bars
    """
    _check_args(format, max_length, masking, dupe_factor, workers)
    mix = parse_mask_mix(mask_mix)
    files = find_files(inputs, patterns)
    tokenizer = load_tokenizer(tokenizer_dir)
    if tokenizer.cls_id is None or tokenizer.sep_id is None or tokenizer.mask_id is None or tokenizer.pad_id is None:
        raise ValueError(f"the tokenizer in {tokenizer_dir} lacks a cls, sep, pad or mask token")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    docs = _tokenize_all(files, Path(tokenizer_dir), doc_separator, whole_word, workers, show_progress)
    if format != "full_sentences" and len(docs) < 2:
        raise ValueError(f"{format} needs at least 2 documents, found {len(docs)} in {len(files)} files")
    special_ids = sorted(tokenizer.special_ids)
    id_dtype = "uint16" if tokenizer.vocab_size <= 65536 else "int32"
    writer = ShardWriter(out, id_dtype, samples_per_shard)
    # Packing is deterministic, so without static masks extra rounds would only repeat samples.
    rounds = dupe_factor if format not in PACKED or masking == "static" else 1
    for dupe_round in tqdm(range(rounds), desc="sampling", disable=not show_progress):
        for sample in _round_samples(docs, format, tokenizer, max_length, short_seq_prob, seed,
                                     dupe_round, mlm_probability if masking == "static" else None, mix):
            writer.add(sample)
    shards = writer.close()
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            atomic_write_bytes(out / "tokenizer" / name, (Path(tokenizer_dir) / name).read_bytes())
    manifest = Manifest(
        format=format, family=family_of_tokenizer(type(tokenizer.backend.model).__name__), max_length=max_length,
        vocab_size=tokenizer.vocab_size, id_dtype=id_dtype,
        special_ids={n: getattr(tokenizer, f"{n}_id") for n in ("cls", "sep", "pad", "mask", "unk")},
        all_special_ids=special_ids, seed=seed,
        masking={"mode": masking, "mlm_probability": mlm_probability, "whole_word": whole_word,
                 "dupe_factor": dupe_factor, "mix": list(mix)},
        num_samples=sum(s["num_samples"] for s in shards),
        num_tokens=sum(s["num_tokens"] for s in shards), num_documents=len(docs),
        num_files=len(files), short_seq_prob=short_seq_prob, doc_separator=doc_separator,
        shards=shards)
    manifest.save(out)  # last: its presence marks a complete folder
    return manifest
