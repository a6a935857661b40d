"""Pre-training step throughput: bertkit vs transformers' BertForPreTraining + its MLM collator.

    python benchmarks/pretrain_throughput.py [--steps 6] [--rounds 3] [--out result.json]

Same data (NSP samples of real IMDb reviews, max length 128, a WordPiece vocab of 8000 trained
here), same model shape (4 layers, hidden 256, 4 heads, intermediate 1024), batch 32, fp32, AdamW.
A step includes collation (masking) with each library's own collator, forward, backward and the
optimizer step. bertkit projects onto the vocabulary only at masked positions; transformers
projects every token. Rounds alternate which library goes first, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import movie_reviews, report, threads

from bertkit import EncoderConfig, build
from bertkit.pretrain import MLMCollator, PretrainDataset, prepare_corpus, train_vocab
from bertkit.pretrain.objectives import pretraining_loss

SHAPE = dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024)


def make_corpus(work: Path, reviews: int) -> PretrainDataset:
    texts = movie_reviews("imdb")["text"].head(reviews).str.replace("<br />", " ", regex=False)
    (work / "text").mkdir(parents=True, exist_ok=True)
    for i in range(0, len(texts), 500):
        (work / "text" / f"part{i:05d}.txt").write_text("\n\n".join(texts[i:i + 500]) + "\n")
    files = sorted((work / "text").glob("*.txt"))
    train_vocab(files, "bert", 8000, work / "vocab", show_progress=False)
    prepare_corpus([work / "text"], work / "vocab", work / "data", format="nsp", max_length=128,
                   short_seq_prob=0.0, workers=2, show_progress=False)
    return PretrainDataset(work / "data")


def bertkit_step(dataset: PretrainDataset, vocab: int):
    torch.manual_seed(0)
    model = build(EncoderConfig(vocab_size=vocab, **SHAPE), head="pretraining").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collator = MLMCollator.from_manifest(dataset.manifest)

    def step(indices: list[int]) -> int:
        batch = collator([dataset[i] for i in indices])
        loss, _ = pretraining_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum())

    return step


def transformers_step(dataset: PretrainDataset, vocab: int, tokenizer_dir: Path):
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=4,
                                     num_attention_heads=4, intermediate_size=1024)
    model = transformers.BertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)

    def step(indices: list[int]) -> int:
        features = [{"input_ids": item["input_ids"].tolist(), "token_type_ids": item["token_type_ids"].tolist(),
                     "next_sentence_label": item["next_sentence_label"]}
                    for item in (dataset[i] for i in indices)]
        batch = collator(features)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum())

    return step


def timed(step, batches: list[list[int]]) -> float:
    """Tokens per second over `batches` (non-padding tokens)."""
    start, tokens = time.perf_counter(), 0
    for indices in batches:
        tokens += step(indices)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per library per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reviews", type=int, default=3000, help="IMDb reviews for vocab and data")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(threads())
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_corpus(Path(tmp), args.reviews)
        vocab = dataset.manifest.vocab_size
        ours = bertkit_step(dataset, vocab)
        theirs = transformers_step(dataset, vocab, Path(tmp) / "data" / "tokenizer")
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(len(dataset), generator=g).tolist()
        batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        batches = [b for b in batches if len(b) == args.batch_size]
        ours(batches[0]), theirs(batches[0])  # warm-up
        rates: dict[str, list[float]] = {"bertkit": [], "transformers": []}
        for r in range(args.rounds):
            chunk = batches[1 + r * args.steps: 1 + (r + 1) * args.steps]
            pair = [("bertkit", ours), ("transformers", theirs)]
            for name, step in pair if r % 2 == 0 else pair[::-1]:
                rates[name].append(timed(step, chunk))
    ours_rate, theirs_rate = statistics.median(rates["bertkit"]), statistics.median(rates["transformers"])
    report({"benchmark": "pretraining step (collate + forward + backward + AdamW)",
            "config": SHAPE | {"vocab_size": vocab, "max_length": 128, "batch_size": args.batch_size,
                               "dtype": "fp32", "threads": torch.get_num_threads()},
            "bertkit_tokens_per_s": round(ours_rate, 1),
            "transformers_tokens_per_s": round(theirs_rate, 1),
            "ratio": round(ours_rate / theirs_rate, 3),
            "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()}}, args.out)


if __name__ == "__main__":
    main()
