"""Readers of tagged sentences: CoNLL columns, two columns, JSONL, GMB CSV; errors name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertkit.tasks.ner import NerTask

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "conll2003"


def test_conll_columns_and_two_columns(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(CONLL)
    words, tags = NerTask.read(str(tmp_path / "a.txt"))
    assert words == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    (tmp_path / "b.txt").write_text("Peter I-PER\nBlackburn I-PER\n\nin O\nBonn I-LOC\n")
    words, tags = NerTask.read(str(tmp_path / "b.txt"), scheme="iob1")
    assert tags == [["B-PER", "I-PER"], ["O", "B-LOC"]]
    (tmp_path / "c.txt").write_text("Peter\nBlackburn\n\nBonn\n")
    assert NerTask.read(str(tmp_path / "c.txt")) == ([["Peter", "Blackburn"], ["Bonn"]], None)


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(CONLL.replace("Blackburn NNP I-NP I-PER", "Blackburn I-PER"))
    with pytest.raises(ValueError, match=r"bad.txt:line 8: 2 columns where the file's lines have 4"):
        NerTask.read(str(path))
    path.write_text(CONLL.replace("B-PER", "O"))
    with pytest.raises(ValueError, match=r"bad.txt:line 8: I-PER cannot follow O in IOB2 tags"):
        NerTask.read(str(path))
    assert NerTask.read(str(path), repair=True)[1][1] == ["O", "B-PER"]
    path.write_text(CONLL.replace("B-MISC", "X-MISC"))
    with pytest.raises(ValueError, match=r"bad.txt:line 5: 'X-MISC' is not an IOB2 tag"):
        NerTask.read(str(path))


def test_jsonl_and_gmb_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"tokens": ["Anna", "sang"], "tags": ["S-PER", "O"]}\n\n'
                    '{"tokens": ["New", "York"], "tags": ["B-LOC", "E-LOC"]}\n')
    assert NerTask.read(str(path), scheme="bioes") == ([["Anna", "sang"], ["New", "York"]],
                                                       [["B-PER", "O"], ["B-LOC", "I-LOC"]])
    path.write_text('{"tokens": ["Anna", "sang"], "tags": ["B-PER"]}\n')
    with pytest.raises(ValueError, match=r"s.jsonl:line 1: tags must be 2 strings"):
        NerTask.read(str(path))
    path.write_text('{"tokens": ["Anna"], "tags": ["O"]}\n{"tokens": ["Anna"],\n["Anna"]\n')
    with pytest.raises(ValueError, match=r"s.jsonl line 2 is not valid JSON"):
        NerTask.read(str(path))
    path.write_text('{"tokens": ["Anna"], "tags": ["O"]}\n["Anna"]\n')
    with pytest.raises(ValueError, match=r"s.jsonl line 2 is a JSON list, not an object"):
        NerTask.read(str(path))
    csv = tmp_path / "ner_dataset.csv"
    csv.write_text('Sentence #,Word,POS,Tag\nSentence: 1,Thousands,NNS,O\n,of,IN,O\n,London,NNP,B-geo\n'
                   'Sentence: 2,Iranian,JJ,B-gpe\n,officials,NNS,I-gpe\n')
    assert NerTask.read(str(csv)) == ([["Thousands", "of", "London"], ["Iranian", "officials"]],
                                      [["O", "O", "B-geo"], ["B-gpe", "I-gpe"]])
    csv.write_text('Sentence #,Word,POS,Tag\nSentence: 1,Thousands,NNS,O\n,of,IN,I-geo\n')
    with pytest.raises(ValueError, match=r"ner_dataset.csv:line 3: I-geo cannot follow O"):
        NerTask.read(str(csv))


def test_real_conll2003_dev_set() -> None:
    if not (DATA / "eng.testa").is_file():
        pytest.skip(f"CoNLL-2003 is not at {DATA}")
    words, tags = NerTask.read(str(DATA / "eng.testa"))
    assert len(words) == 3250 and all(len(w) == len(t) for w, t in zip(words, tags, strict=True))
    assert {t for row in tags for t in row} == {"O", *(f"{p}-{k}" for p in "BI" for k in ("PER", "ORG", "LOC", "MISC"))}
