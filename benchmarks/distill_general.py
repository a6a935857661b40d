"""General distillation in miniature: a masked-LM teacher pre-trained on the pre-training demo's
corpus is distilled into a student of half its depth; the student's held-out MLM accuracy is
compared with the teacher's and with the same student trained without a teacher for the same time.

    python benchmarks/distill_general.py [--teacher-minutes 10] [--minutes 4] [--out result.json]
    python benchmarks/distill_general.py --prepared /tmp/bertkit_pretrain_helps --teacher RUN/model

Corpus, vocabulary and pre-training recipe are `pretrain_helps.py`'s (Python documentation plus
IMDb reviews, WordPiece 8000, 128-token full sentences, AdamW, dropout 0), with `--layers`
(default 4) for the teacher. Students, each for `--minutes`: (1) distilled: teacher layers
0 and 3 copied, triple loss 5/2/1 at T=2; (2) the same initialisation trained with MLM alone;
(3) the same shape from random initialisation with MLM alone. Steps are sized to the time budget
from timed steps, so each run's schedule decays in time; the budget also stops each run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import report
from pretrain_helps import BATCH, corpus_options, prepared_corpus, seconds_per_step, shape

import bertkit
from bertkit.distill.general import distill_general
from bertkit.pretrain.objectives import evaluate_pretraining
from bertkit.pretrain.run import pretrain
from bertkit.train import native_bf16


def _steps(minutes: float, step_s: float) -> int:
    return max(10, int(minutes * 60 / step_s * 0.9))  # the loop runs ~10% slower than timed steps


def _done(run: Path) -> int:
    """Optimizer steps the run logged (0 when it stopped before its first record)."""
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    return json.loads(lines[-1])["global_step"] if lines else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_options(parser)
    parser.set_defaults(layers=4)
    parser.add_argument("--teacher", help="an MLM teacher folder (default: pre-train one here)")
    parser.add_argument("--teacher-minutes", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, default=4.0, help="budget of each student")
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--student-lr", type=float, default=1e-3)
    parser.add_argument("--work", default="/tmp/bertkit_distill_general", help="scratch folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a shared machine)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work, bf16 = Path(args.work), native_bf16()
    data, held_out = prepared_corpus(args)
    teacher_s = seconds_per_step(data, args, bf16)
    student_args = argparse.Namespace(**{**vars(args), "layers": args.student_layers, "lr": args.student_lr})
    student_s = seconds_per_step(data, student_args, bf16)
    print(f"{len(data)} samples; timed steps: teacher {teacher_s:.2f} s, student {student_s:.2f} s", flush=True)
    figures: dict = {"corpus_tokens": data.manifest.num_tokens, "bf16": bf16, "teacher_shape": shape(args),
                     "threads": args.threads, "teacher_lr": args.lr, "student_lr": args.student_lr,
                     "student_layers": args.student_layers, "student_minutes": args.minutes}
    teacher = Path(args.teacher) if args.teacher else None
    if teacher is None:
        steps = _steps(args.teacher_minutes, teacher_s)
        start = time.perf_counter()
        teacher = pretrain(data.folder, work / "teacher", model=shape(args), dropout=args.dropout, lr=args.lr,
                           batch_size=BATCH, warmup=0.06, max_steps=steps, max_minutes=args.teacher_minutes,
                           bf16=bf16, checkpoint_every=None, log_every=20, resume=False, progress=False)
        figures["teacher_run"] = {"minutes": round((time.perf_counter() - start) / 60, 2),
                                  "steps": _done(work / "teacher")}
    common = dict(batch_size=BATCH, warmup=0.06, max_minutes=args.minutes, bf16=bf16, checkpoint_every=None,
                  log_every=20, resume=False, progress=False)
    # a distillation step adds a teacher forward: about a third of the teacher's training step
    distill_steps = _steps(args.minutes, student_s + teacher_s / 3)
    runs = {
        "distilled": lambda out: distill_general(str(data.folder), str(out), teacher=str(teacher),
                                                 num_layers=args.student_layers, lr=args.student_lr,
                                                 max_steps=distill_steps, **common),
        "same_init_mlm_only": lambda out: distill_general(str(data.folder), str(out), teacher=str(teacher),
                                                          num_layers=args.student_layers, lr=args.student_lr,
                                                          alpha_ce=0.0, alpha_cos=0.0,
                                                          max_steps=_steps(args.minutes, student_s), **common),
        "random_init_mlm_only": lambda out: pretrain(data.folder, out, model=shape(student_args), dropout=0.0,
                                                     lr=args.student_lr, max_steps=_steps(args.minutes, student_s),
                                                     **common),
    }
    accuracy = {"teacher": evaluate_pretraining(bertkit.load_model(teacher, head="mlm"), held_out,
                                                max_samples=2000)["mlm_accuracy"]}
    print(f"teacher {shape(args)}: held-out MLM accuracy {accuracy['teacher']:.4f}")
    for name, run in runs.items():
        start = time.perf_counter()
        model_dir = run(work / name)
        minutes = (time.perf_counter() - start) / 60
        accuracy[name] = evaluate_pretraining(bertkit.load_model(model_dir, head="mlm"), held_out,
                                              max_samples=2000)["mlm_accuracy"]
        figures[name] = {"minutes": round(minutes, 2), "steps": _done(work / name),
                         "mlm_accuracy": round(accuracy[name], 4),
                         "relative_to_teacher": round(accuracy[name] / accuracy["teacher"], 4)}
        print(f"{name}: {figures[name]['steps']} steps in {minutes:.1f} min, held-out MLM accuracy "
              f"{accuracy[name]:.4f} ({accuracy[name] / accuracy['teacher']:.1%} of the teacher's)")
    figures["teacher_mlm_accuracy"] = round(accuracy["teacher"], 4)
    for name in ("same_init_mlm_only", "random_init_mlm_only"):
        figures[f"distilled_vs_{name}"] = round(accuracy["distilled"] - accuracy[name], 4)
    report(figures, args.out)


if __name__ == "__main__":
    main()
