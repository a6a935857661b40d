"""Task distillation on real reviews: all-MiniLM-L6-v2 fine-tuned on the rotten_tomatoes split is the
teacher; students of 3 and 2 of its layers are distilled from it (soft targets at T=2 plus the
labels; also with unlabelled IMDb reviews the teacher labels) and trained without it from the same
initialisation. Prints validation accuracy, retention, parameters and inference throughput on the
same batches, and draws accuracy against speed.

    python benchmarks/distill_sentiment.py [--limit 7677] [--epochs 2] [--imdb 5000] [--out f.json]
    python benchmarks/distill_sentiment.py --limit 64 --valid-limit 64 --imdb 32 --epochs 1  # smoke

Every model: maxlen --maxlen, batch 32, AdamW with a one-cycle schedule (--teacher-lr,
--student-lr), seed 42, the fixed 7,677/853 split of `bertkit.data.movie_reviews` (--limit takes
the first N training reviews). Students copy the teacher's embeddings, classifier and layers
(0, 3, 5 for three; 0, 5 for two). Throughput: the validation reviews (--speed-examples of them),
batches of 32 sorted by length, the median of --repeats passes, all models timed in turn in this
one process so they share the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import minilm_path, movie_reviews, report

import bertkit as ktrain
from bertkit import text
from bertkit.data.movie_reviews import rotten_tomatoes_split
from bertkit.distill import make_student
from bertkit.model.encoder import count_parameters
from bertkit.plotting import finish_figure, new_figure
from bertkit.tasks.inference import forward_features

CLASSES = ["negative", "positive"]


def accuracy(learner, val) -> float:
    return learner.report(val, print_report=False).metrics["val_accuracy"]


def throughput(models: dict, val, repeats: int) -> dict[str, float]:
    """Examples per second of each model over the same validation features, timed in turn."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            forward_features(model, val.features, pad_id=val.pad_id, batch_size=32)
            times[name].append(time.perf_counter() - start)
    return {name: len(val) / statistics.median(t) for name, t in times.items()}


def plot(results: dict, path: str) -> None:
    fig, ax = new_figure(figsize=(7.5, 4.2))
    markers = {"teacher": "*", "distilled": "o", "distilled + IMDb": "s", "no teacher": "x"}
    for name, r in results.items():
        marker = markers[name.split(", ")[-1]] if ", " in name else markers["teacher"]
        ax.scatter(r["examples_per_s"], r["accuracy"], s=60, marker=marker, label=name)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.set_xlabel("inference throughput (reviews/s, CPU)")
    ax.set_ylabel("rotten_tomatoes validation accuracy")
    ax.set_title("distilled students of all-MiniLM-L6-v2")
    finish_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="first N training reviews (default all 7,677)")
    parser.add_argument("--valid-limit", type=int, help="first N validation reviews (smoke runs; default all 853)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--teacher-lr", type=float, default=5e-5)
    parser.add_argument("--student-lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5, help="share of the soft-target loss")
    parser.add_argument("--imdb", type=int, default=5000, help="unlabelled IMDb reviews (0: none)")
    parser.add_argument("--speed-examples", type=int, default=853)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plot", default="benchmarks/results/distill_sentiment.png")
    parser.add_argument("--cache", default="/tmp/bertkit_distill_sentiment", help="teacher logits cache")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a shared machine)")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--replot", metavar="JSON", help="only redraw the figure from an earlier --out")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(Path(args.replot).read_text())["results"], args.plot)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    train, valid = rotten_tomatoes_split()
    train = train[: args.limit] if args.limit else train
    valid = valid[: args.valid_limit] if args.valid_limit else valid
    t = text.Transformer(minilm_path(), maxlen=args.maxlen, classes=CLASSES, batch_size=32)
    train_data = t.preprocess_train(train["text"], train["label"])
    val = t.preprocess_test(valid["text"], valid["label"])
    print(f"{len(train_data)} training and {len(val)} validation reviews", flush=True)
    start = time.perf_counter()
    learner = ktrain.get_learner(t.get_classifier(seed=42), train_data, val)
    learner.fit_onecycle(args.teacher_lr, args.epochs, progress=False)
    teacher = ktrain.get_predictor(learner.model, preproc=t)
    results = {"teacher (6 layers)": {"accuracy": accuracy(learner, val), "model": teacher.model,
                                      "minutes": (time.perf_counter() - start) / 60}}
    print(f"teacher: accuracy {results['teacher (6 layers)']['accuracy']:.4f}", flush=True)
    imdb = []
    if args.imdb:
        reviews = movie_reviews("imdb")["text"].head(args.imdb)
        imdb = reviews.str.replace("<br />", " ", regex=False).tolist()
    for layers in (3, 2):
        runs = {"distilled": dict(), "distilled + IMDb": dict(unlabeled=imdb), "no teacher": None}
        for kind, extra in runs.items():
            if kind == "distilled + IMDb" and not imdb:
                continue
            start = time.perf_counter()
            if extra is None:
                student = ktrain.get_learner(make_student(teacher.model, layers), train_data, val)
            else:
                student = ktrain.distill(teacher, train_data, val, layers=layers, temperature=args.temperature,
                                         alpha=args.alpha, cache=args.cache, **extra)
            student.fit_onecycle(args.student_lr, args.epochs, progress=False)
            name = f"{layers} layers, {kind}"
            results[name] = {"accuracy": accuracy(student, val), "model": student.model,
                             "minutes": (time.perf_counter() - start) / 60}
            print(f"{name}: accuracy {results[name]['accuracy']:.4f}", flush=True)
    speed_val = val if args.speed_examples >= len(val) else t.preprocess_test(
        valid["text"][: args.speed_examples], valid["label"][: args.speed_examples])
    speeds = throughput({n: r["model"] for n, r in results.items()}, speed_val, args.repeats)
    teacher_accuracy = results["teacher (6 layers)"]["accuracy"]
    for name, r in results.items():
        r |= {"examples_per_s": round(speeds[name], 1), "speed_ratio": round(speeds[name] / speeds["teacher (6 layers)"], 3),
              "retention": round(r["accuracy"] / teacher_accuracy, 4), "parameters": count_parameters(r.pop("model")),
              "accuracy": round(r["accuracy"], 4), "minutes": round(r["minutes"], 2)}
        print(f"{name:>28}: accuracy {r['accuracy']:.4f} (retention {r['retention']:.1%}), "
              f"{r['parameters'] / 1e6:.1f}M parameters, {r['examples_per_s']:.1f} reviews/s (x{r['speed_ratio']:.2f})")
    plot(results, args.plot)
    report({"train_reviews": len(train), "imdb_reviews": len(imdb), "epochs": args.epochs, "maxlen": args.maxlen,
            "teacher_lr": args.teacher_lr, "student_lr": args.student_lr, "temperature": args.temperature, "alpha": args.alpha,
            "threads": torch.get_num_threads(), "results": results}, args.out)


if __name__ == "__main__":
    main()
