"""Demonstrations on disk (training/data/demos.py, demo_*.py) and `camdrive record` / `camdrive data info`.

Most tests write synthetic episodes (no env) to stay fast; the recorder tests use a tiny 64x32 camera.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401
from training import cli
from training.data import demo_writer, export
from training.data.demo_reader import iter_episodes, list_files, load_episode
from training.data.demo_writer import EpisodeWriter
from training.data.demos import STATE_KEYS, DemoError
from training.data.info import summarize
from training.data.record import RecordError, executed_action, load_driver, record

SMALL = {"camera_width": 64, "camera_height": 32}
SMALL_ARGS = ["--option", "camera_width=64", "--option", "camera_height=32"]
LANE_ID = "camdrive/LaneKeep-v0"

STAND_IN = textwrap.dedent(
    """
    import time
    import numpy as np

    class StandIn:
        '''Steers back to the lane centre from the privileged state; optionally slow.'''
        name = "standin"
        delay = 0.0

        def reset(self, env):
            pass

        def act(self, obs, info):
            time.sleep(self.delay)
            steer = 0.5 * info["lateral_offset"] + 1.0 * info["heading_error"]
            return np.array([np.clip(steer, -1.0, 1.0)], np.float32)

    class Slow(StandIn):
        delay = 0.004

    class Hang(Slow):
        '''Stops after 10 steps of its third episode, as if stuck, until it is killed.'''
        episodes = 0

        def reset(self, env):
            self.episodes += 1
            self.steps = 0

        def act(self, obs, info):
            self.steps += 1
            if self.episodes == 3 and self.steps > 10:
                time.sleep(3600)
            return super().act(obs, info)
    """
)


def fake_info(t: int) -> dict:
    info = {key: float(t) * 0.5 for key in STATE_KEYS}
    info.update(lane=1, collision=False, off_road=t > 100, distance=10.0 * t)
    return info


def write_episode(
    directory: Path, steps: int = 4, seed: int = 0, labels: bool = True, **kwargs
) -> tuple[Path, dict]:
    """A synthetic episode written with EpisodeWriter; returns its path and the arrays it was given."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (steps + 1, 6, 8, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (steps, 1)).astype(np.float32)
    label_values = rng.uniform(-1, 1, (steps, 1)).astype(np.float32)
    rewards = rng.normal(size=steps).astype(np.float32)
    writer = EpisodeWriter(directory, LANE_ID, {"lanes": 3}, seed, "expert", noise_sigma=0.1, **kwargs)
    writer.start(frames[0], fake_info(0))
    for t in range(steps):
        label = label_values[t] if labels else None
        writer.add(frames[t + 1], actions[t], label, rewards[t], fake_info(t + 1))
    path = writer.close(terminated=True, truncated=False)
    return path, {"frames": frames, "actions": actions, "labels": label_values, "rewards": rewards}


# ------------------------------------------------------------------------------------------ round trip
def test_round_trip(tmp_path):
    path, given = write_episode(tmp_path, steps=5, seed=3)
    assert path.name.startswith("episode_3_") and path.suffix == ".npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # partial and temp files are gone
    ep = load_episode(path)
    np.testing.assert_array_equal(ep.frames, given["frames"])
    np.testing.assert_array_equal(ep.actions, given["actions"])
    np.testing.assert_array_equal(ep.labels, given["labels"])
    np.testing.assert_array_equal(ep.rewards, given["rewards"])
    assert ep.frames.dtype == np.uint8 and ep.rewards.dtype == np.float32
    assert set(ep.state) == set(STATE_KEYS)
    assert all(a.dtype == np.float64 and a.shape == (6,) for a in ep.state.values())
    np.testing.assert_array_equal(ep.state["distance"], 10.0 * np.arange(6))
    np.testing.assert_array_equal(ep.state["lane"], np.ones(6))
    m = ep.meta
    assert m["format"] == "camdrive-demo" and m["format_version"] == 1
    assert m["env_id"] == LANE_ID and m["env_options"] == {"lanes": 3} and m["reset_seed"] == 3
    assert m["driver"] == "expert" and m["noise_sigma"] == 0.1 and m["control_hz"] == 10.0
    assert m["steps"] == 5 and m["terminated"] is True and m["truncated"] is False and m["complete"] is True
    assert m["created"].endswith("+00:00") and m["camdrive_version"]
    assert ep.steps == 5 and ep.num_frames == 6 and ep.kilometres == pytest.approx(0.05)


def test_no_labels_means_no_labels_array(tmp_path):
    path, _ = write_episode(tmp_path, labels=False)
    assert load_episode(path).labels is None
    with np.load(path, allow_pickle=False) as npz:
        assert "labels" not in npz.files


def test_load_without_frames_reads_only_their_shape(tmp_path):
    path, given = write_episode(tmp_path, steps=3)
    ep = load_episode(path, frames=False)
    assert ep.frames is None and ep.frame_shape == given["frames"].shape and ep.num_frames == 4


def test_recorded_actions_replay_the_recorded_frames(tmp_path):
    """reset_seed + executed actions reproduce the episode: the file holds what was really driven."""
    sys.path.insert(0, str(tmp_path))
    (tmp_path / "standin_replay.py").write_text(STAND_IN)
    try:
        from standin_replay import StandIn
    finally:
        sys.path.remove(str(tmp_path))
    (result,) = record(
        LANE_ID, SMALL, StandIn(), 1, tmp_path / "d", noise=0.3, seed=5, steps_per_episode=12, progress=False
    )
    ep = load_episode(result.path)
    assert ep.steps == 12 and ep.meta["truncated"] and ep.labels is not None
    assert not np.array_equal(ep.actions, ep.labels)  # noise was executed, clean actions are the labels
    env = gym.make(LANE_ID, **ep.meta["env_options"])
    obs, info = env.reset(seed=ep.meta["reset_seed"])
    np.testing.assert_array_equal(obs, ep.frames[0])
    for t, action in enumerate(ep.actions):
        obs, reward, *_, info = env.step(action)
        np.testing.assert_array_equal(obs, ep.frames[t + 1])
        assert np.float32(reward) == ep.rewards[t]
        assert all(ep.state[k][t + 1] == float(info[k]) for k in STATE_KEYS)


def test_names_never_collide(tmp_path, monkeypatch):
    fixed = demo_writer._utc_now()
    monkeypatch.setattr(demo_writer, "_utc_now", lambda: fixed)
    paths = [write_episode(tmp_path, seed=1)[0] for _ in range(3)]
    assert len(set(paths)) == 3
    assert all(load_episode(p).meta["reset_seed"] == 1 for p in paths)


def test_checkpoints_are_partial_and_close_removes_them(tmp_path):
    clock = [0.0]
    writer = EpisodeWriter(tmp_path, LANE_ID, {}, 7, "expert", checkpoint_seconds=5.0, clock=lambda: clock[0])
    frame = np.zeros((4, 4, 3), np.uint8)
    writer.start(frame, fake_info(0))
    assert writer.partial_path.exists() and not writer.path.exists()  # the name is reserved at once
    writer.add(frame, [0.1], None, 1.0, fake_info(1))
    assert load_episode(writer.partial_path).steps == 0  # no checkpoint before 5 s have passed
    clock[0] = 5.0
    writer.add(frame, [0.2], None, 1.0, fake_info(2))
    partial = load_episode(writer.partial_path)
    assert partial.steps == 2 and partial.complete is False
    assert list(iter_episodes(tmp_path)) == []
    assert [e.steps for e in iter_episodes(tmp_path, include_partial=True)] == [2]
    writer.close(False, True)
    assert [p.name for p in tmp_path.iterdir()] == [writer.path.name]


def test_a_checkpoint_left_beside_its_finished_episode_is_stale_and_never_read(tmp_path):
    """A recorder killed between publishing an episode and deleting its checkpoint leaves both."""
    path, _ = write_episode(tmp_path, seed=1)
    stale = path.with_name(path.stem + ".partial.npz")
    stale.write_bytes(path.read_bytes())
    partial: list[Path] = []
    assert [e.path for e in iter_episodes(tmp_path, include_partial=True)] == [path]
    assert [e.path for e in iter_episodes(tmp_path, on_partial=partial.append)] == [path] and partial == []
    summary = summarize(tmp_path)
    assert summary["episodes"] == 1 and summary["stale"] == [str(stale)] and summary["partial"] == []


def test_episodes_come_in_natural_order(tmp_path):
    paths = [write_episode(tmp_path, steps=1, seed=seed)[0] for seed in (10, 2, 1)]
    assert [e.meta["reset_seed"] for e in iter_episodes(tmp_path)] == [1, 2, 10]
    assert sorted(paths) != [e.path for e in iter_episodes(tmp_path)]  # not plain string order


def test_an_exception_leaves_a_partial_file(tmp_path):
    writer = EpisodeWriter(tmp_path, LANE_ID, {}, 0, "expert", checkpoint_seconds=None)
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(KeyboardInterrupt), writer:
        writer.start(frame, fake_info(0))
        for t in range(3):
            writer.add(frame, [0.0], None, 0.0, fake_info(t + 1))
        raise KeyboardInterrupt
    assert load_episode(writer.partial_path).steps == 3


class InterruptedInfo(dict):
    """An `info` whose "speed" is never read: SIGTERM arrives while `add` stores the step's state."""

    def get(self, key, default=None):
        if key == "speed":
            raise KeyboardInterrupt
        return super().get(key, default)


class InterruptedReward:
    """A reward never read: SIGTERM arrives after `add` has stored the step's frame and action."""

    def __float__(self):
        raise KeyboardInterrupt


@pytest.mark.parametrize("cut", ["state", "reward"])
def test_an_add_cut_short_leaves_its_half_step_out_of_the_partial_file(tmp_path, cut):
    """Ctrl-C or SIGTERM can land anywhere inside `add`: the partial file the writer's exit writes
    holds the whole steps before it, and loads."""
    writer = EpisodeWriter(tmp_path, LANE_ID, {}, 0, "expert", checkpoint_seconds=None)
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(KeyboardInterrupt), writer:
        writer.start(frame, fake_info(0))
        for t in range(3):
            writer.add(frame, [0.0], None, 0.0, fake_info(t + 1))
        if cut == "state":
            writer.add(frame, [0.0], None, 0.0, InterruptedInfo(fake_info(4)))
        else:
            writer.add(frame, [0.0], None, InterruptedReward(), fake_info(4))
    assert load_episode(writer.partial_path).steps == 3 == writer.steps


def test_writer_rejects_what_it_cannot_store(tmp_path):
    writer = EpisodeWriter(tmp_path, LANE_ID, {}, 0, "expert")
    with pytest.raises(ValueError, match="uint8"):
        writer.start(np.zeros((10, 3), np.float32), fake_info(0))
    writer.start(np.zeros((4, 4, 3), np.uint8), fake_info(0))
    writer.add(np.zeros((4, 4, 3), np.uint8), [0.0], [0.0], 0.0, fake_info(1))
    with pytest.raises(ValueError, match="every step"):
        writer.add(np.zeros((4, 4, 3), np.uint8), [0.0], None, 0.0, fake_info(2))
    with pytest.raises(ValueError, match="frame shape"):
        writer.add(np.zeros((5, 4, 3), np.uint8), [0.0], [0.0], 0.0, fake_info(2))
    with pytest.raises(TypeError):
        EpisodeWriter(tmp_path, LANE_ID, {"f": object()}, 0, "expert")  # meta must be JSON


# ------------------------------------------------------------------------------------- bad files
def _future_version(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "format_version": 2}))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _module_env_id(path: Path) -> None:
    """gymnasium.make would import the module `this` (it prints a poem) for such an id."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "env_id": "this:camdrive/LaneKeep-v0"}))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _drop_array(name: str):
    def spoil(path: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != name}
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    return spoil


def _short_rewards(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["rewards"] = arrays["rewards"][:-1]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _set_meta(**fields: object):
    """A spoiler that rewrites fields of the file's meta (json.dumps writes NaN as the token NaN)."""

    def spoil(path: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays["meta"]))
        arrays["meta"] = np.array(json.dumps({**meta, **fields}))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    return spoil


def _foreign_npz(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, x=np.random.rand(3, 3), y=np.arange(4))


SPOILERS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupt or truncated"),
    "foreign npz": (_foreign_npz, "no 'meta'"),
    "text file": (lambda p: p.write_text("frames,actions\n1,2\n"), "not an npz"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "future version": (_future_version, "unsupported format_version 2"),
    "env id naming a module": (
        _module_env_id,
        "'env_id': env_id 'this:camdrive/LaneKeep-v0' is not a registered",
    ),
    "missing array": (_drop_array("state_speed"), "missing array(s) state_speed"),
    "length mismatch": (_short_rewards, "length mismatch: 'rewards' has 3 rows, expected 4"),
    "control_hz 0": (_set_meta(control_hz=0), "'control_hz' must be a finite number > 0, got 0"),
    "control_hz negative": (
        _set_meta(control_hz=-10.0),
        "'control_hz' must be a finite number > 0, got -10.0",
    ),
    "control_hz NaN": (_set_meta(control_hz=math.nan), "'control_hz' must be a finite number > 0, got nan"),
}


@pytest.mark.parametrize("kind", SPOILERS)
def test_bad_file_raises_demo_error_naming_it_and_others_still_load(kind, tmp_path):
    good, _ = write_episode(tmp_path, steps=4, seed=1)
    bad, _ = write_episode(tmp_path, steps=4, seed=2)
    spoil, message = SPOILERS[kind]
    spoil(bad)
    with pytest.raises(DemoError) as caught:
        load_episode(bad)
    assert caught.value.path == bad and str(bad) in str(caught.value)
    assert message in str(caught.value)

    errors: list[DemoError] = []
    loaded = list(iter_episodes(tmp_path, on_error=errors.append))
    assert [e.path for e in loaded] == [good]
    assert [e.path for e in errors] == [bad]
    with pytest.warns(UserWarning, match=str(bad.name)):  # never silently dropped
        assert len(list(iter_episodes(tmp_path))) == 1


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path, _ = write_episode(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["actions"] = np.array([Evil()] * 4, dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(DemoError, match="'actions' holds Python objects, which only pickle could load"):
        load_episode(path)
    assert not marker.exists()


def test_iter_episodes_on_a_missing_directory(tmp_path):
    with pytest.raises(DemoError, match="no such directory"):
        list(iter_episodes(tmp_path / "nope"))


# ------------------------------------------------------------------------------ killed recorder
def start_recorder(tmp_path: Path, driver: str) -> tuple[subprocess.Popen, Path]:
    """`python -m training.cli record` with a stand-in driver, 40-step episodes, checkpoints every 20 ms."""
    (tmp_path / "standin_kill.py").write_text(STAND_IN)
    out = tmp_path / "demos"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "training.cli", "record", "--driver", f"standin_kill:{driver}",
            "--episodes", "1000", "--out", str(out), "--steps-per-episode", "40",
            "--checkpoint-seconds", "0.02", "--quiet", *SMALL_ARGS]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE), out


def kill_when(proc: subprocess.Popen, ready, timeout: float = 20.0) -> None:
    """SIGKILL `proc` as soon as ready() is true (failing if it exits or times out first)."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the recorder did not get far enough in time"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finished_files(out: Path) -> list[Path]:
    return list_files(out).episodes if out.is_dir() else []


@pytest.mark.slow
def test_sigkilled_recorder_leaves_loadable_episodes_and_one_partial(tmp_path):
    proc, out = start_recorder(tmp_path, "Hang")  # hangs after 10 steps of its third episode (seed 2)
    hung_since: list[float] = []

    def third_episode_hung() -> bool:
        if not hung_since and out.is_dir() and list(out.glob("episode_2_*.partial.npz")):
            hung_since.append(time.monotonic())
        return bool(hung_since) and time.monotonic() - hung_since[0] > 0.3

    kill_when(proc, third_episode_hung)
    # An interrupted write leaves a hidden temp file; plant one holding a valid episode to be sure.
    finished = finished_files(out)
    (out / f".{finished[0].stem}.12345.deadbeef.tmp").write_bytes(finished[0].read_bytes())

    errors: list[DemoError] = []
    partial: list[Path] = []
    episodes = list(iter_episodes(out, on_error=errors.append, on_partial=partial.append))
    assert errors == []
    assert [e.path for e in episodes] == finished
    assert [e.meta["reset_seed"] for e in episodes] == [0, 1]
    assert all(e.complete and e.steps == 40 and e.meta["truncated"] for e in episodes)
    assert len(partial) == 1 and partial[0].name.startswith("episode_2_")
    everything = list(iter_episodes(out, include_partial=True, on_error=errors.append))
    assert errors == [] and [e.complete for e in everything] == [True, True, False]
    assert everything[2].meta["reset_seed"] == 2 and everything[2].steps <= 10

    summary = summarize(out)
    assert summary["episodes"] == 2 and summary["partial"] == [str(partial[0])]
    assert summary["bad"] == [] and summary["stale"] == [] and len(summary["temp"]) == 1


@pytest.mark.parametrize("delay", [0.0, 0.07, 0.2])
@pytest.mark.slow
def test_recorder_killed_at_any_moment_leaves_a_consistent_directory(tmp_path, delay):
    """Wherever the kill lands (mid-checkpoint, between publishing an episode and removing its
    checkpoint), readers see only whole episodes, at most one partial one, and no duplicates.
    The kill comes `delay` seconds after the second episode is published."""
    proc, out = start_recorder(tmp_path, "Slow")
    seen: list[float] = []

    def two_finished_then_delay() -> bool:
        if not seen and len(finished_files(out)) >= 2:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= delay

    kill_when(proc, two_finished_then_delay)
    listing = list_files(out)
    errors: list[DemoError] = []
    episodes = list(iter_episodes(out, on_error=errors.append))
    assert errors == [] and [e.path for e in episodes] == listing.episodes
    assert [e.meta["reset_seed"] for e in episodes] == list(range(len(episodes)))
    assert all(e.complete and e.steps == 40 for e in episodes)
    assert len(listing.partial) + len(listing.stale) <= 1
    everything = list(iter_episodes(out, include_partial=True, on_error=errors.append))
    assert errors == [] and len(everything) == len(episodes) + len(listing.partial)
    assert sorted({e.meta["reset_seed"] for e in everything}) == sorted(
        e.meta["reset_seed"] for e in everything
    )


# ----------------------------------------------------------------------------------- the commands
def exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:
        return 0 if e.code is None else int(e.code)


def test_data_info_prints_the_counts(tmp_path, capsys):
    for seed in range(3):
        write_episode(tmp_path, steps=4, seed=seed)
    writer = EpisodeWriter(tmp_path, LANE_ID, {}, 9, "human")
    writer.start(np.zeros((6, 8, 3), np.uint8), fake_info(0))  # an unfinished recording
    bad = tmp_path / "episode_bad.npz"
    bad.write_text("not a demo")
    assert exit_code(["data", "info", str(tmp_path)]) == 1  # the check found a bad file
    out, err = capsys.readouterr()
    assert (
        err == f"camdrive data info: error: {bad}: not an npz archive (no zip header): not a camdrive demo\n"
    )
    assert "episodes    3" in out and "steps       12" in out and "frames      15 (one per step" in out
    assert "hours       0.000" in out and "kilometres  0.12" in out and "drivers     expert 3" in out
    assert "partial     1" in out and writer.partial_path.name in out
    assert "bad         1" in out and "episode_bad.npz: not an npz archive" in out

    bad.unlink()
    assert exit_code(["data", "info", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["episodes"] == 3 and doc["steps"] == 12 and doc["frames"] == 15
    assert doc["hours"] == pytest.approx(12 / 10 / 3600), "the time driven, as record counts it"
    assert doc["kilometres"] == pytest.approx(0.12) and doc["drivers"] == {"expert": 3}


def test_data_info_fails_on_missing_or_empty_directories(tmp_path, capsys):
    assert exit_code(["data", "info", str(tmp_path / "nope")]) == 2  # refused before any work
    assert "no such directory" in capsys.readouterr().err
    assert exit_code(["data", "info", str(tmp_path)]) == 1
    assert "no readable episodes" in capsys.readouterr().err
    assert exit_code(["data"]) == 2


def test_data_info_help_states_the_exit_codes_it_returns(capsys):
    """The codes the tests above see (0 all readable; 1 a bad file, or none readable; 2 no DIR to read),
    as `camdrive data info --help` states them: a script that checks them relies on the help."""
    assert exit_code(["data", "info", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "Exit code 0 when every episode file is readable, 1 when a file is bad (each named on stderr) or "
        "none is readable, 2 when DIR cannot be read (missing, not a directory, not listable)." in text
    )


def test_data_info_refuses_a_directory_it_cannot_read_in_one_line(tmp_path, capsys, monkeypatch):
    """Exit code 2, the help's "DIR cannot be read", for every reason: a name too long for the file
    system (Path.is_dir raised it as a traceback), a loop of links, and one this user may not list."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    unlisted = tmp_path / "unlisted"
    unlisted.mkdir()
    iterdir = Path.iterdir

    def no_permission(path: Path):
        if path == unlisted:  # as for a user without read permission (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return iterdir(path)

    monkeypatch.setattr(Path, "iterdir", no_permission)
    cases = {tmp_path / ("d" * 300): "too long", loop: "symbolic links", unlisted: "Permission denied"}
    for directory, what in cases.items():
        assert exit_code(["data", "info", str(directory)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"camdrive data info: error: {directory}: ") and err.count("\n") == 1, err
        assert what in err


def test_data_info_reports_a_zero_control_rate_as_a_bad_file(tmp_path, capsys):
    """frames / control_hz once crashed `data info` with ZeroDivisionError; now the file is listed as bad."""
    good, _ = write_episode(tmp_path, steps=4, seed=1)
    bad, _ = write_episode(tmp_path, steps=4, seed=2)
    _set_meta(control_hz=0)(bad)
    assert exit_code(["data", "info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "episodes    1" in out and "bad         1" in out
    assert f"{bad}: meta field 'control_hz' must be a finite number > 0, got 0" in out
    good.unlink()
    assert exit_code(["data", "info", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "'control_hz' must be a finite number > 0" in captured.out
    assert "no readable episodes" in captured.err


def test_record_command_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "standin_cli.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "demos"
    argv = ["record", "--driver", "standin_cli:StandIn", "--out", str(out), "--seed", "4",
            "--steps-per-episode", "5", "--quiet", *SMALL_ARGS]  # fmt: skip
    assert exit_code(argv) == 0
    assert "recorded 1 episode(s), 5 steps, 6 frames" in capsys.readouterr().out
    (ep,) = iter_episodes(out)
    assert ep.frames.shape == (6, 32, 64, 3) and ep.actions.shape == (5, 1) and ep.actions.dtype == np.float32
    assert ep.labels is None  # a non-expert without noise has no labels
    assert ep.meta["driver"] == "standin" and ep.meta["reset_seed"] == 4 and ep.meta["env_options"] == SMALL
    assert exit_code(["data", "info", str(out)]) == 0
    assert "episodes    1" in capsys.readouterr().out


def test_record_command_with_the_expert(tmp_path, capsys):
    pytest.importorskip("agent.expert")
    out = tmp_path / "demos"
    argv = ["record", "--driver", "expert", "--env", "traffic", "--out", str(out), "--noise", "0.5",
            "--steps-per-episode", "8", "--quiet", *SMALL_ARGS]  # fmt: skip
    assert exit_code(argv) == 0
    (ep,) = iter_episodes(out)
    assert ep.meta["driver"] == "expert" and ep.meta["env_id"] == "camdrive/Traffic-v0"
    assert ep.actions.dtype == np.int64 and ep.labels is not None and ep.labels.shape == (8,)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--driver", "nope"], "unknown driver 'nope'"),
        (["--driver", "no_such_module_xyz:Driver"], "cannot import no_such_module_xyz"),
        (["--env", "traffic", "--noise", "1.5"], "probability of a random action"),
        (["--option", "bogus=1"], "unknown option(s) bogus"),
        (["--action-mode", "lane"], "needs --env traffic"),
        (["--noise", "-1"], "expected a number >= 0"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--option", "camera_width"], "expected KEY=VALUE"),
        (["--driver", "agent.pilotnet:PilotNetDriver"], "cannot be built with no arguments"),
        (["--driver", "training.data.record:control_hz"], "training.data.record.control_hz is not a class"),
        (["--env", "traffic", "--option", "lanes=1"], "do not fit"),
    ],
)
def test_record_command_rejects_bad_arguments(args, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "standin_bad.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(tmp_path))
    driver = [] if "--driver" in args else ["--driver", "standin_bad:StandIn"]
    assert exit_code(["record", "--out", str(tmp_path / "o"), "--quiet", *driver, *args]) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*.npz")) if (tmp_path / "o").exists() else True


def test_executed_action_noise():
    rng = np.random.default_rng(0)
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    clean = np.array([0.95, 0.5], np.float32)
    noisy = np.stack([executed_action(clean, box, 0.5, rng) for _ in range(200)])
    assert noisy.dtype == np.float32 and noisy.min() >= -1 and noisy.max() <= 1
    assert np.all(noisy[:, 1] == 0.5) and noisy[:, 0].std() > 0.2  # only steering is perturbed
    assert np.array_equal(executed_action(clean, box, 0.0, rng), clean)
    discrete = gym.spaces.Discrete(5)
    picks = [executed_action(0, discrete, 0.5, rng) for _ in range(400)]
    assert all(isinstance(a, int) and 0 <= a < 5 for a in picks)
    assert 0.3 < np.mean(np.array(picks) != 0) < 0.5  # replaced with probability 0.5, by 0 a fifth of it
    assert [executed_action(3, discrete, 0.0, rng) for _ in range(5)] == [3] * 5


def test_record_reports_an_env_that_fails_its_first_reset(tmp_path, capsys, monkeypatch):
    """Options gymnasium.make accepts but the first env.reset rejects are a clean `record` error."""
    from sim.envs.traffic import TrafficEnv

    def refuse(self, *, seed=None, options=None):
        raise ValueError("traffic_cars=20 do not fit on lanes=1")

    monkeypatch.setattr(TrafficEnv, "reset", refuse)
    out = tmp_path / "o"
    argv = ["record", "--driver", "expert", "--env", "traffic", "--out", str(out), "--quiet", *SMALL_ARGS]
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("camdrive record: error: ") and len(err.strip().splitlines()) == 1
    assert "camdrive/Traffic-v0" in err and "do not fit on lanes=1" in err
    assert not (out.exists() and list(out.iterdir()))


def test_record_refuses_a_driver_that_is_not_a_class_without_calling_it(tmp_path, monkeypatch):
    """A function named as the driver is not run: it could do anything (here: leave a marker file)."""
    marker = tmp_path / "called"
    (tmp_path / "standin_func.py").write_text(f"def make():\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RecordError, match="standin_func.make is not a class"):
        load_driver("standin_func:make")
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- export
def test_export_of_a_missing_directory_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert exit_code(["export", str(missing), "--minari", "camdrive/test-v0"]) == 2  # refused before any work
    captured = capsys.readouterr()
    assert captured.err == f"camdrive export: error: {missing}: no such directory\n"
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.integration
def test_export_keeps_takeover_episodes_without_a_reset_seed(tmp_path, monkeypatch):
    """`camdrive watch --record` saves takeovers with reset_seed None; Minari stores them unseeded."""
    write_episode(tmp_path / "demos", steps=4, seed=1)
    takeover = EpisodeWriter(
        tmp_path / "demos", LANE_ID, {"lanes": 3}, None, "human", extra_meta={"takeover": {}}
    )
    frame = np.zeros((6, 8, 3), np.uint8)
    takeover.start(frame, fake_info(0))
    for t in range(3):
        takeover.add(frame, np.array([0.1], np.float32), None, 0.0, fake_info(t + 1))
    takeover.close(terminated=False, truncated=True)
    assert [export.reset_seed(e.meta) for e in iter_episodes(tmp_path / "demos")] == [1, None]

    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    root = tmp_path / "minari"
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    argv = ["export", str(tmp_path / "demos"), "--minari", "camdrive/takeover-v0", "--root", str(root)]
    assert exit_code(argv) == 0
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))  # the export restored it; reading needs it
    dataset = minari.load_dataset("camdrive/takeover-v0")
    seeds = [m.get("seed") for m in dataset.storage.get_episode_metadata(range(dataset.total_episodes))]
    assert dataset.total_episodes == 2 and seeds[0] == 1 and seeds[1] is None


@pytest.mark.integration
def test_export_to_minari_stores_the_recorded_frames_unless_asked_for_jpeg(tmp_path, monkeypatch, capsys):
    """Minari JPEG-encodes image observations by default (nearly every pixel changes); ours are lossless.

    The 64x32 camera is large enough for Minari to treat it as an image (both sides >= 32), which the
    --jpeg export proves by changing the frames. --root is relative, which Minari alone gets wrong.
    """
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    out = tmp_path / "demos"
    argv = ["record", "--driver", "expert", "--out", str(out), "--seed", "7", "--episodes", "2",
            "--steps-per-episode", "6", "--noise", "0.3", "--quiet", *SMALL_ARGS]  # fmt: skip
    assert exit_code(argv) == 0
    recorded = list(iter_episodes(out))
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    for dataset_id, extra in (("camdrive/exact-v0", []), ("camdrive/jpeg-v0", ["--jpeg"])):
        assert exit_code(["export", str(out), "--minari", dataset_id, "--root", "minari", *extra]) == 0
    assert "MINARI_DATASETS_PATH" not in os.environ  # --root applied to the export only
    printed = capsys.readouterr().out
    assert "frames as recorded (lossless)" in printed and "JPEG-encoded frames (lossy)" in printed
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # the export restored it
    dataset = minari.load_dataset("camdrive/exact-v0")
    exported = list(dataset.iterate_episodes())
    assert len(exported) == len(recorded) == 2
    for got, ep in zip(exported, recorded, strict=True):
        assert got.observations.dtype == np.uint8 and got.observations.shape == ep.frames.shape
        assert all(o.tobytes() == f.tobytes() for o, f in zip(got.observations, ep.frames, strict=True))
        np.testing.assert_array_equal(got.actions, ep.actions)
        np.testing.assert_array_equal(got.rewards, ep.rewards.astype(float))
    env = dataset.recover_environment()
    try:
        assert env.spec.id == LANE_ID and env.spec.kwargs == gym.make(LANE_ID, **SMALL).spec.kwargs
        obs, _ = env.reset(seed=recorded[0].meta["reset_seed"])
        np.testing.assert_array_equal(obs, recorded[0].frames[0])  # the same road, camera and look
    finally:
        env.close()

    lossy = next(minari.load_dataset("camdrive/jpeg-v0").iterate_episodes())
    assert lossy.observations.shape == recorded[0].frames.shape
    assert not np.array_equal(lossy.observations, recorded[0].frames)


@pytest.mark.integration
def test_export_refuses_a_minari_that_cannot_be_told_how_to_store_images(tmp_path, monkeypatch, capsys):
    """A Minari without the jpeg_encoding switch might JPEG-encode the frames; no silent lossy export."""
    minari = pytest.importorskip("minari")
    write_episode(tmp_path / "demos", steps=3)

    def old_create(dataset_id, buffer, env=None, data_format=None):  # pragma: no cover - never called
        raise AssertionError("the export must stop before writing")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", old_create)
    argv = ["export", str(tmp_path / "demos"), "--minari", "camdrive/old-v0", "--root", str(tmp_path / "m")]
    assert exit_code(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("camdrive export: error: Minari ") and "no jpeg_encoding option" in err
    assert len(err.splitlines()) == 1
