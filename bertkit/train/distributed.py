"""Thin helpers over torch.distributed for runs launched by `torchrun` (single process otherwise)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK).

    Default backend: NCCL when CUDA is available (and this process is pinned to cuda:LOCAL_RANK),
    gloo otherwise; pass backend="gloo" to train on CPUs of a machine that also has a GPU.
    Returns True when running distributed; without WORLD_SIZE > 1 it does nothing and returns False.
    Calling it again after the group exists is a no-op.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor | float) -> torch.Tensor:
    """Mean of `x` over all ranks (returns a new tensor; `x` itself unchanged)."""
    t = torch.as_tensor(x, dtype=torch.float64 if not isinstance(x, torch.Tensor) else None)
    t = t.detach().clone()
    if is_distributed():
        if dist.get_backend() == "nccl" and t.device.type != "cuda":
            t = t.to(f"cuda:{local_rank()}")
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t = t / dist.get_world_size()
    return t
