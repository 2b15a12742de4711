"""The privileged expert: the reference driver must actually drive well, on seeds it was not tuned on."""

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from agent.driver import Driver
from agent.expert import Expert
from sim.actions import ACCELERATE, DECELERATE, LEFT, NOOP, RIGHT

FRESH_SEEDS = range(90_000, 90_100)
"""Seeds never used while tuning the expert (tuning used 1000-1020)."""
SMALL_CAMERA = {"camera_width": 32, "camera_height": 16}


def drive(env: gym.Env, expert: Expert, seed: int, max_steps: int | None = None):
    obs, info = env.reset(seed=seed)
    expert.reset(env)
    worst_offset, steps = 0.0, 0
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
        steps += 1
        if info["lane"] == expert.target_lane:
            worst_offset = max(worst_offset, abs(info["lateral_offset"]))
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return info, worst_offset


def test_expert_is_a_driver():
    assert isinstance(Expert(), Driver)


@pytest.mark.slow
def test_expert_keeps_its_lane_for_20_km_on_fresh_seeds():
    env = gym.make("camdrive/LaneKeep-v0", **SMALL_CAMERA)
    expert = Expert()
    km, worst = 0.0, 0.0
    for seed in FRESH_SEEDS:
        info, offset = drive(env, expert, seed)
        assert not info["off_road"] and not info["collision"], f"seed {seed}: {info}"
        km += info["distance"] / 1000
        worst = max(worst, offset)
        if km >= 20:
            break
    assert km >= 20
    assert worst < 1.0, f"left its lane: max |offset| {worst:.2f} m"


@pytest.mark.parametrize("mode", ["steer", "lane"])
@pytest.mark.slow
def test_expert_never_collides_in_dense_traffic(mode):
    env = gym.make("camdrive/Traffic-v0", action_mode=mode, **SMALL_CAMERA)
    expert = Expert()
    changes = 0
    for seed in list(FRESH_SEEDS)[:8]:
        info, _ = drive(env, expert, seed)
        assert not info["collision"] and not info["off_road"], f"seed {seed}: {info}"
        assert info["speed"] > 5.0
        changes += info["lane"] != 3
    assert changes > 0, "the expert never changed lane in eight minutes of traffic"


def test_expert_discrete_steering_averages_to_the_continuous_command():
    """The wheel pulses (LEFT/RIGHT = -1/+1 times steer_amount) track the continuous command: their
    running sum stays within one pulse of the running sum of what was asked, and the car stays centred."""
    env = gym.make("camdrive/Traffic-v0", traffic_cars=0, **SMALL_CAMERA)
    expert = Expert()
    env.reset(seed=5)
    expert.reset(env)
    amount = env.unwrapped.action_type.steer_amount
    asked, done = [], []
    for _ in range(300):
        asked.append(expert.steering())
        a = int(expert.act(None, {}))
        done.append(amount * {LEFT: -1, RIGHT: 1}.get(a, 0))
        _, _, terminated, truncated, info = env.step(a)
        assert not terminated
        assert abs(info["lateral_offset"]) < 0.5
    assert any(done), "the expert should pulse the wheel to follow curves"
    drift = np.abs(np.cumsum(asked) - np.cumsum(done))
    assert drift.max() <= amount, drift.max()
    assert np.isfinite(info["heading_error"])


def test_a_teaching_expert_answers_each_state_alone_while_another_driver_acts():
    """As a teacher (sigma_delta False) the expert's steering depends on the state and its lane plan,
    not on what it was asked before: one asked at every step and one asked for the first time (with
    the same target lane) agree, where the pulse train of the driving expert, which assumes its own
    pulses were done, does not."""
    env = gym.make("camdrive/Traffic-v0", traffic_cars=0, safety=False, **SMALL_CAMERA)
    env.reset(seed=11)
    rng = np.random.default_rng(0)
    teacher, driving = Expert(sigma_delta=False), Expert()
    teacher.reset(env)
    driving.reset(env)
    differ = 0
    for _ in range(120):
        fresh = Expert(sigma_delta=False)
        fresh.reset(env)
        fresh.target_lane = teacher.target_lane
        asked = teacher.act()
        assert asked == fresh.act()
        differ += asked != driving.act()
        _, _, terminated, _, _ = env.step(int(rng.integers(5)))  # someone else drives, at random
        if terminated:
            break
    assert differ > 0


def test_a_teacher_with_a_speed_band_answers_the_cars_speed_not_the_unseen_cruise_target():
    """Without a speed band the expert's speed actions steer the cruise target that earlier pulses
    set, which no camera frame shows; with one they answer the car's actual speed (which the road's
    motion shows): a car slower than wanted is told to accelerate even if the target is already
    high, and one faster than wanted to brake even if the target is already low."""
    env = gym.make("camdrive/Traffic-v0", traffic_cars=0, safety=False, **SMALL_CAMERA)
    env.reset(seed=5)
    banded, planning = Expert(sigma_delta=False, speed_band=1.0), Expert(sigma_delta=False)
    for teacher in (banded, planning):
        teacher.reset(env)
    world, cruise = env.unwrapped.world, env.unwrapped.action_type
    wanted = banded.desired_speed()
    for car_speed, target_speed, banded_answer, planning_answer in (
        (wanted - 3.0, wanted + 3.0, ACCELERATE, DECELERATE),
        (wanted + 3.0, wanted - 3.0, DECELERATE, DECELERATE),
        (wanted + 0.7, wanted + 0.7, NOOP, DECELERATE),
    ):
        world.ego.speed, cruise.target_speed = car_speed, target_speed
        assert (banded.act(), planning.act()) == (banded_answer, planning_answer), (car_speed, target_speed)


def test_the_teacher_drives_dense_traffic_safely_without_the_safety_system():
    """The labels of `camdrive train dqn --set expert_weight=...` come from this driver, so it must be
    safe on its own, with the short time gap the safe model's run gives it."""
    env = gym.make("camdrive/Traffic-v0", safety=False, episode_seconds=45.0, **SMALL_CAMERA)
    teacher = Expert(headway_s=0.6, sigma_delta=False)
    for seed in list(FRESH_SEEDS)[:4]:
        info, _ = drive(env, teacher, seed)
        assert not info["collision"] and not info["off_road"], f"seed {seed}: {info}"
