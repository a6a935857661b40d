"""`bertkit pretrain run` under torchrun (2 gloo processes on CPU) matches one process with the same
global batch, writes only from rank 0, and its checkpoint resumes in a single process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_pretrain_run import TINY, make_data, records, weights

from bertkit.pretrain.run import pretrain

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # one_thread: tests/conftest.py

# Dropout off: the two ranks draw their dropout masks from separate RNG streams.
CONFIG = TINY | dict(hidden_dropout=0.0, attention_dropout=0.0)
ARGS = dict(max_steps=4, batch_size=4, lr=2e-3, log_every=1, checkpoint_every=2)

# Records every file rename (all of bertkit's writes end in os.replace) per rank, then runs the CLI.
LAUNCHER = """
import os, sys
_replace = os.replace
def replace(src, dst, *args, **kwargs):
    with open(os.environ["WRITES_LOG"] + "." + os.environ["RANK"], "a") as f:
        f.write(str(dst) + "\\n")
    return _replace(src, dst, *args, **kwargs)
os.replace = replace
from bertkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_matches_single_process_and_resumes_with_one(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "launch.py").write_text(LAUNCHER)
    cli = [str(tmp_path / "launch.py"), "pretrain", "run", str(data), "--out", str(tmp_path / "ddp"),
           "--model", str(tmp_path / "config.json"), "--quiet", "--no-bf16"]
    cli += [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    env = os.environ | {"OMP_NUM_THREADS": "1", "WRITES_LOG": str(tmp_path / "writes")}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
              "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    done = subprocess.run(launch + cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    pretrain(data, tmp_path / "single", model=CONFIG, grad_accum=2, progress=False, bf16=False, **ARGS)
    ddp, single = records(tmp_path / "ddp"), records(tmp_path / "single")
    assert [r["step"] for r in ddp] == [1, 2, 3, 4]
    for key in ("loss", "mlm_loss", "nsp_accuracy"):
        assert [r[key] for r in ddp] == pytest.approx([r[key] for r in single], abs=1e-4), key
    for key, tensor in weights(tmp_path / "single").items():
        torch.testing.assert_close(weights(tmp_path / "ddp")[key], tensor, atol=1e-4, rtol=0)

    assert not (tmp_path / "writes.1").exists()  # rank 1 wrote nothing
    written = (tmp_path / "writes.0").read_text()
    assert "metrics.jsonl" in written and "step-000004" in written and "pretraining.png" in written

    # Resume the 2-process run's step-2 checkpoint in one process (world size 1, accumulation 2).
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ddp", resumed)
    shutil.rmtree(resumed / "checkpoints" / "phase-1" / "step-000004")
    shutil.rmtree(resumed / "model")
    pretrain(data, resumed, model=CONFIG, grad_accum=2, progress=False, bf16=False, **ARGS)
    assert [r["loss"] for r in records(resumed)] == pytest.approx([r["loss"] for r in ddp], abs=1e-4)
    for key, tensor in weights(tmp_path / "ddp").items():
        torch.testing.assert_close(weights(resumed)[key], tensor, atol=1e-4, rtol=0)
