"""Options made from a config dataclass: type, default and help come from the field, and parse back."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from training.common.config_cli import add_config_options, config_from_args, field_docs


@dataclass
class Settings:
    steps: int = 300
    """Env steps in all."""
    lr: float = 1e-4
    """Adam learning rate (100% of it)."""
    mode: str = "steer"
    """How the car is steered."""
    dueling: bool = True
    """Dueling head."""
    tensorboard: str | None = None
    """Directory for scalars."""
    undocumented: int = 3


def parser_for(*fields: str, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_config_options(parser, Settings, fields, **kwargs)
    return parser


def test_field_docs_are_the_docstrings_under_the_fields():
    docs = field_docs(Settings)
    assert docs["steps"] == "Env steps in all." and docs["tensorboard"] == "Directory for scalars."
    assert "undocumented" not in docs


def test_defaults_types_and_values_parse_back_into_the_config():
    parser = parser_for("steps", "lr", "mode", "dueling", "tensorboard")
    assert config_from_args(Settings, parser.parse_args([])) == Settings()
    args = parser.parse_args(["--steps", "5", "--lr", "0.5", "--no-dueling", "--tensorboard", "tb"])
    cfg = config_from_args(Settings, args, mode="lane")
    assert cfg == Settings(steps=5, lr=0.5, mode="lane", dueling=False, tensorboard="tb")
    assert isinstance(cfg.steps, int) and isinstance(cfg.lr, float)


def test_help_is_the_docstring_with_the_default(capsys):
    parser = parser_for("lr", "dueling", choices={"lr": [1e-4]})
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--lr {0.0001} Adam learning rate (100% of it). (default: 0.0001)" in out
    assert "--dueling, --no-dueling Dueling head. (default: True)" in out


def test_a_value_of_the_wrong_type_is_a_usage_error():
    with pytest.raises(argparse.ArgumentError, match="steps"):
        parser_for("steps").parse_args(["--steps", "many"])


def test_required_fields_and_unknown_fields(capsys):
    with pytest.raises(SystemExit):  # argparse exits for a missing option even with exit_on_error=False
        parser_for("mode", required=["mode"]).parse_args([])
    assert "the following arguments are required: --mode" in capsys.readouterr().err
    with pytest.raises(KeyError, match="wheels"):
        parser_for("wheels")


@dataclass
class Nested:
    labels: str = "expert"
    """Who labels."""
    colour_space: str = "rgb"
    """Colour space."""


def test_a_prefix_names_a_nested_configs_options_and_names_respell_one(capsys):
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_config_options(parser, Nested, ["labels"], prefix="view_")
    add_config_options(parser, Nested, ["colour_space"], names={"colour_space": "--colour"})
    args = parser.parse_args(["--view-labels", "geometric", "--colour", "yuv"])
    assert (args.view_labels, args.colour_space) == ("geometric", "yuv")
    assert config_from_args(Nested, args, prefix="view_") == Nested(labels="geometric")
    assert config_from_args(Nested, args) == Nested(colour_space="yuv")
    with pytest.raises(SystemExit):  # unrecognized arguments exit even with exit_on_error=False
        parser.parse_args(["--labels", "x"])
    assert "unrecognized arguments: --labels x" in capsys.readouterr().err
