"""Dropout whose random mask is cheaper to draw on the CPU than PyTorch's, and attention that uses it.

On the CPU, PyTorch draws a dropout mask element by element from its Mersenne Twister
(`bernoulli_`), about 10 ns an element, single-threaded: at batch 6 the masks of a 6-layer encoder
cost more than all its layer norms and activations together. Here one number drawn from torch's
generator becomes the state of numpy's PCG64 (set directly: seeding through numpy's SeedSequence
costs more than drawing a batch-6 mask), whose 64-bit words give four 16-bit uniforms each. So the
masks still follow `torch.manual_seed`, and a checkpoint's saved RNG state resumes them exactly.

An element is kept when its uniform is at least `round(p * 65536)`. The drop probability is thus p
rounded to a multiple of 2**-16 (0.1 becomes 0.1000061). Kept elements are scaled by one over the
keep probability actually used, so the expected output equals the input, as in `F.dropout`.
Elsewhere (GPUs, compiled graphs) PyTorch's own dropout runs; it is fused and fast there.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # 16-bit uniforms
_INCREMENT = 0xDA3E39CB94B95BDB  # PCG64's stream (any odd number); the seed sets its position
_local = threading.local()  # one bit generator per thread: setting its state and drawing is not atomic


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)`, with the mask drawn as the module docstring says on the CPU."""
    threshold = round(p * _LEVELS)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0 < threshold < _LEVELS or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    return x * keep_mask(x.shape, threshold, x.dtype)


def keep_mask(shape: torch.Size, threshold: int, dtype: torch.dtype) -> torch.Tensor:
    """0 where dropped, 1 / keep-probability where kept; elements drop with probability threshold / 2**16."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 1 << 62, ()))  # advances torch's CPU generator
    uniforms = _uniforms16(seed, n)
    keep = np.empty(n, dtype=np.float32)
    np.multiply(uniforms >= threshold, np.float32(_LEVELS / (_LEVELS - threshold)), out=keep)
    return torch.from_numpy(keep).view(shape).to(dtype)


def _uniforms16(seed: int, n: int) -> np.ndarray:
    """`n` uniform 16-bit integers from PCG64 started at state `seed`."""
    bits = getattr(_local, "bits", None)
    if bits is None:
        bits = _local.bits = np.random.PCG64(0)
    bits.state = {"bit_generator": "PCG64", "state": {"state": seed, "inc": _INCREMENT},
                  "has_uint32": 0, "uinteger": 0}
    return bits.random_raw((n + 3) // 4).view(np.uint16)[:n]


class Dropout(nn.Dropout):
    """`nn.Dropout` (same `p`, same state dict: none) drawing its masks through `dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              dropout_p: float) -> torch.Tensor:
    """`F.scaled_dot_product_attention(q, k, v, mask, dropout_p)`. On the CPU SDPA computes
    attention with dropout step by step anyway (its fused kernel has no dropout), drawing the mask
    with `bernoulli_`; here the same steps draw it with `dropout`."""
    if dropout_p == 0.0 or q.device.type != "cpu" or torch.compiler.is_compiling():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (..., queries, keys)
    if mask is not None:
        scores = scores + mask
    return dropout(scores.softmax(-1), dropout_p) @ v
