"""The world's compiled per-step kernels against their plain numpy/Python references.

Each compiled path must give the same numbers, bit for bit, and use the random stream the same
way, on random states (hypothesis), not only on the golden episodes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_traffic import reference_step

from sim.road import Road, RoadConfig
from sim.traffic import Traffic, TrafficConfig

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
