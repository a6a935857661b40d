"""The oldest PyTorch bertkit runs on, checked when bertkit is imported (before any newer API is touched)."""

from __future__ import annotations

import torch

# torch.compiler.is_exporting (attention masks kept in exported ONNX graphs) is the newest API
# bertkit calls; the others (dynamo ONNX export with external_data, device-generic autocast
# queries, fused CPU AdamW) arrived in 2.4-2.6. Keep in step with pyproject.toml.
TORCH_FLOOR = (2, 7)
CPU_WHEEL = "pip install 'torch>={}.{},<3' --index-url https://download.pytorch.org/whl/cpu"


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a torch version string such as "2.13.0+cpu" or "2.8.0a0+git1234"."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_torch(version: str = torch.__version__) -> None:
    """Raise ImportError, saying what to install, when `version` is older than TORCH_FLOOR."""
    if version_tuple(version) < TORCH_FLOOR:
        floor = ".".join(map(str, TORCH_FLOOR))
        raise ImportError(
            f"bertkit needs PyTorch >= {floor}, but torch {version} is installed. "
            f"Install a newer one, e.g. the CPU wheel: {CPU_WHEEL.format(*TORCH_FLOOR)}"
        )


check_torch()
