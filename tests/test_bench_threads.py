"""`camdrive bench --threads`: the native vector env's frame-drawing threads, passed on and reported."""

from __future__ import annotations

import json

import gymnasium as gym
from cli_runner import run_cli

from sim.envs.vector import default_workers, usable_cores
from training.evaluation.bench_measure import measure_vector_env


def test_measure_vector_env_passes_threads_and_reports_them(monkeypatch) -> None:
    made = []
    real_make_vec = gym.make_vec
    monkeypatch.setattr(gym, "make_vec", lambda *a, **kw: made.append(kw) or real_make_vec(*a, **kw))
    r = measure_vector_env("camdrive/LaneKeep-v0", 3, steps=6, threads=1, options={"camera_width": 64})
    assert made[0]["threads"] == 1 and r["threads"] == 1 and r["steps_per_s"] > 0
    default = measure_vector_env("camdrive/LaneKeep-v0", 3, steps=6, options={"camera_width": 64})
    assert "threads" not in made[1] and "workers" not in made[1]  # the vector env's own defaults, reported
    workers = default_workers(3)
    threads = min(usable_cores(), 3) if workers == 1 else 1  # with workers every block draws with one thread
    assert default["workers"] == workers and default["threads"] == threads


def test_bench_command_reports_threads_in_the_table_and_the_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--steps", "4", "--no-carracing", "--vector", "2", "--threads", "2", "--json", str(out)]
    args += ["--option", "camera_width=64", "--option", "camera_height=32"]
    assert run_cli(args) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["settings"]["vector_threads"] == 2
    assert [r["threads"] for r in doc["vector_results"]] == [2, 2]  # LaneKeep-v0 and Traffic-v0
    header = next(line for line in text.splitlines() if line.startswith("vector env"))
    assert header.split()[:6] == ["vector", "env", "N", "workers", "threads", "env-steps/s"]
