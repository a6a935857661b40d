"""Bad input ends in one line naming the problem and its place, before any work, with every
input and pre-existing file left byte for byte as it was (docs/failure-modes.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from finetune_helpers import emotion_data, make_tiny_model

import bertkit
from bertkit.cli import main
from bertkit.data import read_table
from bertkit.io import atomic_dir
from bertkit.pretrain.shards import Manifest
from bertkit.train.outputs import OutputError, check_output


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with the hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def fails_in_one_line(capsys, argv: list[str], *expected: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("failure_modes") / "model")


def write_csv(path: Path, n: int = 12, labels: list[str] | None = None) -> Path:
    texts, default = emotion_data(n)
    rows = zip(texts, labels or default, strict=True)
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return path


def finetune_args(tiny: Path, train: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(tiny), "--train", str(train), "--out", str(out), "--maxlen", "16",
            "--no-progress", *extra]


# ----------------------------------------------------------------------------- 1. --out
def test_out_holding_the_training_data_is_refused_before_training(tmp_path, tiny, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    write_csv(folder / "train.csv")
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, finetune_args(tiny, folder / "train.csv", folder, "--max-steps", "1"),
                      str(folder), "train.csv")
    assert snapshot(tmp_path) == before


def test_out_that_is_not_a_bertkit_output_is_refused(tmp_path, tiny, capsys):
    train = write_csv(tmp_path / "train.csv")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "mine"), "not a bertkit predictor")
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "file"), "is a file")
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "file" / "sub"), "which is a file")
    fails_in_one_line(capsys, finetune_args(tiny, train, tiny), "holds the input")
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "o", "--checkpoint-dir",
                                            str(tmp_path / "o" / "ckpt")), "holds the input")
    assert snapshot(tmp_path) == before


def test_out_dot_is_refused(tmp_path, tiny, capsys, monkeypatch):
    train = write_csv(tmp_path / "train.csv")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, finetune_args(tiny, train, Path(".")), "current folder")
    assert snapshot(tmp_path) == before


def test_a_predictor_or_empty_folder_may_be_replaced_and_keeps_its_permissions(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", "predictor") == tmp_path / "empty"
    old = tmp_path / "old"
    old.mkdir()
    (old / "bertkit.json").write_text(json.dumps({"format": "bertkit-predictor"}))
    check_output(old, "predictor")
    with pytest.raises(OutputError, match="a bertkit predictor"):
        check_output(old, "pretraining run")
    os.chmod(old, 0o750)
    with atomic_dir(old) as tmp:
        (tmp / "bertkit.json").write_text("{}")
    assert stat.S_IMODE(old.stat().st_mode) == 0o750
    with atomic_dir(tmp_path / "new") as tmp:
        (tmp / "x").write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~umask


# ----------------------------------------------------------------------------- 3. degenerate runs
@pytest.mark.parametrize("extra, expected", [
    (["--epochs", "0"], "epochs must be at least 1, got 0"),
    (["--epochs", "-1"], "epochs must be at least 1, got -1"),
    (["--max-steps", "0"], "max_steps must be at least 1, got 0"),
    (["--warmup", "-1"], "warmup must be 0 or more"),
    (["--batch-size", "0"], "batch_size must be at least 1"),
    (["--resume"], "--resume needs --checkpoint-dir"),
])
def test_degenerate_options_fail_before_any_work(tmp_path, tiny, capsys, extra, expected):
    train = write_csv(tmp_path / "train.csv")
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "out", *extra), expected)
    assert snapshot(tmp_path) == before


def test_single_class_is_an_error(tmp_path, tiny, capsys):
    train = write_csv(tmp_path / "train.csv", n=6, labels=["joy"] * 6)
    fails_in_one_line(capsys, finetune_args(tiny, train, tmp_path / "out"), "at least two classes")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"at least two classes, got 1 \(joy\)"):
        bertkit.text.Transformer(str(tiny), maxlen=16).preprocess_train(["a", "b"], ["joy", "joy"])


def test_pretrain_run_with_bad_options_or_out_leaves_nothing(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, ["pretrain", "run", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                               "--layers", "0"], "layers must be at least 1, got 0")
    fails_in_one_line(capsys, ["pretrain", "run", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                               "--warmup", "-1"], "warmup must be 0 or more")
    fails_in_one_line(capsys, ["pretrain", "run", str(tmp_path / "data"), "--out", str(tmp_path / "file")],
                      "is a file")
    assert not (tmp_path / "o").exists() and snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- 6-7. messages
@pytest.mark.parametrize("name, damage, expected", [
    ("model.safetensors", lambda b: b[: len(b) // 2], "model.safetensors is corrupt or truncated"),
    ("config.json", lambda b: b"{oops", "config.json is corrupt"),
    ("tokenizer.json", lambda b: b'{"version": ', "tokenizer.json is corrupt"),
])
def test_corrupt_model_files_are_named(tmp_path, tiny, capsys, name, damage, expected):
    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    (model / name).write_bytes(damage((model / name).read_bytes()))
    train = write_csv(tmp_path / "train.csv")
    before = snapshot(tmp_path)
    fails_in_one_line(capsys, finetune_args(model, train, tmp_path / "out"), expected)
    assert snapshot(tmp_path) == before


def test_reader_errors_name_file_line_and_way_out(tmp_path, tiny, capsys, monkeypatch):
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\nfine,joy\ncaf\xe9 ok,fear\n".encode("latin-1"))
    line = fails_in_one_line(capsys, finetune_args(tiny, bad, tmp_path / "out"), str(bad), "line 3", "utf-8")
    assert "--encoding" in line
    assert read_table(bad, label_column="label", encoding="latin-1")["text"][1] == "caf\xe9 ok"
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "label": "joy"}\n{"text": "b", label: 1}\n')
    fails_in_one_line(capsys, finetune_args(tiny, jsonl, tmp_path / "out"), str(jsonl), "line 2", "not valid JSON")
    tsv = tmp_path / "d.csv"
    tsv.write_text("text\tlabel\na\tjoy\nb\tfear\n")
    fails_in_one_line(capsys, finetune_args(tiny, tsv, tmp_path / "out"), "tab-separated", ".tsv")
    empty = tmp_path / "e.csv"
    empty.write_text("text,label\na,joy\nb,\nc,fear\n")
    line = fails_in_one_line(capsys, finetune_args(tiny, empty, tmp_path / "out"), "row 2", str(empty), "label")
    assert "nan" not in line.lower() and "None" not in line
    parquet = tmp_path / "d.parquet"
    parquet.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    fails_in_one_line(capsys, finetune_args(tiny, parquet, tmp_path / "out"), "pip install 'bertkit[parquet]'")
    assert not (tmp_path / "out").exists()


def test_bad_predictor_settings_and_labels_are_errors(tmp_path, tiny, capsys):
    preproc = bertkit.text.Transformer(str(tiny), maxlen=16, classes=["joy", "fear"])
    saved = bertkit.get_predictor(preproc.get_classifier(), preproc).save(tmp_path / "p")
    meta = json.loads((saved / "bertkit.json").read_text())
    meta["settings"]["stride"] = -3
    (saved / "bertkit.json").write_text(json.dumps(meta))
    fails_in_one_line(capsys, ["predict", "--predictor", str(saved), "hello"], "bertkit.json", "stride")
    for kwargs, expected in [(dict(num_labels=-1), "num_labels must be a positive"),
                             (dict(labels=["a", "a"]), "repeated: \\['a'\\]"),
                             (dict(labels=["a", "b"], num_labels=3), "contradicts the 2 labels"),
                             (dict(labels=[]), "labels is empty")]:
        with pytest.raises(ValueError, match=expected):
            bertkit.load_model(tiny, head="classification", **kwargs)


def test_manifest_shards_outside_the_data_folder_are_refused(tmp_path):
    fields = dict(format="nsp", family="bert", max_length=8, vocab_size=10, id_dtype="uint16",
                  special_ids={}, all_special_ids=[], seed=0, masking={})
    for name, arrays in (("../../etc/passwd", ["ids"]), ("shard-00000", ["/abs/ids"])):
        shards = [{"name": name, "num_samples": 1, "num_tokens": 1, "arrays": arrays}]
        (tmp_path / "manifest.json").write_text(json.dumps(fields | {"shards": shards}))
        with pytest.raises(ValueError, match="outside"):
            Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{truncated")
    with pytest.raises(ValueError, match="manifest.json is corrupt"):
        Manifest.load(tmp_path)
