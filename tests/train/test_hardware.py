"""Native bf16 detection: CPU flags from /proc/cpuinfo (x86 `flags`, Arm `Features`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertkit.train import native_bf16
from bertkit.train.hardware import cpu_flags


@pytest.mark.parametrize(("flags", "expected"), [
    ("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512bw", True),  # Zen 4, Cooper Lake
    ("flags\t\t: fpu sse2 avx512f amx_tile amx_bf16", True),  # Sapphire Rapids
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw", False),  # AVX-512 without bf16: emulated, slow
    ("Features\t: fp asimd sve", False),
])
def test_cpu_bf16_from_flags(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: X\n{flags}\n\nprocessor\t: 1\n{flags}\n")
    assert native_bf16("cpu", cpuinfo=cpuinfo) is expected


def test_no_cpuinfo_means_no_native_bf16(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == set()
    assert native_bf16("cpu", cpuinfo=tmp_path / "missing") is False
    assert native_bf16("meta") is False


def test_default_device_and_to_device(monkeypatch):
    import torch

    from bertkit.train.hardware import default_device, to_device

    assert default_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("bertkit.train.hardware.local_rank", lambda: 1)
    assert default_device() == torch.device("cuda", 1)  # a torchrun process takes its own GPU
    moved = to_device({"ids": torch.ones(2), "words": ["a"]}, torch.device("cpu"))
    assert moved["words"] == ["a"] and moved["ids"].device.type == "cpu"
