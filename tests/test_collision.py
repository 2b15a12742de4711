"""Oriented-box overlap (separating axis theorem) against hand-made cases and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.collision import any_overlap, box_corners, boxes_overlap, frenet_neighbours


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return bool(boxes_overlap(np.array(a), np.array([b]))[0])


def test_separated_boxes_do_not_overlap() -> None:
    assert not overlap((0, 0, 0, 4, 2), (10, 0, 0, 4, 2))
    assert not overlap((0, 0, 0, 4, 2), (0, 3, 0, 4, 2))


def test_overlapping_boxes_overlap() -> None:
    assert overlap((0, 0, 0, 4, 2), (3.9, 0, 0, 4, 2))
    assert overlap((0, 0, 0, 4, 2), (0, 0, 0, 1, 1))  # one inside the other


def test_touching_boxes_do_not_overlap() -> None:
    assert not overlap((0, 0, 0, 4, 2), (4, 0, 0, 4, 2))  # sharing an edge
    assert not overlap((0, 0, 0, 4, 2), (4, 2, 0, 4, 2))  # sharing a corner


def test_rotated_cross_overlaps() -> None:
    # Both centres coincide; the corners of neither lie inside the other.
    assert overlap((0, 0, 0, 6, 1), (0, 0, math.pi / 2, 6, 1))


def test_diamond_beside_square_corner_overlaps_only_in_bounding_box() -> None:
    square = (0.0, 0.0, 0.0, 2.0, 2.0)
    diamond = (2.3, 2.3, math.pi / 4, 2.0, 2.0)
    corners = box_corners(np.array([diamond]))[0]
    # The axis-aligned bounding boxes overlap ...
    assert corners[:, 0].min() < 1.0 and corners[:, 1].min() < 1.0
    # ... but the diamond's nearest edge, on x + y = 4.6 - sqrt(2) = 3.19, passes clear of the
    # square's corner (1, 1), where x + y = 2. Moved to (1.6, 1.6) that edge (x + y = 1.79) cuts it.
    assert not overlap(square, diamond)
    assert overlap(square, (1.6, 1.6, math.pi / 4, 2.0, 2.0))


def test_parallel_diagonal_bars_overlap_only_in_bounding_box() -> None:
    a = (0.0, 0.0, math.pi / 4, 10.0, 1.0)
    b = (1.5, -1.5, math.pi / 4, 10.0, 1.0)  # 2.12 m apart across the bars, which are 1 m wide
    ca, cb = box_corners(np.array([a, b]))
    assert cb[:, 0].min() < ca[:, 0].max() and cb[:, 1].max() > ca[:, 1].min()
    assert not overlap(a, b)


def test_box_corners_of_rotated_box() -> None:
    corners = box_corners(np.array([[1.0, 2.0, math.pi / 2, 4.0, 2.0]]))[0]
    # Facing +y: front-left is at the front (+y) and to the left (-x).
    expected = [[0.0, 4.0], [0.0, 0.0], [2.0, 0.0], [2.0, 4.0]]
    np.testing.assert_allclose(corners, expected, atol=1e-12)


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return orient(p1, p2, q1) * orient(p1, p2, q2) < 0 and orient(q1, q2, p1) * orient(q1, q2, p2) < 0


def _inside(point: np.ndarray, poly: np.ndarray) -> bool:
    """Strictly inside a counter-clockwise convex polygon."""
    for k in range(4):
        a, b = poly[k], poly[(k + 1) % 4]
        if (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0]) <= 0:
            return False
    return True


def _reference_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Polygons intersect iff an edge pair crosses or one contains a vertex of the other."""
    pa, pb = box_corners(np.array([a, b]))
    if any(_inside(p, pb) for p in pa) or any(_inside(p, pa) for p in pb):
        return True
    return any(
        _segments_cross(pa[i], pa[(i + 1) % 4], pb[j], pb[(j + 1) % 4]) for i in range(4) for j in range(4)
    )


def test_matches_brute_force_reference_on_random_boxes() -> None:
    rng = np.random.default_rng(7)
    n = 400
    boxes = np.column_stack(
        (
            rng.uniform(-6, 6, n),
            rng.uniform(-6, 6, n),
            rng.uniform(-np.pi, np.pi, n),
            rng.uniform(0.5, 6, n),
            rng.uniform(0.3, 3, n),
        )
    )
    box = np.array([0.3, -0.2, 0.7, 4.5, 1.9])
    got = boxes_overlap(box, boxes)
    want = np.array([_reference_overlap(box, b) for b in boxes])
    assert 50 < want.sum() < n - 50  # both outcomes well represented
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", [1, 2])
def test_overlap_is_symmetric(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes = np.column_stack(
        (
            rng.uniform(-4, 4, 50),
            rng.uniform(-4, 4, 50),
            rng.uniform(-3, 3, 50),
            rng.uniform(1, 5, 50),
            rng.uniform(0.5, 2, 50),
        )
    )
    for k in range(10):
        forward = boxes_overlap(boxes[k], boxes)
        backward = np.array([boxes_overlap(b, boxes[k : k + 1])[0] for b in boxes])
        np.testing.assert_array_equal(forward, backward)


box_strategy = st.tuples(
    st.floats(-6.0, 6.0), st.floats(-6.0, 6.0), st.floats(-4.0, 4.0), st.floats(0.5, 6.0), st.floats(0.3, 3.0)
)
aligned_strategy = st.tuples(  # whole-metre positions, right angles: boxes that exactly touch
    st.integers(-6, 6),
    st.integers(-6, 6),
    st.sampled_from([0.0, 0.5 * math.pi]),
    st.integers(1, 6),
    st.integers(1, 3),
).map(lambda b: tuple(float(v) for v in b))


@settings(max_examples=200, deadline=None)
@given(
    box=st.one_of(box_strategy, aligned_strategy),
    boxes=st.lists(
        st.tuples(st.one_of(box_strategy, aligned_strategy), st.booleans()), min_size=1, max_size=8
    ),
)
@pytest.mark.slow
def test_any_overlap_is_boxes_overlap_of_the_chosen_boxes(
    box: tuple[float, ...], boxes: list[tuple[tuple[float, ...], bool]]
) -> None:
    """The compiled test the world runs every step against the numpy one, touching boxes included."""
    rows = np.array([b for b, _ in boxes])
    which = np.array([chosen for _, chosen in boxes])
    want = bool(boxes_overlap(np.array(box), rows)[which].any())
    assert any_overlap(*box, *rows.T.copy(), which) == want


@settings(max_examples=100, deadline=None)
@given(
    cars=st.lists(
        st.tuples(st.floats(-20.0, 20.0), st.floats(-8.0, 8.0), st.floats(3.0, 6.0), st.floats(1.5, 2.2)),
        max_size=10,
    ),
    ego_d=st.floats(-6.0, 6.0),
)
def test_frenet_neighbours_marks_the_cars_near_the_ego(cars: list[tuple[float, ...]], ego_d: float) -> None:
    table = np.array(cars, dtype=float).reshape(-1, 4)
    s, d, length, width = (np.ascontiguousarray(column) for column in table.T)
    near = np.zeros(s.size, dtype=bool)
    found = frenet_neighbours(s, d, length, width, 0.0, ego_d, 4.6, 1.9, 1.5, near)
    want = (np.abs(s) < 0.5 * (length + 4.6) + 1.5) & (np.abs(d - ego_d) < 0.5 * (width + 1.9) + 1.5)
    np.testing.assert_array_equal(near, want)
    assert found == bool(want.any())
