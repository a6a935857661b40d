"""`bertkit pretrain vocab|prepare|run`: thin shells over train_vocab, prepare_corpus and pretrain,
their flags generated from those functions' signatures (bertkit.cli_options)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bertkit.cli_options import add_options, call
from bertkit.config import Family
from bertkit.pretrain.corpus import prepare_corpus
from bertkit.pretrain.documents import DEFAULT_PATTERNS, find_files
from bertkit.pretrain.vocab import train_vocab


def build_vocab(inputs: Sequence[str], out: str, *, family: Family = "bert", vocab_size: int = 30522,
                lowercase: bool | None = None, min_frequency: int = 2,
                patterns: Sequence[str] = DEFAULT_PATTERNS, show_progress: bool = True) -> Path:
    """Train a vocabulary on the files under `inputs`; the folder loads in bertkit and transformers.

    Args:
        inputs: text files or folders (searched recursively)
        out: folder for tokenizer.json and its config
        family: the model family whose tokenizer to build (WordPiece, BPE or Unigram)
        vocab_size: entries in the vocabulary, special tokens included
        lowercase: lowercase the text (default: uncased except RoBERTa)
        min_frequency: ignore pieces seen fewer times (not used by ALBERT's Unigram)
        patterns: file patterns searched for in folders
        show_progress: show a progress bar
    """
    files = find_files(inputs, patterns)
    folder = train_vocab(files, family, vocab_size, out, lowercase=lowercase, min_frequency=min_frequency,
                         show_progress=show_progress)
    print(f"vocabulary of {family} ({vocab_size}) from {len(files)} files -> {folder}")
    return folder


def _vocab(args: argparse.Namespace) -> int:
    call(build_vocab, args)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    manifest = call(prepare_corpus, args)
    print(f"{manifest.num_samples} {manifest.format} samples, {manifest.num_tokens} tokens, "
          f"{manifest.num_documents} documents -> {args.out_dir}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bertkit.pretrain.run import pretrain
    from bertkit.train import is_main

    phases = None
    if args.phase2_data:
        phases = [(args.data, 1.0 - args.phase2_fraction), (args.phase2_data, args.phase2_fraction)]
    model = args.model
    if model and model.endswith(".json") and Path(model).is_file():
        model = json.loads(Path(model).read_text(encoding="utf-8"))  # EncoderConfig fields
    model_dir = call(pretrain, args, data_dir=None if phases else args.data, out_dir=args.out, phases=phases,
                     model=model)
    if is_main():
        print(f"pre-trained model -> {model_dir}")
    return 0


def _quiet(parser: argparse.ArgumentParser, dest: str) -> None:
    parser.add_argument("--quiet", dest=dest, action="store_false", help="no progress bars")


def _add_vocab(sub: Any) -> None:
    p = sub.add_parser("vocab", help="train a WordPiece/BPE/Unigram vocabulary on text files",
                       description="Train a vocabulary; the folder loads in bertkit and transformers.")
    add_options(p, build_vocab, positional=("inputs",), skip=("show_progress",))
    _quiet(p, "show_progress")
    p.set_defaults(func=_vocab)


def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="text → NSP/SOP/full-sentence token shards + manifest",
                       description="Tokenise documents into pre-training samples (memory-mapped shards).")
    add_options(p, prepare_corpus, positional=("inputs",), skip=("show_progress",),
                flags={"tokenizer_dir": "--tokenizer", "out_dir": "--out"})
    _quiet(p, "show_progress")
    p.set_defaults(func=_prepare)


def _add_run(sub: Any) -> None:
    from bertkit.pretrain.run import pretrain

    p = sub.add_parser("run", help="pre-train (MLM + NSP/SOP) on prepared shards; torchrun-ready",
                       description="Pre-train an encoder. Under `torchrun --nproc-per-node N` it uses "
                                   "DDP; the effective batch is batch-size × grad-accum × N.")
    # the corpus folders and --out are the command's own: pretrain() takes them as data_dir or phases
    p.add_argument("data", help="prepared corpus folder (phase 1 when --phase2-data is given)")
    p.add_argument("--out", required=True, help="output folder: model/, metrics.jsonl, checkpoints/")
    p.add_argument("--phase2-data", help="prepared corpus of long sequences for phase 2")
    p.add_argument("--phase2-fraction", type=float, default=0.1, help="share of --max-steps for phase 2")
    add_options(p, pretrain, skip=("data_dir", "out_dir", "phases", "progress", "callbacks", "device"))
    _quiet(p, "progress")
    p.set_defaults(func=_run)


def add_commands(subparsers: Any) -> None:
    """Register `bertkit pretrain` and its sub-commands."""
    parser = subparsers.add_parser("pretrain", help="pre-training: vocab, prepare, run",
                                   description="Pre-train a BERT-family encoder from raw text.")
    sub = parser.add_subparsers(dest="pretrain_command", metavar="STEP", required=True)
    _add_vocab(sub)
    _add_prepare(sub)
    _add_run(sub)
