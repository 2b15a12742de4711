"""`camdrive watch`: takeover, takeover recordings, video export and the no-screen fallback, headless.

The viewer runs unpaced in these tests (`--fps 0`, or `--video`, which is always unpaced): one env step
per displayed frame, so a key scripted for frame k acts on step k, and the input smoothing and the
takeover's quiet timer advance 1/hz per frame.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pygame
import pytest
from cli_runner import run_cli

from agent.human import HumanInput
from agent.takeover import TakeoverDriver
from training import cli
from training.apps import cnn_view, watch
from training.apps.video import VideoWriter
from training.data.demo_reader import load_episode

HZ = 30


def key(kind: int, k: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=k, mod=0, unicode="", scancode=0)


class ConstantModel:
    """A stand-in model that always steers +0.5, so its actions are told apart from a person's."""

    name = "constant"

    def reset(self, env: gym.Env) -> None:
        pass

    def act(self, observation, info):
        return np.array([0.5], dtype=np.float32)


def test_any_drive_input_takes_over_and_quiet_hands_back():
    space = gym.spaces.Box(-1, 1, (1,), np.float32)
    driver = TakeoverDriver(ConstantModel(), HumanInput(space), quiet_seconds=1.0)
    driver.human.action_space = space
    dt = 1 / HZ

    def step() -> float:
        driver.update(dt)
        return float(driver.act(None, {})[0])

    assert step() == 0.5 and driver.label == "AUTOPILOT" and driver.interventions == 0
    driver.handle_event(key(pygame.KEYDOWN, pygame.K_LEFT))
    steering = [step() for _ in range(10)]
    assert driver.label == "HUMAN" and driver.interventions == 1 and driver.human_drove_last_step
    assert steering[-1] < 0, "the person's left steering is executed, not the model's +0.5"
    driver.handle_event(key(pygame.KEYUP, pygame.K_LEFT))
    for _ in range(HZ - 2):  # just under the 1 s quiet period: still the person's car
        step()
    assert driver.human_driving
    for _ in range(3):
        step()
    assert not driver.human_driving and step() == 0.5 and driver.interventions == 1

    driver.handle_event(key(pygame.KEYDOWN, pygame.K_UP))  # throttle counts as a takeover too
    step()
    assert driver.human_driving and driver.interventions == 2
    driver.handle_event(key(pygame.KEYUP, pygame.K_UP))
    driver.handle_event(key(pygame.KEYDOWN, pygame.K_RETURN))  # Enter hands back at once
    assert step() == 0.5 and driver.interventions == 2
    assert driver.steps == 1 + 10 + (HZ - 2) + 3 + 1 + 1 + 1


def test_model_keeps_acting_while_the_person_drives():
    """A model with memory (the DQN's frame window) must see every frame, even when not in control."""
    seen = []

    class Counting(ConstantModel):
        def act(self, observation, info):
            seen.append(observation)
            return super().act(observation, info)

    driver = TakeoverDriver(Counting(), HumanInput(gym.spaces.Box(-1, 1, (1,), np.float32)))
    driver.take_over()
    for t in range(5):
        driver.act(t, {})
    assert seen == [0, 1, 2, 3, 4]


SCRIPT_FRAMES = 90
TAKE_OVER_AT, RELEASE_AT = 10, 20
QUIET_S = 1.0


@pytest.fixture(scope="module")
def takeover_session(tmp_path_factory):
    """A scripted `camdrive watch --record`: the person steers left for frames 10-19, then lets go."""
    out = tmp_path_factory.mktemp("watch")
    script = [
        (TAKE_OVER_AT, key(pygame.KEYDOWN, pygame.K_LEFT)),
        (RELEASE_AT, key(pygame.KEYUP, pygame.K_LEFT)),
        (SCRIPT_FRAMES, key(pygame.KEYDOWN, pygame.K_ESCAPE)),
    ]
    argv = ["watch", "--fps", "0", "--seed", "5", "--quiet", str(QUIET_S), "--record", str(out / "takeovers")]
    args = cli.build_parser().parse_args([*argv, "--screenshot", str(out / "watch.png")])
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert watch.watch_main(args, script=script) == 0
    return out, buffer.getvalue()


@pytest.mark.slow
def test_scripted_takeover_is_counted_and_handed_back(takeover_session):
    out, printed = takeover_session
    steps = SCRIPT_FRAMES
    autonomy = (1 - 1 * 6.0 / (steps / HZ)) * 100
    assert f"1 intervention(s) in {steps / HZ:.1f} s driven, autonomy {autonomy:.1f} %" in printed
    assert (out / "watch.png").stat().st_size > 0


def test_takeover_is_recorded_as_a_demonstration(takeover_session):
    out, printed = takeover_session
    (path,) = sorted((out / "takeovers").glob("*.npz"))
    ep = load_episode(path)
    # Handed back after QUIET_S of no input following the key release.
    expected_steps = (RELEASE_AT - TAKE_OVER_AT) + round(QUIET_S * HZ)
    assert abs(ep.steps - expected_steps) <= 2
    assert ep.meta["driver"] == "human" and ep.meta["reset_seed"] is None
    assert ep.meta["takeover"]["episode_seed"] == 5 and ep.meta["takeover"]["from_step"] == TAKE_OVER_AT
    assert ep.frames.shape[1:] == (66, 200, 3)  # what PilotNet trains on
    assert ep.actions[: RELEASE_AT - TAKE_OVER_AT, 0].min() < -0.5, "the person's left steering"
    assert "1 takeover(s) recorded" in printed


@pytest.mark.slow
def test_video_export_writes_every_frame(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    argv = ["watch", "--model", "expert", "--video", str(video), "--seconds", "1.5"]
    assert run_cli([*argv, "--width", "320", "--height", "200"]) == 0
    frames = iio.imread(video)
    assert frames.shape == (round(1.5 * HZ), 200, 320, 3)
    assert frames.std() > 10, "a picture, not a blank frame"
    out = capsys.readouterr().out
    assert f"{round(1.5 * HZ)} frames at 30 fps (1.5 s of driving" in out
    assert len([line for line in out.splitlines() if "frames" in line]) == 1, "one summary of one run"


def test_gif_export(tmp_path):
    gif = tmp_path / "clip.gif"
    assert (
        run_cli(
            [
                "watch",
                "--model",
                "expert",
                "--video",
                str(gif),
                "--frames",
                "6",
                "--width",
                "320",
                "--height",
                "200",
            ]
        )
        == 0
    )
    assert iio.imread(gif).shape[0] == 6


def test_without_a_screen_watch_writes_a_video(monkeypatch, tmp_path, capsys):
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("training.apps.viewer_session.sys.platform", "linux")
    monkeypatch.chdir(tmp_path)
    assert (
        run_cli(["watch", "--model", "expert", "--seconds", "0.5", "--width", "320", "--height", "200"]) == 0
    )
    err = capsys.readouterr().err
    assert "no display" in err and "writing a video to camdrive-watch.mp4" in err
    assert iio.imread(Path(tmp_path) / "camdrive-watch.mp4").shape[0] == 15


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--video", "x.avi"], "--video must end in"),
        (["--model", "no/such/model.safetensors"], "no such file"),
        (["--model", "bc", "--env", "traffic"], "not --env traffic"),
        (["--hz", "0"], "--hz must be > 0"),
        (["--hz", "100"], "--hz 100: control_hz must be a number in [1.0, 50.0]"),
        (["--hz", "inf"], "--hz inf: control_hz must be"),
        (["--quiet", "-1"], "--quiet must be > 0"),
        (["--quiet", "0"], "--quiet must be > 0"),
        (["--quiet", "nan"], "--quiet must be > 0"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_bad_arguments_are_reported(argv, message, capsys):
    assert run_cli(["watch", "--frames", "1", "--fps", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_model_path_that_is_no_regular_file_is_named_for_what_it_is(tmp_path, capsys):
    """A directory, a named pipe, a device or a loop of links given as --model: one line saying which,
    not "no such file"."""
    import os

    folder = tmp_path / "models"
    folder.mkdir()
    pipe = tmp_path / "pipe.safetensors"
    os.mkfifo(pipe)
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(loop)
    cases = {
        folder: "not a regular file (a directory)",
        pipe: "not a regular file (a named pipe)",
        Path("/dev/null"): "not a regular file (a device)",
        loop: "cannot read the file (Too many levels of symbolic links)",
    }
    for path, what in cases.items():
        assert run_cli(["watch", "--model", str(path), "--frames", "1", "--fps", "0"]) == 2
        err = capsys.readouterr().err
        assert err == f"camdrive watch: error: --model {path}: {what}\n", err


@pytest.mark.parametrize(
    "kind, message",
    [
        ("garbage", "not a readable safetensors file"),
        ("foreign", "not a camdrive model file"),
        ("wrong weights", "tensor names do not match the model"),
    ],
)
def test_unusable_model_file_is_reported(kind, message, tmp_path, capsys):
    """A corrupt or foreign model file is one `camdrive watch: error:` line and exit code 2, no window."""
    import torch
    from safetensors.torch import save_file

    from agent.checkpoint import save_checkpoint

    path = tmp_path / f"{kind.replace(' ', '_')}.safetensors"
    if kind == "garbage":
        path.write_bytes(b"not a model")
    elif kind == "foreign":
        save_file({"w": torch.zeros(2)}, str(path))  # a safetensors file, but not camdrive's
    else:  # metadata fine, weights not PilotNet's: fails when the driver is loaded, not when read
        save_checkpoint(
            path, torch.nn.Linear(2, 2), {"architecture": "pilotnet", "env_id": "camdrive/LaneKeep-v0"}
        )
    assert run_cli(["watch", "--model", str(path), "--frames", "1", "--fps", "0"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"camdrive watch: error: {path}: ") and "\n" not in err, err
    assert message in err and "Traceback" not in err
    assert "frames in" not in captured.out, "nothing was driven"


def test_takeovers_are_training_data_for_behaviour_cloning(takeover_session, tmp_path, capsys):
    """`camdrive train bc --data DIR` reads the takeover files: the person's steering becomes the label."""
    from training.bc.config import BCConfig
    from training.bc.data import Dataset
    from training.bc.from_demos import load_demos

    out, _ = takeover_session
    data = Dataset()
    load_demos(BCConfig(out=tmp_path / "m.safetensors", data=out / "takeovers"), data, log=lambda *_: None)
    assert "cannot re-simulate" in capsys.readouterr().err  # no reset seed: no extra views
    frames, labels, _ = data.arrays()
    ep = load_episode(next((out / "takeovers").glob("*.npz")))
    assert len(frames) == ep.steps and np.array_equal(labels, ep.actions[:, 0])


def test_observation_band_is_where_the_window_sees_what_the_model_sees(make_env):
    """The saliency of a 66x200 observation is drawn on the band of the 600x960 camera view that shows
    the same scene: shrunk to 66x200, that band matches the observation."""
    from sim.view import EnvView

    env = make_env("camdrive/LaneKeep-v0")
    obs, _ = env.reset(seed=2)
    world = env.unwrapped.world
    view = EnvView(world.road_config, env.unwrapped.options.camera(), size=(600, 960))
    e = world.ego
    picture = view.camera.render(world.road, e.x, e.y, e.yaw, world.s, world.cars())
    top, height = cnn_view.observation_band(obs.shape, picture.shape)
    rows = top + ((np.arange(66) + 0.5) * height / 66).astype(int)
    cols = ((np.arange(200) + 0.5) * 960 / 200).astype(int)
    shrunk = picture[rows][:, cols].astype(float)
    assert np.abs(shrunk - obs).mean() < 7  # the window is filtered for its own, smaller pixels
    shifted = picture[rows - 40][:, cols].astype(float)  # a band 40 px higher is clearly worse
    assert np.abs(shifted - obs).mean() > 2 * np.abs(shrunk - obs).mean()


def screenshot(tmp_path: Path, name: str, *extra: str) -> np.ndarray:
    shot = tmp_path / f"{name}.png"
    assert run_cli(["watch", "--fps", "0", "--frames", "5", "--screenshot", str(shot), *extra]) == 0
    return iio.imread(shot).astype(int)


def test_saliency_is_painted_on_the_observed_band_only(tmp_path):
    plain, heat = screenshot(tmp_path, "plain"), screenshot(tmp_path, "heat", "--saliency")
    top, height = cnn_view.observation_band((66, 200), (600, 960))
    free = slice(360, 780)  # columns clear of the HUD and the minimap
    above, band = (slice(50, top), free), (slice(top, top + height), free)
    assert np.array_equal(plain[above], heat[above]), "nothing outside the band is touched"
    assert np.abs(plain[band] - heat[band]).mean() > 1.0


def test_feature_maps_panel_is_drawn(tmp_path):
    plain, tiles = screenshot(tmp_path, "plain"), screenshot(tmp_path, "tiles", "--features")
    panel = (slice(300, 560), slice(70, 440))  # left, below the HUD
    assert np.abs(plain[panel] - tiles[panel]).mean() > 10


@pytest.mark.slow
def test_dqn_shows_its_q_values(tmp_path, capsys):
    video = tmp_path / "dqn.mp4"
    assert run_cli(["watch", "--model", "dqn", "--frames", "3", "--video", str(video)]) == 0
    assert "at 10 fps" in capsys.readouterr().out  # a DQN runs at the rate it was trained at
    # The Q-value panel (bottom right) has one bar in the greedy action's green; the expert has no panel.
    dqn = screenshot(tmp_path, "dqn", "--model", "dqn", "--seed", "1000003")
    expert = screenshot(tmp_path, "expert", "--model", "expert", "--env", "traffic", "--seed", "1000003")
    panel = (slice(400, 600), slice(560, 960))
    greedy_green = [60, 200, 90]
    assert (dqn[panel][..., :3] == greedy_green).all(axis=-1).sum() > 100
    assert (expert[panel][..., :3] == greedy_green).all(axis=-1).sum() == 0


def test_q_bars_are_advantages_on_a_round_scale():
    advantage, end = cnn_view.q_bars(np.array([68.32, 67.72, 68.02, 68.0, 68.04]))
    assert advantage.sum() == pytest.approx(0.0, abs=1e-9) and advantage[0] == pytest.approx(0.3)
    assert end == 1.0, "a 0.6 spread is 0.6 of one step's reward, not empty against full"
    scales = [cnn_view.round_scale(v) for v in (0.2, 1.0, 1.5, 3.0, 7.0, 12.0, 400.0)]
    assert scales == [1, 1, 2, 5, 10, 20, 500]
    assert cnn_view.round_scale(float("nan")) == 1.0


def test_q_panel_keeps_its_numbers_inside_and_scales_the_bars():
    pygame.font.init()
    window = pygame.Surface((960, 600))
    view = cnn_view.CnnView(lambda: None, None)
    view._draw_q(window, 1.0, np.array([68.32, 67.72, 68.02, 68.0, 68.04]))
    shown = pygame.surfarray.array3d(window).swapaxes(0, 1).astype(int)
    drawn = np.nonzero(shown.sum(axis=-1))
    assert drawn[1].max() < 950 and drawn[0].max() < 590, "panel, values included, inside the window margin"
    green = (shown == cnn_view.GREEDY_RGB).all(axis=-1)
    rows = np.nonzero(green.any(axis=1))[0]
    width = green[rows[len(rows) // 2]].sum()
    assert width == pytest.approx(0.3 * 75, abs=1.5), "advantage 0.3 on a +-1 scale: 30 % of a 75 px half-bar"


# ------------------------------------------------------------------------------ outputs and stopping
SMALL = ["--width", "320", "--height", "200"]


def test_an_existing_video_or_screenshot_is_replaced_only_with_force(tmp_path, capsys):
    for option, name in (("--video", "clip.mp4"), ("--screenshot", "shot.png")):
        target = tmp_path / name
        target.write_bytes(b"the user's own file")
        argv = ["watch", "--model", "expert", "--frames", "3", "--fps", "0", *SMALL, option, str(target)]
        assert run_cli(argv) == 2
        err = capsys.readouterr().err
        assert (
            err == f"camdrive watch: error: {option} {target}: already exists; pass --force to replace it\n"
        )
        assert target.read_bytes() == b"the user's own file"
        assert run_cli([*argv, "--force"]) == 0
        assert target.read_bytes() != b"the user's own file"
    assert iio.imread(tmp_path / "clip.mp4").shape[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "shot.png"]  # no temporary file


def test_without_a_screen_the_video_never_replaces_a_file(monkeypatch, tmp_path, capsys):
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("training.apps.viewer_session.sys.platform", "linux")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camdrive-watch.mp4").write_bytes(b"an earlier video")
    assert run_cli(["watch", "--model", "expert", "--frames", "2", *SMALL]) == 0
    assert "writing a video to camdrive-watch-2.mp4" in capsys.readouterr().err
    assert (tmp_path / "camdrive-watch.mp4").read_bytes() == b"an earlier video"
    assert iio.imread(tmp_path / "camdrive-watch-2.mp4").shape[0] == 2


def test_sigterm_while_writing_a_video_keeps_the_frames_so_far(monkeypatch, tmp_path, capsys):
    """SIGTERM (as `kill` sends it) at the 5th frame: exit code 130, one line, a playable 5-frame video."""
    import os
    import signal

    add = VideoWriter.add

    def add_then_sigterm(writer, frame):
        add(writer, frame)
        if writer.frames == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(VideoWriter, "add", add_then_sigterm)
    video = tmp_path / "clip.mp4"
    assert run_cli(["watch", "--model", "expert", "--frames", "50", *SMALL, "--video", str(video)]) == 130
    assert capsys.readouterr().err == f"camdrive watch: interrupted; kept the 5 frames so far as {video}\n"
    assert iio.imread(video).shape[0] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_watch_record_removes_what_a_killed_run_left(tmp_path):
    """A dead process's temporary file in the --record folder goes at the next start."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".episode_unseeded_20260101T000000.{int(dead.stdout)}.0123abcd.tmp"
    stale.write_bytes(b"half an episode")
    argv = ["watch", "--model", "expert", "--frames", "2", "--fps", "0", *SMALL, "--record", str(tmp_path)]
    assert run_cli(argv) == 0
    assert not stale.exists()


@pytest.mark.slow
def test_the_safety_system_is_as_asked_and_said(tmp_path, capsys):
    video = tmp_path / "dqn.mp4"
    argv = ["watch", "--model", "dqn", "--frames", "3", "--video", str(video), "--force"]
    assert run_cli(argv) == 0
    assert "safety system on" in capsys.readouterr().out  # DeepTraffic's rules by default
    assert run_cli([*argv, "--safety", "off"]) == 0
    assert "safety system off" in capsys.readouterr().out
