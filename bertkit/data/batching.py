"""Length-bucketed, shardable, resumable batch sampling and dynamic-padding collation.

For each epoch the sampler builds one *global* list of micro-batches. Rank r of a world of W
processes takes micro-batches r, r+W, r+2W, ... (the list is padded by repeating its start so every
rank gets the same count). A run that consumed n global micro-batches resumes with `skip(n)`, also
under a different world size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

BATCHES_PER_BUCKET = 50  # sort within chunks of ~50 batches: little padding, still random batches


class LengthBucketSampler:
    """Yield lists of item indices; items of similar length share a batch when `bucket` is true.

    Order is a pure function of (seed, epoch): call `set_epoch(epoch)` before each epoch, then
    optionally `skip(n)` to drop the first n global micro-batches (mid-epoch resume).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        bucket: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(
                f"rank must be in [0, world_size), got rank={rank} world_size={world_size}"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.batch_size = batch_size
        self.shuffle, self.seed, self.drop_last, self.bucket = shuffle, seed, drop_last, bucket
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order to produce; resets any `skip`."""
        self.epoch = epoch
        self.skipped = 0

    def skip(self, n_global_micro_batches: int) -> None:
        """Drop the first n global micro-batches of the current epoch (already consumed before a resume)."""
        self.skipped = max(0, int(n_global_micro_batches))

    def global_batches(self) -> list[list[int]]:
        """All micro-batches of the current epoch, for all ranks, before sharding and skipping."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            chunk = self.batch_size * BATCHES_PER_BUCKET
            pieces = []
            for start in range(0, n, chunk):
                part = order[start : start + chunk]
                # stable sort keeps the shuffled order among equal lengths
                pieces.append(part[np.argsort(-self.lengths[part], kind="stable")])
            order = np.concatenate(pieces)
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def num_global_batches(self) -> int:
        """Global micro-batches in one whole epoch (the same for every epoch)."""
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _my_batches(self) -> list[list[int]]:
        remaining = self.global_batches()[self.skipped :]
        if not remaining:
            return []
        short = -len(remaining) % self.world_size
        padded = remaining + [remaining[i % len(remaining)] for i in range(short)]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._my_batches())

    def __len__(self) -> int:
        remaining = max(0, self.num_global_batches() - self.skipped)
        return -(-remaining // self.world_size)


def _pad_value(key: str, pad_id: int) -> int:
    if key == "input_ids":
        return pad_id
    if key.endswith("labels"):
        return -100  # ignored by cross-entropy
    if key == "special_tokens_mask":
        return 1
    return 0  # attention_mask, token_type_ids and other per-token integer fields


def _shape(value: Any) -> Any:
    """Nested lengths: () for a scalar, T for a sequence, (T1, T2, ...) for multiple-choice rows."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return ()
    if value and isinstance(value[0], (list, tuple)):
        return tuple(len(v) for v in value)
    return len(value)


def _longest(value: Any) -> int:
    shape = _shape(value)
    return max(shape) if isinstance(shape, tuple) else shape


def pad_sequences(rows: Sequence[Any], length: int, fill: Any, *, dtype: torch.dtype | None = None) -> Any:
    """Every row of per-token values filled up to `length` with `fill`: a (rows, length) tensor of
    `dtype`, or (dtype None) lists, for values a tensor cannot hold (offset pairs, None word ids)."""
    if dtype is None:
        return [_as_list(row) + [fill] * (length - len(row)) for row in rows]
    out = torch.full((len(rows), length), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=dtype)
    return out


def pad_vectors(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """(rows, length, ...) float32: each (seq, ...) array of per-token vectors padded with zeros."""
    out = np.zeros((len(rows), length, *rows[0].shape[1:]), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _as_list(value: Any) -> list:
    return value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else list(value)


def _pad_last(value: Any, length: int, fill: int) -> list:
    """A sequence, or each sequence of a multiple-choice feature's rows, padded to `length`."""
    value = _as_list(value)
    if value and isinstance(value[0], (list, tuple, np.ndarray, torch.Tensor)):
        return pad_sequences(value, length, fill)
    return pad_sequences([value], length, fill)[0]


def _is_float_list(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.ndim == 1 and value.dtype.is_floating_point
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind == "f"
    return isinstance(value, (list, tuple)) and any(isinstance(x, float) for x in value)


def pad_collate(
    features: Sequence[dict[str, Any]], pad_id: int = 0, *, pad_to_multiple_of: int | None = None
) -> dict[str, Any]:
    """Stack a list of feature dicts into tensors, padding per-token fields to the longest item.

    A field is per-token when each value has the same shape as that feature's `input_ids`
    (list of floats excepted: that is a multi-label target), or is a (seq, k) float array for
    (seq,) ids (a vector per token, padded with zero rows). Pad values: `input_ids` → pad_id,
    `*labels` → -100, `special_tokens_mask` → 1, anything else → 0. Other fields (class ids,
    float targets, multi-label vectors, span positions) are stacked. Values torch cannot hold
    (strings, None in word ids, ...) are returned as a plain list.
    """
    if not features:
        raise ValueError("pad_collate got an empty batch")
    longest = max(_longest(f["input_ids"]) for f in features)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    batch: dict[str, Any] = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if all(_is_token_vectors(v, f["input_ids"]) for v, f in zip(values, features, strict=True)):
            batch[key] = torch.from_numpy(pad_vectors(values, longest))
            continue
        per_token = all(
            _shape(v) == _shape(f["input_ids"]) and _shape(v) != () and not _is_float_list(v)
            for v, f in zip(values, features, strict=True)
        )
        if per_token:
            values = [_pad_last(v, longest, _pad_value(key, pad_id)) for v in values]
        batch[key] = _to_tensor(values)
    return batch


def _is_token_vectors(value: Any, input_ids: Any) -> bool:
    """A float array of one vector per token, (seq, k) for (seq,) ids: per-token scores (for
    example a teacher's logits in distillation)."""
    return (isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype.kind == "f"
            and not isinstance(_shape(input_ids), tuple) and value.shape[0] == len(input_ids))


def _to_tensor(values: list[Any]) -> Any:
    if all(isinstance(v, torch.Tensor) for v in values):
        return torch.stack(values)
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged, non-token field
        return values
    if arr.dtype.kind in "iub":
        return torch.as_tensor(arr, dtype=torch.bool if arr.dtype.kind == "b" else torch.long)
    if arr.dtype.kind == "f":
        return torch.as_tensor(arr, dtype=torch.float32)
    return values
