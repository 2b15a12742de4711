"""Option validation shared by every config dataclass: one message format for every bad value.

The rule for numbers: an integer option takes an int, a float option an int or a float; numpy's scalars
count as the Python type they stand for (np.int64 as int, np.float32 as float). A bool is never a number
(np.bool_ neither), nor is numpy's timedelta64 (numpy files it under integers), a str, a 0-d array or a
list; NaN and +-inf are no float. Every refusal is a ValueError naming the option and its allowed range or
values, so `gymnasium.make(id, lanes=True)` says what is wrong in one line.
"""

from __future__ import annotations

import math
import reprlib
import sys
from collections.abc import Iterable

import numpy as np


def _short_repr() -> reprlib.Repr:
    """A repr that keeps a bad value to part of a line (Python 3.11's Repr takes no keywords)."""
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlevel = 40, 60, 2
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 4
    return short


_SHORT = _short_repr()


def short_repr(value: object) -> str:
    """`value`'s repr for an error message: one line (numpy's spans lines), cut short (a huge array or
    list would drown the message)."""
    return " ".join(_SHORT.repr(value).split())


def _is_number(value: object, integer: bool) -> bool:
    """Whether `value` is a finite number of the field's kind (an int for `integer` fields), Python's or
    numpy's.

    Booleans are never numbers (True would pass as 1), and an int too large for a float is no number
    for a float field (it would raise OverflowError wherever it is used as one).
    """
    kind = type(value)
    if kind is float:  # the common cases first: options are checked at every reset
        return not integer and math.isfinite(value)  # type: ignore[arg-type]
    if kind is int:
        return integer or abs(value) <= sys.float_info.max  # type: ignore[arg-type]
    if isinstance(value, bool | np.bool_ | np.timedelta64):
        return False
    if isinstance(value, int | np.integer):
        return integer or abs(int(value)) <= sys.float_info.max
    return not integer and isinstance(value, float | np.floating) and math.isfinite(value)


def check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    """Raise ValueError naming `name` and its allowed range unless low <= value <= high.

    Booleans are rejected where numbers are expected, and NaN/inf never pass. Ints are compared
    exactly, so one too large for a float is out of range rather than an OverflowError.
    """
    if not _is_number(value, integer) or not low <= value <= high:  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in [{low}, {high}], got {short_repr(value)}")


def check_at_least(
    name: str, value: object, low: float, *, integer: bool = False, strict: bool = False
) -> None:
    """Raise ValueError naming `name` unless value >= low (> low when `strict`): `check_range` with no
    upper bound, worded "an integer >= 1" rather than "[1, inf]"."""
    if not _is_number(value, integer) or not (value > low if strict else value >= low):  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} {'>' if strict else '>='} {low}, got {short_repr(value)}")


def check_seed(seed: object, name: str = "seed") -> int | None:
    """`seed` as a Python int (None stays None: a fresh random seed), else ValueError naming `name`.

    A seed is a number by the rule above: an int or a numpy integer, >= 0. gymnasium alone took True as
    seed 1 and refused np.int64(3) with its own error type; `reset` of the single and the vector envs
    applies this rule first.
    """
    if seed is None:
        return None
    check_at_least(name, seed, 0, integer=True)
    return int(seed)  # type: ignore[call-overload]


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ValueError naming `name` and its allowed values unless value is one of `choices`.

    The value must be of a choice's own type (np.str_ is a str): `in` alone would let a numpy array
    through, whose == compares element-wise (np.array("steer") == "steer" is true).
    """
    choices = tuple(choices)
    if not any(isinstance(value, type(c)) and value == c for c in choices):
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {short_repr(value)}")
