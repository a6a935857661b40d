"""Length-bucketed sampler (determinism, padding, sharding, resume) and the padding collator."""

import random

import pytest
import torch

from bertkit.data import LengthBucketSampler, pad_collate

LENGTHS = [random.Random(i).randint(1, 200) for i in range(1000)]


def _flatten(batches):
    return [i for b in batches for i in b]


def test_deterministic_and_epoch_dependent():
    a, b = LengthBucketSampler(LENGTHS, 16, seed=3), LengthBucketSampler(LENGTHS, 16, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert sorted(_flatten(list(a))) == list(range(len(LENGTHS)))


def _padded_tokens(batches):
    return sum(len(b) * max(LENGTHS[i] for i in b) - sum(LENGTHS[i] for i in b) for b in batches)


def test_buckets_reduce_padding():
    bucketed = LengthBucketSampler(LENGTHS, 16, seed=0)
    plain = LengthBucketSampler(LENGTHS, 16, seed=0, bucket=False)
    assert _padded_tokens(list(bucketed)) < 0.2 * _padded_tokens(list(plain))


def test_drop_last_and_len():
    s = LengthBucketSampler(list(range(10)), 4, drop_last=True)
    assert len(s) == 2 and all(len(b) == 4 for b in s)
    assert len(LengthBucketSampler(list(range(10)), 4)) == 3


@pytest.mark.parametrize("world", [2, 3])
def test_shards_cover_every_index_once(world):
    n_items = 100  # 13 batches of 8: not a multiple of the world size
    shards = [
        list(LengthBucketSampler(LENGTHS[:n_items], 8, rank=r, world_size=world))
        for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1  # every rank steps the same number of times
    seen = _flatten(_flatten(shards))
    assert set(seen) == set(range(n_items))
    full = LengthBucketSampler(LENGTHS[:n_items], 8).global_batches()
    assert len(seen) - n_items == sum(
        len(b) for b in full[: -len(full) % world]
    )  # only padding repeats
    assert shards[0][0] == full[0] and shards[1][0] == full[1]


def test_skip_resumes_with_another_world_size():
    one = LengthBucketSampler(LENGTHS, 8, seed=1)
    one.set_epoch(2)
    full = list(one)
    two = [LengthBucketSampler(LENGTHS, 8, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in two:
        s.set_epoch(2)
        s.skip(10)
    assert two[0].__len__() == len(list(two[0]))
    interleaved = [b for pair in zip(*map(list, two), strict=True) for b in pair]
    assert interleaved[: len(full) - 10] == full[10:]
    one.skip(10)
    assert list(one) == full[10:]
    one.set_epoch(3)  # a new epoch starts from the beginning again
    assert len(list(one)) == len(full)


def test_collate_pads_per_token_fields_and_stacks_scalars():
    features = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 1], "labels": [1, 2, 3], "y": 1.5},
        {"input_ids": [8], "attention_mask": [1], "token_type_ids": [0], "labels": [4], "y": 0.5},
    ]
    batch = pad_collate(features, pad_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]
    assert batch["y"].dtype == torch.float32 and batch["y"].tolist() == [1.5, 0.5]
    assert batch["input_ids"].dtype == torch.long


def test_collate_scalar_multilabel_multiple_choice_and_multiple_of():
    batch = pad_collate(
        [{"input_ids": [1, 2], "labels": 3, "id": "a"}, {"input_ids": [1], "labels": 0, "id": "b"}],
        pad_id=0,
        pad_to_multiple_of=8,
    )
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].tolist() == [3, 0]
    assert batch["id"] == ["a", "b"]
    multi = pad_collate(
        [{"input_ids": [1, 2], "labels": [1.0, 0.0]}, {"input_ids": [3, 4], "labels": [0.0, 1.0]}]
    )
    assert multi["labels"].dtype == torch.float32 and multi["labels"].tolist() == [[1, 0], [0, 1]]
    choice = pad_collate(
        [{"input_ids": [[1, 2, 3], [4]], "labels": 1}, {"input_ids": [[5], [6, 7]], "labels": 0}]
    )
    assert choice["input_ids"].tolist() == [[[1, 2, 3], [4, 0, 0]], [[5, 0, 0], [6, 7, 0]]]


def test_one_padding_routine_gives_lists_or_tensors():
    import numpy as np
    import torch

    from bertkit.data.batching import pad_sequences, pad_vectors

    assert pad_sequences([[1, 2], np.array([3])], 3, 0) == [[1, 2, 0], [3, 0, 0]]
    assert pad_sequences([[(0, 1)], []], 2, (0, 0)) == [[(0, 1), (0, 0)], [(0, 0), (0, 0)]]
    padded = pad_sequences([np.array([5, 6]), [7]], 4, -100, dtype=torch.long)
    assert padded.dtype == torch.long and padded.tolist() == [[5, 6, -100, -100], [7, -100, -100, -100]]
    vectors = pad_vectors([np.ones((2, 3, 4)), np.ones((1, 3, 4))], 3)
    assert vectors.shape == (2, 3, 3, 4) and vectors[1, 1:].sum() == 0 and vectors[0, :2].sum() == 24
