"""DDP with gloo on two CPU processes matches one process with the same global batch."""

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_loop import collate, lengths, loss_fn, make_data, toy

from bertkit.train import TrainConfig, all_reduce_mean, fit, init_distributed, is_main, world_size
from bertkit.train import checkpoint as checkpoint_module

DATA = make_data(32)  # 8 global micro-batches of 4: 4 optimizer steps of 8 examples
BASE = dict(lr=0.02, epochs=1, batch_size=4, warmup=0, progress=False, log_every=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    assert init_distributed(backend="gloo") and world_size() == world and is_main() == (rank == 0)
    assert all_reduce_mean(float(rank)).item() == 0.5
    writes = []
    original = checkpoint_module.atomic_dir

    def counting_atomic_dir(path):
        writes.append(str(path))
        return original(path)

    checkpoint_module.atomic_dir = counting_atomic_dir
    model = toy()
    config = TrainConfig(**BASE, checkpoint_dir=os.path.join(out, "ckpt"))
    history = fit(
        model, DATA, loss_fn, config, collate=collate, lengths=lengths(DATA), device="cpu"
    )
    # micro-batches of 2 with accumulation: exercises DDP's no_sync on the first micro-step
    accum_history = fit(
        toy(),
        DATA,
        loss_fn,
        TrainConfig(**{**BASE, "batch_size": 2}, grad_accum=2),
        collate=collate,
        device="cpu",
    )
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"writes": writes, "records": history.records, "accum": accum_history.records}, f)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    dist.destroy_process_group()


def test_two_process_ddp_matches_grad_accum(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = toy()
    reference = fit(
        single,
        DATA,
        loss_fn,
        TrainConfig(**BASE, grad_accum=2),
        collate=collate,
        lengths=lengths(DATA),
        device="cpu",
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    ddp_losses = [r["loss"] for r in ranks[0]["records"]]
    assert len(ddp_losses) == 4
    torch.testing.assert_close(
        ddp_losses, [r["loss"] for r in reference.records], atol=1e-5, rtol=0
    )
    ddp_state = torch.load(tmp_path / "model.pt", weights_only=True)
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, atol=1e-5, rtol=0)
    assert ranks[0]["writes"] and not ranks[1]["writes"]  # only rank 0 writes checkpoints
    assert ranks[1]["records"] == []  # and only rank 0 keeps the log
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step-000004"]
    accum_reference = fit(
        toy(),
        DATA,
        loss_fn,
        TrainConfig(**{**BASE, "batch_size": 2}, grad_accum=4),
        collate=collate,
        device="cpu",
    )
    torch.testing.assert_close(
        [r["loss"] for r in ranks[0]["accum"]],
        [r["loss"] for r in accum_reference.records],
        atol=1e-5,
        rtol=0,
    )
