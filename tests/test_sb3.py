"""Stable-Baselines3 trains on camdrive's environments as they are: its env checker passes and PPO
with its own CNN runs on the camera frames (the extra `sb3`; CI's second stage runs these)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)


@pytest.mark.integration
@pytest.mark.parametrize("env_id", ["camdrive/LaneKeep-v0", "camdrive/Traffic-v0"])
def test_sb3_env_checker_accepts_the_env(env_id: str) -> None:
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any advice SB3 would print about the env fails the test
        env_checker.check_env(gym.make(env_id).unwrapped, warn=True)


@pytest.mark.integration
def test_sb3_ppo_trains_on_camera_frames(tmp_path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("camdrive/LaneKeep-v0", episode_seconds=5.0)
    model = sb3.PPO("CnnPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    losses = [v for k, v in model.logger.name_to_value.items() if k.startswith("train/")]
    assert losses and all(np.isfinite(losses))
    model.save(tmp_path / "ppo")
    loaded = sb3.PPO.load(tmp_path / "ppo", device="cpu")
    obs, _ = env.reset(seed=1_000_000)
    action, _ = loaded.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
