"""The env contract beyond Gymnasium's API (`sim.envs.base`, `sim.world`, `sim.traffic`, `sim.seeding`):
what experts, planners, evaluation and view augmentation are allowed to use, and that it does what its
docstrings say."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from sim import seeding
from sim.envs.base import unwrap
from sim.observations import CameraObservation
from sim.render.palette import Palette
from sim.road import Road, RoadConfig
from sim.traffic import Traffic, TrafficConfig

LANE_KEEP, TRAFFIC = "camdrive/LaneKeep-v0", "camdrive/Traffic-v0"


def test_unwrap_finds_the_camdrive_env_under_wrappers_and_refuses_any_other(make_env) -> None:
    env = make_env(LANE_KEEP)
    assert unwrap(env) is env.unwrapped
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match="not a camdrive env"):
        unwrap(cartpole)
    cartpole.close()


def test_the_privileged_state_and_the_options_are_read_only(make_env) -> None:
    u = unwrap(make_env(TRAFFIC, lanes=5))
    for name in ("world", "options", "obs_type", "action_type", "look"):
        with pytest.raises(AttributeError):
            setattr(u, name, None)
    assert u.options.lanes == 5 and u.world.road_config.lanes == 5


def test_place_ego_moves_the_car_and_what_it_reports_and_moving_it_back_restores_both(make_env) -> None:
    env = make_env(LANE_KEEP)
    env.reset(seed=4)
    for _ in range(20):
        env.step([0.1])
    u = unwrap(env)
    w = u.world
    before, frame = w.state(), u.observe()
    x, y, yaw = w.ego.x, w.ego.y, w.ego.yaw
    heading = w.road.heading_at(w.s) if w.road is not None else math.nan
    # 0.8 m to the left of the road (its left normal is (-sin h, cos h)) and turned 3 degrees left.
    w.place_ego(x - math.sin(heading) * 0.8, y + math.cos(heading) * 0.8, yaw + math.radians(3))
    moved = w.state()
    assert moved.d == pytest.approx(before.d + 0.8, abs=1e-3)
    assert moved.heading_error == pytest.approx(before.heading_error + math.radians(3), abs=1e-3)
    assert moved.speed == before.speed
    assert not np.array_equal(u.observe(), frame)
    w.place_ego(x, y, yaw)
    assert w.state() == before
    assert np.array_equal(u.observe(), frame)


def test_camera_view_from_the_ego_pose_is_the_observation_and_from_another_pose_another_frame(
    make_env,
) -> None:
    env = make_env(TRAFFIC)
    obs, _ = env.reset(seed=2)
    u = unwrap(env)
    renderer = u.camera.renderer
    assert np.array_equal(u.world.camera_view(renderer), obs)
    e = u.world.ego
    turned = u.world.camera_view(renderer, (e.x, e.y, e.yaw + math.radians(5)))
    assert turned.shape == obs.shape and np.abs(turned.astype(int) - obs).mean() > 1.0
    out = np.zeros_like(obs)
    assert u.world.camera_view(renderer, out=out) is out and np.array_equal(out, obs)


def test_camera_is_the_camera_observation_and_a_grid_env_has_none(make_env) -> None:
    assert isinstance(unwrap(make_env(LANE_KEEP)).camera, CameraObservation)
    with pytest.raises(TypeError, match="obs_type='grid' has no camera"):
        _ = unwrap(make_env(TRAFFIC, obs_type="grid")).camera


def test_look_is_the_palette_the_episode_is_drawn_in(make_env) -> None:
    plain = unwrap(make_env(LANE_KEEP))
    plain.reset(seed=1)
    assert plain.look == Palette() == plain.camera.renderer.palette
    env = make_env(LANE_KEEP, randomize=1.0)
    looks = []
    for seed in (1, 2):
        env.reset(seed=seed)
        u = unwrap(env)
        assert u.look is u.camera.renderer.palette
        want = Palette.randomised(seeding.stream(u.episode_seed, seeding.EPISODE_LOOK), 1.0)
        assert u.look == want
        looks.append(u.look)
    assert looks[0] != looks[1]


def test_a_planning_copy_shares_the_renderer_and_moves_on_its_own(make_env) -> None:
    env = make_env(TRAFFIC, action_mode="lane")
    env.reset(seed=5)
    u = unwrap(env)
    plan = u.planning_copy()
    assert plan.obs_type is u.obs_type and plan.world is not u.world
    s = u.world.s
    for _ in range(10):
        reward, terminated, truncated = plan.advance(1)
        assert reward > 0 and not terminated and not truncated
    assert u.world.s == s and plan.world.s > s and plan.steps == 10 and u.steps == 0


def test_start_lane_change_moves_a_car_to_the_neighbour_lane_centre() -> None:
    road = Road(RoadConfig(lanes=3, curviness=0.0), 0)
    tr = Traffic(road, TrafficConfig(cars=1, lane_change_rate=0.0), np.random.default_rng(0))
    tr.reset(0.0, 20.0, 20.0)  # the ego far to the side: nothing else in the way
    tr.set_car(0, 60.0, 1, speed=20.0, desired_speed=20.0)
    revision = tr.revision
    tr.start_lane_change(0, 2)
    assert tr.revision > revision and tr.lane[0] == 2 and tr.changing_lane[0]
    assert tr.d[0] == tr.lane_centres[1]  # it moves over only as the traffic steps
    for _ in range(round(tr.config.lane_change_time / 0.1) + 1):
        tr.step(0.1, 0.0, 20.0, 20.0)
    assert not tr.changing_lane[0] and tr.d[0] == pytest.approx(tr.lane_centres[2])


def test_lane_centres_are_the_roads() -> None:
    road = Road(RoadConfig(lanes=4), 0)
    tr = Traffic(road, TrafficConfig(cars=2), np.random.default_rng(0))
    assert tr.lane_centres.tolist() == [float(road.lane_centre(k)) for k in range(4)]


def test_a_stream_is_numpys_generator_of_the_seed_and_the_stream_number() -> None:
    got = seeding.stream(123, seeding.TRAFFIC).random(4)
    assert np.array_equal(got, np.random.default_rng([123, 1]).random(4))
    got = seeding.stream(9, seeding.TRAINING_LOOKS, 3, 1).integers(2**31 - 1)
    assert got == np.random.default_rng([9, 29, 3, 1]).integers(2**31 - 1)
    numbers = [v for k, v in vars(seeding).items() if k.isupper()]
    assert len(numbers) == len(set(numbers)), "two purposes share a stream"
