"""bertkit.cli_options: flags, defaults, choices and help generated from signatures and dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from bertkit.cli_options import add_options, call, option_help, option_names


def train(model: str, *, epochs: int = 1, lr: float = 5e-5, bf16: bool = False,
          schedule: Literal["linear", "cosine"] = "linear", layers: list[int] | None = None,
          out: str | None = None) -> dict:
    """Train it.

    Args:
        model: model name or folder
        epochs: passes over the data,
            more is slower
        schedule: learning-rate schedule
    """
    return {"model": model, "epochs": epochs, "lr": lr, "bf16": bf16, "schedule": schedule,
            "layers": layers, "out": out}


@dataclass
class Settings:
    """Settings.

    Args:
        labels: class names
    """

    labels: list[str] = field(default_factory=list)
    maxlen: int = 128
    derived: bool = field(default=False, metadata={"derived": True})


def _parser(*funcs, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for func in funcs:
        add_options(parser, func, **kwargs)
    return parser


def test_flags_take_types_defaults_and_choices_from_the_signature():
    args = _parser(train).parse_args(["--model", "m", "--epochs", "3", "--bf16", "--schedule", "cosine",
                                      "--layers", "1", "2"])
    assert call(train, args) == {"model": "m", "epochs": 3, "lr": 5e-5, "bf16": True, "schedule": "cosine",
                                 "layers": [1, 2], "out": None}
    assert call(train, _parser(train).parse_args(["--model", "m", "--no-bf16"]))["bf16"] is False
    with pytest.raises(SystemExit):
        _parser(train).parse_args(["--model", "m", "--schedule", "steep"])
    with pytest.raises(SystemExit):
        _parser(train).parse_args([])  # --model is required


def test_help_comes_from_the_docstring_with_defaults():
    assert option_help(train) == {"model": "model name or folder", "epochs": "passes over the data, more is slower",
                                  "schedule": "learning-rate schedule"}
    text = _parser(train).format_help()
    assert "passes over the data, more is slower (default: 1)" in text and "learning-rate schedule" in text


def test_dataclass_fields_become_flags_and_lists_split_on_commas():
    parser = _parser(Settings, aliases={"labels": ["--classes"]})
    assert option_names(Settings) == ["labels", "maxlen"]  # derived fields are not options
    assert call(Settings, parser.parse_args(["--classes", "a,b", "c", "--maxlen", "64"])) == Settings(["a", "b", "c"], 64)
    assert call(Settings, parser.parse_args([])) == Settings()


def test_positional_parameters():
    def predict(texts: list[str] | None = None, *, file: str | None = None) -> tuple:
        return texts, file

    parser = _parser(predict, positional=("texts",))
    assert call(predict, parser.parse_args(["a", "b", "--file", "f"])) == (["a", "b"], "f")
    assert call(predict, parser.parse_args(["a, b", '{"q": 1, "c": 2}'])) == (["a, b", '{"q": 1, "c": 2}'], None)
    assert call(predict, parser.parse_args([])) == (None, None)


def test_pretrain_commands_take_every_option_from_the_functions():
    import inspect

    from bertkit.cli import build_parser
    from bertkit.pretrain.corpus import prepare_corpus
    from bertkit.pretrain.run import pretrain

    parser = build_parser()
    run = parser.parse_args(["pretrain", "run", "data", "--out", "o", "--quiet", "--force-resume", "--lr", "3e-4"])
    own = {"data_dir", "out_dir", "phases", "progress", "callbacks", "device"}
    for name, param in inspect.signature(pretrain).parameters.items():
        if name not in own | {"lr", "force_resume"}:
            assert getattr(run, name) == param.default, name
    assert (run.lr, run.force_resume, run.progress, run.data, run.out) == (3e-4, True, False, "data", "o")
    prepare = parser.parse_args(["pretrain", "prepare", "a", "b", "--tokenizer", "t", "--out", "o",
                                 "--masking", "static", "--whole-word"])
    assert (prepare.inputs, prepare.tokenizer_dir, prepare.out_dir) == (["a", "b"], "t", "o")
    assert (prepare.masking, prepare.whole_word, prepare.show_progress) == ("static", True, True)
    assert prepare.max_length == inspect.signature(prepare_corpus).parameters["max_length"].default
    with pytest.raises(SystemExit):
        parser.parse_args(["pretrain", "prepare", "a", "--tokenizer", "t", "--out", "o", "--masking", "odd"])
    vocab = parser.parse_args(["pretrain", "vocab", "corpus", "--out", "v", "--family", "roberta", "--no-lowercase"])
    assert (vocab.family, vocab.lowercase, vocab.vocab_size, vocab.show_progress) == ("roberta", False, 30522, True)
