"""Tag schemes and CoNLL entity scores, against hand-checked cases and seqeval's default mode."""

from __future__ import annotations

import random

import pytest

from bertkit.tasks.ner_tags import entities, entity_scores, iob2_to_bioes, report_text, to_iob2


def test_iob1_and_bioes_convert_to_iob2() -> None:
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    bioes = ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "B-ORG", "E-ORG"]
    assert to_iob2(bioes, "bioes") == ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG", "I-ORG"]
    assert iob2_to_bioes(to_iob2(bioes, "bioes")) == bioes


@pytest.mark.parametrize(("tags", "scheme", "message"), [
    (["O", "I-PER"], "iob2", "tag 1: I-PER cannot follow O in IOB2"),
    (["B-LOC", "I-PER"], "iob2", "tag 1: I-PER cannot follow B-LOC"),
    (["B-PER", "O"], "bioes", "tag 1: B-PER is not continued by I-PER or E-PER"),
    (["B-PER", "I-PER"], "bioes", "ends the sentence without E-PER"),
    (["O", "E-PER"], "bioes", "E-PER cannot follow O"),
    (["B-PER", "PER"], "iob2", "'PER' is not an IOB2 tag"),
    (["S-PER"], "iob2", "'S-PER' is not an IOB2 tag"),
])
def test_bad_sequences_are_errors_naming_the_tag(tags: list[str], scheme: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_iob2(tags, scheme)


def test_repair_starts_a_new_entity() -> None:
    assert to_iob2(["O", "I-PER", "I-LOC"], "iob2", repair=True) == ["O", "B-PER", "B-LOC"]
    assert to_iob2(["B-PER", "O", "E-LOC"], "bioes", repair=True) == ["B-PER", "O", "B-LOC"]


def test_entities_follow_the_conll_rules() -> None:
    # hand-checked: an I- after O or after another type starts an entity; B- always starts one
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-MISC"]
    assert entities(tags) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("ORG", 6, 6), ("MISC", 7, 7)]


def test_scores_on_a_hand_checked_case() -> None:
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    rows = entity_scores(true, pred)
    # true: PER(0:0-1), LOC, ORG, PER(1:2); found: PER(0:0-1) right, ORG(0:3) wrong, ORG(1:0) right
    assert rows["PER"] == {"precision": 1.0, "recall": 0.5, "f1-score": 2 / 3, "support": 2}
    assert rows["LOC"]["recall"] == 0.0 and rows["ORG"]["precision"] == 0.5
    assert rows["micro avg"]["precision"] == pytest.approx(2 / 3) and rows["micro avg"]["recall"] == 0.5
    text = report_text(rows)
    assert "micro avg" in text and "0.6667" in text


def _random_tags(rng: random.Random, n: int) -> list[str]:
    pool = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-MISC", "E-PER", "S-LOC"]
    return [rng.choice(pool) for _ in range(n)]


def test_scores_equal_seqeval_default_mode() -> None:
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 6))]
        true = [_random_tags(rng, n) for n in lengths]
        pred = [_random_tags(rng, n) for n in lengths]
        ours = entity_scores(true, pred)
        theirs = seqeval.classification_report(true, pred, output_dict=True, zero_division=0)
        assert set(ours) == set(theirs)
        for key, row in theirs.items():
            for metric, value in row.items():
                assert ours[key][metric] == pytest.approx(float(value)), (key, metric, true, pred)
