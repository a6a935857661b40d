"""Student builder: layer choice, copied weights equal the teacher's, a DistilBERT student of a BERT
teacher, narrower students only with a projection, and the Hugging Face layout of the result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import bertkit
from bertkit import EncoderConfig
from bertkit.distill import default_layers, make_student, pca_projection

TINY = dict(vocab_size=120, hidden_size=32, num_layers=4, num_heads=4, intermediate_size=48,
            max_positions=64, hidden_dropout=0.0, attention_dropout=0.0)


def teacher(head: str | None = "mlm", family: str = "bert", **changes) -> bertkit.BertkitModel:
    torch.manual_seed(0)
    config = EncoderConfig(family=family, **{**TINY, **changes})
    return bertkit.build(config, head=head, num_labels=3 if head == "classification" else None).eval()


def inputs(batch: int = 3, seq: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, 120, (batch, seq))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return ids, mask


def test_default_layers_spread_keeps_first_and_last() -> None:
    assert default_layers(12, 6) == [0, 2, 4, 7, 9, 11]  # DistilBERT's choice
    assert default_layers(6, 3) == [0, 3, 5]
    assert default_layers(6, 2) == [0, 5]
    assert default_layers(4, 1) == [0]
    with pytest.raises(ValueError, match="1..4 layers"):
        default_layers(4, 5)


def test_copied_layers_equal_the_teachers() -> None:
    t = teacher("classification")
    s = make_student(t, [1, 3])
    assert s.config.num_layers == 2 and s.head_name == "classification" and s.num_labels == 3
    ts, ss = t.state_dict(), s.state_dict()
    for i, source in enumerate([1, 3]):
        for name, value in ss.items():
            if name.startswith(f"encoder.layers.{i}."):
                torch.testing.assert_close(value, ts[name.replace(f"layers.{i}.", f"layers.{source}.")])
    for name in ("encoder.embeddings.word.weight", "encoder.pooler.dense.weight", "classifier.out.weight"):
        torch.testing.assert_close(ss[name], ts[name])
    ss["encoder.embeddings.word.weight"].add_(1.0)  # a copy, not a shared tensor
    assert not torch.equal(ss["encoder.embeddings.word.weight"], t.state_dict()["encoder.embeddings.word.weight"])


def test_student_with_all_layers_reproduces_the_teacher() -> None:
    t = teacher("classification")
    s = make_student(t, 4).eval()
    ids, mask = inputs()
    torch.testing.assert_close(s(ids, mask).logits, t(ids, mask).logits)


def test_distilbert_student_of_bert_drops_token_types_and_pooler(tmp_path: Path) -> None:
    t = teacher("pretraining")
    s = make_student(t, 2, family="distilbert").eval()
    assert s.config.family == "distilbert" and s.head_name == "mlm"
    assert s.encoder.embeddings.token_type is None and s.encoder.pooler is None
    full = make_student(t, 4, family="distilbert").eval()
    ids, mask = inputs()
    # token type 0 folded into the positions: the same masked-LM outputs as the teacher
    torch.testing.assert_close(full(ids, mask).logits, t(ids, mask, torch.zeros_like(ids)).logits)
    s.save(tmp_path / "student")
    config = (tmp_path / "student" / "config.json").read_text()
    assert '"model_type": "distilbert"' in config and "DistilBertForMaskedLM" in config
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids, attention_mask=mask).logits, s(ids, mask).logits,
                                   atol=1e-5, rtol=1e-4)


def test_distilbert_classifier_takes_the_pooler_dense_layer() -> None:
    t = teacher("classification")
    s = make_student(t, 2, family="distilbert")
    torch.testing.assert_close(s.state_dict()["classifier.dense.weight"], t.state_dict()["encoder.pooler.dense.weight"])


def test_narrower_student_needs_a_projection() -> None:
    t = teacher("mlm")
    with pytest.raises(ValueError, match="projection='pca'"):
        make_student(t, 2, hidden=16)
    s = make_student(t, 2, hidden=16, projection="pca").eval()
    assert s.config.hidden_size == 16 and s.config.num_heads == 4
    p = pca_projection(t, 16)
    torch.testing.assert_close(p.T @ p, torch.eye(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.state_dict()["encoder.embeddings.word.weight"],
                               t.state_dict()["encoder.embeddings.word.weight"] @ p)
    ids, mask = inputs()
    assert s(ids, mask).logits.shape == (3, 9, 120)
    with pytest.raises(ValueError, match=r"expected \(32, 16\)"):
        make_student(t, 2, hidden=16, projection=torch.eye(16))


def test_bad_layer_choices_are_clear_errors() -> None:
    t = teacher(None)
    with pytest.raises(ValueError, match=r"lie in 0..3"):
        make_student(t, [0, 4])
    with pytest.raises(ValueError, match="increasing order"):
        make_student(t, [2, 1])
    with pytest.raises(ValueError, match="distilbert student of a roberta"):
        make_student(teacher(None, family="roberta", pad_token_id=1, position_offset=2), 2, family="distilbert")
