"""The left-to-right (causal) encoder: position t never sees t+1, next-token loss, transformers'
is_decoder BERT computes the same hidden states, and the pooler reads the last real token."""

from __future__ import annotations

import pytest
import torch
import transformers as hf
from torch.nn import functional as F

from bertkit import EncoderConfig, load_model
from bertkit.model import build
from bertkit.pretrain.masking import next_token_labels
from bertkit.pretrain.objectives import pretraining_loss

TINY = dict(vocab_size=100, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
            hidden_dropout=0.0, attention_dropout=0.0)


def _model(causal: bool = True, head: str | None = None):
    torch.manual_seed(0)
    return build(EncoderConfig(**TINY, causal=causal), head=head).eval()


def test_changing_later_tokens_leaves_earlier_outputs_unchanged() -> None:
    model = _model()
    ids = torch.randint(5, 100, (3, 12))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(5, 100, (3, 5))
    mask = torch.ones_like(ids)
    mask[2, 10:] = 0  # padding and the causal mask combined
    with torch.no_grad():
        a = model(ids, mask, output_hidden_states=True)
        b = model(changed, mask, output_hidden_states=True)
    for layer_a, layer_b in zip(a.hidden_states, b.hidden_states, strict=True):
        assert torch.equal(layer_a[:, :7], layer_b[:, :7])  # positions 0..6 never see 7..11
    assert not torch.allclose(a.last_hidden_state[:, 7:], b.last_hidden_state[:, 7:])
    # the same model without the switch is bidirectional: early positions do change
    bidirectional = _model(causal=False)
    with torch.no_grad():
        c, d = bidirectional(ids, mask).last_hidden_state, bidirectional(changed, mask).last_hidden_state
    assert not torch.allclose(c[:, :7], d[:, :7])


def test_loss_is_next_token_cross_entropy() -> None:
    model = _model(head="mlm")
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": next_token_labels(ids, mask.sum(1))}
    loss, metrics = pretraining_loss(model, batch, objective="left_to_right")
    with torch.no_grad():
        logits = model(ids, mask).logits  # every position scored: (batch, seq, vocab)
    predicting = [(0, t) for t in range(8)] + [(1, t) for t in range(5)]
    expected = torch.stack([F.cross_entropy(logits[r, t], ids[r, t + 1]) for r, t in predicting]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(metrics) == {"lm_loss", "lm_accuracy"}


def test_matches_transformers_is_decoder_bert_both_ways(tmp_path) -> None:
    config = hf.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, is_decoder=True)
    torch.manual_seed(1)
    reference = hf.BertModel(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    ours = load_model(tmp_path / "hf")
    assert ours.config.causal
    ids = torch.randint(5, 100, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        theirs = reference(ids, attention_mask=mask).last_hidden_state
        mine = ours(ids, mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(theirs[real], mine[real], atol=1e-5)
    ours.save(tmp_path / "ours")
    again = hf.BertModel.from_pretrained(tmp_path / "ours").eval()
    assert again.config.is_decoder
    with torch.no_grad():
        assert torch.allclose(again(ids, attention_mask=mask).last_hidden_state[real], mine[real], atol=1e-5)


def test_pooler_reads_the_last_real_token() -> None:
    model = _model()
    ids = torch.randint(5, 100, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        out = model(ids, mask)
        expected = torch.tanh(model.encoder.pooler.dense(out.last_hidden_state[[0, 1], [7, 4]]))
    assert torch.allclose(out.pooled_output, expected)


def test_causal_is_bert_only() -> None:
    with pytest.raises(ValueError, match="BERT-family only"):
        EncoderConfig(family="roberta", causal=True)
    assert "is_decoder" not in EncoderConfig(**TINY).to_hf()
