"""What the hardware does fast: native bfloat16 matrix units on the GPU or the CPU."""

from __future__ import annotations

from pathlib import Path

import torch

# CPU flags of native bf16 dot products (AVX512-BF16: Cooper Lake, Zen 4 and later; AMX: Sapphire
# Rapids and later). Without them bf16 is emulated and slower than float32.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))
    return False
