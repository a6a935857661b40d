"""Vocabulary training: the folders load in transformers and in bertkit's Tokenizer, ids agree."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bertkit.pretrain.vocab import train_vocab
from bertkit.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")


def write_corpus(folder: Path, n_docs: int = 40, seed: int = 0) -> list[Path]:
    """Made-up English-ish prose: one file per document, paragraphs separated by blank lines."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "ren", "ti", "mar", "sel", "vo", "bin", "dra", "quo", "est", "ul",
                 "phi", "zen", "wor", "ath", "the", "and", "of"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for d in range(n_docs):
        paragraphs = []
        for _ in range(rng.randint(1, 3)):
            sentences = []
            for _ in range(rng.randint(3, 9)):
                ws = [rng.choice(words) for _ in range(rng.randint(4, 14))]
                sentences.append(" ".join([ws[0].capitalize(), *ws[1:]]) + rng.choice(".!?."))
            paragraphs.append(" ".join(sentences))
        path = folder / f"doc{d:03d}.txt"
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
        files.append(path)
    return files


CASES = {  # family: (first special, last special, tokenizer class transformers picks)
    "bert": ("[CLS]", "[SEP]", "BertTokenizer"),
    "distilbert": ("[CLS]", "[SEP]", "DistilBertTokenizer"),
    "roberta": ("<s>", "</s>", "RobertaTokenizer"),
    "albert": ("[CLS]", "[SEP]", "AlbertTokenizer"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("family", list(CASES))
def test_vocab_loads_in_transformers_and_bertkit(family: str, corpus: list[Path], tmp_path: Path) -> None:
    out = train_vocab(corpus, family, 500, tmp_path / family, show_progress=False)
    assert {p.name for p in out.iterdir()} >= {"tokenizer.json", "tokenizer_config.json",
                                                "special_tokens_map.json"}
    first, last, hf_class = CASES[family]
    hf = transformers.AutoTokenizer.from_pretrained(out)
    ours = Tokenizer.from_pretrained(out)
    assert type(hf).__name__ == hf_class
    assert 100 < ours.vocab_size <= 500
    text, pair = "Kalo renti marsel voquo. Zenwor athbin!", "Phi ulest dra."
    hf_ids = hf(text, pair)["input_ids"]
    tokens = hf.convert_ids_to_tokens(hf_ids)
    assert tokens[0] == first and tokens[-1] == last
    assert hf_ids == ours(text, pair)["input_ids"]
    assert ours.encode_ids([text])[0] == hf(text, add_special_tokens=False)["input_ids"]
    assert hf.mask_token_id == ours.mask_id and hf.pad_token_id == ours.pad_id
    assert ours.unk_token not in ours.backend.encode(text).tokens  # the corpus alphabet is covered
    assert hf.decode(hf_ids, skip_special_tokens=True).lower().startswith("kalo renti")


def test_roberta_lowercase_survives_transformers_loading(corpus: list[Path], tmp_path: Path) -> None:
    out = train_vocab(corpus, "roberta", 400, tmp_path / "r", lowercase=True, show_progress=False)
    hf = transformers.AutoTokenizer.from_pretrained(out)
    assert hf("KALO")["input_ids"] == hf("kalo")["input_ids"]
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_bad_arguments_are_explained(corpus: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        train_vocab(corpus, "gpt", 500, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="missing"):
        train_vocab([tmp_path / "nope.txt"], "bert", 500, tmp_path)
    with pytest.raises(ValueError, match="special tokens"):
        train_vocab(corpus, "bert", 5, tmp_path)
