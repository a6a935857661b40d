"""Corpus preparation: sentence splitting, NSP/SOP/full-sentence samples, shards, determinism, crashes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_vocab import write_corpus

from bertkit.pretrain import (
    Manifest,
    MLMCollator,
    PretrainDataset,
    find_files,
    prepare_corpus,
    read_documents,
    split_sentences,
    train_vocab,
)
from bertkit.pretrain import corpus as corpus_mod
from bertkit.pretrain.shards import Sample, ShardWriter
from bertkit.tokenizer import Tokenizer

QUIET = dict(show_progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrain")
    files = write_corpus(root / "text", n_docs=60, seed=1)
    (root / "text" / "notes.md").write_text("# Title here\n\nSome words follow. More words come!\n")
    paths = {"text": root / "text", "root": root}
    for family in ("bert", "roberta", "albert"):
        paths[family] = train_vocab(files, family, 500, root / f"vocab_{family}", **QUIET)
    return paths


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.npy"))} | {
        "manifest": (folder / "manifest.json").read_bytes()}


def test_split_sentences_and_markup() -> None:
    assert split_sentences('Dr. Who came at 5 p.m. today. "Is it?" she asked. Yes! J. R. Bob left.') == [
        "Dr. Who came at 5 p.m. today.", '"Is it?" she asked.', "Yes!", "J. R. Bob left."]


def test_read_documents_blank_lines_and_rest(tmp_path: Path) -> None:
    path = tmp_path / "a.rst"
    path.write_text("Heading\n=======\nFirst line\ncontinues here. Second one.\n\n"
                    "- item one\n- item two\n\n.. note::\n\n   Indented text.\n")
    docs = read_documents(path, "blank_line")
    assert docs == [["Heading", "First line continues here.", "Second one."],
                    ["item one", "item two"], ["Indented text."]]
    assert read_documents(path, "file") == [[s for d in docs for s in d]]


def test_nsp_labels_lengths_and_layout(data: dict[str, Path], tmp_path: Path) -> None:
    m = prepare_corpus([data["text"]], data["bert"], tmp_path, format="nsp", max_length=48,
                       dupe_factor=4, **QUIET)
    ds = PretrainDataset(tmp_path)
    assert m.num_files == 61 and len(ds) == m.num_samples > 600
    assert ds.lengths.max() <= 48 and len(ds.lengths) == len(ds)
    labels = np.array([ds[i]["next_sentence_label"] for i in range(len(ds))])
    assert abs(labels.mean() - 0.5) < 0.05
    item = ds[0]
    ids, types = item["input_ids"], item["token_type_ids"]
    seps = (ids == m.special_ids["sep"]).nonzero().squeeze(1).tolist()
    assert ids[0] == m.special_ids["cls"] and len(seps) == 2 and seps[1] == len(ids) - 1
    assert types[: seps[0] + 1].eq(0).all() and types[seps[0] + 1:].eq(1).all()
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    assert Tokenizer.from_pretrained(tmp_path / "tokenizer").vocab_size == m.vocab_size


def _short_fraction(folder: Path) -> float:
    return float((PretrainDataset(folder).lengths < 0.6 * 48).mean())


def test_short_seq_prob_makes_short_samples(data: dict[str, Path], tmp_path: Path) -> None:
    fractions = []
    for p in (0.0, 0.5):
        prepare_corpus([data["text"]], data["bert"], tmp_path / str(p), format="nsp", max_length=48,
                       short_seq_prob=p, dupe_factor=2, **QUIET)
        fractions.append(_short_fraction(tmp_path / str(p)))
    # target lengths drawn uniformly in [2, 45] half of the time: ~0.5 * 0.6 more short samples
    assert 0.15 < fractions[1] - fractions[0] < 0.45, fractions


def test_sop_labels_balanced_and_swaps_segments(data: dict[str, Path], tmp_path: Path) -> None:
    m = prepare_corpus([data["text"]], data["albert"], tmp_path, format="sop", max_length=48,
                       dupe_factor=6, **QUIET)
    ds = PretrainDataset(tmp_path)
    assert m.pair_label == "sentence_order_label" and len(ds) > 400
    labels = np.array([ds[i]["sentence_order_label"] for i in range(len(ds))])
    assert abs(labels.mean() - 0.5) < 0.05
    assert "next_sentence_label" not in ds[0] and ds.lengths.max() <= 48


def test_full_sentences_round_trip_the_token_stream(data: dict[str, Path], tmp_path: Path) -> None:
    m = prepare_corpus([data["text"]], data["roberta"], tmp_path, format="full_sentences",
                       max_length=64, workers=1, **QUIET)
    ds = PretrainDataset(tmp_path)
    cls, sep = m.special_ids["cls"], m.special_ids["sep"]
    assert m.pair_label is None and m.id_dtype == "uint16"
    stream = []
    for i in range(len(ds)):
        item = ds[i]
        ids = item["input_ids"].tolist()
        assert ids[0] == cls and ids[-1] == sep and len(ids) <= 64
        assert item["token_type_ids"].eq(0).all() and set(item) == {"index", "input_ids", "token_type_ids"}
        stream += ids[1:-1]
    assert ds.lengths.mean() > 0.8 * 64  # packed: whole sentences up to the limit
    tok = Tokenizer.from_pretrained(data["roberta"])
    expected = []
    for f in find_files([data["text"]]):
        for doc in read_documents(f):
            if expected:
                expected.append(sep)  # documents are joined by an extra separator
            for j, text in enumerate(doc):
                expected += tok.encode_ids([text if j == 0 else " " + text])[0]
    # a separator that would open a sample is left out; every other token is kept, in order
    assert [t for t in stream if t != sep] == [t for t in expected if t != sep]
    assert 0.5 * expected.count(sep) < stream.count(sep) <= expected.count(sep)


def test_doc_sentences_never_cross_a_document(data: dict[str, Path], tmp_path: Path) -> None:
    m = prepare_corpus([data["text"]], data["bert"], tmp_path / "doc", format="doc_sentences",
                       max_length=64, mask_mix="100/0/0", workers=1, **QUIET)
    full = prepare_corpus([data["text"]], data["bert"], tmp_path / "full", format="full_sentences",
                          max_length=64, workers=1, **QUIET)
    assert m.pair_label is None and m.masking["mix"] == [1.0, 0.0, 0.0]
    ds, sep = PretrainDataset(tmp_path / "doc"), m.special_ids["sep"]
    tok = Tokenizer.from_pretrained(data["bert"])
    docs = [[t for text in doc for t in tok.encode_ids([text])[0]]
            for f in find_files([data["text"]]) for doc in read_documents(f)]
    stream = []
    for i in range(len(ds)):
        ids = ds[i]["input_ids"].tolist()
        assert ids.count(sep) == 1 and ids[-1] == sep and len(ids) <= 64  # no separator inside
        stream.append(ids[1:-1])
    # samples, concatenated per document, give back each document exactly: none spans two
    position = 0
    for doc in docs:
        pieces = []
        while sum(map(len, pieces)) < len(doc):
            pieces.append(stream[position])
            position += 1
        assert [t for p in pieces for t in p] == doc
    assert position == len(stream)
    assert m.num_samples > full.num_samples  # a document's end also ends a sample


def test_shard_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = [Sample(rng.integers(0, 70000, n).astype(np.int32), int(rng.integers(1, n)), i % 2,
                      rng.integers(0, 2, n).astype(bool), rng.integers(-100, 500, n).astype(np.int32))
               for i, n in enumerate(rng.integers(3, 30, 25))]
    writer = ShardWriter(tmp_path, "int32", samples_per_shard=7)
    for s in samples:
        writer.add(s)
    shards = writer.close()
    assert [s["num_samples"] for s in shards] == [7, 7, 7, 4]
    Manifest("nsp", "bert", 32, 70000, "int32", {"pad": 0, "mask": 4}, [0, 4], 1,
             {"mode": "static", "mlm_probability": 0.15, "whole_word": True, "dupe_factor": 1},
             num_samples=25, shards=shards).save(tmp_path)
    ds = pickle.loads(pickle.dumps(PretrainDataset(tmp_path)))
    for i, s in enumerate(samples):
        item = ds[i]
        assert item["input_ids"].tolist() == s.ids.tolist() and item["next_sentence_label"] == i % 2
        assert item["token_type_ids"].tolist() == [0] * s.b_start + [1] * (len(s.ids) - s.b_start)
        assert item["word_starts"].tolist() == s.word_starts.tolist()
        assert item["labels"].tolist() == s.mlm_labels.tolist()
    assert ds[-1]["index"] == 24 and ds.lengths.tolist() == [len(s.ids) for s in samples]
    with pytest.raises(IndexError):
        ds[25]


def test_deterministic_whatever_the_workers(data: dict[str, Path], tmp_path: Path) -> None:
    settings = dict(format="nsp", max_length=40, masking="static", whole_word=True, **QUIET)
    prepare_corpus([data["text"]], data["bert"], tmp_path / "a", workers=1, **settings)
    prepare_corpus([data["text"]], data["bert"], tmp_path / "b", workers=2, **settings)
    a, b = _shard_bytes(tmp_path / "a"), _shard_bytes(tmp_path / "b")
    assert len(a) > 5 and a == b
    prepare_corpus([data["text"]], data["bert"], tmp_path / "c", workers=2, seed=1, **settings)
    assert _shard_bytes(tmp_path / "c") != a


def test_static_masking_copies_differ(data: dict[str, Path], tmp_path: Path) -> None:
    m = prepare_corpus([data["text"]], data["roberta"], tmp_path, format="full_sentences",
                       max_length=64, masking="static", dupe_factor=2, **QUIET)
    ds = PretrainDataset(tmp_path)
    half = len(ds) // 2
    assert len(ds) == 2 * half and m.masking["mode"] == "static"
    rates, differ = [], 0
    for i in range(half):
        first, second = ds[i], ds[i + half]
        originals = []
        for item in (first, second):
            ids, labels = item["input_ids"].clone(), item["labels"]
            ids[labels != -100] = labels[labels != -100]
            originals.append(ids)
            rates.append((labels != -100).float().mean().item())
        assert torch.equal(originals[0], originals[1])
        differ += not torch.equal(first["labels"], second["labels"])
    assert differ == half
    assert 0.12 < np.mean(rates) < 0.16
    batch = MLMCollator.from_manifest(tmp_path)([ds[0], ds[1]])
    assert torch.equal(batch["labels"][0, : len(ds[0]["labels"])], ds[0]["labels"])


def test_whole_word_batches_from_prepared_corpus(data: dict[str, Path], tmp_path: Path) -> None:
    prepare_corpus([data["text"]], data["albert"], tmp_path, format="sop", max_length=64,
                   whole_word=True, **QUIET)
    ds = PretrainDataset(tmp_path)
    items = [ds[i] for i in range(16)]
    batch = MLMCollator.from_manifest(tmp_path)(items)
    masked_continuations = 0
    for row, item in enumerate(items):
        starts, ids = item["word_starts"].tolist(), item["input_ids"].tolist()
        selected = (batch["labels"][row, : len(ids)] != -100).tolist()
        for pos in range(1, len(ids)):
            if not starts[pos] and ids[pos - 1] not in (2, 3):  # continues the previous word
                assert selected[pos] == selected[pos - 1], f"word split at {pos} of row {row}"
                masked_continuations += selected[pos]
    assert masked_continuations > 5


def test_crash_leaves_no_manifest(data: dict[str, Path], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_corpus([data["text"]], data["bert"], tmp_path, format="nsp", max_length=40, **QUIET)
    assert (tmp_path / "manifest.json").is_file()
    calls = {"n": 0}
    real = corpus_mod._pair_sample

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 30:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_mod, "_pair_sample", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        prepare_corpus([data["text"]], data["bert"], tmp_path, format="nsp", max_length=40,
                       samples_per_shard=10, **QUIET)
    assert list(tmp_path.glob("shard-*.npy")) and not (tmp_path / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="manifest"):
        PretrainDataset(tmp_path)


def test_bad_inputs_are_explained(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither"):
        prepare_corpus([tmp_path / "missing"], data["bert"], tmp_path / "o", **QUIET)
    with pytest.raises(ValueError, match="format"):
        prepare_corpus([data["text"]], data["bert"], tmp_path / "o", format="mlm", **QUIET)  # type: ignore[arg-type]
    one = tmp_path / "one.txt"
    one.write_text("Just one document here. With two sentences.\n")
    with pytest.raises(ValueError, match="at least 2 documents"):
        prepare_corpus([one], data["bert"], tmp_path / "o", **QUIET)
