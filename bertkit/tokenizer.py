"""Tokenizer over the `tokenizers` library: BERT WordPiece, RoBERTa byte-level BPE and ALBERT Unigram.

Loads a folder's files (`bertkit.tokenizer_files`: tokenizer.json, or the same pipeline as the
reference tokenizers built from vocab.txt, vocab.json + merges.txt or spiece.model); encodes single texts and pairs with truncation, padding,
offsets, word ids and overflowing windows; saves a folder that `transformers` also loads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

from tokenizers import Encoding
from tokenizers import Tokenizer as Backend

from bertkit.data.batching import pad_sequences
from bertkit.hub import resolve
from bertkit.io import atomic_write_text, save_json
from bertkit.tokenizer_files import (
    SPECIAL_NAMES,
    backend_from_file,
    class_for,
    read_folder,
    register_specials,
)

# Candidates tried, in order, when a folder does not name its special tokens: BERT/ALBERT, then RoBERTa.
_CANDIDATES = {
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>"),
}
Truncation = bool | Literal["longest_first", "only_first", "only_second"]
Padding = bool | Literal["longest", "max_length"]


class Tokenizer:
    """A `tokenizers.Tokenizer` plus the special tokens and limits the BERT family needs.

    The backend given is copied, so this object owns its truncation and padding state; a lock
    keeps that state private to one call, which makes a tokenizer safe to share between threads.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cls_token: str | None = None,
        sep_token: str | None = None,
        pad_token: str | None = None,
        mask_token: str | None = None,
        unk_token: str | None = None,
        model_max_length: int | None = None,
        do_lower_case: bool | None = None,
        tokenizer_class: str | None = None,
    ) -> None:
        self.backend = Backend.from_str(backend.to_str())
        self.backend.no_truncation()
        self.backend.no_padding()
        given = dict(cls=cls_token, sep=sep_token, pad=pad_token, mask=mask_token, unk=unk_token)
        vocab = self.backend.get_vocab(with_added_tokens=True)
        for name in SPECIAL_NAMES:
            token = given[name] or next((t for t in _CANDIDATES[name] if t in vocab), None)
            setattr(self, f"{name}_token", token)
        register_specials(
            self.backend, [getattr(self, f"{n}_token") for n in SPECIAL_NAMES], self.mask_token
        )
        for name in SPECIAL_NAMES:
            token = getattr(self, f"{name}_token")
            setattr(self, f"{name}_id", None if token is None else self.backend.token_to_id(token))
        self.model_max_length = model_max_length
        self.do_lower_case = do_lower_case
        self.tokenizer_class = tokenizer_class or class_for(self.backend)
        self._lock = threading.Lock()

    cls_token: str | None
    sep_token: str | None
    pad_token: str | None
    mask_token: str | None
    unk_token: str | None
    cls_id: int | None
    sep_id: int | None
    pad_id: int | None
    mask_id: int | None
    unk_id: int | None

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike) -> Tokenizer:
        """Load the tokenizer of a checkpoint folder or hub name (see `bertkit.hub.resolve`)."""
        backend, options = read_folder(resolve(name_or_path))
        return cls(backend, **options)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **specials: Any) -> Tokenizer:
        """Load a tokenizer.json file; special tokens not given are found in its vocabulary."""
        return cls(backend_from_file(Path(path)), **specials)

    # ----------------------------------------------------------------------------- vocabulary
    @property
    def special_ids(self) -> set[int]:
        ids = {getattr(self, f"{name}_id") for name in SPECIAL_NAMES}
        return {i for i in ids if i is not None}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | None | list[int | None]:
        if isinstance(tokens, str):
            return self.backend.token_to_id(tokens)
        return [self.backend.token_to_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | None | list[str | None]:
        if isinstance(ids, int):
            return self.backend.id_to_token(ids)
        return [self.backend.id_to_token(int(i)) for i in ids]

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        """Turn ids (a list or a 1-d tensor) back into text."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    # ----------------------------------------------------------------------------- encoding
    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens or truncation (for corpus preparation)."""
        with self._lock:
            encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def __call__(
        self,
        texts: str | list[str],
        pairs: str | list[str] | None = None,
        *,
        max_length: int | None = None,
        truncation: Truncation = True,
        padding: Padding = False,
        stride: int = 0,
        return_overflowing: bool = False,
        return_offsets: bool = False,
        return_word_ids: bool = False,
        return_special_tokens_mask: bool = False,
        return_sequence_ids: bool = False,
        return_tensors: Literal["pt"] | None = None,
    ) -> dict[str, Any]:
        """Encode texts (and second texts `pairs`) with special tokens, like a `transformers` tokenizer.

        Returns input_ids, attention_mask and token_type_ids, plus offsets, word_ids,
        special_tokens_mask, sequence_ids (0: first text, 1: second, None: special token) and
        overflow_to_sample when asked. `truncation=True` means
        "longest_first"; without `max_length` the limit is `model_max_length` (none if unknown).
        With `return_overflowing`, every example yields its truncated encoding followed by the
        windows of what was cut (`stride` tokens of overlap), and overflow_to_sample maps each row
        to its example. A single str gives unbatched lists, unless windows or tensors are asked for.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
            if len(pairs) != len(batch):
                raise ValueError(
                    f"Got {len(batch)} texts but {len(pairs)} pairs; pass one pair per text."
                )
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}.")
        strategy, limit = self._truncation(truncation, padding, max_length, pairs is not None)
        if return_overflowing and strategy is not None:
            groups = self._windows(batch, pairs, strategy, limit, stride)
        else:
            groups = [[e] for e in self._encode(batch, pairs, strategy, limit, stride)]
        rows: list[Encoding] = []
        sample: list[int] = []
        for index, windows in enumerate(groups):
            rows.extend(windows)
            sample.extend([index] * len(windows))
        wanted = dict(
            offsets=return_offsets,
            word_ids=return_word_ids,
            special_tokens_mask=return_special_tokens_mask,
            sequence_ids=return_sequence_ids,
        )
        keys = [
            "input_ids",
            "attention_mask",
            "token_type_ids",
            *[k for k, v in wanted.items() if v],
        ]
        out = {key: [_FIELDS[key](row) for row in rows] for key in keys}
        if return_overflowing:
            out["overflow_to_sample"] = sample
        if padding:
            length = (
                limit
                if padding == "max_length"
                else max((len(r) for r in out["input_ids"]), default=0)
            )
            self._pad(out, length)
        if return_tensors == "pt":
            return _to_tensors(out)
        if single and not return_overflowing:
            return {key: value[0] for key, value in out.items()}
        return out

    def _truncation(
        self, truncation: Truncation, padding: Padding, max_length: int | None, has_pairs: bool
    ) -> tuple[str | None, int | None]:
        strategy = "longest_first" if truncation is True else (truncation or None)
        if strategy not in (None, "longest_first", "only_first", "only_second"):
            raise ValueError(
                f"truncation must be True, False, 'longest_first', 'only_first' or 'only_second', got {truncation!r}."
            )
        if padding not in (False, True, "longest", "max_length"):
            raise ValueError(
                f"padding must be False, True, 'longest' or 'max_length', got {padding!r}."
            )
        if strategy == "only_second" and not has_pairs:
            raise ValueError(
                "truncation='only_second' needs pairs; pass pairs=... or truncation=True."
            )
        limit = max_length if max_length is not None else self.model_max_length
        if padding == "max_length" and limit is None:
            raise ValueError(
                "padding='max_length' needs max_length (this tokenizer has no model_max_length)."
            )
        return (strategy if limit is not None else None), limit

    def _encode(
        self,
        texts: list[str],
        pairs: list[str] | None,
        strategy: str | None,
        limit: int | None,
        stride: int,
    ) -> list[Encoding]:
        inputs: list[Any] = texts if pairs is None else list(zip(texts, pairs, strict=True))
        with self._lock:
            try:
                if strategy is not None:
                    self.backend.enable_truncation(limit, stride=stride, strategy=strategy)
                return self.backend.encode_batch(inputs, add_special_tokens=True)
            except Exception as error:
                raise ValueError(
                    f"Could not encode with max_length={limit}, stride={stride}, truncation={strategy}: {error}. "
                    "max_length must leave room for the special tokens (and the whole first text with "
                    "'only_second'), and stride must be smaller than what is left."
                ) from error
            finally:
                self.backend.no_truncation()

    def _windows(
        self, texts: list[str], pairs: list[str] | None, strategy: str, limit: int, stride: int
    ) -> list[list[Encoding]]:
        """Each example's windows (truncation with overflow), cut from complete encodings.

        With truncation enabled, tokenizers 0.23.1-0.23.2 stop tokenizing at max_length and so
        lose (part of) the overflowing windows; cutting a complete encoding is exact in any version.
        """
        if pairs is not None and strategy == "longest_first":
            raise ValueError(
                "Windows over text pairs cut one text: pass truncation='only_second' (or 'only_first')."
            )
        with self._lock:
            firsts = self.backend.encode_batch(texts, add_special_tokens=False)
            seconds = (
                self.backend.encode_batch(pairs, add_special_tokens=False)
                if pairs is not None
                else [None] * len(texts)
            )
            room = limit - self.backend.num_special_tokens_to_add(pairs is not None)
            out = []
            for first, second in zip(firsts, seconds, strict=True):
                cut, kept = (second, first) if strategy == "only_second" else (first, second)
                budget = room - (len(kept) if kept is not None else 0)
                if budget <= stride:
                    raise ValueError(
                        f"max_length={limit} leaves {budget} tokens per window, not more than "
                        f"stride={stride}: raise max_length or lower the stride."
                    )
                cut.truncate(budget, stride=stride)
                # each window gets its own special tokens and type ids (those of the pieces
                # tokenizers returns in `overflowing` are not set right for pairs)
                pieces = [cut, *cut.overflowing]
                out.append([
                    self.backend.post_process(*((w, second) if cut is first else (first, w)))
                    for w in pieces
                ])
        return out

    def _pad(self, out: dict[str, list], length: int) -> None:
        if self.pad_id is None:
            raise ValueError(
                "This tokenizer has no pad token; pass pad_token=... when building it."
            )
        fill = {**_PAD_FILL, "input_ids": self.pad_id}
        for key, rows in out.items():
            if key in fill:
                out[key] = pad_sequences(rows, length, fill[key])

    # ----------------------------------------------------------------------------- saving
    def save(self, folder: str | os.PathLike) -> None:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (each atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "tokenizer.json", self.backend.to_str(pretty=True))
        specials = {
            f"{name}_token": getattr(self, f"{name}_token")
            for name in SPECIAL_NAMES
            if getattr(self, f"{name}_token") is not None
        }
        config: dict[str, Any] = {"tokenizer_class": self.tokenizer_class, **specials}
        if self.do_lower_case is not None:
            config["do_lower_case"] = self.do_lower_case
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        save_json(folder / "tokenizer_config.json", config)
        save_json(folder / "special_tokens_map.json", specials)

    # A lock does not pickle; DataLoader workers and deepcopy need the rest of the state.
    def __getstate__(self) -> dict[str, Any]:
        state = {
            key: value for key, value in self.__dict__.items() if key not in ("_lock", "backend")
        }
        state["backend"] = self.backend.to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.backend = Backend.from_str(state["backend"])
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Tokenizer({self.tokenizer_class}, vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"


# --------------------------------------------------------------------------------- encodings
_FIELDS = {
    "input_ids": lambda e: e.ids,
    "attention_mask": lambda e: e.attention_mask,
    "token_type_ids": lambda e: e.type_ids,
    "offsets": lambda e: e.offsets,
    "word_ids": lambda e: e.word_ids,
    "special_tokens_mask": lambda e: e.special_tokens_mask,
    "sequence_ids": lambda e: e.sequence_ids,
}
# What padding positions hold; the pad id itself comes from the tokenizer.
_PAD_FILL = {
    "attention_mask": 0,
    "token_type_ids": 0,
    "offsets": (0, 0),
    "word_ids": None,
    "special_tokens_mask": 1,
    "sequence_ids": None,
}


def _to_tensors(out: dict[str, list]) -> dict[str, Any]:
    import torch

    lengths = {len(row) for row in out["input_ids"]}
    if len(lengths) > 1:
        raise ValueError("Sequences have different lengths; pass padding=True to get tensors.")
    tensors = {}
    for key, rows in out.items():
        if key in ("word_ids", "sequence_ids"):  # None (special or padding token): -1 in a tensor
            rows = [[-1 if w is None else w for w in row] for row in rows]
        tensors[key] = torch.tensor(rows, dtype=torch.long)
    return tensors
