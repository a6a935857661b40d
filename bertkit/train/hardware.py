"""The device to run on, and what the hardware does fast: native bfloat16 matrix units on the GPU or
the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bertkit.train.distributed import local_rank

# CPU flags of native bf16 dot products (AVX512-BF16: Cooper Lake, Zen 4 and later; AMX: Sapphire
# Rapids and later). Without them bf16 is emulated and slower than float32.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; None: this process's GPU when there is one (under torchrun the
    one of its local rank), else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on `device` (other values unchanged)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU listed in `cpuinfo` (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def native_bf16(device: str | torch.device | None = None, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True where bf16 autocast speeds training up: a CUDA GPU with bf16 support (Ampere or later)
    or a CPU with AVX512-BF16 / AMX. `device=None` asks about the device training would use."""
    device = default_device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))
    return False
