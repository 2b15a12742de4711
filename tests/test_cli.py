"""The `camdrive` command line, the README/CI test-command link, and the benchmark's measuring code."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from training import cli
from training.evaluation import bench
from training.evaluation.bench_first_step import measure_first_step
from training.evaluation.bench_measure import (
    VECTOR_MIN_CALLS,
    VECTOR_MIN_SECONDS,
    WARMUP_STEPS,
    measure_env,
    measure_vector_env,
    time_observe,
    time_vector_steps,
)
from training.evaluation.bench_report import format_report

REPO = Path(__file__).resolve().parents[1]
FAKE_ID = "camdrive_test/TwoStep-v0"


def exit_code(argv: list[str]) -> int:
    """cli.main's exit code, whether it returns it or argparse raises SystemExit."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return 0 if e.code is None else int(e.code)


def subcommand_names() -> list[str]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_help_exits_0(capsys):
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: camdrive" in out
    for name in subcommand_names():
        assert name in out


def test_bench_is_registered():
    assert "bench" in subcommand_names()


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands directly under `parser` (empty when it has none)."""
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub for action in found for name, sub in action.choices.items()}


def help_pages() -> list[list[str]]:
    """The command words of every command, nested ones (train bc, data info, ...) included."""
    pages = []
    for name, sub in subparsers_of(cli.build_parser()).items():
        pages.append([name])
        pages += [[name, child] for child in subparsers_of(sub)]
    return pages


def test_eval_help_prints_a_single_percent_sign(capsys):
    """argparse does not %-format descriptions (only help strings), so "%%" would print as is."""
    assert exit_code(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "%%" not in out
    assert "autonomy % (an intervention" in " ".join(out.split())


@pytest.mark.parametrize("words", help_pages(), ids=" ".join)
@pytest.mark.slow
def test_help_pages_have_no_doubled_percent_and_no_empty_option_help(words, capsys):
    """Every command has a help page, and every option says what it does: a help that is only
    "(default: ...)" explains nothing."""
    assert exit_code([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: camdrive {' '.join(words)}" in out
    assert "%%" not in out
    parser = cli.build_parser()
    for word in words:
        parser = subparsers_of(parser)[word]
    for action in parser._actions:
        text = (action.help or "").strip()
        assert not text.startswith("(default"), f"{' '.join(words)} {action.option_strings}: {text!r}"


def test_every_subcommand_has_a_summary():
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {choice.dest: choice.help for choice in action._choices_actions}
    assert set(summaries) == set(subcommand_names())
    assert all(summaries.values())


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert exit_code([]) == 2
    assert "usage: camdrive" in capsys.readouterr().err


def test_version(capsys):
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("camdrive ")


@pytest.mark.parametrize("steps", ["0", "-3", "many"])
def test_bench_rejects_bad_steps(steps):
    assert exit_code(["bench", "--steps", steps]) == 2


@pytest.mark.parametrize("modules", ["training.cli, training.evaluation.bench", "sim"])
def test_the_simulator_the_cli_and_bench_do_not_import_torch(modules):
    """`import sim` stays numpy-only (the layers' rule), and --help and bench start without torch."""
    code = f"import sys, {modules}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# --- the README's test command is what .ci/run runs ---------------------------------------------------


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    markers = [i for i, line in enumerate(readme) if line.startswith("<!-- test-command")]
    assert len(markers) == 1
    after = [line for line in readme[markers[0] + 1 :] if not line.startswith("```")]
    expected = after[0]

    out = subprocess.run(
        ["bash", str(REPO / ".ci" / "run"), "--print-test-command"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == [expected]
    # The CPU torch wheel must be installed before the project pulls torch in, and pytest must run.
    assert re.search(r"pip install torch==\S+ && pip install -e '\.\[dev\]'", expected)
    assert expected.endswith("python -m pytest")


# --- the benchmark's measuring functions, on a tiny fake env -----------------------------------------


class TwoStepEnv(gym.Env):
    """Every episode ends after `length` steps; `observe()` re-renders without stepping."""

    def __init__(self, length: int = 2):
        self.length = length
        self.observation_space = spaces.Box(0, 255, (4, 4, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.t = 0
        self.observe_calls = 0

    def observe(self) -> np.ndarray:
        self.observe_calls += 1
        return np.zeros(self.observation_space.shape, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observe(), {}

    def step(self, action):
        self.t += 1
        return self.observe(), 0.0, self.t >= self.length, False, {}


def two_step_vector_env(num_envs: int, length: int = 2) -> gym.vector.VectorEnv:
    """The fake env's vector_entry_point (NEXT_STEP autoreset, like camdrive's native vector envs)."""
    return gym.vector.SyncVectorEnv([lambda: TwoStepEnv(length)] * num_envs)


@pytest.fixture
def fake_env_id():
    gym.register(
        id=FAKE_ID, entry_point=TwoStepEnv, vector_entry_point=two_step_vector_env, kwargs={"length": 2}
    )
    yield FAKE_ID
    gym.registry.pop(FAKE_ID)


def test_measure_env(fake_env_id):
    phases = []
    r = measure_env(fake_env_id, steps=5, seed=3, resets=4, on_phase=phases.append)
    assert r["env_id"] == fake_env_id
    assert r["config"] == {"kwargs": {"length": 2}, "max_episode_steps": None}
    assert r["observation_space"] == str(spaces.Box(0, 255, (4, 4, 3), np.uint8))
    assert r["steps"] == 5 and r["steps_per_s"] > 0
    assert r["episodes_ended"] == 2  # the warm-up ends on an episode boundary; then steps 2 and 4 end one
    assert r["frames"] == 5 and r["render_fps"] > 0
    assert r["resets"] == 4 and 0 <= r["reset_ms"] <= r["reset_ms_max"]
    assert phases == [f"{fake_env_id} steps", f"{fake_env_id} render", f"{fake_env_id} resets"]


def test_env_without_observe_has_no_render_fps():
    env = TwoStepEnv()
    env.observe = None  # hide the method
    assert time_observe(env, frames=3, seed=0)["render_fps"] is None


def test_run_bench_skips_unregistered_ids(fake_env_id):
    report = bench.run_bench([fake_env_id, "camdrive_test/Missing-v0"], steps=3, resets=2, reference=False)
    assert [r["env_id"] for r in report["results"]] == [fake_env_id]
    assert report["results"][0]["ratio_vs_reference"] is None
    skipped = {s["env_id"]: s["reason"] for s in report["skipped"]}
    assert skipped == {
        "CarRacing-v3": "--no-carracing",
        "camdrive_test/Missing-v0": "not registered with Gymnasium",
    }
    text = format_report(report)
    assert fake_env_id in text and "n/a" in text and "skipped camdrive_test/Missing-v0" in text


@pytest.mark.integration
def test_run_bench_with_carracing_reference(fake_env_id):
    pytest.importorskip("Box2D")
    report = bench.run_bench([fake_env_id], steps=3, resets=2, reference=True)
    rows = {r["env_id"]: r for r in report["results"]}
    assert set(rows) == {fake_env_id, "CarRacing-v3"}
    assert rows["CarRacing-v3"]["ratio_vs_reference"] == pytest.approx(1.0)
    assert rows["CarRacing-v3"]["render_fps"] is None
    assert rows[fake_env_id]["ratio_vs_reference"] > 0


def test_bench_command_writes_json(fake_env_id, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "CAMDRIVE_ENV_IDS", (fake_env_id,))
    out = tmp_path / "bench.json"
    assert exit_code(["bench", "--steps", "3", "--seed", "1", "--no-carracing", "--json", str(out)]) == 0
    assert fake_env_id in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["settings"]["steps"] == 3 and doc["settings"]["seed"] == 1
    assert {"python", "numpy", "platform", "cpu_count"} <= set(doc["machine"])
    assert doc["results"][0]["env_id"] == fake_env_id
    assert doc["vector_results"] == [] and doc["settings"]["vector"] == []
    # A second run does not replace the numbers without --force (refused before measuring), then does.
    argv = ["bench", "--steps", "2", "--no-carracing", "--json", str(out)]
    before = out.read_bytes()
    assert exit_code(argv) == 2 and out.read_bytes() == before
    assert (
        capsys.readouterr().err
        == f"camdrive bench: --json {out}: already exists; pass --force to replace it\n"
    )
    assert exit_code([*argv, "--force"]) == 0
    assert json.loads(out.read_text())["settings"]["steps"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temporary file left


@pytest.fixture
def fake_reference(monkeypatch):
    """A registered stand-in for CarRacing-v3, which takes none of camdrive's options."""

    class NoOptionsEnv(TwoStepEnv):
        def __init__(self):
            super().__init__(length=1)

    gym.register(id="camdrive_test/Reference-v0", entry_point=NoOptionsEnv)
    monkeypatch.setattr(bench, "REFERENCE_ENV_ID", "camdrive_test/Reference-v0")
    monkeypatch.setattr(bench, "box2d_available", lambda: True)
    yield "camdrive_test/Reference-v0"
    gym.registry.pop("camdrive_test/Reference-v0")


def test_bench_options_reach_the_camdrive_envs_only(fake_env_id, fake_reference):
    """--option changes the measured envs; the reference keeps its defaults (it takes none of ours)."""
    report = bench.run_bench([fake_env_id], steps=6, resets=2, options={"length": 3})
    rows = {r["env_id"]: r for r in report["results"]}
    assert rows[fake_env_id]["config"]["kwargs"] == {"length": 3}
    assert (
        rows[fake_env_id]["episodes_ended"] == 2
    )  # the warm-up leaves step 1 of 3; then timed steps 2 and 5 end one
    assert rows["camdrive_test/Reference-v0"]["config"]["kwargs"] == {}
    assert report["settings"]["options"] == {"length": 3}


def test_bench_command_passes_options(fake_env_id, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "CAMDRIVE_ENV_IDS", (fake_env_id,))
    out = tmp_path / "bench.json"
    args = ["bench", "--steps", "3", "--no-carracing", "--option", "length=5", "--json", str(out)]
    assert exit_code(args) == 0
    doc = json.loads(out.read_text())
    assert doc["results"][0]["config"]["kwargs"] == {"length": 5}
    assert doc["settings"]["options"] == {"length": 5}


def test_bench_command_rejects_a_bad_option(monkeypatch, capsys):
    monkeypatch.setattr(bench, "CAMDRIVE_ENV_IDS", ("camdrive/LaneKeep-v0",))
    assert exit_code(["bench", "--steps", "2", "--no-carracing", "--option", "traffic_cars=-1"]) == 2
    assert "traffic_cars" in capsys.readouterr().err


def test_bench_command_fails_when_a_camdrive_env_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(bench, "CAMDRIVE_ENV_IDS", ("camdrive_test/Missing-v0",))
    assert exit_code(["bench", "--steps", "2", "--no-carracing"]) == 1
    assert "skipped camdrive_test/Missing-v0: not registered" in capsys.readouterr().out


# --- bench --vector: camdrive's native vector envs ---------------------------------------------------


def test_parse_vector_sizes():
    assert bench.parse_vector_sizes(None) == []
    assert bench.parse_vector_sizes(["1,4", "16", " 64 "]) == [1, 4, 16, 64]
    assert bench.parse_vector_sizes(["4,1", "4"]) == [4, 1]  # a repeat is measured once


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "four", "1,,4", "", "4,0"])
def test_bench_rejects_a_bad_vector_size_in_one_line_before_measuring(value, monkeypatch, capsys):
    def measure(*args, **kwargs):
        raise AssertionError("measured despite a bad --vector")

    monkeypatch.setattr(bench, "run_bench", measure)
    assert exit_code(["bench", "--no-carracing", "--vector", "2", "--vector", value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("camdrive bench: --vector ") and captured.err.count("\n") == 1


def timed_vector_steps(env_id: str, num_envs: int, steps: int, min_seconds: float = 0.0) -> dict:
    envs = gym.make_vec(env_id, num_envs=num_envs)
    try:
        return time_vector_steps(envs, steps=steps, seed=0, min_seconds=min_seconds)
    finally:
        envs.close()


def test_time_vector_steps_counts_env_steps(fake_env_id):
    r = timed_vector_steps(fake_env_id, num_envs=2, steps=9)
    assert r["calls"] == 5 and r["steps"] == 10 and r["steps_per_s"] > 0
    # Each 2-step episode takes 3 calls (step, step that ends it, reset), in both sub-envs at once:
    # a call ends their episodes when it is the second of its cycle, counting the warm-up calls.
    warm_up_calls = math.ceil(WARMUP_STEPS / 2)
    ending_calls = sum((warm_up_calls + k) % 3 == 1 for k in range(5))
    assert ending_calls > 0 and r["episodes_ended"] == 2 * ending_calls


def test_time_vector_steps_makes_at_least_a_few_calls(fake_env_id):
    r = timed_vector_steps(fake_env_id, num_envs=64, steps=5)
    assert r["calls"] == VECTOR_MIN_CALLS and r["steps"] == 64 * VECTOR_MIN_CALLS


def test_time_vector_steps_times_at_least_min_seconds(fake_env_id):
    """A vector env whose `steps` take a moment is timed on, call after call, for `min_seconds`."""
    r = timed_vector_steps(fake_env_id, num_envs=2, steps=4, min_seconds=0.3)
    assert r["step_seconds"] >= 0.3 and r["calls"] > VECTOR_MIN_CALLS and r["steps"] == 2 * r["calls"]


def test_bench_vector_seconds_defaults_to_the_measuring_floor_and_refuses_a_bad_value(capsys):
    args = cli.build_parser().parse_args(["bench"])
    assert args.vector_seconds == VECTOR_MIN_SECONDS
    for value in ("-1", "nan", "soon"):
        assert exit_code(["bench", "--no-carracing", "--vector-seconds", value]) == 2
        last_line = capsys.readouterr().err.strip().splitlines()[-1]
        expected = f"argument --vector-seconds: expected a number >= 0, got {value!r}"
        assert last_line == f"camdrive bench: error: {expected}"


def test_measure_vector_env_uses_camdrive_native_vector_env():
    phases = []
    r = measure_vector_env(
        "camdrive/Traffic-v0", 3, steps=6, seed=1, on_phase=phases.append, options={"obs_type": "grid"},
        min_seconds=0.0,
    )  # fmt: skip
    assert r["vector_env"] == "TrafficVectorEnv" and r["num_envs"] == 3
    assert r["action_space"] == "MultiDiscrete([5 5 5])" and "(3, 10, 3)" in r["observation_space"]
    assert r["calls"] == 3 and r["steps"] == 9 and r["steps_per_s"] > 0
    assert phases == ["camdrive/Traffic-v0 vector x3"]


def test_measure_vector_env_with_worker_processes(monkeypatch):
    made = []
    real_make_vec = gym.make_vec
    monkeypatch.setattr(gym, "make_vec", lambda *a, **kw: made.append(kw) or real_make_vec(*a, **kw))
    r = measure_vector_env(
        "camdrive/Traffic-v0", 2, steps=4, options={"obs_type": "grid"}, workers=2, min_seconds=0.0
    )
    assert made[0]["workers"] == 2 and r["workers"] == 2 and r["steps_per_s"] > 0


def test_bench_command_measures_vector_envs(fake_env_id, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "CAMDRIVE_ENV_IDS", (fake_env_id,))
    out = tmp_path / "bench.json"
    args = ["bench", "--steps", "4", "--no-carracing", "--vector", "1,2", "--vector", "3"]
    args += ["--vector-seconds", "0", "--json", str(out)]
    assert exit_code(args) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["settings"]["vector"] == [1, 2, 3]
    (single,) = doc["results"]
    rows = doc["vector_results"]
    assert [(r["env_id"], r["num_envs"]) for r in rows] == [(fake_env_id, n) for n in (1, 2, 3)]
    for r in rows:
        assert r["steps"] == r["num_envs"] * max(VECTOR_MIN_CALLS, math.ceil(4 / r["num_envs"]))
        assert r["ratio_vs_reference"] is None  # --no-carracing
        assert r["ratio_vs_single_env"] == pytest.approx(r["steps_per_s"] / single["steps_per_s"])
    assert "vector env" in text and "vs single env" in text
    assert sum(line.startswith(fake_env_id) for line in text.splitlines()) == 1 + 1 + 3  # config, rows


def test_run_bench_measures_vector_envs_next_to_the_reference(fake_env_id, fake_reference):
    """The ratio to the reference uses the reference's single-env steps/s of the same run."""
    report = bench.run_bench([fake_env_id], steps=4, resets=2, vector=[2], vector_seconds=0.0)
    rows = {r["env_id"]: r for r in report["results"]}
    (vector_row,) = report["vector_results"]
    reference_rate = rows[fake_reference]["steps_per_s"]
    assert vector_row["ratio_vs_reference"] == pytest.approx(vector_row["steps_per_s"] / reference_rate)
    assert fake_reference not in {r["env_id"] for r in report["vector_results"]}


@pytest.mark.slow
def test_first_step_compiles_with_an_empty_cache_and_loads_with_a_warm_one():
    """The first process compiles the renderer's kernels; the second finds them in the cache it left."""
    r = measure_first_step("camdrive/LaneKeep-v0")
    assert r["env_id"] == "camdrive/LaneKeep-v0"
    assert 0 < r["warm_cache_s"] < r["cold_cache_s"]


def test_bench_rounds_report_medians_of_the_ratios_within_each_round(fake_env_id, fake_reference):
    """With rounds, each ratio is the median of the ratios taken within each round (a rate against the
    reference measured beside it), not a ratio of two medians; each rate is the median of the rounds'."""
    report = bench.run_bench([fake_env_id], steps=4, resets=2, vector=[2], rounds=3, vector_seconds=0.0)
    assert report["settings"]["rounds"] == 3
    reference_rows = [r for r in report["results"] if r["env_id"] == fake_reference]
    reference_rates = [n["steps_per_s"] for n in reference_rows[0]["rounds"]]
    for row in [*report["results"], *report["vector_results"]]:
        rounds = row["rounds"]
        assert len(rounds) == 3
        assert row["steps_per_s"] == pytest.approx(float(np.median([n["steps_per_s"] for n in rounds])))
        ratios = [n["steps_per_s"] / rate for n, rate in zip(rounds, reference_rates, strict=True)]
        assert [n["ratio_vs_reference"] for n in rounds] == pytest.approx(ratios)
        assert row["ratio_vs_reference"] == pytest.approx(float(np.median(ratios)))
        assert row["ratio_vs_reference_range"] == pytest.approx([min(ratios), max(ratios)])
        assert row["steps"] == rounds[0]["steps"]  # a count the same in every round stays as it is
    text = format_report(report)
    assert "rounds: 3;" in text
    low, high = report["vector_results"][0]["ratio_vs_reference_range"]
    assert f"({low:.1f}-{high:.1f})" in text
    rows = [line for line in text.splitlines() if line.startswith(fake_reference) and "kwargs" not in line]
    (reference_line,) = rows
    assert "1.00x" in reference_line and "(" not in reference_line  # its own ratio has no range


def test_bench_command_refuses_zero_rounds(capsys):
    assert exit_code(["bench", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
