"""`bertkit distill general` under torchrun (2 gloo processes on CPU): both ranks end with the same
student, which equals a one-process run with the same global batch, and its checkpoint resumes in
one process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_distill_general import records
from test_pretrain_ddp import _free_port
from test_pretrain_run import make_data, weights

import bertkit
from bertkit.distill.general import distill_general

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # one_thread: tests/conftest.py

# Dropout off (the student copies the teacher's config): the two ranks draw their dropout masks
# from separate RNG streams, so only a dropout-free run can equal a one-process run.
TEACHER = dict(vocab_size=300, hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64,
               hidden_dropout=0.0, attention_dropout=0.0)
ARGS = dict(num_layers=2, max_steps=4, batch_size=4, lr=3e-3, warmup=1, log_every=1, checkpoint_every=2)

# Saves each rank's student as `fit` leaves it, then runs the CLI.
LAUNCHER = """
import os, sys
import torch
import bertkit.distill.general as general
_fit = general.fit
def fit(model, *args, **kwargs):
    history = _fit(model, *args, **kwargs)
    torch.save(model.state_dict(), os.environ["STUDENT_DUMP"] + "." + os.environ["RANK"] + ".pt")
    return history
general.fit = fit
from bertkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_torchrun_ranks_agree_match_one_process_and_resume_with_one(tmp_path: Path) -> None:
    data = make_data(tmp_path, n_docs=3, max_length=32, fmt="full_sentences")
    torch.manual_seed(0)
    teacher = bertkit.build(bertkit.EncoderConfig(**TEACHER), head="mlm").save(tmp_path / "teacher")
    (tmp_path / "launch.py").write_text(LAUNCHER)
    cli = [str(tmp_path / "launch.py"), "distill", "general", str(data), "--out", str(tmp_path / "ddp"),
           "--teacher", str(teacher), "--no-progress", "--no-bf16"]
    cli += [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    env = os.environ | {"OMP_NUM_THREADS": "1", "STUDENT_DUMP": str(tmp_path / "student")}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
              "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    done = subprocess.run(launch + cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"student.{r}.pt", weights_only=True) for r in (0, 1)]
    for key, tensor in ranks[0].items():
        assert torch.equal(ranks[1][key], tensor), f"the ranks disagree on {key}"

    single = distill_general(str(data), str(tmp_path / "single"), teacher=str(teacher), grad_accum=2,
                             progress=False, bf16=False, **ARGS)
    ddp = records(tmp_path / "ddp")
    assert [r["step"] for r in ddp] == [1, 2, 3, 4]
    for key in ("loss", "kl_loss", "mlm_loss", "cos_loss"):
        assert [r[key] for r in ddp] == pytest.approx([r[key] for r in records(tmp_path / "single")], abs=1e-4), key
    one_process = weights(single.parent)
    assert one_process.keys() == weights(tmp_path / "ddp").keys()
    for key, tensor in one_process.items():
        torch.testing.assert_close(weights(tmp_path / "ddp")[key], tensor, atol=1e-4, rtol=0)
    assert ddp[0]["loss"] != ddp[-1]["loss"]  # it trained: equal weights are not just the start

    # Resume the 2-process run's step-2 checkpoint in one process (world size 1, accumulation 2).
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ddp", resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000004")
    shutil.rmtree(resumed / "model")
    distill_general(str(data), str(resumed), teacher=str(teacher), grad_accum=2, progress=False, bf16=False,
                    **ARGS)
    assert [r["loss"] for r in records(resumed)] == pytest.approx([r["loss"] for r in ddp], abs=1e-4)
    for key, tensor in weights(tmp_path / "ddp").items():
        torch.testing.assert_close(weights(resumed)[key], tensor, atol=1e-4, rtol=0)
