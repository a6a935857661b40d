"""`bertkit pretrain vocab|prepare|run`: thin shells over train_vocab, prepare_corpus and pretrain."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bertkit.pretrain.corpus import FORMATS, prepare_corpus
from bertkit.pretrain.documents import DEFAULT_PATTERNS, find_files
from bertkit.pretrain.masking import OBJECTIVES
from bertkit.pretrain.vocab import FAMILIES, train_vocab


def _vocab(args: argparse.Namespace) -> int:
    files = find_files(args.inputs, args.patterns or DEFAULT_PATTERNS)
    out = train_vocab(files, args.family, args.vocab_size, args.out, lowercase=args.lowercase,
                      min_frequency=args.min_frequency, show_progress=not args.quiet)
    print(f"vocabulary of {args.family} ({args.vocab_size}) from {len(files)} files -> {out}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    manifest = prepare_corpus(
        args.inputs, args.tokenizer, args.out, format=args.format, max_length=args.max_length,
        short_seq_prob=args.short_seq_prob, dupe_factor=args.dupe_factor, masking=args.masking,
        mlm_probability=args.mlm_probability, mask_mix=args.mask_mix, whole_word=args.whole_word, seed=args.seed,
        workers=args.workers, doc_separator=args.doc_separator,
        patterns=args.patterns or DEFAULT_PATTERNS, show_progress=not args.quiet)
    print(f"{manifest.num_samples} {manifest.format} samples, {manifest.num_tokens} tokens, "
          f"{manifest.num_documents} documents -> {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bertkit.pretrain.run import pretrain  # imports torch: only when a run is asked for

    phases = None
    if args.phase2_data:
        phases = [(args.data, 1.0 - args.phase2_fraction), (args.phase2_data, args.phase2_fraction)]
    model = args.model
    if model and model.endswith(".json") and Path(model).is_file():
        model = json.loads(Path(model).read_text(encoding="utf-8"))  # EncoderConfig fields
    model_dir = pretrain(
        None if phases else args.data, args.out, phases=phases, model=model,
        layers=args.layers, hidden=args.hidden, heads=args.heads, intermediate=args.intermediate,
        dropout=args.dropout, objective=args.objective, pair_objective=args.pair_objective,
        mask_mix=args.mask_mix, lr=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum,
        optimizer=args.optimizer, weight_decay=args.weight_decay, warmup=args.warmup,
        max_steps=args.max_steps, epochs=args.epochs, max_minutes=args.max_minutes, bf16=args.bf16,
        eval_data=args.eval_data, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        resume=args.resume, force_resume=args.force_resume, seed=args.seed, log_every=args.log_every, progress=not args.quiet)
    from bertkit.train import is_main

    if is_main():
        print(f"pre-trained model -> {model_dir}")
    return 0


def _add_vocab(sub: Any) -> None:
    p = sub.add_parser("vocab", help="train a WordPiece/BPE/Unigram vocabulary on text files",
                       description="Train a vocabulary; the folder loads in bertkit and transformers.")
    p.add_argument("inputs", nargs="+", help="text files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="folder for tokenizer.json and its config")
    p.add_argument("--family", choices=FAMILIES, default="bert")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                   help="default: uncased except RoBERTa")
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--patterns", nargs="+", help=f"file patterns in folders (default {DEFAULT_PATTERNS})")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_vocab)


def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="text → NSP/SOP/full-sentence token shards + manifest",
                       description="Tokenise documents into pre-training samples (memory-mapped shards).")
    p.add_argument("inputs", nargs="+", help="text files or folders (searched recursively)")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder (e.g. from `pretrain vocab`)")
    p.add_argument("--out", required=True, help="output folder (shards + manifest.json + tokenizer/)")
    p.add_argument("--format", choices=FORMATS, default="nsp",
                   help="nsp (BERT pairs), sop (ALBERT), full_sentences (RoBERTa, packed across "
                        "documents), doc_sentences (packed, never crossing a document)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--dupe-factor", type=int, default=1)
    p.add_argument("--masking", choices=("dynamic", "static"), default="dynamic")
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--mask-mix", default="80/10/10",
                   help="shares of selected tokens replaced by [MASK] / a random token / left unchanged")
    p.add_argument("--whole-word", action="store_true", help="mask whole words")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--doc-separator", choices=("blank_line", "file"), default="blank_line")
    p.add_argument("--patterns", nargs="+", help=f"file patterns in folders (default {DEFAULT_PATTERNS})")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_prepare)


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="pre-train (MLM + NSP/SOP) on prepared shards; torchrun-ready",
                       description="Pre-train an encoder. Under `torchrun --nproc-per-node N` it uses "
                                   "DDP; the effective batch is batch-size × grad-accum × N.")
    p.add_argument("data", help="prepared corpus folder (phase 1 when --phase2-data is given)")
    p.add_argument("--out", required=True, help="output folder: model/, metrics.jsonl, checkpoints/")
    p.add_argument("--model", help="preset name, a JSON file of EncoderConfig fields, or a checkpoint "
                                   "to continue pre-training (default: the tokenizer family's base preset)")
    for flag in ("layers", "hidden", "heads", "intermediate"):
        p.add_argument(f"--{flag}", type=int, help=f"override the preset's {flag}")
    p.add_argument("--dropout", type=float, help="dropout during pre-training only (0 suits short "
                                                 "budgets); the saved config keeps the model's own")
    p.add_argument("--objective", choices=OBJECTIVES, default="mlm",
                   help="mlm (masked LM, + NSP/SOP on pair data) or left_to_right (causal encoder, "
                        "next-token loss, no NSP)")
    p.add_argument("--pair-objective", action=argparse.BooleanOptionalAction, default=True,
                   help="NSP/SOP loss on nsp/sop data (--no-pair-objective: MLM alone, same samples)")
    p.add_argument("--mask-mix", help="[MASK]/random/unchanged shares for dynamic masking, e.g. "
                                      "100/0/0 (default: the prepared corpus's, normally 80/10/10)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--optimizer", choices=("adamw", "lamb"), default="adamw")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.01, help="< 1: fraction of steps; >= 1: steps")
    p.add_argument("--max-steps", type=int, help="optimizer steps (sets the LR schedule's length)")
    p.add_argument("--epochs", type=int, default=1, help="used when --max-steps is not given")
    p.add_argument("--max-minutes", type=float, help="stop cleanly and save after this long")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on where the hardware computes bf16 natively: "
                        "Ampere+ GPUs, CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--phase2-data", help="prepared corpus of long sequences for phase 2")
    p.add_argument("--phase2-fraction", type=float, default=0.1, help="share of --max-steps for phase 2")
    p.add_argument("--eval-data", help="prepared held-out corpus for MLM accuracy / perplexity")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the newest checkpoint in OUT/checkpoints")
    p.add_argument("--force-resume", action="store_true",
                   help="resume even though the data or options differ from the checkpoints'")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)


def add_commands(subparsers: Any) -> None:
    """Register `bertkit pretrain` and its sub-commands."""
    parser = subparsers.add_parser("pretrain", help="pre-training: vocab, prepare, run",
                                   description="Pre-train a BERT-family encoder from raw text.")
    sub = parser.add_subparsers(dest="pretrain_command", metavar="STEP", required=True)
    _add_vocab(sub)
    _add_prepare(sub)
    _add_run(sub)
