"""The BERT paper's ablations in miniature: NSP, left-to-right vs masked LM, the masking mix and model
size, each pre-trained for the same time (or number of steps) and fine-tuned on rotten_tomatoes.

    python benchmarks/ablations.py [--minutes 20] [--seeds 3]        # the pre-training demo's budget
    python benchmarks/ablations.py --steps 10000                      # the same number of steps instead
    python benchmarks/ablations.py --minutes 15 --threads 1 \\
        --out benchmarks/results/ablations_cpu1.json --doc docs/ablations.md    # the run in docs/ablations.md
    python benchmarks/ablations.py --steps 2 --seq 32 --imdb 200 --corpus-files 40 --seeds 1 \\
        --finetune-limit 64 --finetune-epochs 1 --eval-samples 32                # smoke run

Corpus, vocabulary and fine-tuning recipe are the pre-training demo's (`pretrain_helps.py`: Python
documentation + unlabelled IMDb reviews, WordPiece 8000; rotten_tomatoes split, max length 64,
batch 32, lr 1e-3, 3 epochs, BERT's pooler head), with BERT's NSP sample format so that the NSP row
and the no-NSP rows see the same samples. The budget is the same compute time per row (`--minutes`):
each row times a few of its own steps first and gets the number of steps that fill the budget, so a
slower row (a left-to-right loss over every position, a larger model) gets fewer updates, and the
learning-rate schedule fits the run; the step count, not the clock, then ends the run, so load from
other work slows a row without shortening it. `--steps N` gives every row the same number of
updates instead, as the paper's tables did. Rows that finish are cached in --work, so a rerun
resumes, and rows can run in separate processes (`--rows`) that a final call collects.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from common import report
from pretrain_helps import build_corpus, finetune, rotten_tomatoes_features
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from tqdm.auto import tqdm

import bertkit
from bertkit.io import atomic_write_text
from bertkit.plotting import finish_figure, new_figure
from bertkit.pretrain import MLMCollator, PretrainDataset, prepare_corpus, train_vocab
from bertkit.pretrain.objectives import evaluate_pretraining, pretraining_loss
from bertkit.pretrain.run import build_pretraining_model, pretrain
from bertkit.tokenizer import Tokenizer
from bertkit.train import native_bf16

BEGIN, END = "<!-- ablations:begin -->", "<!-- ablations:end -->"


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    objective: str = "mlm"  # or "left_to_right"
    pair: bool = True  # NSP loss
    mix: str = "80/10/10"  # [MASK] / random / unchanged
    layers: int | None = None  # None: --layers
    bilstm: bool = False  # a BiLSTM between encoder and classifier at fine-tuning
    pretrained_as: str | None = None  # fine-tune another row's pre-trained model ("" = none)
    paper: str = ""  # the BERT paper's figures for the same row (dev set)


ROWS = (
    Row("mlm_nsp", "MLM 80/10/10 + NSP", paper="T5: SST-2 92.7, MNLI 84.4; T8: MNLI 84.2"),
    Row("mlm", "MLM, no NSP", pair=False, paper="T5: SST-2 92.6, MNLI 83.9"),
    Row("ltr", "left-to-right, no NSP", objective="left_to_right", pair=False,
        paper="T5: SST-2 92.1, MNLI 82.1"),
    Row("ltr_bilstm", "left-to-right + BiLSTM", objective="left_to_right", pair=False, bilstm=True,
        pretrained_as="ltr", paper="T5: SST-2 91.6, MNLI 82.1"),
    Row("mask_only", "MLM 100/0/0 + NSP", mix="100/0/0", paper="T8: MNLI 84.3, NER feature-based 94.0 (vs 94.9)"),
    Row("random_only", "MLM 0/100/0 + NSP", mix="0/100/0", paper="T8: MNLI 83.6, NER feature-based 94.6 (vs 94.9)"),
    Row("smaller", "MLM + NSP, 1 layer", layers=1, paper="T6: 3 layers SST-2 88.4, MNLI 77.9"),
    Row("larger", "MLM + NSP, 4 layers", layers=4, paper="T6: 12 layers SST-2 92.9, MNLI 84.4"),
    Row("random_init", "no pre-training (reference)", pretrained_as=""),
)


class BiLSTMClassifier(nn.Module):
    """Encoder -> randomly initialised BiLSTM -> linear: the paper's "+ BiLSTM" fine-tuning model,
    which gives a left-to-right encoder's tokens right-hand context."""

    def __init__(self, encoder: bertkit.BertkitModel, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.lstm = nn.LSTM(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> SimpleNamespace:
        states = self.encoder(input_ids, attention_mask, token_type_ids).last_hidden_state
        packed = pack_padded_sequence(states, attention_mask.sum(1).cpu(), batch_first=True, enforce_sorted=False)
        _, (last, _) = self.lstm(packed)  # (2, batch, hidden/2): forward at the end, backward at the start
        return SimpleNamespace(logits=self.out(self.dropout(torch.cat([last[0], last[1]], dim=-1))))


def shape(args: argparse.Namespace, row: Row) -> dict:
    layers = row.layers or args.layers
    return dict(hidden_size=args.hidden, num_layers=layers, num_heads=max(1, args.hidden // 64),
                intermediate_size=4 * args.hidden)


def prepare(args: argparse.Namespace, work: Path) -> tuple[PretrainDataset, PretrainDataset]:
    """The demo's corpus and vocabulary, cut into NSP samples (once; reused by later runs)."""
    data, held = work / "train_data", work / "held_out_data"
    if not (data / "manifest.json").is_file() or not (held / "manifest.json").is_file():
        # build_corpus thins to about limit / 20 files (its limit counts fine-tuning examples)
        train_dir, held_dir = build_corpus(work, args.imdb, args.corpus_files * 20 if args.corpus_files else None)
        vocab = train_vocab(sorted(train_dir.glob("*.txt")), "bert", 8000, work / "vocab", show_progress=False)
        for src, dst in ((train_dir, data), (held_dir, held)):
            prepare_corpus([src], vocab, dst, format="nsp", max_length=args.seq, workers=2, show_progress=False)
    return PretrainDataset(data), PretrainDataset(held)


def held_out_metrics(model_dir: Path, row: Row, held: PretrainDataset, samples: int) -> dict:
    """Next-token loss/accuracy for left-to-right rows; for MLM rows the MLM accuracy under BERT's
    80/10/10 corruption and under [MASK] only, the same for every row whatever its training mix."""
    model = bertkit.load_model(model_dir, head="mlm")
    if row.objective == "left_to_right":
        return evaluate_pretraining(model, held, max_samples=samples, objective="left_to_right")
    standard = evaluate_pretraining(model, held, max_samples=samples, mask_mix=(0.8, 0.1, 0.1))
    mask_only = evaluate_pretraining(model, held, max_samples=samples, mask_mix=(1.0, 0.0, 0.0))
    return {**standard, "mlm_accuracy_mask_only": mask_only["mlm_accuracy"]}


def _steps_done(run: Path) -> int | None:
    """The last logged step of a finished pre-training run in `run`, or None."""
    if not (run / "model" / "config.json").is_file() or not (run / "metrics.jsonl").is_file():
        return None
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["global_step"]


def seconds_per_step(args: argparse.Namespace, row: Row, data: PretrainDataset) -> float:
    """The median time of a few warm pre-training steps of this row's model, objective and batch."""
    torch.manual_seed(0)
    config = shape(args, row) | {"hidden_dropout": 0.0, "attention_dropout": 0.0}  # as pretrain_row trains it
    model = build_pretraining_model(config, data.manifest, max_length=args.seq,
                                    objective=row.objective, pair_objective=row.pair).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    collator = MLMCollator.from_manifest(data.manifest, objective=row.objective, mask_mix=row.mix)
    bf16, times = native_bf16(), []
    # samples read beforehand: the first reads of the corpus files are cold, the run's are not
    samples = [[data[i] for i in range(step * args.batch, (step + 1) * args.batch)] for step in range(12)]
    for chunk in samples:
        start = time.perf_counter()
        batch = collator(chunk)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = pretraining_loss(model, batch, objective=row.objective)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[4:])


_TIMED: set[Path] = set()  # timings made by this process (--fresh reuses them)


def row_steps(args: argparse.Namespace, row: Row, data: PretrainDataset, work: Path) -> int:
    """--steps, or the steps that fill --minutes at this row's speed. Rows whose steps cost the same
    (same size and objective; the masking mix and the tiny NSP head change nothing) share one timing,
    so that they get exactly the same budget; it is kept in --work, so that a resumed or collecting
    call gives the same budget."""
    if not args.minutes:
        return args.steps
    planned = work / "results" / f"steps-{row.layers or args.layers}x{args.hidden}-{row.objective}.json"
    if planned.is_file() and (not args.fresh or planned in _TIMED):
        return json.loads(planned.read_text())["steps"]
    _TIMED.add(planned)
    step_s = seconds_per_step(args, row, data)
    # steps in the loop run ~10% slower than timed ones (data loading, logging)
    steps = max(10, int(args.minutes * 60 / step_s * 0.9))
    print(f"{row.label}: {step_s:.3f} s/step -> {steps} steps in {args.minutes:g} min", flush=True)
    atomic_write_text(planned, json.dumps({"seconds_per_step": round(step_s, 4), "steps": steps}) + "\n")
    return steps


def pretrain_row(args: argparse.Namespace, row: Row, data: PretrainDataset, held: PretrainDataset,
                 work: Path) -> dict:
    """Pre-train one row (unless --work already holds its finished run) and measure it held out."""
    cached = work / "results" / f"{row.name}.pretrain.json"
    if cached.is_file() and not args.fresh:
        return json.loads(cached.read_text())
    start, model_dir = time.perf_counter(), work / row.name / "model"
    steps = row_steps(args, row, data, work)
    if args.fresh or _steps_done(work / row.name) != steps:  # else a finished run of this budget
        model_dir = pretrain(data.folder, work / row.name, model=shape(args, row), dropout=0.0, lr=args.lr,
                             objective=row.objective, pair_objective=row.pair, mask_mix=row.mix,
                             batch_size=args.batch, warmup=0.06, max_steps=steps, bf16=native_bf16(),
                             checkpoint_every=None, log_every=max(1, steps // 20), resume=False,
                             progress=False)
    minutes = (time.perf_counter() - start) / 60
    held_out = held_out_metrics(model_dir, row, held, args.eval_samples)
    result = {"pretrain_minutes": round(minutes, 2), "pretrain_steps": steps, "model_dir": str(model_dir),
              "held_out": {k: round(v, 4) for k, v in held_out.items()}}
    atomic_write_text(cached, json.dumps(result, indent=2) + "\n")
    return result


def classifier(row: Row, model_dir: Path | None, config: bertkit.EncoderConfig) -> nn.Module:
    if model_dir is None:
        return bertkit.build(config, head="classification", num_labels=2)
    if row.bilstm:
        return BiLSTMClassifier(bertkit.load_model(model_dir))
    return bertkit.load_model(model_dir, head="classification", num_labels=2)


def finetune_row(args: argparse.Namespace, row: Row, model_dir: Path | None, data: PretrainDataset) -> dict:
    """Fine-tune once per seed with the demo's recipe; final validation accuracy per seed."""
    tokenizer = Tokenizer.from_pretrained(data.folder / data.manifest.tokenizer_dir)
    features = rotten_tomatoes_features(tokenizer)
    # the random-init row's model: the 2-layer MLM + NSP architecture, exactly as pre-training builds it
    config = build_pretraining_model(shape(args, ROWS[0]), data.manifest, max_length=args.seq).config
    accuracies, start = [], time.perf_counter()
    for seed in range(args.seeds):
        torch.manual_seed(seed)  # the classifier's (and the random-init model's) initial weights
        curve = finetune(classifier(row, model_dir, config), features, tokenizer.pad_id,
                         epochs=args.finetune_epochs, lr=args.finetune_lr, seed=seed, limit=args.finetune_limit)
        accuracies.append(round(curve[-1], 4))
    return {"accuracy": accuracies, "mean": round(statistics.mean(accuracies), 4),
            "std": round(statistics.pstdev(accuracies), 4),
            "finetune_minutes": round((time.perf_counter() - start) / 60, 2)}


def run_row(args: argparse.Namespace, row: Row, data: PretrainDataset, held: PretrainDataset, work: Path) -> dict:
    """One row: pre-training (or another row's, or none) and fine-tuning, each cached in --work, so
    rows can also run in separate processes (`--rows`) and a final call collects them."""
    cached = work / "results" / f"{row.name}.json"
    if cached.is_file() and not args.fresh:
        return json.loads(cached.read_text())
    result: dict = {"row": asdict(row)}
    source = row.name if row.pretrained_as is None else row.pretrained_as
    if source:
        source_row = next(r for r in ROWS if r.name == source)
        result |= pretrain_row(args, source_row, data, held, work)
    result |= finetune_row(args, row, Path(result["model_dir"]) if source else None, data)
    atomic_write_text(cached, json.dumps(result, indent=2) + "\n")
    return result


# The paper's differences for the same comparisons (dev set; T5/T6/T8 = Tables 5, 6, 8).
COMPARISONS = (
    ("NSP", "mlm_nsp", "mlm", "+0.1 SST-2, +0.5 MNLI"),
    ("masked LM vs left-to-right", "mlm", "ltr", "+0.5 SST-2, +1.8 MNLI"),
    ("BiLSTM on the left-to-right model", "ltr_bilstm", "ltr", "-0.5 SST-2, 0.0 MNLI"),
    ("80/10/10 vs [MASK] only", "mlm_nsp", "mask_only", "-0.1 MNLI, +0.9 NER feature-based"),
    ("80/10/10 vs random only", "mlm_nsp", "random_only", "+0.6 MNLI, +0.3 NER feature-based"),
    ("4 layers vs 1 layer", "larger", "smaller", "12 vs 3 layers: +4.5 SST-2, +6.5 MNLI"),
    ("pre-training vs none", "mlm_nsp", "random_init", "not in the paper's tables"),
)


def _cell(held: dict | None, key: str) -> str:
    return f"{held[key]:.3f}" if held and key in held else "—"


def table(results: dict[str, dict]) -> str:
    lines = ["| row | pre-training steps (minutes) | held-out MLM acc. (80/10/10) | held-out MLM acc. ([MASK] only) | held-out next-token acc. "
             "| rotten_tomatoes acc., mean ± std | paper, same row |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results.values():
        held = r.get("held_out")
        steps = f"{r['pretrain_steps']:,} ({r['pretrain_minutes']:.1f})" if "pretrain_steps" in r else "—"
        lines.append(f"| {r['row']['label']} | {steps} | {_cell(held, 'mlm_accuracy')} | {_cell(held, 'mlm_accuracy_mask_only')} "
                     f"| {_cell(held, 'lm_accuracy')} | {r['mean']:.4f} ± {r['std']:.4f} | {r['row']['paper'] or '—'} |")
    return "\n".join(lines)


def closing_note(results: dict[str, dict]) -> str:
    """The measured ranking and each comparison's difference, beside the paper's."""
    ranked = sorted(results.values(), key=lambda r: -r["mean"])
    lines = ["Measured ranking by fine-tuned accuracy: " + " > ".join(r["row"]["label"] for r in ranked) + ".", ""]
    for what, a, b, paper in COMPARISONS:
        if a in results and b in results:
            ra, rb = results[a], results[b]
            diff = 100 * (ra["mean"] - rb["mean"])
            noise = 100 * max(ra["std"], rb["std"])
            verdict = "within seed noise" if abs(diff) <= noise else ("better" if diff > 0 else "worse")
            lines.append(f"- {what}: {diff:+.1f} points ({verdict}; larger seed std {noise:.1f}); paper: {paper}")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path) -> None:
    rows = list(results.values())
    fig, axes = new_figure(figsize=(12, 4.2), cols=2)
    labels = [r["row"]["label"] for r in rows]
    axes[0, 0].barh(labels, [r["mean"] for r in rows], xerr=[r["std"] for r in rows], color="tab:blue")
    axes[0, 0].set_xlim(min(r["mean"] - r["std"] for r in rows) - 0.02, max(r["mean"] + r["std"] for r in rows) + 0.02)
    axes[0, 0].set_title("rotten_tomatoes validation accuracy (mean ± std over seeds)")
    axes[0, 0].invert_yaxis()
    held = [(r["row"]["label"], r["held_out"]) for r in rows if r.get("held_out") and "mlm_accuracy" in r["held_out"]]
    names = [n for n, _ in held]
    axes[0, 1].barh(names, [h["mlm_accuracy"] for _, h in held], label="80/10/10 corruption", alpha=0.8)
    axes[0, 1].barh(names, [h["mlm_accuracy_mask_only"] for _, h in held], label="[MASK] only", alpha=0.5)
    axes[0, 1].set_title("held-out MLM accuracy")
    axes[0, 1].invert_yaxis()
    axes[0, 1].yaxis.tick_right()  # its labels clear of the left panel
    axes[0, 1].legend()
    finish_figure(fig, path)


def write_doc(doc: Path, block: str) -> None:
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    atomic_write_text(doc, head + BEGIN + "\n" + block + "\n" + END + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="pre-training budget per row, in minutes of compute (default 20)")
    budget.add_argument("--steps", type=int, help="pre-training budget per row, in optimizer steps")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="pre-training peak learning rate")
    parser.add_argument("--batch", type=int, default=32, help="pre-training batch size")
    parser.add_argument("--seq", type=int, default=128, help="pre-training sample length")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-limit", type=int, help="fine-tune on this many training examples (all by default)")
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning runs per row")
    parser.add_argument("--imdb", type=int, default=25000, help="unlabelled IMDb reviews added to the corpus")
    parser.add_argument("--corpus-files", type=int, help="smoke runs: a thinned corpus of about this many files")
    parser.add_argument("--eval-samples", type=int, default=1000, help="held-out samples for pre-training metrics")
    parser.add_argument("--rows", nargs="+", choices=[r.name for r in ROWS], help="run only these rows")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 suits a machine shared with others)")
    parser.add_argument("--work", default="/tmp/bertkit_ablations", help="scratch folder (cached rows resume)")
    parser.add_argument("--fresh", action="store_true", help="ignore rows cached in --work")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--plot", default="docs/ablations.png")
    parser.add_argument("--doc", help="markdown file whose ablations block gets the table and note")
    args = parser.parse_args()
    if args.steps is None and args.minutes is None:
        args.minutes = 20.0
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    data, held = prepare(args, work)
    print(f"{len(data)} NSP samples of up to {args.seq} tokens ({data.manifest.num_tokens} tokens), "
          f"{len(held)} held out; {f'{args.minutes} min' if args.minutes else f'{args.steps} steps'} "
          f"of batch {args.batch} per row")
    rows = [r for r in ROWS if not args.rows or r.name in args.rows]
    results: dict[str, dict] = {}
    for row in tqdm(rows, desc="ablation rows", unit="row"):
        results[row.name] = run_row(args, row, data, held, work)
        r = results[row.name]
        print(f"{row.label}: accuracy {r['mean']:.4f} ± {r['std']:.4f} {r['accuracy']}; held-out {r.get('held_out')}",
              flush=True)
    limit = f"the training set thinned to about {args.finetune_limit} reviews" if args.finetune_limit else "all reviews"
    per_row = f"{args.minutes:g} minutes of compute" if args.minutes else f"{args.steps} steps"
    budget = (f"{per_row} × batch {args.batch} × {args.seq} tokens per row; fine-tuning on "
              f"{limit}, {args.finetune_epochs} epochs, {args.seeds} seeds")
    block = f"Budget: {budget}.\n\n{table(results)}\n\n{closing_note(results)}\n\n![ablations]({Path(args.plot).name})"
    print(block)
    plot(results, Path(args.plot))
    if args.doc:
        write_doc(Path(args.doc), block)
    report({"budget": budget, "args": vars(args), "results": results}, args.out)


if __name__ == "__main__":
    main()
