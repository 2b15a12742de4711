"""`camdrive train rllib` (training/rllib/) and the driver of its exported policies (agent/rllib_policy.py).

The tests without Ray check what a user without the extra meets (one line, exit 2) and the exported
model format, which eval and watch read without Ray. The integration tests train for real (tiny
batches, a few seconds of 2 CPUs each) in a subprocess, as a user runs the command; they need
`pip install -e '.[rllib]'`, in its own venv (Ray pins an older gymnasium).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_runner import run_cli

from agent.checkpoint import save_checkpoint
from agent.policies import load_policy_driver
from agent.rllib_policy import ARCH, RLlibDriver, RLlibPolicyNet
from training.rllib.train import MISSING_RAY, TRAFFIC_OPTIONS

REPO = Path(__file__).resolve().parents[1]
TINY_PPO = [
    "--set",
    "train_batch_size_per_learner=200",
    "--set",
    "minibatch_size=100",
    "--set",
    "num_epochs=1",
]
"""A PPO iteration of 200 env steps and two minibatch updates: seconds, not minutes."""
SHORT_EPISODES = ["--option", "episode_seconds=5"]
"""50-step episodes, so every tiny iteration ends some and reports an episode return."""


def test_without_ray_the_command_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = run_cli(["train", "rllib", "--iterations", "1", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err == MISSING_RAY + "\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "X"],  # no stop rule
        ["--out", "X", "--iterations", "1", "--stop-steps", "10"],
        ["--iterations", "1"],  # no --out
        ["--out", "X", "--iterations", "0"],
        ["--out", "X", "--iterations", "1", "--workers", "0"],
        ["--out", "X", "--iterations", "1", "--algo", "SAC"],
        ["--out", "X", "--iterations", "1", "--device", "tpu"],
    ],
)
def test_argument_errors_exit_2(argv, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["train", "rllib", *argv]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--algo", "DQN", "--env", "lane"], "DQN needs discrete actions"),
        (["--option", "bogus=1"], "--option: unknown option(s) bogus"),
        (["--option", "camera_width=-3"], "--option:"),
        (["--resume", "--force"], "give one"),
        (["--resume"], "no checkpoint"),
        (["--tensorboard", "/dev/null"], "--tensorboard /dev/null: /dev/null is an existing file"),
    ],
)
def test_bad_runs_are_refused_before_ray_in_one_line(extra, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # the refusal comes first, with or without Ray
    out = tmp_path / "run"
    assert run_cli(["train", "rllib", "--iterations", "1", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_non_empty_out_needs_resume_or_force(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "notes.txt").write_text("mine")
    assert run_cli(["train", "rllib", "--iterations", "1", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert run_cli(["train", "rllib", "--iterations", "1", "--out", str(tmp_path), "--force"]) == 2
    assert capsys.readouterr().err == MISSING_RAY + "\n"  # --force passed the check; Ray is missing


def small_net(env: gym.Env, outputs: int) -> RLlibPolicyNet:
    convs = [{"out": 8, "kernel": [8, 8], "stride": [4, 4]}, {"out": 8, "kernel": [4, 4], "stride": [2, 2]}]
    return RLlibPolicyNet(list(env.observation_space.shape), convs, [16], outputs, flatten="hwc")


@pytest.mark.parametrize("task", ["lane", "traffic"])
def test_an_exported_policy_file_drives_without_ray(task, make_env, tmp_path):
    if task == "lane":
        env = make_env("camdrive/LaneKeep-v0")
        action = {"type": "continuous", "low": [-1.0], "high": [1.0]}
        net = small_net(env, 2)
    else:
        env = make_env("camdrive/Traffic-v0", **TRAFFIC_OPTIONS)
        action = {"type": "discrete", "n": 5}
        net = small_net(env, 5)
    path = save_checkpoint(
        tmp_path / "policy.safetensors",
        net,
        {
            "architecture": ARCH,
            "env_id": env.spec.id,
            "env_options": TRAFFIC_OPTIONS if task == "traffic" else {},
            "action": action,
            "network": net.config(),
        },
    )
    driver = load_policy_driver(path)
    assert isinstance(driver, RLlibDriver)
    frame = np.random.default_rng(0).integers(0, 256, env.observation_space.shape, dtype=np.uint8)
    with torch.no_grad():  # the saved weights, not a freshly initialised network
        np.testing.assert_allclose(
            driver.model(torch.from_numpy(frame)[None]), net(torch.from_numpy(frame)[None])
        )
    drive(path, env.spec.id, **(TRAFFIC_OPTIONS if task == "traffic" else {}))
    assert (
        run_cli(
            ["eval", "--env", task, "--model", str(path), "--episodes", "1", "--quiet", "--no-baselines"]
            + (["--run-seconds", "2"] if task == "traffic" else ["--km", "0.05"])
        )
        == 0
    )


def train(tmp_path: Path, out: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`camdrive train rllib ARGV --out OUT` in a new process, as a user runs it."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "RAY_DEDUP_LOGS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "training.cli", "train", "rllib", "--out", str(out), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def drive(path: Path, env_id: str, **options) -> None:
    """The exported policy, loaded the way eval and watch load it, drives 20 steps."""
    driver = load_policy_driver(path)
    env = gym.make(env_id, **options)
    try:
        obs, info = env.reset(seed=1_000_000)
        driver.reset(env)
        for _ in range(20):
            action = driver.act(obs, info)
            assert env.action_space.contains(action)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                obs, info = env.reset()
    finally:
        env.close()


@pytest.mark.integration
def test_ppo_on_lanekeep_with_two_env_runners_trains_checkpoints_resumes_and_exports(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ppo"
    args = ["--algo", "PPO", "--env", "lane", "--workers", "2", *SHORT_EPISODES, *TINY_PPO]
    board = tmp_path / "tb"
    done = train(tmp_path, out, *args, "--iterations", "2", "--tensorboard", str(board))
    assert done.returncode == 0, done.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(board))
    events.Reload()
    assert {"rllib/episode_return_mean", "perf/env_steps_per_s"} <= set(events.Tags()["scalars"])
    printed = [line for line in done.stdout.splitlines() if line.startswith("iter")]
    assert len(printed) == 2 and "env_steps/s" in printed[0]
    metrics = read_metrics(out)
    assert [m["iteration"] for m in metrics] == [1, 2]
    for m in metrics:
        for key in ("env_steps", "episode_return_mean", "env_steps_per_s"):
            assert isinstance(m[key], int | float) and math.isfinite(m[key]), m
    assert metrics[1]["env_steps"] > metrics[0]["env_steps"] > 0
    assert (out / "checkpoint" / "rllib_checkpoint.json").is_file()
    drive(out / "policy.safetensors", "camdrive/LaneKeep-v0")

    refused = train(tmp_path, out, *args, "--iterations", "3")
    assert refused.returncode == 2 and "not empty" in refused.stderr
    resumed = train(tmp_path, out, *args, "--iterations", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = read_metrics(out)
    assert [m["iteration"] for m in metrics] == [1, 2, 3]
    assert metrics[2]["env_steps"] > metrics[1]["env_steps"]  # the counters continued, not restarted


@pytest.mark.integration
def test_dqn_on_traffic_smoke(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "dqn"
    done = train(
        tmp_path,
        out,
        *["--algo", "DQN", "--env", "traffic", "--workers", "2", "--iterations", "1", *SHORT_EPISODES],
        *[
            "--set",
            "num_steps_sampled_before_learning_starts=800",
            "--set",
            "train_batch_size_per_learner=16",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (metrics,) = read_metrics(out)
    assert metrics["env_steps"] > 0 and math.isfinite(metrics["episode_return_mean"])
    drive(out / "policy.safetensors", "camdrive/Traffic-v0", **TRAFFIC_OPTIONS)


def test_resume_refuses_another_algo_env_or_env_options(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "checkpoint").mkdir()
    state = {
        "algo": "PPO",
        "env": "lane",
        "options": {"episode_seconds": 5},
        "iteration": 2,
        "env_steps": 400,
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    base = ["train", "rllib", "--iterations", "3", "--out", str(tmp_path), "--resume"]
    for extra, message in (
        (["--algo", "APPO", *SHORT_EPISODES], "holds a PPO run on lane"),
        (["--option", "episode_seconds=6"], "was trained with env options"),
    ):
        assert run_cli([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert run_cli([*base, *SHORT_EPISODES]) == 2
    assert capsys.readouterr().err == MISSING_RAY + "\n"  # the same run: on to Ray, which is missing
