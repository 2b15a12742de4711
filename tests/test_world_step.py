"""`World.step`'s compiled common path (`sim.world_step`) against the same step composed from Python
(reference_world.step): equal worlds, bit for bit, after every step of random episodes: safety on
and off, lane changes asked for, crashes, cars recycled and trying lane changes, road extended."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.road import RoadConfig
from sim.safety import SafetyConfig
from sim.traffic import TrafficConfig
from sim.vehicle import VehicleParams
from sim.world import World

TRAFFIC_STATE = (
    "s", "d", "speed", "desired_speed", "length", "width", "height", "lane", "color",
    "_from_lane", "_d_from", "_lc_elapsed", "_lat_vel",
)  # fmt: skip


def world_pair(seed: int, cars: int, lanes: int, safety: bool) -> tuple[World, World]:
    """Two equal worlds, reset from `seed` with the ego centred in lane 0 at 25 m/s."""
    traffic = TrafficConfig(cars=cars, lane_change_rate=2.0)
    pair = []
    for _ in range(2):
        world = World(RoadConfig(lanes=lanes), traffic, VehicleParams(), SafetyConfig(enabled=safety))
        world.reset(seed, lane=0, speed=25.0)
        pair.append(world)
    return pair[0], pair[1]


def assert_same(a: World, b: World) -> None:
    """Every number of the two worlds' state equal, bit for bit (floats compared by their bytes)."""
    ea, eb = a.ego, b.ego
    for name in ("x", "y", "yaw", "speed", "steer"):
        assert type(getattr(ea, name)) is float
        assert np.float64(getattr(ea, name)).tobytes() == np.float64(getattr(eb, name)).tobytes(), name
    mine = (a.s, a.d, a.applied_accel, a.heading_error(), a.collided, a.safety_brakes)
    theirs = (b.s, b.d, b.applied_accel, b.heading_error(), b.collided, b.safety_brakes)
    assert np.array(mine).tobytes() == np.array(theirs).tobytes()
    ta, tb = a.traffic, b.traffic
    assert ta is not None and tb is not None
    for name in TRAFFIC_STATE:
        assert getattr(ta, name).tobytes() == getattr(tb, name).tobytes(), name
    assert ta.revision == tb.revision
    assert ta.rng.bit_generator.state == tb.rng.bit_generator.state
    assert a.road is not None and b.road is not None
    assert a.road.length == b.road.length
    ca, cb = a.cars(), b.cars()
    for name in ("x", "y", "yaw"):
        assert getattr(ca, name).tobytes() == getattr(cb, name).tobytes(), name


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(0, 30),
    lanes=st.integers(1, 5),
    safety=st.booleans(),
    controls=st.lists(
        st.tuples(st.floats(-1.0, 1.0), st.floats(-8.0, 3.5), st.one_of(st.none(), st.integers(0, 4))),
        min_size=1,
        max_size=8,
    ),
    steps=st.integers(1, 120),
    dt=st.sampled_from([0.1, 0.05, 0.2]),
)
def test_compiled_step_equals_the_python_composition(
    seed: int,
    cars: int,
    lanes: int,
    safety: bool,
    controls: list[tuple[float, float, int | None]],
    steps: int,
    dt: float,
) -> None:
    mine, theirs = world_pair(seed, min(cars, 6 * lanes), lanes, safety)  # 6 a lane always fit
    for k in range(steps):
        steer, accel, target = controls[k % len(controls)]
        target = None if target is None or target >= lanes else target
        for world in (mine, theirs):
            world.set_target_lane(target)
        mine.step(steer, accel, dt)
        reference_world.step(theirs, steer, accel, dt)
        assert_same(mine, theirs)


def test_long_episodes_with_crashes_stay_equal() -> None:
    """Dense traffic, flat out and weaving without the safety system: crashes, recycling and lane
    changes all happen, and the worlds stay equal for 600 steps (60 s)."""
    mine, theirs = world_pair(11, 30, 3, safety=False)
    events = {"crashed": False, "recycled": False}
    for k in range(600):
        steer = 0.4 * math.sin(k / 9.0)
        mine.step(steer, 3.5, 0.1)
        reference_world.step(theirs, steer, 3.5, 0.1)
        assert_same(mine, theirs)
        events["crashed"] |= mine.collided
    assert mine.traffic is not None
    events["recycled"] = mine.traffic.revision > 600
    assert events == {"crashed": True, "recycled": True}


def test_a_step_longer_than_a_second_is_refused_before_anything_moves() -> None:
    world, _ = world_pair(3, 5, 3, safety=True)
    before = (world.ego.x, world.s)
    with pytest.raises(ValueError, match="dt must be"):
        world.step(0.0, 0.0, 1.5)
    assert (world.ego.x, world.s) == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    cars=st.integers(0, 30),
    lanes=st.integers(1, 5),
    steer=st.floats(-1.0, 1.0),
    accel=st.floats(-8.0, 3.5),
    target=st.one_of(st.none(), st.integers(0, 4)),
)
def test_compiled_lane_keeping_check_equals_the_python_composition(
    seed: int, cars: int, lanes: int, steer: float, accel: float, target: int | None
) -> None:
    """At every step of a weaving episode (the wheel swinging between `steer` and its opposite, so
    the heading error grows and shrinks), the compiled check answers as the Python one."""
    world, _ = world_pair(seed, min(cars, 6 * lanes), lanes, safety=False)
    world.set_target_lane(None if target is None or target >= lanes else target)
    for k in range(80):
        world.step(steer if k % 12 < 6 else -steer, accel, 0.1)
        assert world.sweeps_unsafe_lane() == reference_world.sweeps_unsafe_lane(world)
