"""camdrive eval's metrics on drivers whose behaviour is known in advance."""

import os

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401
from agent.expert import Expert
from training.evaluate import INTERVENTION_COST_S, evaluate_lane

SMALL = {"camera_width": 32, "camera_height": 16, "traffic_cars": 0}


class DriftingDriver:
    """Drives like the expert, but every `period` steps swerves right until it is put back: each
    swerve must cost exactly one intervention."""

    name = "drifting"

    def __init__(self, period: int) -> None:
        self.period, self.expert, self.t, self.swerving, self.drifted = period, Expert(), 0, False, False

    def reset(self, env):
        self.expert.reset(env)
        self.t, self.swerving, self.drifted = 0, False, False

    def act(self, obs, info):
        self.t += 1
        if self.swerving and abs(info["lateral_offset"]) > 0.5:
            self.drifted = True
        if self.swerving and self.drifted and abs(info["lateral_offset"]) < 0.05:
            self.swerving = self.drifted = False  # the safety driver put us back on the centre line
            self.t = 1
        if self.t % self.period == 0:
            self.swerving = True
        return np.array([1.0], dtype=np.float32) if self.swerving else self.expert.act(obs, info)


def test_autonomy_counts_each_swerve_once_and_follows_nvidia_formula():
    env = gym.make("camdrive/LaneKeep-v0", episode_seconds=60.0, **SMALL)
    result = evaluate_lane(DriftingDriver(period=100), env, episodes=1, seed=1_000_000, km=None)
    steps = round(result["elapsed_s"] * 10)
    swerves = result["interventions"]
    # 600 steps: a swerve starts every 100 steps of expert driving and lasts a few steps.
    assert 4 <= swerves <= 6, result
    assert steps == 600
    expected = (1 - swerves * INTERVENTION_COST_S / 60.0) * 100
    assert result["autonomy_pct"] == pytest.approx(expected)
    assert result["offroad"] == 0 and result["max_abs_offset_m"] > 1.0


def test_expert_has_full_autonomy():
    env = gym.make("camdrive/LaneKeep-v0", **SMALL)
    result = evaluate_lane(Expert(), env, episodes=1, seed=1_000_000, km=None)
    assert result["interventions"] == 0 and result["autonomy_pct"] == 100.0
    assert result["distance_km"] > 1.0


def test_export_to_minari(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from training.cli import main

    demos = tmp_path / "demos"
    assert (
        main(
            [
                "record",
                "--driver",
                "expert",
                "--env",
                "lane",
                "--episodes",
                "2",
                "--out",
                str(demos),
                "--steps-per-episode",
                "20",
                "--quiet",
                "--option",
                "camera_width=32",
                "--option",
                "camera_height=16",
            ]
        )
        == 0
    )
    root = tmp_path / "minari"
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    assert main(["export", str(demos), "--minari", "camdrive/test-v0", "--root", str(root)]) == 0
    assert "MINARI_DATASETS_PATH" not in os.environ  # --root applied to the export only
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))  # the export restored it; reading needs it
    dataset = minari.load_dataset("camdrive/test-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 40
    episode = next(dataset.iterate_episodes())
    assert episode.observations.shape == (21, 16, 32, 3)
    assert "label" in episode.infos
