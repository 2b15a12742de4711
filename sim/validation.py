"""Option validation shared by every config dataclass: one message format for every bad value."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable


def _is_number(value: object, integer: bool) -> bool:
    """Whether `value` is a finite number of the field's kind (an int for `integer` fields).

    Booleans are never numbers (True would pass as 1), and an int too large for a float is no number
    for a float field (it would raise OverflowError wherever it is used as one).
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return integer or abs(value) <= sys.float_info.max
    return not integer and isinstance(value, float) and math.isfinite(value)


def check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    """Raise ValueError naming `name` and its allowed range unless low <= value <= high.

    Booleans are rejected where numbers are expected, and NaN/inf never pass. Ints are compared
    exactly, so one too large for a float is out of range rather than an OverflowError.
    """
    if not _is_number(value, integer) or not low <= value <= high:  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in [{low}, {high}], got {value!r}")


def check_at_least(
    name: str, value: object, low: float, *, integer: bool = False, strict: bool = False
) -> None:
    """Raise ValueError naming `name` unless value >= low (> low when `strict`): `check_range` with no
    upper bound, worded "an integer >= 1" rather than "[1, inf]"."""
    if not _is_number(value, integer) or not (value > low if strict else value >= low):  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} {'>' if strict else '>='} {low}, got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ValueError naming `name` and its allowed values unless value is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
