"""Crash safety: SIGKILL at seeded random steps (mid-step, inside a checkpoint write, after a step),
several times in a row, then resume: the final weights are bit-identical to an uninterrupted run.
And Ctrl-C: exit 130 with a one-line message saying where the last checkpoint is."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from crash_helpers import KILL_KINDS, finetune_child, pretrain_child
from finetune_helpers import emotion_data, make_tiny_model
from safetensors.torch import load_file
from test_pretrain_run import make_data

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def forkserver():
    """Children forked from one server that imported torch and bertkit once (a fresh interpreter
    per run would spend most of the test importing)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["crash_helpers"])
    return context


def run_child(context, target, *args) -> int:
    process = context.Process(target=target, args=args)
    process.start()
    process.join(timeout=300)
    return process.exitcode


def kill_plan(seed: int, total: int) -> list[tuple[str, int]]:
    """Three kills at increasing random steps, each kind once, in a random order."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(2, total), 3))
    kinds = rng.sample(KILL_KINDS, 3)
    return list(zip(kinds, steps, strict=True))


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("seed", [11])
def test_finetuning_killed_three_times_resumes_bit_identically(forkserver, tmp_path, seed):
    model = make_tiny_model(tmp_path / "model", dropout=0.1)
    assert run_child(forkserver, finetune_child, str(model), str(tmp_path / "whole")) == 0
    plan = kill_plan(seed, 18)
    for kind, step in plan:
        code = run_child(forkserver, finetune_child, str(model), str(tmp_path / "killed"), kind, step)
        assert code == -signal.SIGKILL, (kind, step, code)
    assert run_child(forkserver, finetune_child, str(model), str(tmp_path / "killed")) == 0
    assert_bit_identical(load_file(str(tmp_path / "whole" / "final.safetensors")),
                         load_file(str(tmp_path / "killed" / "final.safetensors")))


@pytest.mark.parametrize("seed", [5])
def test_pretraining_killed_three_times_resumes_bit_identically(forkserver, tmp_path, seed):
    data = make_data(tmp_path)
    assert run_child(forkserver, pretrain_child, str(data), str(tmp_path / "whole")) == 0
    plan = kill_plan(seed, 12)
    for kind, step in plan:
        code = run_child(forkserver, pretrain_child, str(data), str(tmp_path / "killed"), kind, step)
        assert code == -signal.SIGKILL, (kind, step, code)
    assert run_child(forkserver, pretrain_child, str(data), str(tmp_path / "killed")) == 0
    weights = "model/model.safetensors"
    assert_bit_identical(load_file(str(tmp_path / "whole" / weights)),
                         load_file(str(tmp_path / "killed" / weights)))


def test_ctrl_c_exits_130_and_says_where_the_last_checkpoint_is(tmp_path):
    model = make_tiny_model(tmp_path / "model")
    texts, labels = emotion_data(32)
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels, strict=True)))
    ckpt = tmp_path / "ckpt"
    command = [sys.executable, "-m", "bertkit.cli", "finetune", "--model", str(model), "--train",
               str(tmp_path / "train.csv"), "--out", str(tmp_path / "out"), "--maxlen", "16",
               "--batch-size", "8", "--epochs", "1000", "--checkpoint-dir", str(ckpt), "--no-progress"]
    env = os.environ | {"PYTHONPATH": str(TESTS.parent), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(ckpt.glob("step-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        raise AssertionError(f"still running 60 s after Ctrl-C; stderr: {child.communicate()[1]}") from None
    assert child.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and str(ckpt / "step-") in lines[0], err
    assert "--resume" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_ctrl_c_stops_training_even_when_python_swallowed_the_interrupt():
    """A KeyboardInterrupt raised where Python only reports exceptions (a finaliser) is lost; the
    loop still stops at the end of that step, and the default handler is back afterwards."""
    from test_rowwise import collate, data, loss_fn, wide_toy

    from bertkit.train import TrainConfig, fit

    class SwallowedCtrlC:
        def __init__(self) -> None:
            self.steps = 0

        def on_step_end(self, state) -> None:
            self.steps += 1
            if self.steps == 2:
                try:
                    signal.raise_signal(signal.SIGINT)
                except KeyboardInterrupt:
                    pass  # as in a __del__ run by the garbage collector

    rows, callback = data(40), SwallowedCtrlC()
    config = TrainConfig(lr=0.01, epochs=5, batch_size=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(wide_toy(), rows, loss_fn, config, collate=collate, lengths=[len(r["input_ids"]) for r in rows],
            callbacks=[callback])
    assert callback.steps == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
