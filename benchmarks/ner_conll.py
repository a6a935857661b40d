"""Fine-tune all-MiniLM-L6-v2 for CoNLL-2003 NER with bertkit and with a plain `transformers` loop
(same weights, data and recipe), and compare entity F1 and training throughput; then the paper's
feature-based approach (bertkit's `bilstm-bert`: a BiLSTM over the frozen encoder's top four layers).

Both fine-tuning sides: labels on the first sub-token of each word, maxlen 128, batch 32, AdamW
lr 5e-5 (weight decay 0.01, none on biases and LayerNorm weights), linear schedule with 10% warmup,
gradient clipping at 1.0, seed 42. The `transformers` side is the usual loop:
AutoModelForTokenClassification, a shuffled DataLoader with DataCollatorForTokenClassification
(each batch padded to its longest sentence). bertkit uses its own loop on random batches too, encoded packed (only
real tokens go through the encoder; `--grouped` groups sentences of similar length instead, the
BiLSTM tagger always does). Throughput = training sentences per second of training (tokenising
and evaluation excluded). The files are read with `repair=True`: the local copy of eng.train has a
few added sentences whose I- tags follow O; those tags start an entity, as the CoNLL rules read them. F1: entity level, CoNLL rules (seqeval's default), dev on eng.testa,
test on eng.testb.

    python benchmarks/ner_conll.py [--train-sentences N] [--epochs 1] [--bilstm-epochs 1] [--out f.json]
    python benchmarks/ner_conll.py --bilstm-only --bilstm-epochs 3   # the feature-based tagger alone
Targets: test F1 within 0.5 points of the transformers run; throughput ratio >= 1.5.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path

import torch
from common import (
    hf_adamw,
    hf_from_pretrained,
    linear_warmup,
    minilm_path,
    shuffled_loader,
    timed,
    train_steps,
)

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.model.encoder import packed_encoding
from bertkit.tasks.inference import forward_features
from bertkit.tasks.ner import NerTask
from bertkit.tasks.ner_tags import entity_scores
from bertkit.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "conll2003"


def run_bertkit(model_path: str, sets: dict, args: argparse.Namespace, tagger: str = "linear") -> dict:
    task = NerTask(maxlen=args.maxlen, tagger=tagger)
    task.prepare(*sets["train"])
    tokenizer = bertkit.Tokenizer.from_pretrained(model_path)
    train = task.featurize(tokenizer, *sets["train"])
    torch.manual_seed(args.seed)
    model = bertkit.load_model(model_path, head=task.head, num_labels=task.num_outputs)
    epochs, lr = (args.bilstm_epochs, args.bilstm_lr) if tagger == "bilstm" else (args.epochs, args.lr)
    config = TrainConfig(lr=lr, epochs=epochs, batch_size=args.batch_size, warmup=args.warmup, seed=args.seed,
                         weight_decay=0.01, max_grad_norm=1.0, progress=False,
                         group_by_length=task.group_by_length or args.grouped)
    with packed_encoding(model, not config.group_by_length):  # as `Learner.fit` trains
        _, seconds = timed(fit, model, train, task.loss_fn(train), config, lengths=train.lengths,
                           collate=functools.partial(pad_collate, pad_id=train.pad_id))
    f1 = {}
    for name in ("dev", "test"):
        data = task.featurize(tokenizer, *sets[name])
        f1[name] = task.metrics(forward_features(model, data.features, pad_id=data.pad_id, batch_size=64), data)["val_f1"]
    return _figures(f1, len(sets["train"][0]) * epochs, seconds)


def run_transformers(model_path: str, sets: dict, args: argparse.Namespace, tags: list[str]) -> dict:
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tag_ids = {t: i for i, t in enumerate(tags)}

    def encode(words: list[list[str]], labels: list[list[str]]) -> list[dict]:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.maxlen)
        rows = []
        for i, row in enumerate(labels):
            word_ids, previous, targets = enc.word_ids(i), None, []
            for w in word_ids:  # the first sub-token of each word carries its tag
                targets.append(-100 if w is None or w == previous else tag_ids[row[w]])
                previous = w
            rows.append({k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")} | {"labels": targets})
        return rows

    torch.manual_seed(args.seed)
    model = hf_from_pretrained(AutoModelForTokenClassification, model_path, num_labels=len(tags))
    collate = DataCollatorForTokenClassification(tokenizer)
    train_rows = encode(*sets["train"])
    loader = shuffled_loader(train_rows, args.batch_size, collate, args.seed)
    optimizer = hf_adamw(model, args.lr)
    scheduler = linear_warmup(optimizer, args.warmup, len(loader) * args.epochs)
    seconds = train_steps(model, loader, optimizer, scheduler, epochs=args.epochs)
    model.eval()
    f1 = {name: _hf_f1(model, collate, encode(*sets[name]), sets[name][1], tags) for name in ("dev", "test")}
    return _figures(f1, len(train_rows) * args.epochs, seconds)


@torch.inference_mode()
def _hf_f1(model, collate, rows: list[dict], gold: list[list[str]], tags: list[str]) -> float:
    predicted = []
    for i in range(0, len(rows), 64):
        chunk = rows[i : i + 64]
        batch = collate(chunk)
        labels = batch.pop("labels")
        logits = model(**batch).logits.argmax(-1)
        for row, guess, words in zip(labels, logits, gold[i : i + 64], strict=True):
            first = [tags[int(g)] for lab, g in zip(row, guess, strict=True) if lab != -100]
            predicted.append(first + ["O"] * (len(words) - len(first)))  # words cut by truncation: "O"
    return entity_scores(gold, predicted)["micro avg"]["f1-score"]


def _figures(f1: dict, sentences: int, seconds: float) -> dict:
    return {"dev_f1": round(100 * f1["dev"], 2), "test_f1": round(100 * f1["test"], 2),
            "train_seconds": round(seconds, 1), "sentences_per_s": round(sentences / seconds, 2)}


def load_sets(data_dir: Path, train_sentences: int | None, eval_sentences: int | None) -> dict:
    sets = {}
    for name, file in (("train", "eng.train"), ("dev", "eng.testa"), ("test", "eng.testb")):
        if not (data_dir / file).is_file():
            raise SystemExit(f"CoNLL-2003 file {data_dir / file} not found: pass --data-dir")
        sets[name] = NerTask.read(str(data_dir / file), repair=True)
    for name, limit in (("train", train_sentences), ("dev", eval_sentences), ("test", eval_sentences)):
        if limit:
            sets[name] = tuple(part[:limit] for part in sets[name])
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA, help="folder with eng.train, eng.testa, eng.testb")
    parser.add_argument("--train-sentences", type=int, help="train on the first N sentences (default: all)")
    parser.add_argument("--eval-sentences", type=int, help="score only the first N dev and test sentences (smoke runs)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--grouped", action="store_true",
                        help="train the linear tagger on length-grouped batches too (the default is random batches, packed)")
    parser.add_argument("--bilstm-epochs", type=int, default=1, help="epochs of the feature-based tagger (0: skip it)")
    parser.add_argument("--bilstm-lr", type=float, default=1e-3)
    parser.add_argument("--bilstm-only", action="store_true", help="run only the feature-based tagger")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    model_path = minilm_path()
    sets = load_sets(args.data_dir, args.train_sentences, args.eval_sentences)
    print(f"CoNLL-2003: {len(sets['train'][0])} training, {len(sets['dev'][0])} dev, {len(sets['test'][0])} test "
          f"sentences; torch threads {torch.get_num_threads()}", flush=True)
    tags = NerTask(maxlen=args.maxlen)
    tags.prepare(*sets["train"])
    figures = {}
    if not args.bilstm_only:
        figures["bertkit"] = run_bertkit(model_path, sets, args)
        print("bertkit:", figures["bertkit"], flush=True)
        figures["transformers"] = run_transformers(model_path, sets, args, tags.tags)
        print("transformers:", figures["transformers"], flush=True)
        ratio = figures["bertkit"]["sentences_per_s"] / figures["transformers"]["sentences_per_s"]
        figures["throughput_ratio"] = round(ratio, 3)
        figures["test_f1_difference_points"] = round(figures["bertkit"]["test_f1"] - figures["transformers"]["test_f1"], 2)
    if args.bilstm_epochs or args.bilstm_only:
        figures["bertkit_bilstm"] = run_bertkit(model_path, sets, args, tagger="bilstm")
    figures["settings"] = {k: os.path.relpath(v, ROOT) if isinstance(v, Path) else v
                           for k, v in vars(args).items() if k != "out"}
    for side in ("transformers", "bertkit", "bertkit_bilstm"):
        if side in figures:
            f = figures[side]
            print(f"{side:>14}: dev F1 {f['dev_f1']:.2f}, test F1 {f['test_f1']:.2f}, "
                  f"{f['sentences_per_s']:.1f} sentences/s ({f['train_seconds']:.1f} s training)")
    if "throughput_ratio" in figures:
        print(f"throughput ratio (bertkit / transformers): {figures['throughput_ratio']:.2f}; test F1 difference "
              f"{figures['test_f1_difference_points']:+.2f} points")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
