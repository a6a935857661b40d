"""The NER task: sub-token labels, windows, decoding equal to the transformers pipeline, learning."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest
import torch
from finetune_helpers import make_tiny_model

import bertkit
from bertkit.data.batching import pad_collate
from bertkit.tasks.inference import forward_features
from bertkit.tasks.ner import IGNORE, NerTask
from bertkit.tasks.ner_text import merge_entities, split_words, windows
from bertkit.train import TrainConfig, fit

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
SENTENCES = [
    "Angela Merkel met Emmanuel Macron in Strasbourg on Tuesday.",
    "The Bundesbank said Deutsche Telekom's shares fell 3.5% in Frankfurt, Germany.",
    "Kofi Annan spoke.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def _tagger(folder: Path, tags: list[str], seed: int = 0) -> Path:
    """A random token classifier whose tags vary from token to token (a sharpened output layer)."""
    source = make_tiny_model(folder / "encoder", seed=seed)
    torch.manual_seed(seed)
    model = bertkit.load_model(source, head="token_classification", labels=tags)
    with torch.no_grad():
        model.classifier.out.weight.mul_(40)
    model.save(folder / "tagger")
    bertkit.Tokenizer.from_pretrained(source).save(folder / "tagger")
    return folder / "tagger"


def test_split_words_and_windows() -> None:
    sentence = split_words("Deutsche Telekom's shares fell 3.5%.")
    assert sentence.words == ["Deutsche", "Telekom", "'", "s", "shares", "fell", "3", ".", "5", "%", "."]
    assert sentence.spans[1] == (9, 16)
    firsts = [True, False, False, True, True, False, True, True]
    assert windows(firsts, 8, 2) == [(0, 8)]
    assert windows(firsts, 5, 2) == [(0, 4), (3, 8)]  # cut between words, overlapping
    assert windows(firsts, 4, 1) == [(0, 4), (3, 7), (6, 8)]


def test_labels_on_first_sub_tokens_and_windows(tiny: Path) -> None:
    tokenizer = bertkit.Tokenizer.from_pretrained(tiny)
    words = [["Angela", "Merkel", "visited", "Strasbourg"]]
    tags = [["B-PER", "I-PER", "O", "B-LOC"]]
    task = NerTask()
    task.prepare(words, tags)
    data = task.featurize(tokenizer, words, tags)
    pieces = tokenizer.convert_ids_to_tokens(data.features[0]["input_ids"])
    labels = [task.tags[i] if i != IGNORE else None for i in data.features[0]["labels"]]
    assert list(zip(pieces, labels, strict=True)) == [
        ("[CLS]", None), ("angela", "B-PER"), ("mer", "I-PER"), ("##kel", None), ("visited", "O"),
        ("strasbourg", "B-LOC"), ("[SEP]", None)]
    every = NerTask(tags=task.tags, label_all_subtokens=True).featurize(tokenizer, words, tags)
    assert every.features[0]["labels"][3] == task.tags.index("I-PER")
    long = NerTask(tags=task.tags, maxlen=10, stride=3).featurize(tokenizer, words * 1, [tags[0]])
    assert len(long.features) == 1
    long = NerTask(tags=task.tags, maxlen=8, stride=2).featurize(tokenizer, [words[0] * 3], [tags[0] * 3])
    assert len(long.features) > 1 and max(long.lengths) <= 8
    with pytest.raises(ValueError, match="example 0 has 4 words but 3 tags"):
        task.featurize(tokenizer, words, [tags[0][:3]])
    with pytest.raises(ValueError, match="example 0 has the tag 'B-MISC'"):
        task.featurize(tokenizer, words, [["B-MISC", "O", "O", "O"]])


def test_windows_decode_every_word(tmp_path: Path) -> None:
    folder = _tagger(tmp_path, TAGS)
    tokenizer = bertkit.Tokenizer.from_pretrained(folder)
    model = bertkit.load_model(folder, head="token_classification")
    text = " ".join(SENTENCES * 3)
    whole = NerTask(tags=TAGS, maxlen=128)
    cut = NerTask(tags=TAGS, maxlen=16, stride=6)
    results = []
    for task in (whole, cut):
        data = task.featurize(tokenizer, [text])
        results.append(task.decode(forward_features(model, data.features, pad_id=data.pad_id), data)[0])
    assert len(cut.featurize(tokenizer, [text]).features) > 5
    assert [w.word for w in results[1]] == [w.word for w in results[0]] == split_words(text).words
    assert [(w.start, w.end) for w in results[1]] == split_words(text).spans


@pytest.mark.parametrize("strategy", ["first", "average", "max"])
def test_entities_equal_the_transformers_pipeline(tmp_path: Path, strategy: str) -> None:
    transformers = pytest.importorskip("transformers")
    folder = _tagger(tmp_path, TAGS, seed=3)
    pipe = transformers.pipeline("token-classification", model=str(folder), aggregation_strategy=strategy,
                                 device="cpu")
    tokenizer = bertkit.Tokenizer.from_pretrained(folder)
    model = bertkit.load_model(folder, head="token_classification")
    task = NerTask(tags=TAGS, aggregation=strategy)
    data = task.featurize(tokenizer, SENTENCES)
    words = task.decode(forward_features(model, data.features, pad_id=data.pad_id), data)
    total = 0
    for sentence, tagged in zip(SENTENCES, words, strict=True):
        ours = merge_entities(tagged, sentence)
        theirs = pipe(sentence)
        assert [(e["entity_group"], e["start"], e["end"]) for e in ours] == \
            [(e["entity_group"], e["start"], e["end"]) for e in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert a["score"] == pytest.approx(float(b["score"]), abs=1e-5)
            assert a["word"].lower().replace(" ", "") == b["word"].replace(" ", "")  # it joins tokens by spaces
        total += len(ours)
    assert total >= 5


def _toy(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences whose entities are given away by the words around them."""
    rng = random.Random(seed)
    people, places = ["anna", "peter", "maria", "john"], ["paris", "berlin", "rome", "oslo"]
    words, tags = [], []
    for _ in range(n):
        person, place = rng.choice(people), rng.choice(places)
        if rng.random() < 0.5:
            words.append(["mr", person, "smith", "went", "to", place, "today"])
            tags.append(["O", "B-PER", "I-PER", "O", "O", "B-LOC", "O"])
        else:
            words.append(["in", place, "we", "met", person])
            tags.append(["O", "B-LOC", "O", "O", "B-PER"])
    return words, tags


def test_a_tiny_model_learns_entities(tiny: Path, tmp_path: Path) -> None:
    tokenizer = bertkit.Tokenizer.from_pretrained(tiny)
    words, tags = _toy(96, seed=0)
    task = NerTask(maxlen=32)
    task.prepare(words, tags)
    train = task.featurize(tokenizer, words, tags)
    val = task.featurize(tokenizer, *_toy(64, seed=1))
    torch.manual_seed(0)
    model = bertkit.load_model(tiny, head=task.head, num_labels=task.num_outputs)
    config = TrainConfig(lr=5e-3, epochs=3, batch_size=16, progress=False)
    fit(model, train, task.loss_fn(train), config,
        collate=functools.partial(pad_collate, pad_id=train.pad_id), lengths=train.lengths)
    scores = task.metrics(forward_features(model, val.features, pad_id=val.pad_id), val)
    assert scores["val_f1"] > 0.95, scores
    report = task.evaluate(forward_features(model, val.features, pad_id=val.pad_id), val)
    assert "LOC" in str(report) and report.metrics["val_f1"] == scores["val_f1"]
    # sentences of ~25 words read through windows of 16 tokens keep their entities
    words, tags = _toy(60, seed=2)
    long_words = [sum(words[i : i + 4], []) for i in range(0, 60, 4)]
    long_tags = [sum(tags[i : i + 4], []) for i in range(0, 60, 4)]
    windowed = NerTask(tags=task.tags, maxlen=16, stride=4)
    data = windowed.featurize(tokenizer, long_words, long_tags)
    assert len(data.features) >= 2 * len(long_words)
    assert windowed.metrics(forward_features(model, data.features, pad_id=data.pad_id), data)["val_f1"] > 0.8


def test_the_feature_based_bilstm_tagger_learns_with_a_frozen_encoder(tiny: Path) -> None:
    tokenizer = bertkit.Tokenizer.from_pretrained(tiny)
    words, tags = _toy(96, seed=0)
    task = NerTask(maxlen=32, tagger="bilstm")
    task.prepare(words, tags)
    train, val = task.featurize(tokenizer, words, tags), task.featurize(tokenizer, *_toy(64, seed=1))
    torch.manual_seed(0)
    model = bertkit.load_model(tiny, head=task.head, num_labels=task.num_outputs)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    fit(model, train, task.loss_fn(train), TrainConfig(lr=3e-2, epochs=5, batch_size=16, progress=False),
        collate=functools.partial(pad_collate, pad_id=train.pad_id), lengths=train.lengths)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert task.metrics(forward_features(model, val.features, pad_id=val.pad_id), val)["val_f1"] > 0.9
