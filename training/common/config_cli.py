"""Command-line options made from a typed config dataclass, so that each option is written once.

A trainer's settings live in one dataclass (`BCConfig`, `DQNConfig`): a field's type, default and the
docstring under it. `add_config_options` turns the fields into `--field-name` options (the type from the
annotation, the default from the dataclass, the help from the docstring), and `config_from_args` turns
the parsed options back into the dataclass. Nothing is restated in argparse, so a default or a help
text cannot drift from the config; ranges are checked by the config's own `validate()`, which names
the field.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (read from its source: Python keeps
    attribute docstrings nowhere else), whitespace collapsed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
            assert isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)  # is_doc
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def option_name(field: str) -> str:
    """`eval_every` -> `--eval-every`."""
    return "--" + field.replace("_", "-")


def _value_type(annotation: Any) -> type:
    """int, float, str or bool from a field's annotation; `X | None` counts as X."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = args[0] if len(args) == 1 else annotation
    if kind not in (int, float, str, bool):
        raise TypeError(f"no command-line form for a field of type {annotation!r}")
    return kind


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    fields: Iterable[str],
    *,
    metavars: Mapping[str, str] | None = None,
    choices: Mapping[str, Iterable[Any]] | None = None,
    required: Iterable[str] = (),
    prefix: str = "",
    names: Mapping[str, str] | None = None,
) -> None:
    """One option per named field of dataclass `cls` (in the given order): `--name VALUE` for numbers
    and strings, `--name` / `--no-name` for booleans; help is the field's docstring and its default.

    `prefix` names the options of a nested config (`prefix="view_"`: field `labels` is `--view-labels`,
    parsed into `args.view_labels`; `config_from_args` takes the same prefix); `names` gives a field an
    option spelled otherwise (`{"color_space": "--color"}`), still parsed into the field's name.
    """
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    docs = field_docs(cls)
    metavars, choices, required = dict(metavars or {}), dict(choices or {}), set(required)
    names = dict(names or {})
    for name in fields:
        if name not in defaults:
            raise KeyError(f"{cls.__name__} has no field {name!r}")
        kind = _value_type(hints[name])
        help_text = docs.get(name, "").replace("%", "%%")
        dest = prefix + name
        flag = names.get(name, option_name(dest))
        if name in required:
            parser.add_argument(
                flag, dest=dest, type=kind, required=True, metavar=metavars.get(name), help=help_text
            )
            continue
        default = defaults[name]
        shown = f" (default: {default})" if default not in (None, "") else ""
        if kind is bool:
            parser.add_argument(
                flag,
                dest=dest,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text + shown,
            )
            continue
        parser.add_argument(
            flag,
            dest=dest,
            type=kind,
            default=default,
            metavar=metavars.get(name),
            choices=tuple(choices[name]) if name in choices else None,
            help=help_text + shown,
        )


def config_from_args(cls: type[T], args: argparse.Namespace, prefix: str = "", **overrides: Any) -> T:
    """An instance of dataclass `cls` from the parsed options that name its fields (with `prefix`, as
    `add_config_options` was given it), then `overrides`; fields with no option keep their defaults."""
    parsed = vars(args)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {name: parsed[prefix + name] for name in names if prefix + name in parsed}
    return cls(**{**values, **overrides})
