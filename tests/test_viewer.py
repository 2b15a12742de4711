"""The pygame viewer, `camdrive play` / `camdrive replay` and the human input, all headless.

SDL_VIDEODRIVER=dummy (set in conftest) gives a real pygame display surface without a window, so the
whole viewer runs: scripted key events go through the same `pygame.event.get` path as a keyboard's.
The viewer runs unpaced (`--fps 0`): one env step per displayed frame, so an event scripted for frame
k acts on env step k.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pygame
import pytest
from cli_runner import run_cli

from agent.human import HumanInput
from sim.actions import ACCELERATE, LEFT, NOOP, RIGHT
from training import cli
from training.apps import play, recorders, viewer_session
from training.data.demo_reader import load_episode

SEED = 3
FRAMES = 60
PAUSED_FRAMES = 2 + 3
"""Frames 44-45 (help shown) and 50-52 (paused) do not step the env."""
RIGHT_DOWN, RIGHT_UP = 2, 20
"""Frames where the Right key goes down and up; Up is held from RIGHT_UP to UP_UP."""
UP_UP = 40


def key(kind: int, k: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=k, mod=0, unicode="", scancode=0)


SCRIPT = [
    (RIGHT_DOWN, key(pygame.KEYDOWN, pygame.K_RIGHT)),
    (RIGHT_UP, key(pygame.KEYUP, pygame.K_RIGHT)),
    (RIGHT_UP, key(pygame.KEYDOWN, pygame.K_UP)),
    (UP_UP, key(pygame.KEYUP, pygame.K_UP)),
    (44, key(pygame.KEYDOWN, pygame.K_h)),  # help overlay on (it pauses) ...
    (46, key(pygame.KEYDOWN, pygame.K_h)),  # ... and off
    (50, key(pygame.KEYDOWN, pygame.K_p)),  # paused
    (53, key(pygame.KEYDOWN, pygame.K_SPACE)),
    (FRAMES, key(pygame.KEYDOWN, pygame.K_ESCAPE)),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    """One scripted `camdrive play --record` session: (episode file, screenshot)."""
    out = tmp_path_factory.mktemp("play")
    shot = out / "shots" / "play.png"
    argv = ["play", "--env", "lane", "--seed", str(SEED), "--record", str(out / "demos"), "--fps", "0"]
    args = cli.build_parser().parse_args([*argv, "--screenshot", str(shot)])
    assert play.play_main(args, script=SCRIPT) == 0
    files = sorted((out / "demos").glob("*.npz"))
    assert not [f for f in files if f.name.endswith(".partial.npz")]
    (first,) = [f for f in files if load_episode(f, frames=False).meta["reset_seed"] == SEED]
    return first, shot


def test_scripted_play_records_the_scripted_driving(recorded):
    path, shot = recorded
    ep = load_episode(path)
    assert ep.meta["env_id"] == "camdrive/LaneKeep-v0" and ep.driver == "human"
    assert ep.meta["env_options"]["action_type"] == "steer_throttle"
    assert ep.meta["control_hz"] == 30.0 and ep.meta["reset_seed"] == SEED
    # Every unpaused frame stepped once (unless the episode ended early, which this seed does not).
    assert ep.steps == FRAMES - PAUSED_FRAMES
    assert ep.frames.shape == (ep.steps + 1, 66, 200, 3) and ep.actions.shape == (ep.steps, 2)
    steer, throttle = ep.actions[:, 0], ep.actions[:, 1]
    assert np.all(steer[:RIGHT_DOWN] == 0)
    held = steer[RIGHT_DOWN:RIGHT_UP]
    assert np.all(held > 0), "steering is positive (right) while Right is held"
    assert held[0] < 0.1 and np.all(np.diff(held[:10]) > 0), "and ramps up rather than jumping to 1"
    assert held[-1] == pytest.approx(1.0)
    assert steer[RIGHT_UP] < held[-1] and steer[UP_UP] == 0, "released, it returns to 0"
    assert np.all(throttle[RIGHT_UP:UP_UP] > 0) and np.all(throttle[:RIGHT_UP] == 0)
    # The window was saved, at its size and with a picture in it. (That help and pause hold the env is
    # the step count above; how the overlays look is not checked.)
    image = pygame.image.load(str(shot))
    assert image.get_size() == (960, 600)
    pixels = pygame.surfarray.array3d(image)
    assert pixels.std() > 10


def tamper(path: Path, out: Path) -> Path:
    """A copy of the episode at `out` whose action 30 steers the other way (its frame 31 will differ)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["actions"] = arrays["actions"].copy()
    arrays["actions"][30, 0] = -arrays["actions"][30, 0] - 0.5
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return out


def copies(path: Path, directory: Path, *names: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(path.read_bytes())
    return [directory / name for name in names]


def test_replay_verify_reproduces_the_recording(recorded, capsys):
    path, _ = recorded
    assert run_cli(["replay", "--verify", str(path)]) == 0
    steps = FRAMES - PAUSED_FRAMES  # one file: its line alone, no summary
    message = f"{steps} steps re-simulated, all {steps + 1} frames and {steps} rewards identical"
    assert capsys.readouterr().out == f"OK: {path}: {message}\n"


def test_replay_verify_detects_a_tampered_action(recorded, tmp_path, capsys):
    tampered = tamper(recorded[0], tmp_path / "tampered.npz")
    assert run_cli(["replay", "--verify", str(tampered)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("MISMATCH:") and "frame 31 (after step 30)" in out


def test_replay_reports_env_options_this_camdrive_rejects(recorded, tmp_path, capsys):
    """A file recorded with an option that no longer exists: an error naming the file, not a traceback."""
    path, _ = recorded
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["env_options"] = {**meta["env_options"], "old_option": 1}
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    verify, view = ["replay", "--verify", str(old)], ["replay", str(old), "--fps", "0", "--frames", "5"]
    for argv, code in ((verify, 2), (view, 1)):  # --verify: 2 = could not be checked, as cmp has it
        assert run_cli(argv) == code
        captured = capsys.readouterr()
        assert captured.err.startswith(f"camdrive replay: error: {old}: cannot make camdrive/LaneKeep-v0")
        assert "unknown option(s) old_option" in captured.err and len(captured.err.splitlines()) == 1
        assert "OK" not in captured.out and "MISMATCH" not in captured.out


def test_replay_verify_checks_every_file(recorded, tmp_path, capsys):
    """What `camdrive replay data/lane/episode_*.npz --verify` passes when the glob matches two files."""
    a, b = copies(recorded[0], tmp_path, "episode_a.npz", "episode_b.npz")
    assert run_cli(["replay", "--verify", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"OK: {a}: 55 steps re-simulated, all 56 frames")
    assert lines[1].startswith(f"OK: {b}: 55 steps re-simulated, all 56 frames")
    assert lines[2] == "2 files: 2 OK, 0 MISMATCH, 0 could not be checked"


def test_replay_verify_names_the_file_that_differs(recorded, tmp_path, capsys):
    """One tampered file among good ones: exit 1, its line names it. It is given as a directory here."""
    (good,) = copies(recorded[0], tmp_path, "good.npz")
    tampered = tamper(recorded[0], tmp_path / "dir" / "tampered.npz")
    assert run_cli(["replay", "--verify", str(good), str(tampered.parent)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"OK: {good}:")
    assert lines[1].startswith(f"MISMATCH: {tampered}: frame 31 (after step 30) differs")
    assert lines[2] == "2 files: 1 OK, 1 MISMATCH, 0 could not be checked"


def test_replay_verify_reports_unusable_files_and_checks_the_others(recorded, tmp_path, capsys):
    """A missing file, a foreign .npz and an empty directory: an error line each, exit 2, the rest checked."""
    missing, foreign, empty = tmp_path / "nope.npz", tmp_path / "foreign.npz", tmp_path / "empty"
    np.savez(foreign, x=np.arange(3))
    empty.mkdir()
    (good,) = copies(recorded[0], tmp_path / "good", "good.npz")
    assert run_cli(["replay", "--verify", str(missing), str(foreign), str(empty), str(good)]) == 2
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert errors[0] == f"camdrive replay: error: {missing}: no such file"
    assert errors[1].startswith(f"camdrive replay: error: {foreign}: no 'meta' array: not a camdrive demo")
    assert errors[2:] == [f"camdrive replay: error: {empty}: no finished episode files"]
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"OK: {good}:")
    assert lines[1] == "4 files: 1 OK, 0 MISMATCH, 3 could not be checked"


def test_replay_plays_several_files_one_after_another(recorded, tmp_path, capsys):
    """Unpaced, the first replay's last picture stays END_HOLD_SECONDS of 30 Hz frames, then b plays."""
    a, b = copies(recorded[0], tmp_path, "a.npz", "b.npz")
    missing = tmp_path / "missing.npz"
    argv = ["replay", str(a), str(missing), str(b), "--fps", "0", "--frames", "200", "--width", "480",
            "--height", "300"]  # fmt: skip
    assert run_cli(argv) == 1  # both played, but one file could not be
    captured = capsys.readouterr()
    assert captured.err == f"camdrive replay: error: {missing}: no such file\n"
    assert "200 frames" in captured.out and "110 env steps, 2 episode(s)" in captured.out


def test_replay_runs_in_the_viewer(recorded, capsys):
    path, _ = recorded
    argv = ["replay", str(path), "--fps", "0", "--frames", "70", "--width", "480", "--height", "300"]
    assert run_cli(argv) == 0
    assert "70 frames" in capsys.readouterr().out


SMALL_WINDOW = ["--fps", "0", "--frames", "3", "--width", "320", "--height", "200"]


@pytest.mark.parametrize("command", ["play", "replay"])
def test_a_screenshot_replaces_a_file_only_with_force(command, recorded, tmp_path, capsys):
    """An existing --screenshot is refused before the window opens (exit code 2, one line naming it),
    replaced with --force, and no temporary file stays beside it."""
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"the user's picture")
    argv = [command, *([str(recorded[0])] if command == "replay" else []), *SMALL_WINDOW]
    argv += ["--screenshot", str(shot)]
    assert run_cli(argv) == 2
    expected = f"camdrive {command}: error: --screenshot {shot}: already exists; pass --force to replace it"
    assert capsys.readouterr().err == expected + "\n"
    assert shot.read_bytes() == b"the user's picture"
    assert run_cli([*argv, "--force"]) == 0
    assert pygame.image.load(str(shot)).get_size() == (320, 200)
    assert [p.name for p in tmp_path.iterdir()] == ["shot.png"]


def test_a_screenshot_cut_short_leaves_the_old_file(monkeypatch, tmp_path, capsys):
    """The screenshot goes through the atomic writer: a save interrupted half-way (Ctrl-C, SIGTERM)
    leaves the previous picture whole and no temporary file."""

    def half_a_save(viewer, path) -> None:
        Path(path).write_bytes(b"half a pic")
        raise KeyboardInterrupt

    monkeypatch.setattr("sim.viewer.Viewer.save_screenshot", half_a_save)
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"the previous picture")
    assert run_cli(["play", *SMALL_WINDOW, "--screenshot", str(shot), "--force"]) == 130
    assert "camdrive play: interrupted" in capsys.readouterr().err
    assert shot.read_bytes() == b"the previous picture"
    assert [p.name for p in tmp_path.iterdir()] == ["shot.png"]


def test_play_without_a_display_exits_1(monkeypatch, capsys):
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(viewer_session.sys, "platform", "linux")
    assert run_cli(["play", "--frames", "1"]) == 1
    assert "no display" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- HumanInput
def test_steering_ramps_and_returns_to_zero():
    human = HumanInput(gym.spaces.Box(-1, 1, (2,), np.float32))
    human.handle_event(key(pygame.KEYDOWN, pygame.K_RIGHT))
    values = []
    for _ in range(12):
        human.update(0.05)
        values.append(human.act()[0])
    assert values[0] == pytest.approx(0.1), "one 50 ms frame at 2/s: a tenth of full lock, not all of it"
    assert np.all(np.diff(values[:10]) > 0) and values[-1] == pytest.approx(1.0)
    human.handle_event(key(pygame.KEYUP, pygame.K_RIGHT))
    human.update(0.05)
    assert 0 < human.act()[0] < 1.0
    for _ in range(10):
        human.update(0.05)
    assert human.act()[0] == 0.0
    # Left with A (WASD) steers the other way; throttle and brake ramp as well.
    human.handle_event(key(pygame.KEYDOWN, pygame.K_a))
    human.handle_event(key(pygame.KEYDOWN, pygame.K_s))
    human.update(0.05)
    steer, throttle = human.act()
    assert -0.2 < steer < 0 and -0.2 < throttle < 0


def test_a_tap_within_one_frame_still_steers():
    human = HumanInput(gym.spaces.Box(-1, 1, (2,), np.float32))
    human.handle_event(key(pygame.KEYDOWN, pygame.K_LEFT))
    human.handle_event(key(pygame.KEYUP, pygame.K_LEFT))
    human.update(0.05)
    assert human.act()[0] < 0


def test_discrete_actions():
    human = HumanInput(gym.spaces.Discrete(5))
    assert human.act() == NOOP
    human.handle_event(key(pygame.KEYDOWN, pygame.K_UP))
    human.handle_event(key(pygame.KEYUP, pygame.K_UP))
    assert human.act() == ACCELERATE, "a tap between two steps counts once"
    assert human.act() == NOOP
    human.handle_event(key(pygame.KEYDOWN, pygame.K_DOWN))
    human.handle_event(key(pygame.KEYDOWN, pygame.K_LEFT))
    assert human.act() == LEFT, "steering has priority over speed"
    human.handle_event(key(pygame.KEYUP, pygame.K_LEFT))
    human.handle_event(key(pygame.KEYDOWN, pygame.K_d))
    assert human.act() == RIGHT


def test_viewer_drives_traffic_with_discrete_keys(make_env):
    from sim.viewer import Viewer

    class Sink:
        recording = True

        def __init__(self):
            self.actions, self.events = [], []

        def begin(self, env, seed, observation, info):
            self.events.append(("begin", seed))

        def step(self, action, observation, reward, terminated, truncated, info):
            self.actions.append(int(action))

        def end(self, terminated, truncated):
            self.events.append(("end", terminated, truncated))

    env = make_env("camdrive/Traffic-v0")
    sink = Sink()
    script = [
        (3, key(pygame.KEYDOWN, pygame.K_LEFT)),
        (5, key(pygame.KEYUP, pygame.K_LEFT)),
        (8, key(pygame.KEYDOWN, pygame.K_r)),
    ]
    viewer = Viewer(env, HumanInput(), size=(480, 300), fps=0, seed=7, sink=sink, script=script)
    try:
        stats = viewer.run(max_frames=10)
        assert "fps" in viewer.hud.lines()[-1]
    finally:
        viewer.close()
    assert sink.actions[:8] == [NOOP] * 3 + [LEFT] * 2 + [NOOP] * 3
    assert sink.events == [("begin", 7), ("end", False, False), ("begin", 8), ("end", False, False)]
    assert stats.frames == 10 and stats.episodes == 2


def test_recorder_checkpoints_in_the_background(make_env, tmp_path):
    """While the episode is still being recorded, its checkpoint on disk is a loadable partial episode
    holding the steps so far; closing publishes the whole episode and removes the checkpoint."""
    env = make_env("camdrive/LaneKeep-v0", action_type="steer_throttle")
    options = {"action_type": "steer_throttle"}
    rec = recorders.Recorder(tmp_path, "camdrive/LaneKeep-v0", options, "human", 10.0, checkpoint_seconds=0.0)
    obs, info = env.reset(seed=1)
    rec.begin(env, 1, obs, info)

    actions = [np.array([0.01 * t, 0.2], np.float32) for t in range(40)]
    steps = 0

    def drive(until: int) -> None:
        nonlocal obs, info, steps
        for action in actions[steps:until]:
            obs, reward, terminated, truncated, info = env.step(action)
            rec.step(action, obs, reward, terminated, truncated, info)
        steps = max(steps, until)

    drive(12)
    (partial,) = tmp_path.glob("*.partial.npz")
    deadline = time.monotonic() + 20.0  # only stops a hang: checkpoints take milliseconds
    while (checkpoint := load_episode(partial)).steps == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not checkpoint.complete and 0 < checkpoint.steps <= 12
    np.testing.assert_array_equal(checkpoint.actions, actions[: checkpoint.steps])
    drive(25)
    (path,) = rec.close()
    ep = load_episode(path)
    assert ep.complete and ep.steps == 25 and ep.actions[24, 0] == pytest.approx(0.24)
    assert list(tmp_path.iterdir()) == [path]


class FakePad:
    """Stands in for a pygame.joystick.Joystick (no gamepad on a CI machine)."""

    def __init__(self, axes: list[float], buttons: list[int]) -> None:
        self.axes, self.buttons = axes, buttons

    def get_instance_id(self) -> int:
        return 0

    def get_numaxes(self) -> int:
        return len(self.axes)

    def get_axis(self, i: int) -> float:
        return self.axes[i]

    def get_numbuttons(self) -> int:
        return len(self.buttons)

    def get_button(self, i: int) -> int:
        return self.buttons[i]


def test_gamepad_stick_steers_and_triggers_or_buttons_drive():
    from agent.human import TRIGGER_AXES

    _, gas_axis = TRIGGER_AXES
    pad = FakePad([0.0] * 6, [0] * 4)
    human = HumanInput(gym.spaces.Box(-1, 1, (2,), np.float32))
    human._pads[0] = pad
    human.update(0.05)
    assert human.act().tolist() == [0.0, 0.0], "a trigger reading 0 before it moved is not half-pressed"
    pad.axes[0] = 0.5
    pad.axes[gas_axis] = -1.0  # a trigger at rest: now known to range -1..1
    human.update(0.05)
    steer, throttle = human.act()
    assert 0.4 < steer < 0.5 and throttle == 0.0, "the analogue stick is used as it is (minus the dead zone)"
    pad.axes[gas_axis] = 1.0
    human.update(0.05)
    assert human.act()[1] == pytest.approx(1.0)
    pad.axes[gas_axis], pad.buttons[1] = -1.0, 1  # B brakes
    human.update(0.05)
    assert human.act()[1] == pytest.approx(-1.0)
    human.action_space = gym.spaces.Discrete(5)
    pad.axes[0], pad.buttons[1] = -0.9, 0
    assert human.act() == LEFT
