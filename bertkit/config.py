"""One configuration for every BERT-family encoder, its named presets, and Hugging Face config.json I/O."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .families import MODEL_TYPES, FamilyName, FamilySpec, UnsupportedModelError, family

Activation = Literal["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "tanh"]
SharedBlocks = Literal["all", "attention", "feed_forward"]
SHARED_BLOCKS: tuple[str, ...] = ("all", "attention", "feed_forward")
Family = FamilyName


@dataclass
class EncoderConfig:
    """Every switch that tells the four families apart; a variant is a set of values, not a class."""

    family: Family = "bert"
    vocab_size: int = 30522
    hidden_size: int = 768
    embedding_size: int | None = None  # ALBERT's factorised E; None means E = H
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    activation: Activation = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    classifier_dropout: float | None = None  # None: use hidden_dropout
    max_positions: int = 512
    type_vocab_size: int = 2  # 0: no token-type embedding (DistilBERT)
    pad_token_id: int = 0
    position_offset: int = 0  # RoBERTa counts positions from pad_token_id + 1
    layer_norm_eps: float = 1e-12
    share_layers: bool | None = None  # ALBERT: one layer's weights applied num_layers times; None: by family
    shared_blocks: SharedBlocks = "all"  # with share_layers: share the whole layer, or one block of it
    causal: bool = False  # left-to-right: position t attends to positions <= t only (BERT's ablation)
    labels: list[str] = field(default_factory=list)  # class names of a task head, if any

    def __post_init__(self) -> None:
        table = family(self.family)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.share_layers is None:
            self.share_layers = table.shares_layers
        # Hugging Face layouts can hold only these combinations, so only they can be saved and loaded.
        if self.share_layers != table.shares_layers:
            raise ValueError(
                f"share_layers={self.share_layers} with family={self.family!r}: ALBERT shares one layer's "
                "weights across the stack and the other families never do. Use family='albert' for "
                "shared layers, or another family for separate ones."
            )
        if self.shared_blocks not in SHARED_BLOCKS:
            raise ValueError(f"shared_blocks must be one of {SHARED_BLOCKS}, got {self.shared_blocks!r}")
        if self.shared_blocks != "all" and not self.share_layers:
            raise ValueError(f"shared_blocks={self.shared_blocks!r} needs share_layers=True (ALBERT)")
        if self.causal and not table.causal:
            raise ValueError(
                f"causal=True with family={self.family!r}: left-to-right encoders are BERT-family only "
                "(the BERT paper's ablation; Hugging Face stores them as BERT with is_decoder=true)."
            )
        if self.embedding_size != self.hidden_size and not table.factorised_embeddings:
            raise ValueError(
                f"embedding_size {self.embedding_size} differs from hidden_size {self.hidden_size}: only "
                "ALBERT factorises its embeddings; use family='albert' or leave embedding_size unset."
            )

    @property
    def table(self) -> FamilySpec:
        """This config's family entry (`bertkit.families`): what tells the families apart."""
        return family(self.family)

    @property
    def unique_layers(self) -> int:
        """How many Layer modules the stack holds: 1 when ALBERT shares whole layers."""
        return 1 if self.share_layers and self.shared_blocks == "all" else self.num_layers

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def head_dropout(self) -> float:
        return self.hidden_dropout if self.classifier_dropout is None else self.classifier_dropout

    def replace(self, **changes: Any) -> EncoderConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ----- Hugging Face config.json -------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> EncoderConfig:
        """Build a config from the dict of a Hugging Face config.json."""
        model_type = hf.get("model_type")
        table = MODEL_TYPES.get(str(model_type))
        if table is None:
            raise UnsupportedModelError(
                f"config.json has model_type={model_type!r}; bertkit supports "
                f"{sorted(MODEL_TYPES)} (BERT, RoBERTa, DistilBERT and ALBERT checkpoints)."
            )
        embedding = "position_embedding_type"
        if hf.get(embedding, "absolute") != "absolute":
            raise UnsupportedModelError(f"{embedding}={hf[embedding]!r} is not supported; only 'absolute'.")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)} | table.hf_defaults
        defaults["pad_token_id"] = table.default_pad_token_id
        values = {ours: hf.get(key, defaults[ours]) for ours, key in table.hf_keys.items()}
        values["vocab_size"] = hf[table.hf_keys["vocab_size"]]  # required: no family has a default
        values["pad_token_id"] = values["pad_token_id"] or 0  # null in some config.json files
        extra = {k: v for k, v in table.hf_defaults.items() if k not in table.hf_keys}
        if table.shares_layers:
            extra |= dict(share_layers=True, shared_blocks=_albert_sharing(hf))
        if table.causal and hf.get("is_decoder"):
            extra["causal"] = True
        return cls(
            family=table.name, **values, **extra,
            position_offset=table.position_offset(values["pad_token_id"]),
            classifier_dropout=hf.get(table.hf_classifier_dropout, table.default_classifier_dropout),
            labels=_labels_from_hf(hf),
        )

    def to_hf(self, architecture: str | None = None) -> dict[str, Any]:
        """The Hugging Face config.json dict for this config (and the named architecture)."""
        table = self.table
        hf: dict[str, Any] = {"model_type": self.family}
        hf |= {key: getattr(self, ours) for ours, key in table.hf_keys.items()}
        hf |= {key: getattr(self, ours) for key, ours in table.hf_copies.items()}
        # Families whose transformers config defaults the classifier dropout to a number get ours
        # resolved; the others keep None (use hidden dropout), as transformers reads it.
        dropout = self.classifier_dropout if table.default_classifier_dropout is None else self.head_dropout
        hf |= {table.hf_classifier_dropout: dropout, **table.hf_written, "initializer_range": 0.02}
        if self.share_layers:
            hf.update(num_hidden_groups=1, inner_group_num=1)
            if self.shared_blocks != "all":
                # One group per layer holds every layer whole (the shared block repeated), so
                # transformers computes the same function; the extra key restores the sharing.
                hf.update(num_hidden_groups=self.num_layers, shared_blocks=self.shared_blocks)
        if self.causal:
            hf["is_decoder"] = True
        if architecture:
            hf["architectures"] = [architecture]
        if self.labels:
            hf["id2label"] = {str(i): name for i, name in enumerate(self.labels)}
            hf["label2id"] = {name: i for i, name in enumerate(self.labels)}
        return hf

    @classmethod
    def from_folder(cls, folder: str | Path) -> EncoderConfig:
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a model folder needs a Hugging Face config.json.")
        return cls.from_hf(read_hf_config(path))


def read_hf_config(path: str | Path) -> dict[str, Any]:
    """config.json as a dict; a corrupt file is a `ValueError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is corrupt (not valid JSON: {error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} is corrupt (a JSON {type(config).__name__}, not an object)")
    return config


def _albert_sharing(hf: dict[str, Any]) -> str:
    """ALBERT's sharing from num_hidden_groups / inner_group_num and our `shared_blocks` key."""
    groups, inner = hf.get("num_hidden_groups", 1), hf.get("inner_group_num", 1)
    layers = hf.get("num_hidden_layers", 12)
    shared = hf.get("shared_blocks", "all")
    if inner == 1 and (groups, shared) == (1, "all"):
        return "all"
    if inner == 1 and groups == layers and shared in ("attention", "feed_forward"):
        return shared
    raise UnsupportedModelError(
        f"ALBERT with num_hidden_groups={groups}, inner_group_num={inner} (shared_blocks={shared!r}) is not "
        "supported; bertkit implements one shared group of one layer, or bertkit's own partially shared "
        "layout (one group per layer with shared_blocks 'attention' or 'feed_forward')."
    )


def _labels_from_hf(hf: dict[str, Any]) -> list[str]:
    id2label = hf.get("id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def _preset(family: Family, size: str, vocab: int, **extra: Any) -> EncoderConfig:
    hidden, layers, heads, inter = {
        "base": (768, 12, 12, 3072),
        "large": (1024, 24, 16, 4096),
        "xlarge": (2048, 24, 16, 8192),
        "xxlarge": (4096, 12, 64, 16384),
    }[size]
    sizes = dict(hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=inter)
    return EncoderConfig(family=family, vocab_size=vocab, **{**sizes, **extra})


_ROBERTA = dict(max_positions=514, type_vocab_size=1, pad_token_id=1, position_offset=2, layer_norm_eps=1e-5)
_ALBERT = dict(embedding_size=128, activation="gelu_new", hidden_dropout=0.0, attention_dropout=0.0,
               classifier_dropout=0.1, share_layers=True)
# v1 (the ALBERT paper's first release) has exact GELU in its Hugging Face configs and dropout 0.1,
# except xxlarge (0, as released; google-research/albert#23); v2 removed dropout everywhere.
_ALBERT_V1 = _ALBERT | dict(activation="gelu", hidden_dropout=0.1, attention_dropout=0.1)
_ALBERT_V1_XXLARGE = _ALBERT | dict(activation="gelu")

PRESETS: dict[str, EncoderConfig] = {
    "bert-base-uncased": _preset("bert", "base", 30522),
    "bert-base-cased": _preset("bert", "base", 28996),
    "bert-large-uncased": _preset("bert", "large", 30522),
    "bert-large-cased": _preset("bert", "large", 28996),
    "roberta-base": _preset("roberta", "base", 50265, **_ROBERTA),
    "roberta-large": _preset("roberta", "large", 50265, **_ROBERTA),
    "distilbert-base-uncased": _preset("distilbert", "base", 30522, num_layers=6, type_vocab_size=0,
                                       classifier_dropout=0.2),
    "distilbert-base-cased": _preset("distilbert", "base", 28996, num_layers=6, type_vocab_size=0,
                                     classifier_dropout=0.2),
    "albert-base-v1": _preset("albert", "base", 30000, **_ALBERT_V1),
    "albert-large-v1": _preset("albert", "large", 30000, **_ALBERT_V1),
    "albert-xlarge-v1": _preset("albert", "xlarge", 30000, **_ALBERT_V1),
    "albert-xxlarge-v1": _preset("albert", "xxlarge", 30000, **_ALBERT_V1_XXLARGE),
    "albert-base-v2": _preset("albert", "base", 30000, **_ALBERT),
    "albert-large-v2": _preset("albert", "large", 30000, **_ALBERT),
    "albert-xlarge-v2": _preset("albert", "xlarge", 30000, **_ALBERT),
    "albert-xxlarge-v2": _preset("albert", "xxlarge", 30000, **_ALBERT),
}


def preset(name: str, **changes: Any) -> EncoderConfig:
    """A copy of a named preset (e.g. "bert-base-uncased"), with any fields changed."""
    key = name.split("/")[-1].lower()
    if key not in PRESETS:
        raise KeyError(f"No preset named {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[key].replace(**changes)
