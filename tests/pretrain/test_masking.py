"""MLM masking statistics (15%, 80/10/10 and the paper's other mixes), whole words, specials, the
collator's reproducibility, and next-token targets for the left-to-right objective."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from bertkit.pretrain.masking import (
    MLMCollator,
    mask_tokens,
    next_token_labels,
    parse_mask_mix,
    word_start_table,
    word_starts_for,
)

VOCAB, MASK, PAD, CLS, SEP = 500, 4, 0, 2, 3
SPECIALS = [0, 1, 2, 3, 4]


def _batch(rows: int = 540, length: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids with [CLS] ... [SEP] and right padding of varying length; plus the special mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=g)
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=g)
    pos = torch.arange(length)[None, :]
    ids[:, 0] = CLS
    ids[pos == lengths[:, None] - 1] = SEP
    ids[pos >= lengths[:, None]] = PAD
    return ids, torch.isin(ids, torch.tensor(SPECIALS))


def test_rate_and_80_10_10_split() -> None:
    ids, special = _batch()
    masked, labels = mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB,
                                 generator=torch.Generator().manual_seed(1), special_ids=SPECIALS)
    selected = labels != -100
    maskable = ~special
    assert maskable.sum() > 90_000
    assert abs(selected.sum() / maskable.sum() - 0.15) < 0.01
    # exact count per sequence, as BERT's max_predictions_per_seq recipe
    expected = (maskable.sum(1).double() * 0.15).round().clamp(min=1).long()
    assert torch.equal(selected.sum(1), expected)
    assert not (selected & special).any(), "a special token or padding was selected"
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(masked[~selected], ids[~selected])
    n = selected.sum().item()
    to_mask = (masked[selected] == MASK).sum().item() / n
    kept = (masked[selected] == ids[selected]).sum().item() / n
    randomised = 1 - to_mask - kept
    assert abs(to_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomised - 0.1) < 0.02
    random_ids = masked[selected & (masked != MASK) & (masked != ids)]
    assert not torch.isin(random_ids, torch.tensor(SPECIALS)).any(), "random replacement was special"


def test_same_generator_same_mask_and_probability_checked() -> None:
    ids, special = _batch(8, 64)
    a = mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB,
                    generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB,
                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB, mlm_probability=0)


def test_whole_word_masks_all_subtokens_together() -> None:
    ids, special = _batch(300, 128, seed=3)
    g = torch.Generator().manual_seed(4)
    starts = torch.rand(ids.shape, generator=g) < 0.45  # words of ~2.2 tokens on average
    starts[:, 1] = False  # a continuation right after [CLS] must still begin a word
    _, labels = mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB,
                            generator=torch.Generator().manual_seed(2), word_starts=starts)
    selected = labels != -100
    assert not (selected & special).any()
    words_seen = 0
    for row in range(ids.shape[0]):
        maskable = (~special[row]).nonzero().squeeze(1).tolist()
        word: list[int] = []
        for pos in maskable + [None]:
            if pos is None or starts[row, pos] or pos - 1 not in maskable:
                if word:
                    flags = {bool(selected[row, p]) for p in word}
                    assert len(flags) == 1, f"word {word} of row {row} partly masked"
                    words_seen += 1
                word = []
            if pos is not None:
                word.append(pos)
    assert words_seen > 10_000
    assert abs(selected.sum() / (~special).sum() - 0.15) < 0.015


def test_word_starts_for_each_vocabulary_scheme() -> None:
    assert word_starts_for(["un", "##believ", "##able", "!"]) == [True, False, False, True]
    assert word_starts_for(["Ġun", "believ", "able", "Ġyes"], "prefix") == [True, False, False, True]
    assert word_starts_for(["▁un", "believ", "▁yes"], "prefix") == [True, False, True]
    table = word_start_table({"[PAD]": 0, "ab": 1, "##cd": 2}, "wordpiece")
    assert table.tolist() == [True, True, False]


def _items(n: int, length: int = 40) -> list[dict]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        body = rng.integers(5, VOCAB, length - 2 - i % 7)
        ids = torch.tensor([CLS, *body, SEP])
        items.append({"index": 100 + i, "input_ids": ids, "token_type_ids": torch.zeros_like(ids),
                      "next_sentence_label": i % 2})
    return items


def test_collator_pads_and_masks_reproducibly() -> None:
    collator = MLMCollator(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS, seed=7)
    items = _items(6)
    batch = collator(items)
    assert batch["input_ids"].shape == (6, 40) and batch["next_sentence_label"].tolist() == [0, 1] * 3
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["input_ids"][pad] == PAD).all() and (batch["labels"][pad] == -100).all()
    assert ((batch["labels"] != -100).sum(1) >= 1).all()
    again = pickle.loads(pickle.dumps(collator))(items)  # e.g. in a DataLoader worker, or after resume
    assert torch.equal(again["input_ids"], batch["input_ids"])
    collator.set_epoch(1)
    assert not torch.equal(collator(items)["labels"], batch["labels"]), "new epoch, same mask"


def test_collator_passes_static_masks_through() -> None:
    items = _items(3)
    for item in items:
        item["labels"] = torch.full_like(item["input_ids"], -100)
        item["labels"][1] = 9
    collator = MLMCollator(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS)
    batch = collator(items)
    assert torch.equal(batch["input_ids"][0, : len(items[0]["input_ids"])], items[0]["input_ids"])
    assert (batch["labels"] != -100).sum() == 3


def test_collator_whole_word_needs_word_starts() -> None:
    collator = MLMCollator(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS,
                           whole_word=True)
    with pytest.raises(KeyError, match="whole_word"):
        collator(_items(2))


# The BERT paper's Table 8 rows, as (mask, random, unchanged): its columns are MASK, SAME, RND.
PAPER_MIXES = [(0.8, 0.1, 0.1), (1.0, 0.0, 0.0), (0.8, 0.2, 0.0), (0.8, 0.0, 0.2), (0.0, 0.8, 0.2),
               (0.0, 1.0, 0.0)]


@pytest.mark.parametrize("mix", PAPER_MIXES)
def test_masking_mix_shares(mix: tuple[float, float, float]) -> None:
    ids, special = _batch(300)
    masked, labels = mask_tokens(ids, special_mask=special, mask_id=MASK, vocab_size=VOCAB, mask_mix=mix,
                                 generator=torch.Generator().manual_seed(3), special_ids=SPECIALS)
    selected = labels != -100
    assert abs(selected.sum() / (~special).sum() - 0.15) < 0.01  # the mix never changes the rate
    n = selected.sum().item()
    to_mask = (masked[selected] == MASK).sum().item() / n
    kept = (masked[selected] == ids[selected]).sum().item() / n
    # a random replacement equals the original 1 time in ~495: allow for it in the "kept" share
    assert abs(to_mask - mix[0]) < 0.02 and abs(kept - mix[2]) < 0.02
    assert abs((1 - to_mask - kept) - mix[1]) < 0.02
    assert torch.equal(masked[~selected], ids[~selected])


def test_parse_mask_mix_forms_and_errors() -> None:
    assert parse_mask_mix("80/10/10") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_mask_mix("0.8,0.2,0") == pytest.approx((0.8, 0.2, 0.0))
    assert parse_mask_mix([100, 0, 0]) == pytest.approx((1.0, 0.0, 0.0))
    for bad, message in (("80/10", "three"), ("80/20/10", "adds up to 110"), ("a/b/c", "three numbers"),
                         ("-10/60/50", "non-negative")):
        with pytest.raises(ValueError, match=message):
            parse_mask_mix(bad)


def test_next_token_labels_shift_and_stop_at_the_last_real_token() -> None:
    ids = torch.tensor([[CLS, 11, 12, 13, SEP], [CLS, 21, SEP, PAD, PAD]])
    labels = next_token_labels(ids, torch.tensor([5, 3]))
    assert labels.tolist() == [[11, 12, 13, SEP, -100], [21, SEP, -100, -100, -100]]


def test_collator_left_to_right_leaves_text_unmasked() -> None:
    collator = MLMCollator(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS,
                           objective="left_to_right")
    items = _items(4)
    batch = collator(items)
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        assert torch.equal(batch["input_ids"][row, :n], item["input_ids"])
        assert torch.equal(batch["labels"][row, : n - 1], item["input_ids"][1:])
        assert (batch["labels"][row, n - 1:] == -100).all()
    items[0]["labels"] = torch.full_like(items[0]["input_ids"], -100)
    with pytest.raises(ValueError, match="unmasked text"):
        collator(items)
    with pytest.raises(ValueError, match="objective"):
        MLMCollator(pad_id=PAD, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS, objective="rtl")  # type: ignore[arg-type]
