"""camdrive eval's metrics on drivers whose behaviour is known in advance."""

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401
from agent.expert import Expert
from training import cli
from training.evaluation.evaluate import INTERVENTION_COST_S, evaluate_lane

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


@pytest.mark.integration
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


# ------------------------------------------------------------------------------- refused input
# Every case below used to end in a raw traceback. Each must now be one line on stderr naming the
# problem, exit code 1, and happen before any driving (so these tests stay fast).

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PILOTNET = str(ASSETS / "pilotnet" / "pilotnet.safetensors")
DQN_LANE = str(ASSETS / "dqn" / "dqn_lane.safetensors")


def eval_cli(argv: list[str]) -> int:
    """cli.main's exit code for `camdrive eval ...`, whether returned or raised as SystemExit."""
    from training.cli import main

    try:
        return main(["eval", "--quiet", *argv])
    except SystemExit as e:
        return 0 if e.code is None else int(e.code)


def assert_refused(argv: list[str], capsys, *needles: str) -> str:
    """`camdrive eval argv` is refused (exit code 2) with one stderr line holding every needle."""
    assert eval_cli(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in err
    assert err.startswith("camdrive eval: error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    assert captured.out == "", "nothing was evaluated"
    return err


def broken_models(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (model file, what the message must say): every way a model file can be unusable."""
    import torch
    from safetensors.torch import save_file

    from agent.checkpoint import save_checkpoint

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a model")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))  # a safetensors file, but not camdrive's
    wrong_weights = tmp_path / "wrong_weights.safetensors"
    meta = {"architecture": "pilotnet", "env_id": "camdrive/LaneKeep-v0"}
    save_checkpoint(wrong_weights, torch.nn.Linear(2, 2), meta)  # metadata fine, weights not PilotNet's
    return {
        "missing": (str(tmp_path / "missing.safetensors"), "no such file"),
        "garbage": (str(garbage), "not a readable safetensors file"),
        "foreign": (str(foreign), "not a camdrive model file"),
        "wrong weights": (str(wrong_weights), "tensor names do not match the model"),
    }


@pytest.mark.parametrize("kind", ["missing", "garbage", "foreign", "wrong weights"])
def test_unusable_model_file_is_reported(kind, tmp_path, capsys):
    path, message = broken_models(tmp_path)[kind]
    assert_refused(["--model", path, "--km", "0.01"], capsys, message)


@pytest.mark.parametrize(
    "model, env, trained, wanted",
    [
        (PILOTNET, "traffic", "camdrive/LaneKeep-v0", "camdrive/Traffic-v0"),
        (DQN_LANE, "lane", "camdrive/Traffic-v0", "camdrive/LaneKeep-v0"),
    ],
)
def test_model_from_another_env_is_refused(model, env, trained, wanted, capsys):
    err = assert_refused(["--model", model, "--env", env, "--episodes", "1", "--run-seconds", "1"], capsys)
    assert f"trained in {trained}, not in {wanted}" in err


def test_models_in_their_own_env_and_built_in_drivers_in_both_are_accepted(tmp_path, capsys):
    """The env check must not refuse what works: a model in its env, and expert/noop/random anywhere."""
    out = tmp_path / "eval.json"
    assert eval_cli(["--model", PILOTNET, "--env", "lane", "--km", "0.01", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["distance_km"] >= 0.01
    for name in ("noop", "random"):
        assert eval_cli(["--model", name, "--env", "lane", "--km", "0.01"]) == 0
        argv = [
            "--model",
            name,
            "--env",
            "traffic",
            "--episodes",
            "1",
            "--run-seconds",
            "1",
            "--no-baselines",
        ]
        assert eval_cli(argv) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--randomize", "5"], "--randomize 5: randomize must be a number in [0.0, 1.0]"),
        (["--randomize", "-0.5"], "--randomize -0.5: randomize must be a number in [0.0, 1.0]"),
        (["--randomize", "nan"], "--randomize nan"),
        (["--env", "traffic", "--run-seconds", "0"], "--run-seconds 0: episode_seconds must be"),
        (["--env", "traffic", "--run-seconds", "-3"], "--run-seconds -3"),
        (["--km", "0"], "--km must be a finite distance > 0"),
        (["--km", "-1"], "--km must be a finite distance > 0"),
        (["--km", "inf"], "--km must be a finite distance > 0, got inf"),
        (["--km", "nan"], "--km must be a finite distance > 0, got nan"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (
            ["--json", "/proc/no/such/eval.json"],
            "--json /proc/no/such/eval.json: cannot create /proc/no/such",
        ),
        (["--json", "/proc/eval.json"], "--json /proc/eval.json: cannot write in /proc"),
    ],
)
def test_out_of_range_numbers_are_refused_before_driving(argv, message, capsys):
    assert_refused(["--episodes", "1", *argv], capsys, message)


def test_an_existing_json_file_is_replaced_only_with_force(tmp_path, capsys):
    """Refused before driving, the file untouched; with --force replaced by the results."""
    out = tmp_path / "eval.json"
    out.write_bytes(b"earlier results\n")
    argv = ["--model", "noop", "--env", "lane", "--km", "0.01", "--json", str(out)]
    assert_refused(argv, capsys, f"--json {out}: already exists; pass --force")
    assert out.read_bytes() == b"earlier results\n"
    assert eval_cli([*argv, "--force"]) == 0
    assert json.loads(out.read_text())["driver"] == "noop"
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temporary file left


@pytest.mark.slow
def test_traffic_tables_rate_every_driver_against_the_oracle_with_the_safety_system_as_chosen(tmp_path):
    out = tmp_path / "eval.json"
    argv = [
        "eval",
        "--env",
        "traffic",
        "--model",
        "expert",
        "--episodes",
        "2",
        "--run-seconds",
        "8",
        "--quiet",
    ]
    for safety in ("off", "on"):
        assert cli.main([*argv, "--safety", safety, "--json", str(out), "--force"]) == 0
        rows = json.loads(out.read_text())
        assert set(rows) == {"expert", "noop", "random", "oracle"}
        assert {r["safety"] for r in rows.values()} == {safety == "on"}
        assert rows["oracle"]["pct_of_oracle"] == 100.0
        for result in rows.values():
            assert result["pct_of_oracle"] == pytest.approx(
                100.0 * result["score_mph"] / rows["oracle"]["score_mph"]
            )
            assert result["mean_abs_offset_m"] >= 0.0
        if safety == "on":  # DeepTraffic's safety system keeps even random driving crash-free
            assert all(r["collisions"] == 0 for r in rows.values())
        assert rows["oracle"]["collisions"] == 0
    # Without baselines the oracle still drives: the % column needs it.
    assert cli.main([*argv, "--no-baselines", "--json", str(out), "--force"]) == 0
    assert set(json.loads(out.read_text())) == {"expert", "oracle"}


def test_progress_bar_counts_whole_metres(capsys):
    """Distance arrives as floats; the bar shows "454/1000 m", not "453.7056287605945/1000.0 m"."""
    from training.evaluation.evaluate import _bar

    for total, shown in ((1000.0, "454/1000 m"), (None, "454 m")):
        bar = _bar(True, total, "m")
        bar.update(453.7056287605945)
        bar.refresh()
        bar.close()
        err = capsys.readouterr().err
        assert shown in err and "453.70" not in err
