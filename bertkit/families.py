"""The four BERT families as data: one frozen table entry each, read by the config, the model, its
checkpoint conversion, vocabulary training and distillation instead of branching on a family name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FamilyName = Literal["bert", "roberta", "distilbert", "albert"]
# A checkpoint module template per layer ({} is the layer index); a tuple is concatenated (q, k, v).
LayerKeys = tuple[tuple[str | tuple[str, ...], str], ...]


@dataclass(frozen=True)
class ClassifierLayout:
    """How a family's checkpoints shape a sentence-level classifier, and where they keep it.

    `pooled`: the pooler's output; `first`: the first token's hidden state, through an optional
    dense layer (`dense_act`), with dropout before it too when `dropout_before_dense`.
    """

    source: Literal["pooled", "first"] = "pooled"
    dense_act: str | None = None
    dropout_before_dense: bool = False
    hf_dense: str | None = None  # checkpoint module of the dense layer
    hf_out: str = "classifier"  # checkpoint module of the output layer


@dataclass(frozen=True)
class VocabDefaults:
    """What `train_vocab` builds for a family: the tokenizer model, casing and special tokens."""

    model: Literal["wordpiece", "byte_bpe", "unigram"]
    lowercase: bool  # the originals: uncased BERT/DistilBERT/ALBERT, cased RoBERTa
    cls: str
    sep: str
    pad: str
    mask: str
    unk: str
    order: tuple[str, ...]  # special tokens in vocabulary order (the first gets id 0, ...)
    tokenizer_class: str


# Our config field -> the config.json key, for the BERT-style configs and for DistilBERT's own names.
_BERT_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads", "intermediate_size": "intermediate_size", "activation": "hidden_act",
    "hidden_dropout": "hidden_dropout_prob", "attention_dropout": "attention_probs_dropout_prob",
    "max_positions": "max_position_embeddings", "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps", "pad_token_id": "pad_token_id",
}
_DISTILBERT_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "dim", "num_layers": "n_layers", "num_heads": "n_heads",
    "intermediate_size": "hidden_dim", "activation": "activation", "hidden_dropout": "dropout",
    "attention_dropout": "attention_dropout", "max_positions": "max_position_embeddings",
    "pad_token_id": "pad_token_id",
}

_BERT_LAYER: LayerKeys = (
    (("encoder.layer.{}.attention.self.query", "encoder.layer.{}.attention.self.key",
      "encoder.layer.{}.attention.self.value"), "attention.qkv"),
    ("encoder.layer.{}.attention.output.dense", "attention.output"),
    ("encoder.layer.{}.attention.output.LayerNorm", "attention_norm"),
    ("encoder.layer.{}.intermediate.dense", "feed_forward.intermediate"),
    ("encoder.layer.{}.output.dense", "feed_forward.output"),
    ("encoder.layer.{}.output.LayerNorm", "output_norm"),
)
_DISTILBERT_LAYER: LayerKeys = (
    (("transformer.layer.{}.attention.q_lin", "transformer.layer.{}.attention.k_lin",
      "transformer.layer.{}.attention.v_lin"), "attention.qkv"),
    ("transformer.layer.{}.attention.out_lin", "attention.output"),
    ("transformer.layer.{}.sa_layer_norm", "attention_norm"),
    ("transformer.layer.{}.ffn.lin1", "feed_forward.intermediate"),
    ("transformer.layer.{}.ffn.lin2", "feed_forward.output"),
    ("transformer.layer.{}.output_layer_norm", "output_norm"),
)
# One group holds the shared layer; partially shared models are saved as one group per layer.
_A = "encoder.albert_layer_groups.{}.albert_layers.0."
_ALBERT_LAYER: LayerKeys = (
    ((_A + "attention.query", _A + "attention.key", _A + "attention.value"), "attention.qkv"),
    (_A + "attention.dense", "attention.output"),
    (_A + "attention.LayerNorm", "attention_norm"),
    (_A + "ffn", "feed_forward.intermediate"),
    (_A + "ffn_output", "feed_forward.output"),
    (_A + "full_layer_layer_norm", "output_norm"),
)

_WORDPIECE = dict(model="wordpiece", lowercase=True, cls="[CLS]", sep="[SEP]", pad="[PAD]", mask="[MASK]",
                  unk="[UNK]", order=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))


@dataclass(frozen=True)
class FamilySpec:
    """Everything that tells one family apart; code asks these fields, never the family's name."""

    name: FamilyName
    hf_name: str  # architectures are hf_name + the head's suffix ("Bert" + "ForMaskedLM")
    model_types: tuple[str, ...]  # config.json model_type values with this architecture
    preset: str  # the base preset a new model of this family starts from
    vocab: VocabDefaults
    # ----- encoder
    token_types: bool = True  # a token-type (segment) embedding
    positions_after_pad: bool = False  # RoBERTa counts positions from pad_token_id + 1
    default_pad_token_id: int = 0
    factorised_embeddings: bool = False  # ALBERT: embeddings of size E, projected to H
    shares_layers: bool = False  # ALBERT: one layer's weights across the stack
    causal: bool = False  # may be a left-to-right encoder (BERT's ablation, HF's is_decoder)
    pooler: bool = True  # whether its checkpoints carry a pooler at all
    # ----- heads
    pair_head: Literal["nsp", "sop"] | None = "nsp"  # pre-training's sentence-pair objective
    pair_dropout: bool = False  # the pair head applies the classifier dropout (ALBERT)
    classifier: ClassifierLayout = ClassifierLayout()
    choice_classifier: ClassifierLayout = ClassifierLayout()  # multiple choice's
    qa_dropout: bool = False  # the span head applies hidden dropout (DistilBERT)
    students: tuple[str, ...] = ()  # families a distilled student of this one may have, besides its own
    # ----- config.json
    hf_keys: dict[str, str] = field(default_factory=lambda: dict(_BERT_KEYS))
    hf_defaults: dict[str, Any] = field(default_factory=dict)  # fields absent from config.json
    hf_classifier_dropout: str = "classifier_dropout"
    default_classifier_dropout: float | None = None  # None: the config's hidden dropout
    hf_written: dict[str, Any] = field(default_factory=lambda: {"position_embedding_type": "absolute"})
    hf_copies: dict[str, str] = field(default_factory=dict)  # extra config.json key -> our field
    # ----- checkpoint keys (without the base-model prefix, which is name + ".")
    hf_layer: LayerKeys = _BERT_LAYER
    hf_mlm: tuple[str, str, str] = ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                                    "cls.predictions.bias")  # transform, norm, bias
    hf_pair: str | None = "cls.seq_relationship"
    hf_pooler: str = "pooler.dense"

    @property
    def prefix(self) -> str:
        """The base model's key prefix in a checkpoint with a head ("bert.")."""
        return self.name + "."

    def position_offset(self, pad_token_id: int) -> int:
        return pad_token_id + 1 if self.positions_after_pad else 0


_FAMILIES = (
    FamilySpec(
        name="bert", hf_name="Bert", model_types=("bert",), preset="bert-base-uncased", causal=True,
        students=("distilbert",),
        vocab=VocabDefaults(**_WORDPIECE, tokenizer_class="BertTokenizerFast"),  # type: ignore[arg-type]
    ),
    FamilySpec(
        name="roberta", hf_name="Roberta", model_types=("roberta", "xlm-roberta", "camembert"),
        preset="roberta-base", positions_after_pad=True, default_pad_token_id=1, pair_head=None, hf_pair=None,
        classifier=ClassifierLayout("first", "tanh", True, "classifier.dense", "classifier.out_proj"),
        hf_written={"position_embedding_type": "absolute", "bos_token_id": 0, "eos_token_id": 2},
        hf_mlm=("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
        vocab=VocabDefaults("byte_bpe", False, "<s>", "</s>", "<pad>", "<mask>", "<unk>",
                            ("<s>", "<pad>", "</s>", "<unk>", "<mask>"), "RobertaTokenizerFast"),
    ),
    FamilySpec(
        name="distilbert", hf_name="DistilBert", model_types=("distilbert",), preset="distilbert-base-uncased",
        token_types=False, pooler=False, pair_head=None, hf_pair=None, qa_dropout=True,
        classifier=ClassifierLayout("first", "relu", False, "pre_classifier", "classifier"),
        choice_classifier=ClassifierLayout("first", "relu", False, "pre_classifier", "classifier"),
        hf_keys=dict(_DISTILBERT_KEYS), hf_defaults={"num_layers": 6, "type_vocab_size": 0},
        hf_classifier_dropout="seq_classif_dropout", default_classifier_dropout=0.2,
        hf_written={"sinusoidal_pos_embds": False, "tie_weights_": True}, hf_copies={"qa_dropout": "hidden_dropout"},
        hf_layer=_DISTILBERT_LAYER, hf_mlm=("vocab_transform", "vocab_layer_norm", "vocab_projector.bias"),
        vocab=VocabDefaults(**_WORDPIECE, tokenizer_class="DistilBertTokenizerFast"),  # type: ignore[arg-type]
    ),
    FamilySpec(
        name="albert", hf_name="Albert", model_types=("albert",), preset="albert-base-v2",
        factorised_embeddings=True, shares_layers=True, pair_head="sop", pair_dropout=True,
        hf_keys=_BERT_KEYS | {"embedding_size": "embedding_size"}, hf_defaults={"embedding_size": 128},
        hf_classifier_dropout="classifier_dropout_prob", default_classifier_dropout=0.1,
        hf_layer=_ALBERT_LAYER, hf_mlm=("predictions.dense", "predictions.LayerNorm", "predictions.bias"),
        hf_pair="sop_classifier.classifier", hf_pooler="pooler",  # ALBERT's pooler is a bare Linear
        vocab=VocabDefaults("unigram", True, "[CLS]", "[SEP]", "<pad>", "[MASK]", "<unk>",
                            ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"), "AlbertTokenizerFast"),
    ),
)
FAMILY_TABLE: dict[str, FamilySpec] = {f.name: f for f in _FAMILIES}
FAMILIES: tuple[str, ...] = tuple(FAMILY_TABLE)
# config.json's model_type -> the family with that architecture
MODEL_TYPES: dict[str, FamilySpec] = {t: f for f in _FAMILIES for t in f.model_types}


class UnsupportedModelError(ValueError):
    """Raised for a config.json whose model type or options bertkit does not implement."""


def family(name: str) -> FamilySpec:
    """The table entry of a family name: the one place a name turns into behaviour."""
    if name not in FAMILY_TABLE:
        raise UnsupportedModelError(f"family must be one of {FAMILIES}, got {name!r}")
    return FAMILY_TABLE[name]
