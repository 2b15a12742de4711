"""Road geometry: seeded and reproducible, curvature-bounded, smooth, endless, with consistent Frenet maths.

Road configs under test are the ones the environments build (LaneKeep-v0: design speed 25 m/s at
2 m/s^2; Traffic-v0: 80 mph at 1.2 m/s^2, 7 lanes) plus the RoadConfig default and the extremes of
curviness.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sim.road as road_module
from sim.road import SAMPLE_SPACING_M, Road, RoadConfig, wrap_angle

LANE_KEEP_ROAD = RoadConfig(lanes=3, curviness=0.7, design_speed=25.0, max_lateral_accel=2.0)
TRAFFIC_ROAD = RoadConfig(lanes=7, curviness=0.5, design_speed=80 * 0.44704, max_lateral_accel=1.2)
CONFIGS = {
    "default": RoadConfig(),
    "lane_keep": LANE_KEEP_ROAD,
    "traffic": TRAFFIC_ROAD,
    "very_curvy": RoadConfig(curviness=1.0, design_speed=25.0, max_lateral_accel=2.0),
}
LONG_M = 20000.0


def samples(road: Road, length: float = LONG_M) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(0.0, length, SAMPLE_SPACING_M)
    x, y, heading = road.pose(s)
    return s, np.stack((x, y, heading, road.curvature(s)))


# ------------------------------------------------------------------------------------ seeding


def test_a_curves_sign_is_the_draw_rng_choice_makes() -> None:
    """`Road._add_curve` draws the sign of a curve as `rng.integers(0, 2)`, the draw numpy's
    `rng.choice((-1.0, 1.0))` makes (at a fifth of its cost): roads stay those of that code."""
    for seed in range(200):
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(10):
            assert (-1.0, 1.0)[ours.integers(0, 2)] == numpys.choice((-1.0, 1.0))
        assert ours.random() == numpys.random()  # the streams stay in step


def test_same_seed_gives_the_same_road() -> None:
    a, b = Road(LANE_KEEP_ROAD, 7), Road(LANE_KEEP_ROAD, 7)
    _, ga = samples(a, 5000.0)
    _, gb = samples(b, 5000.0)
    assert np.array_equal(ga, gb)


def test_different_seeds_give_different_roads() -> None:
    roads = [Road(LANE_KEEP_ROAD, seed) for seed in range(4)]
    geoms = [samples(r, 3000.0)[1] for r in roads]
    for i in range(len(geoms)):
        for j in range(i + 1, len(geoms)):
            # Positions differ by metres somewhere, not by rounding.
            gap = np.max(np.hypot(geoms[i][0] - geoms[j][0], geoms[i][1] - geoms[j][1]))
            assert gap > 10.0


def test_geometry_does_not_depend_on_how_the_road_was_extended() -> None:
    """Lazily extending in small steps (as a car drives) gives the road that one big extension gives."""
    lazy, eager = Road(LANE_KEEP_ROAD, 11), Road(LANE_KEEP_ROAD, 11)
    for s in np.arange(0.0, 12000.0, 700.0):
        lazy.pose(s)
    eager.pose(12000.0)
    n = min(lazy.s.size, eager.s.size)
    assert np.array_equal(lazy.s[:n], eager.s[:n])
    assert np.array_equal(lazy.kappa[:n], eager.kappa[:n])
    np.testing.assert_allclose(lazy.x[:n], eager.x[:n], atol=1e-6)
    np.testing.assert_allclose(lazy.y[:n], eager.y[:n], atol=1e-6)
    np.testing.assert_allclose(lazy.heading[:n], eager.heading[:n], atol=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_a_stretch_sampled_piece_by_piece_is_the_stretch_sampled_at_once(seed: int) -> None:
    """A road is sampled lazily, a few hundred metres past what was asked; within a stretch the samples
    are the same bits however small the pieces (the running sums continue), so a car that drives
    reads the road it would read if the whole stretch had been built at the start."""
    whole, pieces = Road(LANE_KEEP_ROAD, seed), Road(LANE_KEEP_ROAD, seed)
    whole.ensure_length(2900.0)
    for s in np.arange(0.0, 2900.0, 7.3):
        pieces.ensure_length(float(s))
    pieces.ensure_length(2900.0)
    assert whole.s.size == pieces.s.size == 6001  # the first stretch: 3 km
    for name in ("s", "kappa", "heading", "x", "y"):
        assert getattr(whole, name).tobytes() == getattr(pieces, name).tobytes(), name


def test_a_new_road_samples_only_its_first_few_hundred_metres() -> None:
    """What a reset costs: a new road has sampled its first 300 m, not the 3 km it has planned; asking
    for more samples more (`search_window` with no hint samples the whole plan, as it searches it)."""
    road = Road(LANE_KEEP_ROAD, 5)
    assert road.length == 300.0
    road.ensure_length(1000.0)
    assert road.length == 1300.0
    road.search_window(None)
    assert road.length == 3000.0


# ---------------------------------------------------------------------------------- curvature


@pytest.mark.parametrize("name", list(CONFIGS))
def test_curvature_is_bounded(name: str) -> None:
    cfg = CONFIGS[name]
    for seed in (0, 1, 2):
        _, g = samples(Road(cfg, seed))
        assert np.max(np.abs(g[3])) <= cfg.max_curvature * (1 + 1e-9)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_heading_is_continuous_and_follows_the_curvature(name: str) -> None:
    cfg = CONFIGS[name]
    road = Road(cfg, 5)
    road.ensure_length(LONG_M)
    jumps = np.abs(np.diff(road.heading))
    assert np.max(jumps) <= cfg.max_curvature * SAMPLE_SPACING_M * (1 + 1e-9)
    # Heading is the integral of curvature (trapezoid on each step, exact for linear kappa).
    expected = 0.5 * (road.kappa[1:] + road.kappa[:-1]) * SAMPLE_SPACING_M
    np.testing.assert_allclose(np.diff(road.heading), expected, atol=1e-12)
    # Curvature itself is continuous (clothoid transitions): no step changes.
    assert np.max(np.abs(np.diff(road.kappa))) <= cfg.max_curvature * SAMPLE_SPACING_M / 40.0 * (1 + 1e-9)


@pytest.mark.parametrize("name", ["lane_keep", "very_curvy"])
def test_centreline_is_parameterised_by_arc_length(name: str) -> None:
    road = Road(CONFIGS[name], 3)
    steps = np.hypot(np.diff(road.x), np.diff(road.y))
    np.testing.assert_allclose(steps, SAMPLE_SPACING_M, rtol=1e-6)
    # And it points along its heading.
    direction = np.arctan2(np.diff(road.y), np.diff(road.x))
    mid_heading = 0.5 * (road.heading[1:] + road.heading[:-1])
    assert np.max(np.abs(wrap_angle(direction - mid_heading))) < 1e-6


def test_zero_curviness_is_a_straight_line_along_x() -> None:
    road = Road(RoadConfig(curviness=0.0), 9)
    s, g = samples(road, 5000.0)
    assert np.all(g[3] == 0.0)
    assert np.all(g[2] == 0.0)
    np.testing.assert_allclose(g[0], s, atol=1e-9)
    assert np.all(g[1] == 0.0)


def test_full_curviness_actually_curves() -> None:
    cfg = CONFIGS["very_curvy"]
    _, g = samples(Road(cfg, 0))
    k = g[3]
    assert np.max(k) > 0.5 * cfg.max_curvature  # left curves
    assert np.min(k) < -0.5 * cfg.max_curvature  # and right curves
    assert np.mean(k == 0.0) > 0.05  # with straights between them


def test_positive_curvature_turns_left() -> None:
    road = Road(CONFIGS["very_curvy"], 4)
    road.ensure_length(LONG_M)
    i = int(np.argmax(road.kappa))
    assert road.kappa[i] > 0.0
    assert road.heading[i + 20] > road.heading[i - 20]
    j = int(np.argmin(road.kappa))
    assert road.heading[j + 20] < road.heading[j - 20]


def test_curvature_ahead_reads_the_road_ahead() -> None:
    road = Road(CONFIGS["very_curvy"], 2)
    dist = np.array([0.0, 10.0, 55.5, 200.0])
    np.testing.assert_array_equal(road.curvature_ahead(300.0, dist), road.curvature(300.0 + dist))


# -------------------------------------------------------------------------------------- frenet


@pytest.mark.parametrize("name", ["default", "lane_keep", "traffic"])
def test_frenet_of_pose_round_trips(name: str) -> None:
    cfg = CONFIGS[name]
    road = Road(cfg, 13)
    rng = np.random.default_rng(0)
    edge = cfg.half_width + cfg.shoulder_width
    s = rng.uniform(1.0, 6000.0, 200)
    d = rng.uniform(-edge, edge, 200)
    x, y, _ = road.pose(s, d)
    for k in range(s.size):
        for hint in (None, s[k] + rng.uniform(-20.0, 20.0)):
            s_back, d_back = road.frenet(float(x[k]), float(y[k]), hint)
            assert abs(s_back - s[k]) < 0.01, (s[k], d[k], hint)
            assert abs(d_back - d[k]) < 0.01, (s[k], d[k], hint)


def test_pose_offsets_to_the_left_perpendicular_to_the_road() -> None:
    road = Road(CONFIGS["very_curvy"], 6)
    for s in (10.0, 777.0, 4321.0):
        x0, y0, h = (float(v) for v in road.pose(s, 0.0))
        x1, y1, h1 = (float(v) for v in road.pose(s, 2.5))
        assert h1 == h
        assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(2.5)
        # Left of the heading (h + 90 degrees).
        assert (x1 - x0) == pytest.approx(2.5 * math.cos(h + math.pi / 2), abs=1e-9)
        assert (y1 - y0) == pytest.approx(2.5 * math.sin(h + math.pi / 2), abs=1e-9)
        assert road.heading_at(s) == pytest.approx(h)


def test_road_starts_at_the_origin_heading_east() -> None:
    x, y, h = Road(LANE_KEEP_ROAD, 123).pose(0.0, 1.0)
    assert (float(x), float(y), float(h)) == pytest.approx((0.0, 1.0, 0.0))


# --------------------------------------------------------------------------------------- lanes


@pytest.mark.parametrize("lanes", [1, 2, 3, 7])
def test_lane_index_and_lane_centre_agree(lanes: int) -> None:
    cfg = RoadConfig(lanes=lanes, lane_width=3.5)
    road = Road(cfg, 0)
    centres = np.asarray(road.lane_centre(np.arange(lanes)), dtype=float)
    # Lane 0 is leftmost (largest d), lanes are one lane width apart, symmetric about the centreline.
    np.testing.assert_allclose(np.diff(centres), -3.5)
    assert centres[0] == pytest.approx(cfg.half_width - 1.75)
    assert centres.sum() == pytest.approx(0.0, abs=1e-12)
    for k in range(lanes):
        assert road.lane_index(float(centres[k])) == k
        assert road.lane_index(float(centres[k]) + 1.7) == k
        assert road.lane_index(float(centres[k]) - 1.7) == k
        assert road.lane_centre(k) == pytest.approx(centres[k])
    np.testing.assert_array_equal(road.lane_index(centres), np.arange(lanes))
    # Off the road the index is clipped to the outermost lanes.
    assert road.lane_index(100.0) == 0
    assert road.lane_index(-100.0) == lanes - 1


def test_lane_boundaries() -> None:
    road = Road(RoadConfig(lanes=3, lane_width=3.6), 0)
    # Boundaries at d = +1.8 and -1.8: crossing one changes the lane by one.
    assert road.lane_index(1.81) == 0 and road.lane_index(1.79) == 1
    assert road.lane_index(-1.79) == 1 and road.lane_index(-1.81) == 2


# ------------------------------------------------------------------------------------ endless


def test_road_extends_itself() -> None:
    road = Road(TRAFFIC_ROAD, 1)
    x, y, h = road.pose(20000.0, 3.0)
    assert all(math.isfinite(float(v)) for v in (x, y, h))
    assert road.length >= 20000.0
    # 20 km of road are 20 km from the start along the road, and (curvature-bounded) far from it in space.
    assert math.hypot(float(x), float(y)) > 1000.0
    # Near the far end the Frenet maths still works.
    s_back, d_back = road.frenet(float(x), float(y), 19990.0)
    assert s_back == pytest.approx(20000.0, abs=0.01)
    assert d_back == pytest.approx(3.0, abs=0.01)


def test_curvature_query_extends_the_road_too() -> None:
    road = Road(LANE_KEEP_ROAD, 1)
    k = road.curvature(np.array([10.0, 15000.0]))
    assert np.all(np.isfinite(k))
    assert road.length >= 15000.0


# ---------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lanes", 0),
        ("lanes", 8),
        ("lanes", 2.0),
        ("lane_width", 2.0),
        ("shoulder_width", -1.0),
        ("design_speed", 100.0),
        ("max_lateral_accel", 0.0),
        ("curviness", 1.5),
        ("curviness", float("nan")),
    ],
)
def test_bad_road_config_raises_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Road(RoadConfig(**{field: value}), 0)


# ------------------------------------------------------------------------- fast scalar queries


def test_heading_at_is_numpy_interp_bit_for_bit() -> None:
    """heading_at finds the grid interval by arithmetic; it must give np.interp's exact result."""
    road = Road(LANE_KEEP_ROAD, 4)
    rng = np.random.default_rng(0)
    grid = road.s[:50]
    queries = np.concatenate(
        (rng.uniform(-3.0, road.length + 3.0, 2000), grid, np.nextafter(grid, np.inf), [road.length, 0.0])
    )
    for s in queries.tolist():
        assert road.heading_at(s) == float(np.interp(s, road.s, road.heading))


def test_curvature_at_is_curvature_bit_for_bit() -> None:
    """curvature_at (one float, compiled) gives `curvature`'s np.interp result, extending the road alike."""
    lazy, eager = Road(LANE_KEEP_ROAD, 5), Road(LANE_KEEP_ROAD, 5)
    rng = np.random.default_rng(2)
    grid = lazy.s[:50]
    queries = np.concatenate((rng.uniform(-3.0, 2.5 * lazy.length, 2000), grid, np.nextafter(grid, np.inf)))
    for s in queries.tolist():
        assert lazy.curvature_at(s) == float(eager.curvature(s)) and lazy.length == eager.length


def test_wrap_angle_of_a_float_matches_the_array_version() -> None:
    values = np.random.default_rng(1).normal(0.0, 20.0, 1000)
    scalars = [wrap_angle(v) for v in values.tolist()]
    assert all(isinstance(v, float) for v in scalars)
    assert np.array_equal(np.array(scalars), wrap_angle(values))


def numpy_centreline(
    kappa: np.ndarray, kappa_before: float, start: tuple[float, ...], sums: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]:
    """The centreline's integration in plain numpy (`sim.road._integrate_centreline`'s reference): the
    running sums continue from the stretch's sums so far."""
    (heading_before, x_before, y_before), (turned, east, north) = start, sums
    k_prev = np.concatenate(([kappa_before], kappa[:-1]))
    dpsi = 0.5 * (k_prev + kappa) * SAMPLE_SPACING_M
    turns = np.cumsum(np.concatenate(([turned], dpsi)))[1:]
    heading = heading_before + turns
    mid = heading - 0.5 * dpsi
    easts = np.cumsum(np.concatenate(([east], np.cos(mid) * SAMPLE_SPACING_M)))[1:]
    norths = np.cumsum(np.concatenate(([north], np.sin(mid) * SAMPLE_SPACING_M)))[1:]
    ends = (float(turns[-1]), float(easts[-1]), float(norths[-1]))
    return heading, x_before + easts, y_before + norths, ends


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_centreline_is_the_numpy_integration_bit_for_bit(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled integration gives the plain numpy formulas' numbers, over a first build and
    extensions by different lengths (pieces of a stretch, and a new stretch from its last sample)."""

    def build() -> Road:
        road = Road(RoadConfig(curviness=1.0), seed)
        for more in (10.0, 2500.0, 333.3):
            road.ensure_length(road.length + more)
        return road

    compiled = build()
    monkeypatch.setattr(road_module, "_integrate_centreline", numpy_centreline)
    reference = build()
    # The first stretch (3 km, 6,001 samples) sampled whole, then a second one planned from 3,110 m and
    # sampled to 300 m past the last point asked for (3,743.3 m): 8,088 samples.
    assert compiled.s.size == reference.s.size == 8088
    for name in ("s", "kappa", "heading", "x", "y"):
        assert getattr(compiled, name).tobytes() == getattr(reference, name).tobytes(), name
