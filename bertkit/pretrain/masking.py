"""Masked-language-model corruption: BERT's 80/10/10 rule (or another mix), token- or whole-word,
static or dynamic; and next-token targets for the left-to-right objective.

Selection is exact, as in BERT's `max_predictions_per_seq` recipe rather than HF's Bernoulli draw:
each sequence gets `max(1, round(p * n))` masked units, where a unit is a token (or, with
`word_starts`, a whole word) and `n` counts the units that are not special or padding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from bertkit.data.batching import pad_sequences
from bertkit.pretrain.shards import Manifest

IGNORE_INDEX = -100
WordScheme = Literal["wordpiece", "prefix"]
Objective = Literal["mlm", "left_to_right"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
MaskMix = tuple[float, float, float]
DEFAULT_MIX: MaskMix = (0.8, 0.1, 0.1)
# Tokens that begin a word in byte-level BPE (RoBERTa) and SentencePiece/Unigram (ALBERT) vocabularies.
WORD_PREFIXES = ("Ġ", "▁")


def word_starts_for(tokens: Sequence[str], scheme: WordScheme = "wordpiece") -> list[bool]:
    """True where a token begins a word: WordPiece continues words with "##"; byte-level BPE and
    Unigram begin them with "Ġ"/"▁", so there a token without that prefix continues the last word."""
    if scheme == "wordpiece":
        return [not t.startswith("##") for t in tokens]
    return [t.startswith(WORD_PREFIXES) for t in tokens]


def word_start_table(vocab: dict[str, int], scheme: WordScheme) -> np.ndarray:
    """`table[id]` is True when token `id` begins a word (see `word_starts_for`)."""
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    tokens = list(vocab)
    table[[vocab[t] for t in tokens]] = word_starts_for(tokens, scheme)
    return table


def parse_mask_mix(mix: str | Sequence[float]) -> MaskMix:
    """(mask, random, unchanged) shares of the selected tokens from "80/10/10", "0.8,0.1,0.1" or
    three numbers; percentages are accepted, and the shares must add up to one."""
    parts = mix.replace(",", "/").split("/") if isinstance(mix, str) else list(mix)
    try:
        values = [float(x) for x in parts]
    except ValueError:
        raise ValueError(f"mask mix {mix!r}: expected three numbers such as 80/10/10") from None
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(f"mask mix {mix!r}: expected three non-negative shares (mask/random/unchanged)")
    total = sum(values)
    if abs(total - 100) < 1e-6 and max(values) > 1:
        values, total = [v / 100 for v in values], 1.0
    if abs(total - 1) > 1e-6:
        raise ValueError(f"mask mix {mix!r} adds up to {total:g}: the shares must sum to 1 (or 100)")
    return values[0], values[1], values[2]


def mismatch_note(mix: Sequence[float]) -> str | None:
    """A note for mixes other than 80/10/10: fine-tuning inputs never hold [MASK], so the share of
    predicted tokens that pre-training hides behind it is a pre-train/fine-tune mismatch (the BERT
    paper, Appendix C.2: 100/0/0 cost most in feature-based use; random-only did badly too)."""
    share_mask, share_random, share_kept = parse_mask_mix(mix)
    if (share_mask, share_random, share_kept) == DEFAULT_MIX:
        return None
    return (f"mask mix {share_mask:.0%}/{share_random:.0%}/{share_kept:.0%} ([MASK]/random/unchanged): "
            f"fine-tuning inputs never contain [MASK], while pre-training hides {share_mask:.0%} of the "
            "predicted tokens behind it; the BERT paper (Table 8) found fine-tuning robust to the mix but "
            "feature-based use hurt by [MASK]-only (and by random-only) masking")


def next_token_labels(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) targets of the left-to-right objective: position t predicts token t + 1; the last
    real token and padding (positions >= its length - 1) get -100."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    return labels.masked_fill(positions >= lengths.to(input_ids.device)[:, None] - 1, IGNORE_INDEX)


def _select_units(starts: torch.Tensor, maskable: torch.Tensor, p: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Pick `max(1, round(p * n_units))` units per row; return the (B, T) mask of their tokens."""
    batch, length = starts.shape
    n_units = starts.sum(dim=1)
    k = torch.where(n_units > 0, (n_units.double() * p).round().clamp(min=1), 0).long()
    keys = torch.rand((batch, length), generator=generator).to(starts.device)
    keys = keys.masked_fill(~starts, 2.0)  # non-starts sort last and are never picked
    order = keys.argsort(dim=1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(length, device=starts.device)
                                             .expand(batch, length).contiguous())
    chosen_start = ranks < k[:, None]
    # Each token looks up the start of its word: the last start at or before it.
    positions = torch.arange(length, device=starts.device).expand(batch, length)
    start_pos = torch.where(starts, positions, -1).cummax(dim=1).values.clamp(min=0)
    return maskable & chosen_start.gather(1, start_pos)


def mask_tokens(input_ids: torch.Tensor, *, special_mask: torch.Tensor, mask_id: int,
                vocab_size: int, mlm_probability: float = 0.15,
                generator: torch.Generator | None = None, word_starts: torch.Tensor | None = None,
                special_ids: Iterable[int] = (), mask_mix: Sequence[float] = DEFAULT_MIX,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt `input_ids` (B, T) for MLM; return (masked_input_ids, labels).

    `special_mask` is True at special tokens and padding: they are never selected. Of the selected
    tokens `mask_mix` = (mask, random, unchanged) shares, by default BERT's 80/10/10, become
    `mask_id`, a random id from the vocabulary minus `special_ids`, or stay as they are.
    `labels` holds the original id at selected positions and -100 elsewhere. With `word_starts`
    (B, T bool), whole words are selected: a word is a start token plus the continuation tokens after it.
    """
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
    if input_ids.shape != special_mask.shape:
        raise ValueError(f"special_mask {tuple(special_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
    maskable = ~special_mask.bool()
    if word_starts is None:
        starts = maskable
    else:
        # A maskable token right after a special one starts a word even if it looks like a
        # continuation (a truncated segment may begin mid-word).
        prev_maskable = torch.nn.functional.pad(maskable[:, :-1], (1, 0), value=False)
        starts = maskable & (word_starts.bool() | ~prev_maskable)
    selected = _select_units(starts, maskable, mlm_probability, generator)
    labels = torch.where(selected, input_ids, IGNORE_INDEX)
    share_mask, share_random, _ = parse_mask_mix(mask_mix)
    roll = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    to_mask = selected & (roll < share_mask)
    to_random = selected & (roll >= share_mask) & (roll < share_mask + share_random)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in special_ids if 0 <= i < vocab_size]] = False
    pool = allowed.nonzero().squeeze(1)
    picks = torch.randint(len(pool), input_ids.shape, generator=generator)
    random_ids = pool[picks].to(device=input_ids.device, dtype=input_ids.dtype)
    masked = torch.where(to_mask, torch.as_tensor(mask_id, dtype=input_ids.dtype), input_ids)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


def batch_seed(seed: int, epoch: int, indices: Sequence[int]) -> int:
    """A 63-bit seed from (seed, epoch, the batch's sample indices): the same batch of the same
    epoch gets the same mask after a resume, whatever process or worker builds it."""
    digest = hashlib.blake2b(np.asarray([seed, epoch, *indices], dtype=np.int64).tobytes(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class MLMCollator:
    """Pad a list of `PretrainDataset` items into a batch and mask it (or pass static masks through);
    with `objective="left_to_right"` nothing is masked and `labels` are the next tokens.

    Dynamic masks come from a generator seeded by `batch_seed(seed, epoch, indices)`, so a sample
    gets a new pattern every epoch, and a resumed run re-creates exactly the masks it would have
    seen. Call `set_epoch` before each epoch's DataLoader iterator is created (workers copy the
    collator then). The collator holds only plain values, so it pickles into DataLoader workers.
    """

    def __init__(self, *, pad_id: int, mask_id: int, vocab_size: int, special_ids: Iterable[int],
                 mlm_probability: float = 0.15, whole_word: bool = False, seed: int = 0,
                 pad_to_multiple_of: int | None = None, mask_mix: Sequence[float] = DEFAULT_MIX,
                 objective: Objective = "mlm") -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.pad_id, self.mask_id, self.vocab_size = pad_id, mask_id, vocab_size
        self.special_ids = sorted({int(i) for i in special_ids} | {pad_id})
        self.mlm_probability, self.whole_word, self.seed = mlm_probability, whole_word, seed
        self.mask_mix, self.objective = parse_mask_mix(mask_mix), objective
        self.pad_to_multiple_of = pad_to_multiple_of
        self.epoch = 0

    @classmethod
    def from_manifest(cls, manifest: Manifest | str | Path, **changes: Any) -> MLMCollator:
        """A collator with the special ids and masking settings a prepared corpus was made with."""
        m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
        settings = dict(pad_id=m.special_ids["pad"], mask_id=m.special_ids["mask"],
                        vocab_size=m.vocab_size, special_ids=m.all_special_ids,
                        mlm_probability=m.masking["mlm_probability"],
                        whole_word=m.masking["whole_word"], seed=m.seed,
                        mask_mix=tuple(m.masking.get("mix", DEFAULT_MIX)))
        return cls(**(settings | {k: v for k, v in changes.items() if v is not None}))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(item["input_ids"]) for item in items]
        length = max(lengths)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = pad_sequences([it["input_ids"] for it in items], length, self.pad_id, dtype=torch.long)
        batch = {"input_ids": input_ids,
                 "attention_mask": pad_sequences([[1] * n for n in lengths], length, 0, dtype=torch.long)}
        if "token_type_ids" in items[0]:
            batch["token_type_ids"] = pad_sequences([it["token_type_ids"] for it in items], length, 0, dtype=torch.long)
        for key in ("next_sentence_label", "sentence_order_label"):
            if key in items[0]:
                batch[key] = torch.tensor([int(it[key]) for it in items], dtype=torch.long)
        if self.objective == "left_to_right":
            if "labels" in items[0]:
                raise ValueError("the left-to-right objective needs unmasked text: prepare the corpus "
                                 "with masking='dynamic' (static shards store corrupted ids)")
            batch["labels"] = next_token_labels(input_ids, torch.tensor(lengths))
            return batch
        if "labels" in items[0]:  # static masking: corrupted at preparation time
            batch["labels"] = pad_sequences([it["labels"] for it in items], length, IGNORE_INDEX, dtype=torch.long)
            return batch
        batch["input_ids"], batch["labels"] = self._mask(items, input_ids, length)
        return batch

    def _mask(self, items: list[dict[str, Any]], input_ids: torch.Tensor,
              length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if any("index" not in it for it in items):
            raise KeyError("dynamic masking needs each item's 'index' (PretrainDataset provides it) "
                           "to seed reproducible masks")
        word_starts = None
        if self.whole_word:
            if "word_starts" not in items[0]:
                raise KeyError("whole_word=True needs 'word_starts' in the items: prepare the corpus "
                               "with whole_word=True")
            word_starts = pad_sequences([it["word_starts"] for it in items], length, 0, dtype=torch.bool)
        generator = torch.Generator().manual_seed(
            batch_seed(self.seed, self.epoch, [int(it["index"]) for it in items]))
        special = torch.isin(input_ids, torch.tensor(self.special_ids))
        special |= torch.arange(length)[None, :] >= torch.tensor(
            [len(it["input_ids"]) for it in items])[:, None]
        return mask_tokens(input_ids, special_mask=special, mask_id=self.mask_id,
                           vocab_size=self.vocab_size, mlm_probability=self.mlm_probability,
                           generator=generator, word_starts=word_starts,
                           special_ids=self.special_ids, mask_mix=self.mask_mix)
