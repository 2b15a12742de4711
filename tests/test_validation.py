"""The rule every numeric option and field is checked by (`sim.validation.check_range`): which values
count as numbers of a field's kind, and that refusals are ValueErrors naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from sim.validation import check_range


@pytest.mark.parametrize(
    ("value", "integer"),
    [
        (2.5, False),
        (3, False),
        (np.float32(2.5), False),
        (np.float64(2.5), False),
        (3, True),
        (np.int64(3), True),
    ],
)
def test_numbers_of_the_fields_kind_within_range_pass(value: object, integer: bool) -> None:
    check_range("field", value, 1, 4, integer=integer)


@pytest.mark.parametrize(
    ("value", "integer"),
    [
        (True, True),  # a bool is no number, though True == 1
        (True, False),
        (np.bool_(True), False),
        (3.0, True),  # a float is no integer, though 3.0 == 3
        (float("nan"), False),
        (float("inf"), False),
        (10**400, False),  # too large for a float: refused, not an OverflowError where it is used
        (10**400, True),  # an integer, compared exactly: out of range
        (np.timedelta64(3), True),  # numpy files it under integers
        ("3", False),
        (None, False),
        (0.5, False),  # out of range
        (5, True),
    ],
)
def test_anything_else_is_a_value_error_naming_the_field(value: object, integer: bool) -> None:
    with pytest.raises(ValueError, match="^field must be"):
        check_range("field", value, 1, 4, integer=integer)
