"""Token shards on disk (memory-mapped .npy arrays), their manifest, and the Dataset that reads them.

A shard named `shard-00000` is a set of files `shard-00000.<array>.npy`:
  ids          flat token ids of all samples, special tokens included (uint16 if vocab < 65536,
               else int32); with static masking these are the already-masked ids
  offsets      int64 (n_samples + 1): sample i is ids[offsets[i]:offsets[i + 1]]
  b_start      int32 (n_samples): position of segment B's first token (token type 1 from there
               on); equals the sample length when there is no segment B
  pair_labels  int8 (n_samples): next-sentence / sentence-order label (nsp, sop only)
  word_starts  uint8, flat like ids: 1 where a token begins a word (whole-word masking only)
  mlm_labels   int32, flat like ids: original id at masked positions, -100 elsewhere (static only)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertkit.io import save_json

MANIFEST = "manifest.json"
ARRAYS = ("ids", "offsets", "b_start", "pair_labels", "word_starts", "mlm_labels")
PAIR_LABELS = {"nsp": "next_sentence_label", "sop": "sentence_order_label", "full_sentences": None,
               "doc_sentences": None}


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a bare file name: no "/", no ".."


@dataclass
class Manifest:
    """What `prepare_corpus` wrote: settings, counts, special ids and the shard list."""

    format: str
    family: str
    max_length: int
    vocab_size: int
    id_dtype: str
    special_ids: dict[str, int]
    all_special_ids: list[int]
    seed: int
    masking: dict[str, Any]
    num_samples: int = 0
    num_tokens: int = 0
    num_documents: int = 0
    num_files: int = 0
    short_seq_prob: float = 0.0
    doc_separator: str = "blank_line"
    tokenizer_dir: str = "tokenizer"
    shards: list[dict[str, Any]] = field(default_factory=list)
    version: int = 1

    @property
    def pair_label(self) -> str | None:
        """The item key of the pair label: next_sentence_label (nsp), sentence_order_label (sop)."""
        return PAIR_LABELS[self.format]

    def save(self, folder: str | Path) -> None:
        save_json(Path(folder) / MANIFEST, asdict(self))

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {folder}: prepare the corpus with "
                                    "bertkit.pretrain.prepare_corpus (an interrupted run leaves none)")
        try:
            manifest = cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is corrupt ({error}); prepare the corpus again") from error
        for shard in manifest.shards:
            names = [str(shard.get("name", ""))] + [str(k) for k in shard.get("arrays", [])]
            if not all(_SAFE_NAME.fullmatch(n) for n in names):
                raise ValueError(f"{path} names shard files outside {folder} ({shard.get('name')!r}); "
                                 "a manifest may only name files in its own folder")
        return manifest


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write under a temporary name, then rename, so a crash never leaves a truncated shard."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Sample:
    """One training sequence with its special tokens in place."""

    ids: np.ndarray
    b_start: int
    pair_label: int | None = None
    word_starts: np.ndarray | None = None
    mlm_labels: np.ndarray | None = None


class ShardWriter:
    """Buffers samples and writes a shard every `samples_per_shard` of them (and on `close`)."""

    def __init__(self, folder: Path, id_dtype: str, samples_per_shard: int) -> None:
        self.folder, self.id_dtype, self.samples_per_shard = folder, np.dtype(id_dtype), samples_per_shard
        self.shards: list[dict[str, Any]] = []
        self._buffer: list[Sample] = []

    def add(self, sample: Sample) -> None:
        self._buffer.append(sample)
        if len(self._buffer) >= self.samples_per_shard:
            self._flush()

    def close(self) -> list[dict[str, Any]]:
        if self._buffer:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        samples, self._buffer = self._buffer, []
        name = f"shard-{len(self.shards):05d}"
        lengths = np.array([len(s.ids) for s in samples], dtype=np.int64)
        arrays = {"ids": np.concatenate([s.ids for s in samples]).astype(self.id_dtype),
                  "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                  "b_start": np.array([s.b_start for s in samples], dtype=np.int32)}
        if samples[0].pair_label is not None:
            arrays["pair_labels"] = np.array([s.pair_label for s in samples], dtype=np.int8)
        if samples[0].word_starts is not None:
            arrays["word_starts"] = np.concatenate([s.word_starts for s in samples]).astype(np.uint8)
        if samples[0].mlm_labels is not None:
            arrays["mlm_labels"] = np.concatenate([s.mlm_labels for s in samples]).astype(np.int32)
        for key, array in arrays.items():
            _save_npy(self.folder / f"{name}.{key}.npy", array)
        self.shards.append({"name": name, "num_samples": len(samples),
                            "num_tokens": int(lengths.sum()), "arrays": sorted(arrays)})


class PretrainDataset(torch.utils.data.Dataset):
    """Map-style dataset over a prepared corpus; arrays are memory-mapped on first use per process.

    An item is a dict: index, input_ids and token_type_ids (LongTensor), the pair label
    (next_sentence_label / sentence_order_label) when the format has one, word_starts (BoolTensor)
    when prepared for whole-word masking, and labels (MLM targets) when masked statically.
    """

    def __init__(self, manifest_dir: str | Path) -> None:
        self.folder = Path(manifest_dir)
        self.manifest = Manifest.load(self.folder)
        counts = [s["num_samples"] for s in self.manifest.shards]
        self._ends = np.cumsum(counts)
        self._arrays: list[dict[str, np.ndarray]] | None = None

    def _open(self) -> list[dict[str, np.ndarray]]:
        if self._arrays is None:
            self._arrays = [{key: np.load(self.folder / f"{s['name']}.{key}.npy", mmap_mode="r")
                             for key in s["arrays"]} for s in self.manifest.shards]
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies its data; DataLoader workers re-open the files instead.
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def lengths(self) -> np.ndarray:
        """Token count of every sample (int64), for length-bucketed batching."""
        return np.concatenate([np.diff(a["offsets"]) for a in self._open()]) if len(self) else np.zeros(0, np.int64)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        shard = int(np.searchsorted(self._ends, index, side="right"))
        local = index - (int(self._ends[shard - 1]) if shard else 0)
        arrays = self._open()[shard]
        start, end = int(arrays["offsets"][local]), int(arrays["offsets"][local + 1])
        ids = torch.from_numpy(arrays["ids"][start:end].astype(np.int64))
        types = torch.zeros(end - start, dtype=torch.long)
        types[int(arrays["b_start"][local]):] = 1
        item: dict[str, Any] = {"index": index, "input_ids": ids, "token_type_ids": types}
        if "pair_labels" in arrays:
            item[self.manifest.pair_label] = int(arrays["pair_labels"][local])
        if "word_starts" in arrays:
            item["word_starts"] = torch.from_numpy(arrays["word_starts"][start:end].astype(bool))
        if "mlm_labels" in arrays:
            item["labels"] = torch.from_numpy(arrays["mlm_labels"][start:end].astype(np.int64))
        return item
