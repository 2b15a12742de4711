"""The compiled box filters of a look equal the numpy reference, `ground.box_filter`, bit for bit; one
level per filter width."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.render import ground_kernels
from sim.render.ground import LEVELS_PER_OCTAVE, box_filter, footprint_levels


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 5),
    n=st.integers(1, 64),
    widths=st.lists(st.integers(1, 150), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_periodic_box_filters_equal_the_reference(rows: int, n: int, widths: list[int], seed: int) -> None:
    """Widths of 1 (no blur), even and odd, and wider than the period (the window wraps more than once)."""
    sharp = np.random.default_rng(seed).random((rows, n)) * 3.0 - 1.0
    got = ground_kernels.periodic_box_filters(sharp, np.array(widths, dtype=np.int64))
    want = np.stack([box_filter(sharp, w, periodic=True).T for w in widths])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_a_box_filter_averages_over_its_window() -> None:
    """Width 3 on a period of 4: each texel is the mean of itself and its two neighbours, wrapping."""
    sharp = np.array([[4.0, 0.0, 0.0, 8.0]])
    got = ground_kernels.periodic_box_filters(sharp, np.array([3], dtype=np.int64))[0, :, 0]
    np.testing.assert_allclose(got, [4.0, 4.0 / 3.0, 8.0 / 3.0, 4.0])


def test_each_footprint_width_has_one_level() -> None:
    """Every pixel gets the odd box width its footprint rounds to (quarter octaves, then odd texels),
    and footprints that round to one width share one level: no table is filtered twice."""
    texels = np.random.default_rng(0).uniform(0.2, 900.0, (40, 30))
    widths, level = footprint_levels(texels)
    assert np.all(np.diff(widths) > 0), "one level per width"
    quarter_octave = np.round(np.log2(np.maximum(texels, 1.0)) * LEVELS_PER_OCTAVE)
    expected = 2 * np.floor(2.0 ** (quarter_octave / LEVELS_PER_OCTAVE) / 2).astype(int) + 1
    np.testing.assert_array_equal(widths[level], expected)
    assert widths[0] == 1 and level.dtype == np.int32
