"""The world's compiled per-step kernels against their plain numpy/Python references.

Each compiled path must give the same numbers, bit for bit, and use the random stream the same
way, on random states (hypothesis), not only on the golden episodes.
"""

from __future__ import annotations

import math

import numpy as np
import reference_rare_events
import reference_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_traffic import reference_step

from sim.road import Road, RoadConfig, _project_and_heading
from sim.safety import SafetyConfig, brake_request
from sim.traffic import Traffic, TrafficConfig
from sim.traffic.idm import idm1, safe_speed
from sim.traffic.lane_changes import neighbours_in_lane
from sim.traffic.recycling import free_interval_sweep
from sim.vehicle import VehicleParams
from sim.world import World

EGO_LENGTH, EGO_WIDTH = 4.6, 1.9
KERNEL_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRAFFIC_ARRAYS = (
    "s", "d", "speed", "desired_speed", "length", "width", "height", "lane", "color",
    "_from_lane", "_d_from", "_lc_elapsed", "_lat_vel",
)  # fmt: skip
"""The traffic's state. The all-vehicle buffers (_S, _V, ...) are scratch, refreshed before use."""


def traffic_pair(seed: int, cars: int, lanes: int, rate: float) -> tuple[Traffic, Traffic]:
    """Two identical traffics on the same road, reset around an ego at s = 60 in lane 0."""
    road = Road(RoadConfig(lanes=lanes), seed)
    config = TrafficConfig(cars=cars, lane_change_rate=rate, speed_min=5.0, speed_max=35.0)
    pair = []
    for _ in range(2):
        t = Traffic(road, config, np.random.default_rng(seed))
        t.reset(60.0, road.lane_centres[0], 20.0, EGO_LENGTH, EGO_WIDTH)
        pair.append(t)
    return pair[0], pair[1]


def assert_same_traffic(a: Traffic, b: Traffic) -> None:
    for name in TRAFFIC_ARRAYS:
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and left.tobytes() == right.tobytes(), name
    for name in ("_S", "_V", "_HL", "_bits"):  # the ego's slot (the lanes its body overlaps, ...)
        assert getattr(a, name)[-1] == getattr(b, name)[-1], name
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.revision == b.revision


@KERNEL_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(1, 40),
    lanes=st.integers(1, 5),
    rate=st.sampled_from([0.15, 2.0, 10.0]),
    ego=st.lists(st.tuples(st.floats(0.0, 40.0), st.floats(-9.0, 9.0)), min_size=1, max_size=8),
)
def test_traffic_step_matches_the_numpy_reference(
    seed: int, cars: int, lanes: int, rate: float, ego: list[tuple[float, float]]
) -> None:
    """Random traffic, an ego that speeds up, stops (cars then stop behind it) and wanders across
    the lanes: the compiled step and the reference agree on every array after every step."""
    try:
        compiled, reference = traffic_pair(seed, cars, lanes, rate)
    except ValueError:  # too many cars for the lanes: nothing to step
        return
    ego_s = 60.0
    for k in range(120):
        ego_v, ego_d = ego[k * len(ego) // 120]
        ego_s += ego_v * 0.1
        compiled.step(0.1, ego_s, ego_d, ego_v, EGO_LENGTH, EGO_WIDTH)
        reference_step(reference, 0.1, ego_s, ego_d, ego_v, EGO_LENGTH, EGO_WIDTH)
        assert_same_traffic(compiled, reference)


@KERNEL_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(1, 40),
    lanes=st.integers(1, 5),
    steps=st.integers(0, 80),
    probes=st.lists(st.tuples(st.integers(-1, 45), st.floats(-80.0, 200.0), st.floats(0.0, 3.0)), max_size=5),
)
def test_lane_neighbours_match_the_numpy_reference(
    seed: int, cars: int, lanes: int, steps: int, probes: list[tuple[int, float, float]]
) -> None:
    """Every car's neighbours in every lane (as a lane change asks), and bodies at arbitrary spots."""
    try:
        t, _ = traffic_pair(seed, cars, lanes, 10.0)
    except ValueError:
        return
    for k in range(steps):
        t.step(0.1, 60.0 + 25.0 * 0.1 * (k + 1), t.road.lane_centres[0], 25.0, EGO_LENGTH, EGO_WIDTH)
    t._refresh()
    asks = [(i, float(t._S[i]), float(t._HL[i])) for i in range(t.n)] + probes
    for i, s, half_length in asks:
        for lane in range(lanes):
            found = neighbours_in_lane(t._S, t._HL, t._V, t._bits, i, lane, s, half_length)
            want = reference_rare_events.neighbours(t, i, lane, s, half_length)
            assert (found[:3], found[3:]) == want


@KERNEL_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(1, 40),
    lanes=st.integers(1, 5),
    steps=st.integers(0, 80),
    spots=st.lists(
        st.tuples(
            st.floats(1.0, 3.0),
            st.sampled_from([2.5, 7.0, 20.0]),
            st.floats(-10.0, 80.0),
            st.floats(0.0, 150.0),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_free_intervals_match_the_python_sweep(
    seed: int, cars: int, lanes: int, steps: int, spots: list[tuple[float, float, float, float]]
) -> None:
    """Where a recycled car may go, for each car, on random traffic (windows from the road's start
    at 0.0, where Python's min and max keep the sign of a zero)."""
    try:
        t, _ = traffic_pair(seed, cars, lanes, 10.0)
    except ValueError:
        return
    for k in range(steps):
        t.step(0.1, 60.0 + 2.5 * (k + 1), t.road.lane_centres[0], 25.0, EGO_LENGTH, EGO_WIDTH)
    t._refresh()
    for half, clearance, lo, width in spots:
        lo = max(lo, 0.0)
        for i in range(t.n):
            want = reference_rare_events.free_intervals(t, i, half, clearance, lo, lo + width)
            ints, ends = free_interval_sweep(t._S, t._HL, t._bits, i, lanes, half, clearance, lo, lo + width)
            rows = zip(ints.tolist(), ends.tolist(), strict=True)
            assert repr([(ln, a, b, f, j) for (ln, f, j), (a, b) in rows]) == repr(want)


def test_one_car_idm_gives_the_python_formulas_numbers() -> None:
    """`idm1` and `safe_speed`, compiled, against their Python formulas on 20,000 random cars: a
    square the compiler turns into a multiplication rounds differently in about 0.1 % of them."""
    cfg = TrafficConfig()
    inv_2sqrt_ab = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    params = (cfg.time_headway, inv_2sqrt_ab, cfg.min_gap, cfg.max_accel)
    cars = np.random.default_rng(0).uniform((0.0, 5.0, -2.0, 0.0), (40.0, 40.0, 120.0, 40.0), (20000, 4))
    for v, v0, gap, v_lead in cars.tolist():
        assert idm1(v, v0, gap, v_lead, *params) == reference_rare_events.idm1(cfg, v, v0, gap, v_lead)
        want = reference_rare_events.safe_speed(cfg, gap, v_lead)
        assert safe_speed(gap, v_lead, cfg.min_gap, cfg.time_headway, inv_2sqrt_ab) == want


@KERNEL_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(1, 40),
    lanes=st.integers(1, 5),
    steps=st.integers(0, 60),
    jump=st.floats(-200.0, 300.0),
    ego_v=st.floats(0.0, 45.0),
    tries=st.integers(0, 40),
)
def test_rare_events_match_the_python_version(
    seed: int, cars: int, lanes: int, steps: int, jump: float, ego_v: float, tries: int
) -> None:
    """Lane changes tried and cars recycled, compiled (`Traffic.rare_events`) against the Python
    version they were written in (tests/reference_rare_events.py): the same state, buffers, random
    stream and revision. The ego jumps along the road first, so that up to every car leaves the
    window at once (crowded windows reach the last-resort spots), and every car may try a change."""
    try:
        a, b = traffic_pair(seed, cars, lanes, 10.0)
    except ValueError:
        return
    ego_s = 60.0
    for k in range(steps):
        ego_s = 60.0 + 2.5 * (k + 1)
        for t in (a, b):
            t.step(0.1, ego_s, t.road.lane_centres[0], 25.0, EGO_LENGTH, EGO_WIDTH)
    ego_s = max(ego_s + jump, 0.0)
    order = np.random.default_rng(seed).permutation(a.n)[: min(tries, a.n)]
    accelerations = np.random.default_rng(seed + 1).uniform(-3.0, 1.0, a.n)
    for t in (a, b):
        t._set_ego(ego_s, t.road.lane_centres[-1], ego_v, EGO_LENGTH, EGO_WIDTH)
        t._refresh()
        t._tries[: order.size] = order
        t._acc[:] = accelerations
    a.rare_events(order.size, True)
    reference_rare_events.rare_events(b, order.size, True)
    assert_same_traffic(a, b)
    for name in ("_S", "_V", "_V0", "_HL", "_bits"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


# ----------------------------------------------------------------------------------------- road
ROAD = Road(RoadConfig(lanes=4, curviness=1.0), 5)
ROAD.ensure_length(3000.0)
finite = st.floats(allow_nan=False, allow_infinity=False)


@KERNEL_SETTINGS
@given(
    s=st.lists(
        st.one_of(st.floats(-10.0, 2500.0), st.integers(0, 5000).map(lambda k: 0.5 * k)),
        min_size=1,
        max_size=40,
    ),
    d=st.floats(-15.0, 15.0),
)
def test_poses_are_pose_bit_for_bit(s: list[float], d: float) -> None:
    """Points anywhere on the road, before its start and on its sample points exactly."""
    s_arr = np.array(s, dtype=float)
    d_arr = d + np.arange(s_arr.size) * 0.1
    for got, want in zip(ROAD.poses(s_arr, d_arr), ROAD.pose(s_arr, d_arr), strict=True):
        assert got.tobytes() == want.tobytes()


def test_poses_extend_the_road_as_pose_does() -> None:
    lazy, eager = Road(RoadConfig(), 9), Road(RoadConfig(), 9)
    far = np.array([100.0, lazy.length + 5000.0])
    got = lazy.poses(far, np.zeros(2))
    want = eager.pose(far, np.zeros(2))
    assert lazy.length == eager.length
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))


@KERNEL_SETTINGS
@given(s=st.one_of(st.floats(-5.0, 3100.0), st.integers(0, 6000).map(lambda k: 0.5 * k), st.just(np.nan)))
def test_heading_at_is_np_interp_bit_for_bit(s: float) -> None:
    want = float(np.interp(s, ROAD.s, ROAD.heading))
    assert np.float64(ROAD.heading_at(s)).tobytes() == np.float64(want).tobytes()


@KERNEL_SETTINGS
@given(
    s=st.floats(0.0, 2500.0),
    d=st.floats(-12.0, 12.0),
    nudge=st.floats(-1e-3, 1e-3),
    hint=st.one_of(st.none(), st.floats(-20.0, 20.0)),
)
def test_frenet_matches_the_python_projection(s: float, d: float, nudge: float, hint: float | None) -> None:
    """Points beside the road, near sample points (where the two candidate segments tie)."""
    x, y, _ = (float(v) for v in ROAD.pose(s, d))
    x, y = x + nudge, y - nudge
    s_hint = None if hint is None else s + hint
    got = ROAD.frenet(x, y, s_hint)
    want = reference_world.frenet(ROAD, x, y, s_hint)
    assert np.array(got).tobytes() == np.array(want).tobytes()
    lo, hi = ROAD.search_window(s_hint)
    with_heading = _project_and_heading(ROAD.s, ROAD.x, ROAD.y, ROAD.heading, lo, hi, x, y, 2.0)
    heading = np.interp(want[0], ROAD.s, ROAD.heading)
    assert np.array(with_heading).tobytes() == np.array([*want, heading]).tobytes()


# ------------------------------------------------------------------------------- safety queries
def random_world(seed: int, cars: int, steps: int, steer: float, target: int | None) -> World:
    """A world some steps into an episode, its ego flat out (so that it closes up on the traffic)
    and wandering off its lane, maybe changing lanes."""
    traffic = TrafficConfig(cars=cars, lane_change_rate=2.0)
    world = World(RoadConfig(lanes=4), traffic, VehicleParams(), SafetyConfig(enabled=True))
    world.reset(seed, lane=1, speed=25.0)
    world.set_target_lane(target)
    for k in range(steps):
        world.step(steer if k % 7 < 4 else -steer, 3.5, 0.1)
    return world


@KERNEL_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(1, 30),
    steps=st.integers(0, 60),
    steer=st.floats(-0.3, 0.3),
    accel=st.floats(-8.0, 3.5),
    target=st.one_of(st.none(), st.integers(0, 3)),
    probes=st.lists(st.tuples(st.floats(-30.0, 30.0), st.floats(-9.0, 9.0), st.floats(0.0, 6.0)), max_size=6),
)
def test_safety_queries_match_the_numpy_reference(
    seed: int,
    cars: int,
    steps: int,
    steer: float,
    accel: float,
    target: int | None,
    probes: list[tuple[float, float, float]],
) -> None:
    """The safety brake, lane_is_safe and leader/follower on random traffic around a wandering ego."""
    world = random_world(seed, cars, steps, steer, target)
    t = world.traffic
    assert t is not None
    want_accel, braked = reference_world.safety_brake(world, accel)
    request = brake_request(world)  # compiled: the strongest request, or nan
    asked = request == request and -(request + 0.5) < accel
    assert asked == braked
    assert (max(-(request + 0.5), -world.ego.params.max_brake) if asked else accel) == want_accel
    for lane in range(-1, 6):
        assert world.lane_is_safe(lane) == reference_world.lane_is_safe(world, lane)
    for ds, d, half_width in probes:
        for anticipate in (False, True):
            at = (world.s + ds, d, half_width, anticipate)
            assert t.leader(*at[:3], anticipate=anticipate) == reference_world.leader(t, *at)
            assert t.follower(*at[:3], anticipate=anticipate) == reference_world.follower(t, *at)
