"""Train a WordPiece (BERT, DistilBERT), byte-level BPE (RoBERTa) or Unigram (ALBERT) vocabulary.

The result is a folder that loads with `transformers.AutoTokenizer` and `bertkit.tokenizer.Tokenizer`.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tk_trainers

from bertkit.families import FAMILIES, FAMILY_TABLE, FamilyName, VocabDefaults
from bertkit.io import atomic_write_text, save_json

Family = FamilyName


def _wordpiece(sp: VocabDefaults, vocab_size: int, lowercase: bool, min_frequency: int,
               show_progress: bool) -> tuple[Tokenizer, tk_trainers.Trainer]:
    tok = Tokenizer(models.WordPiece(unk_token=sp.unk, continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = tk_trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(sp.order),
        continuing_subword_prefix="##", show_progress=show_progress)
    return tok, trainer


def _byte_bpe(sp: VocabDefaults, vocab_size: int, lowercase: bool, min_frequency: int,
              show_progress: bool) -> tuple[Tokenizer, tk_trainers.Trainer]:
    tok = Tokenizer(models.BPE(unk_token=None))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Seeding the alphabet with all 256 bytes means any input encodes without an unknown token.
    trainer = tk_trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(sp.order),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    return tok, trainer


def _unigram(sp: VocabDefaults, vocab_size: int, lowercase: bool, min_frequency: int,
             show_progress: bool) -> tuple[Tokenizer, tk_trainers.Trainer]:
    del min_frequency  # the Unigram trainer prunes by likelihood, not by count
    tok = Tokenizer(models.Unigram())
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if lowercase:
        steps += [normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = tk_trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(sp.order), unk_token=sp.unk,
        show_progress=show_progress)
    return tok, trainer


def _post_processor(sp: VocabDefaults, tok: Tokenizer) -> processors.PostProcessor:
    cls_id, sep_id = tok.token_to_id(sp.cls), tok.token_to_id(sp.sep)
    if sp.model == "byte_bpe":  # RoBERTa's <s> A </s></s> B </s>, offsets trimmed of the byte-level spaces
        return processors.RobertaProcessing((sp.sep, sep_id), (sp.cls, cls_id),
                                            trim_offsets=True, add_prefix_space=False)
    return processors.TemplateProcessing(
        single=f"{sp.cls}:0 $A:0 {sp.sep}:0",
        pair=f"{sp.cls}:0 $A:0 {sp.sep}:0 $B:1 {sp.sep}:1",
        special_tokens=[(sp.cls, cls_id), (sp.sep, sep_id)])


def _config(sp: VocabDefaults, lowercase: bool) -> tuple[dict, dict]:
    special_map = {"cls_token": sp.cls, "sep_token": sp.sep, "pad_token": sp.pad,
                   "mask_token": sp.mask, "unk_token": sp.unk}
    tokenizer_class = sp.tokenizer_class
    extra: dict = {}
    if sp.model == "byte_bpe":
        special_map |= {"bos_token": sp.cls, "eos_token": sp.sep}
        extra["add_prefix_space"] = False
        if lowercase:
            # transformers' RobertaTokenizer rebuilds its pipeline from vocab + merges and would drop
            # our Lowercase normaliser; the generic class keeps tokenizer.json exactly as written.
            tokenizer_class = "PreTrainedTokenizerFast"
    if sp.model == "unigram":
        extra["keep_accents"] = not lowercase
    config = dict(special_map, do_lower_case=lowercase, tokenizer_class=tokenizer_class,
                  model_max_length=512, clean_up_tokenization_spaces=False, **extra)
    return config, special_map


_BUILDERS = {"wordpiece": _wordpiece, "byte_bpe": _byte_bpe, "unigram": _unigram}


def train_vocab(files: list[Path], family: Family, vocab_size: int, out_dir: str | Path, *,
                lowercase: bool | None = None, min_frequency: int = 2,
                show_progress: bool = True) -> Path:
    """Train a `family` vocabulary of up to `vocab_size` entries on text `files`; save it in `out_dir`.

    `lowercase=None` follows the family's originals: uncased BERT/DistilBERT/ALBERT, cased RoBERTa.
    `min_frequency` is ignored by the Unigram (ALBERT) trainer. Returns `out_dir`.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: choose one of {', '.join(FAMILIES)}")
    sp = FAMILY_TABLE[family].vocab
    if lowercase is None:
        lowercase = sp.lowercase
    paths = [str(Path(f)) for f in files]
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise FileNotFoundError(f"train_vocab needs existing text files; missing: {missing or 'none given'}")
    if vocab_size <= len(sp.order):
        raise ValueError(f"vocab_size={vocab_size} must exceed the {len(sp.order)} special tokens")
    tok, trainer = _BUILDERS[sp.model](sp, vocab_size, lowercase, min_frequency, show_progress)
    tok.train(paths, trainer)
    tok.post_processor = _post_processor(sp, tok)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config, special_map = _config(sp, lowercase)
    atomic_write_text(out / "tokenizer.json", tok.to_str(pretty=True))
    save_json(out / "special_tokens_map.json", special_map)
    save_json(out / "tokenizer_config.json", config)
    return out
