"""The oracle: a planner that searches copies of the env, so it must foresee exactly and drive safely."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from agent.baselines import load_driver
from agent.expert import Expert
from agent.oracle import Oracle
from sim.envs.base import unwrap


def _drive(driver, env, seed: int) -> tuple[float, bool]:
    obs, info = env.reset(seed=seed)
    driver.reset(env)
    speeds = []
    while True:
        obs, _, terminated, truncated, info = env.step(driver.act(obs, info))
        speeds.append(info["speed"])
        if terminated or truncated:
            return float(np.mean(speeds)), terminated


@pytest.mark.parametrize("mode", ["steer", "lane"])
@pytest.mark.slow
def test_without_the_safety_system_it_never_crashes_and_outdrives_the_expert(mode):
    env = gym.make(
        "camdrive/Traffic-v0", obs_type="grid", action_mode=mode, safety=False, episode_seconds=20.0
    )
    oracle, expert = Oracle(), Expert()
    for seed in (5, 6):
        oracle_speed, oracle_crashed = _drive(oracle, env, seed)
        expert_speed, _ = _drive(expert, env, seed)
        assert not oracle_crashed
        assert oracle_speed > expert_speed
    assert oracle.plans_searched > 0


def test_a_copy_of_the_env_foresees_the_real_one_exactly():
    """The oracle's premise: the same actions give the same future in the copy and in the env."""
    env = gym.make("camdrive/Traffic-v0", obs_type="grid", safety=False)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = [int(a) for a in rng.integers(0, 5, 60)]
    copy = unwrap(env).planning_copy()
    for a in actions:
        env.step(a)
        copy.advance(a)
    world = unwrap(env).world
    assert world.state() == copy.world.state()
    assert world.traffic is not None and copy.world.traffic is not None
    np.testing.assert_array_equal(world.traffic.s, copy.world.traffic.s)


def test_it_is_a_builtin_driver_and_refuses_a_plan_shorter_than_its_replanning():
    assert isinstance(load_driver("oracle"), Oracle)
    with pytest.raises(ValueError, match="horizon_s"):
        Oracle(horizon_s=0.2, replan_s=0.5)
