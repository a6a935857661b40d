"""A tokenizer folder's files: its config and special tokens, and pipelines built from legacy files
(vocab.txt, vocab.json + merges.txt, spiece.model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from tokenizers.models import BPE, Unigram, WordPiece

SPECIAL_NAMES = ("cls", "sep", "pad", "mask", "unk")
_LOOKED_FOR = "tokenizer.json, vocab.txt, vocab.json + merges.txt, spiece.model"
# transformers writes this sentinel as model_max_length when a checkpoint sets no limit.
_NO_LIMIT = 10**9


def read_folder(folder: Path) -> tuple[Backend, dict[str, Any]]:
    """A tokenizer folder's pipeline and the `Tokenizer` options its config sets (special tokens,
    model_max_length, do_lower_case, tokenizer_class)."""
    config = read_config(folder)
    lower = config.get("do_lower_case")
    if (folder / "tokenizer.json").is_file():
        backend, kind = backend_from_file(folder / "tokenizer.json"), None
    elif (folder / "vocab.txt").is_file():
        lower = True if lower is None else bool(lower)
        backend, kind = wordpiece_from_vocab(folder, config, lower), "BertTokenizer"
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        backend, kind = byte_level_bpe_from_files(folder, config), "RobertaTokenizer"
    elif (folder / "spiece.model").is_file():
        lower = True if lower is None else bool(lower)
        backend, kind = unigram_from_spiece(folder, config, lower), "AlbertTokenizer"
    else:
        raise FileNotFoundError(
            f"No tokenizer files in {folder}: looked for {_LOOKED_FOR}. Pass the folder of a "
            "BERT-family checkpoint, or save a tokenizer there with Tokenizer.save(folder)."
        )
    limit = config.get("model_max_length")
    return backend, {
        **{f"{name}_token": config.get(f"{name}_token") for name in SPECIAL_NAMES},
        "model_max_length": int(limit) if isinstance(limit, int | float) and limit < _NO_LIMIT else None,
        "do_lower_case": lower,
        "tokenizer_class": kind or config.get("tokenizer_class"),
    }


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; a corrupt or non-object file is a `ValueError` naming it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is corrupt (not valid JSON: {error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path} is corrupt (a JSON {type(value).__name__}, not an object)")
    return value


def backend_from_file(path: Path) -> Backend:
    """Load a tokenizer.json; a corrupt one is a `ValueError` naming the file."""
    try:
        return Backend.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for malformed files
        raise ValueError(f"{path} is corrupt ({' '.join(str(error).split())})") from error


def read_config(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json merged with special_tokens_map.json; special tokens as plain strings."""
    config: dict[str, Any] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (folder / name).is_file():
            config.update(read_json(folder / name))
    for name in SPECIAL_NAMES:
        value = config.get(f"{name}_token")
        if isinstance(value, dict):  # transformers may store an AddedToken as a dict
            config[f"{name}_token"] = value.get("content")
    return config


def register_specials(backend: Backend, tokens: list[str | None], mask: str | None) -> None:
    """Make sure special tokens are never split, marking them special as transformers does."""
    known = {t.content for t in backend.get_added_tokens_decoder().values()}
    # RoBERTa's and ALBERT's released tokenizers let the mask absorb the space before it ("a <mask>").
    lstrip = not isinstance(backend.model, WordPiece)
    new = [
        AddedToken(t, special=True, normalized=False, lstrip=lstrip and t == mask)
        for t in tokens
        if t is not None and t not in known
    ]
    if new:
        backend.add_special_tokens(new)


def class_for(backend: Backend) -> str:
    """The transformers class whose pipeline matches the backend's model type."""
    model = type(backend.model).__name__
    return {
        "WordPiece": "BertTokenizer",
        "BPE": "RobertaTokenizer",
        "Unigram": "AlbertTokenizer",
    }.get(model, "PreTrainedTokenizerFast")


def _special(config: dict[str, Any], name: str, default: str) -> str:
    return config.get(f"{name}_token") or default


def wordpiece_from_vocab(folder: Path, config: dict[str, Any], lower: bool) -> Backend:
    """BERT: BertNormalizer, BertPreTokenizer, WordPiece with "##", [CLS] A [SEP] B [SEP]."""
    unk = _special(config, "unk", "[UNK]")
    cls, sep = _special(config, "cls", "[CLS]"), _special(config, "sep", "[SEP]")
    vocab = WordPiece.read_file(str(folder / "vocab.txt"))
    backend = Backend(WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),  # None: strip accents exactly when lowercasing
        lowercase=lower,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.post_processor = _template(cls, sep, vocab)
    return backend


def _template(cls: str, sep: str, vocab: dict[str, int]) -> processors.TemplateProcessing:
    for token in (cls, sep):
        if token not in vocab:
            raise ValueError(
                f"Special token {token!r} is not in the vocabulary; name it in tokenizer_config.json."
            )
    return processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )


def byte_level_bpe_from_files(folder: Path, config: dict[str, Any]) -> Backend:
    """RoBERTa: byte-level BPE without a prefix space, <s> A </s></s> B </s> with trimmed offsets."""
    vocab, merges = BPE.read_file(str(folder / "vocab.json"), str(folder / "merges.txt"))
    cls, sep = _special(config, "cls", "<s>"), _special(config, "sep", "</s>")
    for token in (cls, sep):
        if token not in vocab:
            raise ValueError(
                f"Special token {token!r} is not in vocab.json; name it in tokenizer_config.json."
            )
    backend = Backend(
        BPE(
            vocab,
            merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.RobertaProcessing(
        (sep, vocab[sep]), (cls, vocab[cls]), trim_offsets=True, add_prefix_space=False
    )
    return backend


def unigram_from_spiece(folder: Path, config: dict[str, Any], lower: bool) -> Backend:
    """ALBERT: SentencePiece pieces as a Unigram model behind ALBERT's normalisation."""
    try:
        import sentencepiece
    except ImportError as error:
        raise ImportError(
            f"{folder / 'spiece.model'} is a SentencePiece model; reading it needs the sentencepiece "
            "package: pip install sentencepiece"
        ) from error
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    pieces = [
        (processor.id_to_piece(i), processor.get_score(i))
        for i in range(processor.get_piece_size())
    ]
    # As transformers' converter: pieces like "9," lose to "9" + "," (the slow ALBERT tokenizer splits them).
    vocab = [
        (p, s - 100 if len(p) > 1 and p[-1] == "," and p[-2].isdigit() else s) for p, s in pieces
    ]
    backend = Backend(Unigram(vocab, unk_id=processor.unk_id(), byte_fallback=False))
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not config.get("keep_accents", False):
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if lower:
        steps.append(normalizers.Lowercase())
    charsmap = _precompiled_charsmap(processor.serialized_model_proto())
    if charsmap:
        steps.append(normalizers.Precompiled(charsmap))
    backend.normalizer = normalizers.Sequence(steps)
    # ALBERT joins whitespace runs into one space before SentencePiece adds "▁" to each word.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {piece: i for i, (piece, _) in enumerate(pieces)}
    backend.post_processor = _template(
        _special(config, "cls", "[CLS]"), _special(config, "sep", "[SEP]"), ids
    )
    return backend


def _precompiled_charsmap(proto: bytes) -> bytes:
    """normalizer_spec.precompiled_charsmap of a SentencePiece ModelProto (fields 3 then 2).

    Read straight from the protobuf wire format so that protobuf is not one more dependency.
    """
    spec = _proto_field(proto, 3)
    return _proto_field(spec, 2) if spec else b""


def _proto_field(data: bytes, wanted: int) -> bytes:
    """The first length-delimited field numbered `wanted` in a protobuf message, or b""."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, position = _varint(data, position)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        elif wire == 2:
            size, position = _varint(data, position)
            if number == wanted:
                return data[position : position + size]
            position += size
        else:
            raise ValueError(
                f"Unsupported protobuf wire type {wire} in spiece.model; is the file corrupt?"
            )
    return b""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
