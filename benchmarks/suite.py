"""Prediction suite: bertkit's predictor (fp32, bf16, int8, ONNX) beside transformers, one table.

    python -m benchmarks [--reviews 600] [--maxlen 512] [--repeats 3] [--out benchmarks/results/suite_cpu2]

One process, the same predictor folder (MiniLM fine-tuned on IMDB reviews, trained once and kept
under --work) and the same reviews for every contender; contenders run round-robin so machine
load hits all alike, and each figure is the median of --repeats runs. Writes OUT.json and OUT.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bertkit.io import save_json
from bertkit.precision import inference_threads

from .common import hf_from_pretrained, minilm_path, movie_reviews
from .measure import PeakMemory, encoder_flops, matmul_peak_gflops
from .sweep import plot_sweep, sweep

CLASSES = ["negative", "positive"]
Predict = Callable[[list[str]], np.ndarray]  # texts -> (n, classes) probabilities


def imdb_split(n_eval: int, n_train: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint, label-balanced samples of the IMDB reviews: (train, eval)."""
    table = movie_reviews("imdb").sample(frac=1.0, random_state=seed)
    parts = [table[table["label"] == label] for label in sorted(table["label"].unique())]
    take = lambda n, skip: pd.concat([p.iloc[skip : skip + n // 2] for p in parts])  # noqa: E731
    return take(n_train, 0).reset_index(drop=True), take(n_eval, n_train // 2).sample(frac=1.0, random_state=seed)


def trained_predictor(work: Path, train: pd.DataFrame, maxlen: int, train_maxlen: int = 64) -> Path:
    """A MiniLM classifier fine-tuned for one epoch on `train` (kept in `work` for later runs).

    Training reads the first `train_maxlen` tokens of each review to stay short on a CPU; the
    saved predictor reads up to `maxlen`, as transformers does in the comparison.
    """
    import bertkit as ktrain
    from bertkit import text

    folder = work / f"imdb-minilm-{len(train)}-{maxlen}"
    if (folder / "bertkit.json").is_file():
        return folder
    t = text.Transformer(minilm_path(), maxlen=train_maxlen, classes=CLASSES, batch_size=16)
    data = t.preprocess_train(train["text"].tolist(), [CLASSES[int(v)] for v in train["label"]])
    learner = ktrain.get_learner(t.get_classifier(), train_data=data, batch_size=16)
    learner.fit_onecycle(5e-5, 1)
    predictor = ktrain.get_predictor(learner.model, preproc=t)
    predictor.task.maxlen = maxlen
    predictor.save(folder)
    return folder


def bertkit_contender(folder: Path, precision: str) -> Predict:
    import bertkit

    predictor = bertkit.load_predictor(folder, precision=precision, device="cpu")
    return lambda texts: np.asarray(predictor.predict_proba(texts))


def hf_model(folder: Path):
    import transformers

    model = hf_from_pretrained(transformers.AutoModelForSequenceClassification, folder)
    return model.eval(), transformers.AutoTokenizer.from_pretrained(folder)


def pipeline_contender(folder: Path, maxlen: int, batch_size: int) -> Predict:
    import transformers

    model, tokenizer = hf_model(folder)
    pipe = transformers.pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu",
                                 batch_size=batch_size, top_k=None)
    index = {name: i for i, name in model.config.id2label.items()}

    def predict(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(index)), dtype=np.float32)
        for row, scores in enumerate(pipe(texts, truncation=True, max_length=maxlen)):
            for s in scores:
                out[row, index[s["label"]]] = s["score"]
        return out

    return predict


def loop_contender(folder: Path, maxlen: int, batch_size: int) -> Predict:
    model, tokenizer = hf_model(folder)

    @torch.inference_mode()
    def predict(texts: list[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], truncation=True, max_length=maxlen,
                              padding=True, return_tensors="pt")
            rows.append(model(**batch).logits.softmax(-1).numpy())
        return np.concatenate(rows)

    return predict


def fastest(make: Callable[[int], Predict], sizes: list[int], texts: list[str]) -> tuple[int, Predict]:
    """The batch size (of `sizes`) that runs `texts` fastest: transformers' best configuration."""
    if len(sizes) == 1:
        return sizes[0], make(sizes[0])
    timed = []
    for size in sizes:
        predict = make(size)
        start = time.perf_counter()
        predict(texts)
        timed.append((time.perf_counter() - start, size, predict))
    _, size, predict = min(timed, key=lambda t: t[0])
    return size, predict


def run_round_robin(contenders: dict[str, Predict], texts: list[str], repeats: int) -> dict[str, dict]:
    results: dict[str, dict] = {name: {"seconds": [], "peak_mb": 0.0} for name in contenders}
    for predict in contenders.values():
        predict(texts[:8])  # warm-up
    for _ in range(repeats):
        for name, predict in contenders.items():
            with PeakMemory() as memory:
                start = time.perf_counter()
                probs = predict(texts)
                seconds = time.perf_counter() - start
            results[name]["seconds"].append(seconds)
            results[name]["peak_mb"] = max(results[name]["peak_mb"], memory.peak_mb)
            results[name]["probs"] = probs
            print(f"  {name}: {len(texts) / seconds:.2f} reviews/s", flush=True)
    return results


def summarise(results: dict[str, dict], labels: np.ndarray, flops: float, peak: float) -> list[dict]:
    reference = results["bertkit fp32"]["probs"]
    base = {k: len(labels) / statistics.median(results[k]["seconds"]) for k in results}
    rows = []
    for name, r in results.items():
        rate = base[name]
        row = {"contender": name, "reviews_per_s": rate, "runs": len(r["seconds"]),
               "vs_pipeline": rate / base["transformers pipeline"], "vs_loop": rate / base["transformers loop"],
               "accuracy": float((r["probs"].argmax(1) == labels).mean()),
               "max_prob_diff_vs_bertkit_fp32": float(np.abs(r["probs"] - reference).max()),
               "labels_equal_bertkit_fp32": bool((r["probs"].argmax(1) == reference.argmax(1)).all()),
               "peak_mb": r["peak_mb"], "useful_gflops": flops * rate / len(labels) / 1e9}
        row["fraction_of_fp32_peak"] = row["useful_gflops"] / peak
        rows.append(row)
    return rows


def print_table(rows: list[dict], peak: float) -> None:
    print(f"\n| contender | reviews/s | × pipeline | × loop | accuracy | max Δp vs bertkit fp32 | same labels | "
          f"peak MB | useful GFLOPS | of fp32 peak ({peak:.0f} GFLOPS) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['contender']} | {r['reviews_per_s']:.2f} | {r['vs_pipeline']:.2f} | {r['vs_loop']:.2f} | "
              f"{r['accuracy']:.4f} | {r['max_prob_diff_vs_bertkit_fp32']:.1e} | {r['labels_equal_bertkit_fp32']} | "
              f"{r['peak_mb']:.0f} | {r['useful_gflops']:.1f} | {r['fraction_of_fp32_peak']:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=600)
    parser.add_argument("--train", type=int, default=2000, help="IMDB reviews to fine-tune the classifier on")
    parser.add_argument("--maxlen", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8", "onnx"])
    parser.add_argument("--pipeline-batch", type=int, nargs="+", default=[1, 8, 32],
                        help="batch sizes tried for the pipeline; the fastest on 16 reviews is used")
    parser.add_argument("--loop-batch", type=int, nargs="+", default=[8, 32], help="the same for the plain loop")
    parser.add_argument("--no-sweep", action="store_true", help="skip the length × batch-size sweep (PNG)")
    parser.add_argument("--work", default="/tmp/bertkit-bench", help="folder for the trained predictor")
    parser.add_argument("--out", default="benchmarks/results/suite_cpu2", help="OUT.json and OUT.png")
    args = parser.parse_args()
    threads = inference_threads()
    train, evaluation = imdb_split(args.reviews, args.train)
    folder = trained_predictor(Path(args.work), train, args.maxlen)
    if "onnx" in args.precisions and not (folder / "model.onnx").is_file():
        from bertkit.export import export_onnx

        export_onnx(folder)
    texts, labels = evaluation["text"].tolist(), evaluation["label"].to_numpy().astype(int)
    probe = texts[:16]
    pipe_batch, pipe = fastest(lambda b: pipeline_contender(folder, args.maxlen, b), args.pipeline_batch, probe)
    loop_batch, loop = fastest(lambda b: loop_contender(folder, args.maxlen, b), args.loop_batch, probe)
    contenders = {"transformers pipeline": pipe, "transformers loop": loop}
    contenders |= {f"bertkit {p}": bertkit_contender(folder, p) for p in args.precisions}
    peak_before = matmul_peak_gflops()
    results = run_round_robin(contenders, texts, args.repeats)
    peak = max(peak_before, matmul_peak_gflops())
    lengths = _lengths(folder, texts, args.maxlen)
    flops = encoder_flops(lengths, hidden=384, intermediate=1536, layers=6, labels=2)
    rows = summarise(results, labels, flops, peak)
    print_table(rows, peak)
    figures = {"benchmark": "prediction suite", "model": "all-MiniLM-L6-v2 fine-tuned on IMDB", "reviews": len(texts),
               "maxlen": args.maxlen, "threads": threads, "tokens": int(sum(lengths)),
               "pipeline_batch_size": pipe_batch, "loop_batch_size": loop_batch,
               "fp32_matmul_peak_gflops": peak, "useful_flops_per_run": flops,
               "how": "useful FLOPs = the matmul work the logits need: no padding, and in the last layer only keys and values beyond the first position (benchmarks/measure.py);"
                      " peak = best median torch.mm fp32 GFLOPS over encoder-like shapes, measured before and"
                      " after the runs (max); throughput = median of round-robin repeats; peak MB = RSS above"
                      " the level at the start of a run", "rows": rows}
    if not args.no_sweep:
        figures["sweep"] = sweep(folder)
        plot_sweep(figures["sweep"], args.out + ".png")
    save_json(args.out + ".json", figures)
    print(json.dumps({k: v for k, v in figures.items() if k not in ("rows", "sweep")}, indent=1))


def _lengths(folder: Path, texts: list[str], maxlen: int) -> list[int]:
    from bertkit import Tokenizer

    return [len(ids) for ids in Tokenizer.from_pretrained(folder)(texts, max_length=maxlen, truncation=True)["input_ids"]]
