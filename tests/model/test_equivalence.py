"""Every family and head gives the same outputs as `transformers` on random tiny models, both ways."""

from __future__ import annotations

import pytest
import torch
import transformers as hf

from bertkit import BertkitModel, EncoderConfig, load_model
from bertkit.model.checkpoint import load_state

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, hidden_act="gelu")
CONFIGS = {
    "bert": lambda: hf.BertConfig(**TINY, type_vocab_size=2),
    "roberta": lambda: hf.RobertaConfig(**{**TINY, "max_position_embeddings": 66}, type_vocab_size=1, pad_token_id=1),
    "distilbert": lambda: hf.DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                              max_position_embeddings=64),
    "albert": lambda: hf.AlbertConfig(**{**TINY, "num_hidden_layers": 3, "hidden_act": "gelu_new"}, embedding_size=16),
}
PREFIX = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert", "albert": "Albert"}
HEAD_CLASSES = {
    None: "Model", "mlm": "ForMaskedLM", "pretraining": "ForPreTraining",
    "classification": "ForSequenceClassification", "token_classification": "ForTokenClassification",
    "qa": "ForQuestionAnswering", "multiple_choice": "ForMultipleChoice",
}
CASES = [(family, head) for family in CONFIGS for head in HEAD_CLASSES
         if not (head == "pretraining" and family in ("roberta", "distilbert"))]


def batch(family: str, head: str | None):
    torch.manual_seed(0)
    low = 3  # above the special ids, so no random token is a pad
    ids = torch.randint(low, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    pad = 1 if family == "roberta" else 0
    ids = ids.masked_fill(mask == 0, pad)
    types = torch.zeros_like(ids)
    if family == "bert" or family == "albert":
        types[:, 5:] = 1
    if head == "multiple_choice":
        ids, mask, types = (t.view(1, 3, 11).expand(2, 3, 11).contiguous() for t in (ids, mask, types))
    inputs = {"input_ids": ids, "attention_mask": mask}
    if family != "distilbert":
        inputs["token_type_ids"] = types
    return inputs


def reference_outputs(ref, inputs, head):
    out = ref(**inputs)
    if head is None:
        pooled = getattr(out, "pooler_output", None)
        return [out.last_hidden_state] + ([pooled] if pooled is not None else [])
    if head == "pretraining":
        pair = out.seq_relationship_logits if hasattr(out, "seq_relationship_logits") else out.sop_logits
        return [out.prediction_logits, pair]
    if head == "qa":
        return [torch.stack([out.start_logits, out.end_logits], dim=-1)]
    return [out.logits]


def our_outputs(model, inputs, head):
    out = model(**inputs)
    if head is None:
        return [out.last_hidden_state] + ([out.pooled_output] if out.pooled_output is not None else [])
    if head == "pretraining":
        return [out.logits, out.pair_logits]
    return [out.logits]


def assert_close(ours, theirs, inputs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        if a.dim() == 3 and a.shape[:2] == inputs["attention_mask"].shape:
            keep = inputs["attention_mask"].bool()  # padded positions are undefined in both
            a, b = a[keep], b[keep]
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family,head", CASES)
def test_matches_transformers_both_ways(family, head, tmp_path):
    torch.manual_seed(1)
    hf_config = CONFIGS[family]()
    hf_config.num_labels = {"classification": 3, "qa": 2, "pretraining": 2}.get(head, 5)
    reference = getattr(hf, PREFIX[family] + HEAD_CLASSES[head])(hf_config).eval()
    config = EncoderConfig.from_hf(hf_config.to_dict())
    num_labels = hf_config.num_labels if head in ("classification", "token_classification") else None
    model = BertkitModel(config, head=head, num_labels=num_labels).eval()
    load_state(model, reference.state_dict())
    inputs = batch(family, head)
    with torch.no_grad():
        assert_close(our_outputs(model, inputs, head), reference_outputs(reference, inputs, head), inputs)

    model.save(tmp_path / "saved")
    reloaded = getattr(hf, PREFIX[family] + HEAD_CLASSES[head]).from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert_close(our_outputs(model, inputs, head), reference_outputs(reloaded, inputs, head), inputs)
    again = load_model(tmp_path / "saved", head="auto").eval()
    assert again.head_name == head
    with torch.no_grad():
        assert_close(our_outputs(again, inputs, head), our_outputs(model, inputs, head), inputs)


def test_mlm_mask_selects_positions():
    config = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=20,
                           max_positions=16)
    model = BertkitModel(config, head="mlm").eval()
    ids = torch.randint(5, 50, (2, 8))
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[0, 2] = where[1, 5] = True
    with torch.no_grad():
        full = model(ids).logits
        part = model(ids, mlm_mask=where).logits
    assert part.shape == (2, 50)
    torch.testing.assert_close(part, full[where])


def test_albert_shares_one_layer():
    config = EncoderConfig.from_hf(CONFIGS["albert"]().to_dict())
    model = BertkitModel(config)
    assert len(model.encoder.layers) == 1 and config.num_layers == 3
    assert model.encoder.project.weight.shape == (32, 16)
