"""Data readers, length-bucketed sampling and dynamic-padding collation."""

from bertkit.data.batching import LengthBucketSampler, pad_collate
from bertkit.data.readers import read_table, to_list

__all__ = ["LengthBucketSampler", "pad_collate", "read_table", "to_list"]
