"""The per-step caches and plain-float helpers of the world step: each must give exactly (bit for bit)
what the straightforward computation it replaced gives, and must notice every change of state."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim import seeding
from sim.actions import _discrete, _finite_values
from sim.road import Road, RoadConfig, wrap_angle
from sim.safety import SafetyConfig
from sim.traffic import Traffic, TrafficConfig
from sim.vehicle import VehicleParams
from sim.world import EgoState, World


def make_world(lanes: int = 3, cars: int = 8, seed: int = 3) -> World:
    safety = SafetyConfig(enabled=True)
    world = World(RoadConfig(lanes=lanes), TrafficConfig(cars=cars), VehicleParams(), safety)
    world.reset(seed, lane=1, speed=20.0)
    return world


def plain_heading_error(world: World) -> float:
    assert world.road is not None
    return float(wrap_angle(world.ego.yaw - world.road.heading_at(world.s)))


def test_heading_error_follows_every_pose_change() -> None:
    world = make_world()
    assert world.heading_error() == plain_heading_error(world)
    for k in range(30):
        world.step(0.6 if k < 15 else -0.6, 0.0, 0.1)
        assert world.heading_error() == plain_heading_error(world)
        assert world.state().heading_error == plain_heading_error(world)
    # Moving the ego (a displaced view, an intervention) is seen.
    e = world.ego
    world.place_ego(e.x, e.y, e.yaw + 0.25)
    assert world.heading_error() == plain_heading_error(world)
    assert world.state().heading_error == plain_heading_error(world)
    world.place_ego(e.x + 3.0, e.y + 0.5, e.yaw)
    assert world.heading_error() == plain_heading_error(world)
    assert world.state().heading_error == plain_heading_error(world)
    world.put_back_on_lane_centre()
    assert world.heading_error() == plain_heading_error(world)
    # A new road (reset) with the same pose must not reuse the old road's value.
    world.reset(4, lane=1, speed=20.0)
    assert world.heading_error() == plain_heading_error(world)


def test_state_fields_are_the_state_computed_directly() -> None:
    world = make_world(lanes=5)
    assert world.road is not None
    names = [f.name for f in dataclasses.fields(EgoState)]
    for k in range(60):
        world.step(0.7 if k < 25 else -0.7, 0.0, 0.1)  # across lanes, both ways
        fields = world.state_fields()
        state = world.state()
        assert list(fields) == names and fields == vars(state)
        assert world.state() is state  # built once per step
        assert state.lane == world.ego_lane() == world.road.lane_index(world.d)
        assert state.lateral_offset == world.d - world.road.lane_centre(state.lane)
        assert state.heading_error == plain_heading_error(world)
    world.place_ego(world.ego.x, world.ego.y, world.ego.yaw + 0.2)
    assert world.state().heading_error == plain_heading_error(world)


def boxes_computed_afresh(world: World) -> list[np.ndarray]:
    t = world.traffic
    assert t is not None
    return [*t.world_pose(), t.length, t.width]


def assert_cars_match(world: World) -> None:
    cars = world.cars()
    assert world.traffic is not None
    columns = (cars.x, cars.y, cars.yaw, cars.length, cars.width)
    for got, want in zip(columns, boxes_computed_afresh(world), strict=True):
        assert np.array_equal(got, want)
    assert cars.height is world.traffic.height and cars.color is world.traffic.color


def test_cars_are_cached_per_traffic_state_and_rebuilt_when_it_changes() -> None:
    world = make_world()
    assert_cars_match(world)
    first = world.cars()
    assert world.cars() is first  # same state: reused
    snapshot = first.x.copy(), first.length.copy()
    world.step(0.0, 0.0, 0.1)
    assert world.cars() is not first
    assert_cars_match(world)
    # The old boxes were not changed by the step (they are that state's own arrays).
    assert np.array_equal(first.x, snapshot[0]) and np.array_equal(first.length, snapshot[1])
    assert world.traffic is not None
    world.traffic.set_car(0, world.s + 30.0, 0, 15.0)  # a scripted placement after the step
    assert_cars_match(world)
    world.reset(5, lane=0, speed=10.0)
    assert_cars_match(world)


def test_cars_without_traffic() -> None:
    world = make_world(cars=0)
    cars = world.cars()
    assert len(cars) == 0 and cars.x.shape == (0,)


def test_traffic_revision_counts_every_change() -> None:
    road = Road(RoadConfig(lanes=3), 0)
    tr = Traffic(road, TrafficConfig(cars=5), np.random.default_rng(0))
    seen = [tr.revision]
    tr.reset(50.0, 0.0, 20.0)
    seen.append(tr.revision)
    tr.step(0.1, 52.0, 0.0, 20.0)
    seen.append(tr.revision)
    tr.set_car(1, 80.0, 2, 18.0)
    seen.append(tr.revision)
    assert seen == sorted(set(seen))


def test_lane_centre_is_the_roads() -> None:
    world = make_world(lanes=5)
    assert world.road is not None
    for lane in (-2, -1, 0, 1, 2, 3, 4, 5, 7, np.int64(3)):
        got = world.lane_centre(lane)
        assert type(got) is float and got == float(world.road.lane_centre(lane))


def test_in_band_with_anticipation_matches_the_direct_formula() -> None:
    rng = np.random.default_rng(0)
    road = Road(RoadConfig(lanes=5), 1)
    tr = Traffic(road, TrafficConfig(cars=30, ahead_m=300.0), rng)
    tr.reset(50.0, 0.0, 20.0)
    for _ in range(200):
        tr.d[:] = rng.uniform(-9.0, 9.0, tr.n)
        tr.lane[:] = rng.integers(0, 5, tr.n)
        d, hw = float(rng.uniform(-9.0, 9.0)), float(rng.uniform(0.5, 4.0))
        half = 0.5 * tr.width
        target = tr.lane_centres[tr.lane]
        lo = np.minimum(tr.d - half, target - half)
        hi = np.maximum(tr.d + half, target + half)
        assert np.array_equal(tr.in_band(d, hw, True), (lo < d + hw) & (hi > d - hw))
        # Exact edges: bands that end precisely on a car's (or its target lane's) edge.
        k = int(rng.integers(0, tr.n))
        for edge in (lo[k], hi[k]):
            for dd in (edge - hw, edge + hw):
                assert np.array_equal(tr.in_band(float(dd), hw, True), (lo < dd + hw) & (hi > dd - hw))


def test_finite_values_clip_and_reject_like_the_array_version() -> None:
    assert _finite_values(np.array([0.25], dtype=np.float32), (1,)) == [0.25]
    assert _finite_values([3.0, -0.0], (2,)) == [1.0, 0.0]
    assert math.copysign(1.0, _finite_values([-0.0], (1,))[0]) == -1.0
    with pytest.raises(ValueError, match="shape"):
        _finite_values(np.array([[-7.5]]), (1,))  # shape (1, 1) is not (1,), though it holds one value
    with pytest.raises(ValueError, match="shape"):
        _finite_values([0.1, 0.2], (1,))
    with pytest.raises(ValueError, match="finite"):
        _finite_values([0.1, math.nan], (2,))
    with pytest.raises(ValueError, match="finite"):
        _finite_values(np.array([math.inf]), (1,))


@pytest.mark.parametrize("action", [0, 4, np.int64(3), np.int32(1), np.uint8(2), np.array(2)])
def test_discrete_accepts_integers(action: object) -> None:
    assert _discrete(action) == int(action)


@pytest.mark.parametrize("action", [True, np.bool_(False), 5, -1, np.int64(7), 2.0, np.float32(1.0), "1"])
def test_discrete_rejects_everything_else(action: object) -> None:
    with pytest.raises(ValueError):
        _discrete(action)


def test_uniform_is_numpys_draw() -> None:
    bounds = [(0.35, 1.0), (1.0, 1.6), (60.0, 250.0), (4.2, 5.2), (15.0, 33.0), (0.0, 0.0), (-3.0, 1e9)]
    for seed in range(300):
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        for low, high in bounds:
            got, want = seeding.uniform(ours, low, high), numpys.uniform(low, high)
            assert type(got) is float and np.float64(got).tobytes() == np.float64(want).tobytes()
        assert ours.random() == numpys.random()  # the streams stay in step
