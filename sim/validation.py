"""Option validation shared by every config dataclass: one message format for every bad value."""

from __future__ import annotations

import math
from collections.abc import Iterable


def check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    """Raise ValueError naming `name` and its allowed range unless low <= value <= high.

    Booleans are rejected where numbers are expected, and NaN/inf never pass.
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name} must be {kind} in [{low}, {high}], got {value!r}")
    if not math.isfinite(float(value)) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be {kind} in [{low}, {high}], got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ValueError naming `name` and its allowed values unless value is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
