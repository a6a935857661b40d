"""Tiny GLUE folders in the official TSV layouts, with labels a small model can learn (a cue word)."""

from __future__ import annotations

import random
from pathlib import Path

HEADERS = {
    "SST-2": ["sentence", "label"],
    "MRPC": ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "STS-B": ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
              "sentence2", "score"],
    "QQP": ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
    "MNLI": ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"],
    "QNLI": ["index", "question", "sentence", "label"],
    "RTE": ["index", "sentence1", "sentence2", "label"],
    "WNLI": ["index", "sentence1", "sentence2", "label"],
}
TEST_HEADERS = {
    "CoLA": ["index", "sentence"], "SST-2": ["index", "sentence"],
    "MRPC": ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"], "QQP": ["id", "question1", "question2"],
}
LABELS = {"MNLI": ["contradiction", "entailment", "neutral"], "QNLI": ["entailment", "not_entailment"],
          "RTE": ["entailment", "not_entailment"]}
CUES = ["sunny", "rainy", "windy"]
FILES = {"MNLI": (["dev_matched.tsv", "dev_mismatched.tsv"], ["test_matched.tsv", "test_mismatched.tsv"])}


def _row(task: str, header: list[str], i: int, label: str | None, rng: random.Random) -> list[str]:
    classes = LABELS.get(task, ["0", "1"])
    cue = CUES[classes.index(label)] if label is not None and task != "STS-B" else rng.choice(CUES[:2])
    if task == "STS-B" and label is not None:
        cue = "sunny" if float(label) >= 2.5 else "rainy"
    first = f"the {rng.choice(['day', 'week', 'trip'])} was {cue} and {rng.choice(['long', 'short'])}"
    second = f"a {rng.choice(['nice', 'plain'])} report number {i}"
    values = {"sentence": first, "#1 String": first, "#2 String": second, "sentence1": first,
              "sentence2": second, "question1": first, "question2": second, "question": first,
              "index": str(i), "id": str(i)}
    row = [values.get(column, "x") for column in header]
    if label is not None:
        row[header.index("Quality") if "Quality" in header else -1] = label
    return row


def _labels(task: str, n: int, rng: random.Random) -> list[str]:
    if task == "STS-B":
        return [f"{rng.choice([rng.uniform(0, 2), rng.uniform(3, 5)]):.3f}" for _ in range(n)]
    classes = LABELS.get(task, ["0", "1"])
    return [classes[i % len(classes)] for i in range(n)]


def write_glue(folder: Path, task: str, n_train: int = 32, n_dev: int = 16, n_test: int = 8, seed: int = 0) -> Path:
    """`folder`/`task` with train, dev and test TSVs in the task's official layout."""
    rng = random.Random(seed)
    out = folder / task
    out.mkdir(parents=True, exist_ok=True)
    devs, tests = FILES.get(task, (["dev.tsv"], ["test.tsv"]))
    for name, n in [("train.tsv", n_train)] + [(d, n_dev) for d in devs]:
        labels = _labels(task, n, rng)
        if task == "CoLA":  # no header: source, label, original label, sentence
            lines = ["\t".join(["gj04", y, "" if y == "1" else "*", _row(task, ["sentence", "label"], i, y, rng)[0]])
                     for i, y in enumerate(labels)]
        else:
            header = HEADERS[task] if not name.startswith("dev") or task != "MNLI" else \
                HEADERS[task][:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
            lines = ["\t".join(header)] + ["\t".join(_row(task, header, i, y, rng)) for i, y in enumerate(labels)]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in tests:
        header = TEST_HEADERS.get(task, [c for c in HEADERS.get(task, []) if c not in ("label", "score", "gold_label", "label1")])
        lines = ["\t".join(header)] + ["\t".join(_row(task, header, i, None, rng)) for i in range(n_test)]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
