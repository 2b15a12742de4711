"""`camdrive play` (drive yourself, optionally recording demonstrations) and `camdrive replay` (watch or
verify a recorded episode).

play. The lane task uses `action_type="steer_throttle"` so the person controls speed too; the traffic
task keeps Traffic-v0's Discrete(5) actions. The env runs at `--hz` (30 by default, not the training
default of 10) because a camera picture that changes only 10 times a second is hard to steer by; the
recording's meta stores its control_hz, so a dataset can tell the rates apart (use `--hz 10` to record
at the rate `camdrive record` uses). Episode i is reset with seed + i, as in `camdrive record`, so
every file names the seed that rebuilds its road and traffic.

Recording goes through `training.data.demo_writer.EpisodeWriter`. Its checkpoint rewrites the whole episode so
far (uncompressed, fsynced): ~0.5 s for a 60 s episode at 30 Hz, and the final compressed write takes
longer. A frozen picture while driving is not acceptable, so `Recorder` does both on a background
thread: while a write runs, new steps wait in a list and are handed to the writer once it is idle, so
the writer is never touched by two threads at once and the viewer never blocks on the disk (except
when quitting, which waits for the last episode to be written).

Outputs. `--record DIR` and `--screenshot PNG` are checked before the window opens (`common.outputs`):
a drive of minutes must not end in an error about a path. An existing screenshot is replaced only with
`--force`, and the picture is written atomically, so a stop half-way keeps the old file. A new
`--record` start removes what killed recorders left in DIR (`training.data.record.remove_leftovers`).

replay re-creates the env from the file's env_id and env_options, resets it with the file's reset_seed
and executes the recorded actions. The simulator is deterministic, so the observations must equal the
recorded frames bit for bit; `--verify` checks exactly that without opening a window. It takes several
files (a shell glob of a directory's episodes, or the directory itself): the viewer plays them one after
another in one window, --verify prints a line per file and a summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

import sim  # noqa: F401  (registers the camdrive environments)
from training.common import exit_codes
from training.common.outputs import (
    OutputError,
    check_output_dir,
    check_output_file,
    remove_stale_temps,
    replacing,
)

if TYPE_CHECKING:
    from training.data.demos import DemoError

ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "lane": ("camdrive/LaneKeep-v0", {"action_type": "steer_throttle"}),
    "traffic": ("camdrive/Traffic-v0", {}),
}
MIN_SIZE = (320, 200)
"""Smallest window (width, height) the HUD fits in."""
CHECKPOINT_SECONDS = 5.0


def display_problem(command: str = "camdrive play") -> str | None:
    """Why no window can be opened here, or None if it is worth trying (set_mode may still fail)."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return None  # the user picked an SDL video driver (dummy for headless runs, x11, wayland...)
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return (
            "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset). Run it in a desktop "
            f'session, under a virtual X server (xvfb-run -s "-screen 0 1280x800x24" {command}), or '
            "with SDL_VIDEODRIVER=dummy for a run without a visible window."
        )
    return None


# ------------------------------------------------------------------------------------------ recording
class Recorder:
    """The viewer's `EpisodeSink` for `--record DIR`: one EpisodeWriter per episode, written off-thread."""

    recording = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        env_id: str,
        env_options: dict[str, Any],
        driver: str,
        control_hz: float,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        log: Any = None,
    ) -> None:
        self.directory = Path(directory)
        self.env_id, self.env_options, self.driver = env_id, dict(env_options), driver
        self.control_hz, self.checkpoint_seconds = control_hz, checkpoint_seconds
        self.log = log if log is not None else sys.stdout
        self.saved: list[Path] = []
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camdrive-record")
        self._writer: Any = None
        self._job: Future | None = None
        """The writer's checkpoint running on the I/O thread, if any; the writer is off-limits meanwhile."""
        self._pending: list[tuple[Any, ...]] = []
        self._last_checkpoint = 0.0
        self._jobs: list[Future] = []
        self._lock = threading.Lock()

    def begin(self, env: gym.Env, seed: int, observation: Any, info: dict[str, Any]) -> None:
        from training.data.demo_writer import EpisodeWriter

        self._raise_failures()
        self._writer = EpisodeWriter(
            self.directory,
            self.env_id,
            self.env_options,
            seed,
            self.driver,
            control_hz=self.control_hz,
            checkpoint_seconds=None,  # checkpoints are ours, off the display thread
        )
        self._writer.start(observation, info)
        self._job = None
        self._pending = []
        self._last_checkpoint = time.monotonic()

    def step(
        self,
        action: Any,
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        if self._writer is None:
            return
        # A person's action is its own label: there is no expert behind it.
        self._pending.append((np.array(observation), np.array(action), None, reward, dict(info)))
        if self._job is not None and not self._job.done():
            return
        self._raise_failures()
        self._flush()
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds:
            self._last_checkpoint = time.monotonic()
            self._job = self._submit(self._writer.checkpoint)

    def end(self, terminated: bool, truncated: bool) -> None:
        writer, pending = self._writer, self._pending
        self._writer, self._pending, self._job = None, [], None
        if writer is None:
            return

        def finish() -> None:
            # Runs on the I/O thread after any checkpoint of this writer (one worker: jobs run in order).
            for step in pending:
                writer.add(*step)
            if writer.steps == 0:
                # Reset or quit before the first step: nothing worth a file.
                writer.partial_path.unlink(missing_ok=True)
                return
            path = writer.close(terminated, truncated)
            with self._lock:
                self.saved.append(path)
            how = "terminated" if terminated else "truncated" if truncated else "stopped"
            print(f"recorded {path} ({writer.steps} steps, {how})", file=self.log, flush=True)

        self._submit(finish)

    def close(self) -> list[Path]:
        """Wait for every write; returns the finished episode files. Raises if a write failed."""
        self.end(False, False)
        self._io.shutdown(wait=True)
        self._raise_failures()
        return list(self.saved)

    def _flush(self) -> None:
        for step in self._pending:
            self._writer.add(*step)
        self._pending = []

    def _submit(self, fn: Any) -> Future:
        job = self._io.submit(fn)
        self._jobs.append(job)
        return job

    def _raise_failures(self) -> None:
        """Surface an exception of a finished background write (a full disk must not pass silently)."""
        still = []
        for job in self._jobs:
            if not job.done():
                still.append(job)
            elif job.exception() is not None:
                raise RuntimeError(f"recording failed: {job.exception()}") from job.exception()
        self._jobs = still


# --------------------------------------------------------------------------------------------- replay
class ReplayDriver:
    """Plays back recorded actions in order; `finished` once they have all been used."""

    name = "replay"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions
        self.t = 0

    def reset(self, env: gym.Env) -> None:
        self.t = 0

    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> Any:
        action = self.actions[self.t]
        self.t += 1
        return action

    @property
    def finished(self) -> bool:
        return self.t >= len(self.actions)


@dataclass
class Verification:
    """The result of re-simulating an episode and comparing it with the recording."""

    ok: bool
    steps: int
    """Steps compared."""
    message: str


def make_env(meta: dict[str, Any], path: str | os.PathLike[str]) -> gym.Env:
    """The env a recording was made in, or DemoError naming `path` when it cannot be made any more.

    A file can hold options this camdrive no longer knows (renamed or removed since it was recorded)
    or values it now rejects: that is a problem of the file, reported like any other, not a crash.
    """
    from agent.env_spec import make_env as make_checked_env
    from training.data.demos import DemoError

    try:
        return make_checked_env(meta["env_id"], meta["env_options"])
    except ValueError as e:
        raise DemoError(path, f"cannot make {meta['env_id']} with the recorded env_options: {e}") from None


def verify_episode(episode: Any) -> Verification:
    """Reset with the recorded seed, execute the recorded actions, compare every frame and reward.

    Raises DemoError when the recorded env cannot be made (see `make_env`).
    """
    meta = episode.meta
    if meta.get("reset_seed") is None:
        return Verification(False, 0, "the episode has no reset_seed, so its start cannot be rebuilt")
    frames, actions, rewards = episode.frames, episode.actions, episode.rewards
    env = make_env(meta, episode.path)
    try:
        obs, _ = env.reset(seed=int(meta["reset_seed"]))
        problem = _frame_difference(obs, frames[0])
        if problem:
            return Verification(False, 0, f"frame 0 (after reset) differs: {problem}")
        for t in range(len(actions)):
            obs, reward, terminated, truncated, _ = env.step(actions[t])
            problem = _frame_difference(obs, frames[t + 1])
            if problem:
                return Verification(False, t + 1, f"frame {t + 1} (after step {t}) differs: {problem}")
            if np.float32(reward) != rewards[t]:
                return Verification(
                    False, t + 1, f"reward of step {t} differs: {float(reward)!r} != {float(rewards[t])!r}"
                )
            last = t == len(actions) - 1
            if (terminated or truncated) and not last:
                return Verification(False, t + 1, f"the episode ended at step {t}, the recording goes on")
            if last and bool(meta.get("terminated")) and not terminated:
                return Verification(False, t + 1, "the recording ends terminated, the re-simulation does not")
    finally:
        env.close()
    n = len(actions)
    return Verification(True, n, f"{n} steps re-simulated, all {n + 1} frames and {n} rewards identical")


def _frame_difference(obs: Any, frame: np.ndarray) -> str:
    obs = np.asarray(obs)
    if obs.shape != frame.shape or obs.dtype != frame.dtype:
        return f"shape/dtype {obs.shape} {obs.dtype} != recorded {frame.shape} {frame.dtype}"
    if np.array_equal(obs, frame):
        return ""
    diff = np.abs(obs.astype(np.int16) - frame.astype(np.int16))
    return f"{int(np.count_nonzero(diff.max(axis=-1)))} pixels differ, by up to {int(diff.max())}"


# ------------------------------------------------------------------------------------------- commands
def _check_view_args(args: argparse.Namespace) -> str | None:
    if args.width < MIN_SIZE[0] or args.height < MIN_SIZE[1]:
        return f"the window must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, got {args.width}x{args.height}"
    if args.fps < 0:
        return f"--fps must be >= 0 (0 = unpaced), got {args.fps}"
    return None


def _run_viewer(viewer: Any, args: argparse.Namespace, prog: str) -> int:
    """Open the window, run until quit, save the screenshot; 1 with a message when there is no display."""
    from sim.viewer import DisplayUnavailableError

    try:
        viewer.open()
    except DisplayUnavailableError as e:
        print(f"{prog}: {e}. {display_problem(prog) or 'Is a display available?'}", file=sys.stderr)
        return 1
    stats = viewer.run(max_frames=args.frames, max_seconds=args.seconds)
    _save_screenshot(viewer, args)
    _print_stats(stats, args)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """OutputError for a --screenshot or --record that cannot be written, or an existing screenshot
    without --force: found before the window opens, not when the person quits after a drive."""
    if args.screenshot:
        check_output_file(args.screenshot, "--screenshot", force=args.force)
        remove_stale_temps(args.screenshot)
    if getattr(args, "record", None):
        check_output_dir(args.record, "--record")


def _save_screenshot(viewer: Any, args: argparse.Namespace) -> None:
    """--screenshot: save what the window shows now, atomically (a stop half-way keeps the old file)."""
    if args.screenshot:
        with replacing(args.screenshot) as tmp:
            viewer.save_screenshot(tmp)
        print(f"screenshot saved to {args.screenshot}")


def _print_stats(stats: Any, args: argparse.Namespace) -> None:
    """The closing line of a viewer session: frames, frame rate, env steps, episodes."""
    size = f"{args.width}x{args.height}"
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps at {size}), "
        f"{stats.steps} env steps, {stats.episodes} episode(s)"
    )


def play_main(args: argparse.Namespace, *, script: Iterable[tuple[int, Any]] = ()) -> int:
    """`camdrive play`. `script` ((frame, pygame event) pairs) drives it from code: tests, demos."""
    prog = "camdrive play"
    problem = _check_view_args(args)
    if problem is None:
        try:
            _check_outputs(args)
        except OutputError as e:
            problem = str(e)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    problem = display_problem()
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1
    from agent.human import HumanInput
    from sim.viewer import Viewer

    env_id, base_options = ENVS[args.env]
    options = {**base_options, "control_hz": float(args.hz)}
    try:
        env = gym.make(env_id, **options)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    driver = HumanInput(env.action_space)
    recorder = None
    if args.record:
        from training.data.record import remove_leftovers

        remove_leftovers(Path(args.record))  # what a killed `play --record` or recorder left there
        recorder = Recorder(args.record, env_id, options, driver.name, float(args.hz))
    viewer = Viewer(
        env,
        driver,
        size=(args.width, args.height),
        fps=args.fps,
        seed=args.seed,
        sink=recorder,
        script=script,
        title=f"camdrive play - {env_id}",
    )
    try:
        code = _run_viewer(viewer, args, prog)
    finally:
        viewer.close()
        saved = recorder.close() if recorder is not None else []
        env.close()
    if recorder is not None:
        print(f"{len(saved)} episode(s) recorded in {args.record}")
    return code


def replay_main(args: argparse.Namespace) -> int:
    """`camdrive replay FILE... [--verify]`.

    Several files, because a shell glob such as data/lane/episode_*.npz is how a directory's episodes
    are named. A file that cannot be used does not stop the run: it is reported on stderr (one line
    naming it) and the other files are still checked or played, so one bad file among hundreds never
    hides the state of the rest.
    """
    prog = "camdrive replay"
    if not args.verify:  # --verify opens no window: it takes no screenshot
        try:
            _check_outputs(args)
        except OutputError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return exit_codes.BAD_INPUT
    items = _replay_items(args.files)
    if args.verify:
        return _verify_files(items, prog)
    return _play_files(items, args, prog)


def _replay_items(arguments: list[str]) -> list[str | DemoError]:
    """The files to replay, in order: each FILE as given (so messages name it as the user wrote it), and
    for a directory its finished episodes as `camdrive data info` counts them (partial ones left out).
    A directory that cannot be listed or holds no finished episode is a DemoError in its place."""
    from training.data.demo_reader import list_files
    from training.data.demos import DemoError

    items: list[str | DemoError] = []
    for argument in arguments:
        if not Path(argument).is_dir():
            items.append(argument)
            continue
        episodes = [str(path) for path in list_files(argument).episodes]
        items.extend(episodes or [DemoError(argument, "no finished episode files")])
    return items


def _verify_files(items: list[str | DemoError], prog: str) -> int:
    """`--verify` of every item: an OK or MISMATCH line per file, a summary line when there are several.

    Exit code as cmp and diff have it: 0 all match, 1 a mismatch, 2 trouble (a file could not be
    checked), which wins over 1 because then not everything was compared.
    """
    from training.data.demo_reader import load_episode
    from training.data.demos import DemoError

    ok = mismatched = unchecked = 0
    for item in items:
        try:
            if isinstance(item, DemoError):
                raise item
            result = verify_episode(load_episode(item))
        except DemoError as e:
            print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
            unchecked += 1
            continue
        if result.ok:
            ok += 1
        else:
            mismatched += 1
        # Flushed: each file takes seconds, so progress shows even through a pipe (| tee log).
        print(f"{'OK' if result.ok else 'MISMATCH'}: {item}: {result.message}", flush=True)
    if len(items) > 1:
        print(f"{len(items)} files: {ok} OK, {mismatched} MISMATCH, {unchecked} could not be checked")
    return 2 if unchecked else 1 if mismatched else 0


class _NextFile(Exception):  # noqa: N818  (a signal to move on, not an error)
    """Raised by `_EndOfFile` from the viewer's after_frame hook to leave `Viewer.run` for the next file."""


class _EndOfFile:
    """after_frame hook of a replay that has a next file: once the replay has run out and its last
    picture has been shown for END_HOLD_SECONDS of viewer time (paused and help time not counted), move on.

    Viewer time, not wall time: a frame counts 1/fps (one control period when unpaced, as the viewer's
    own clock counts it), so an unpaced run moves on after a fixed number of frames.
    """

    def __init__(self, driver: ReplayDriver, frame_seconds: float) -> None:
        self.driver, self.frame_seconds = driver, frame_seconds
        self.shown = 0.0

    def __call__(self, viewer: Any) -> None:
        from sim.viewer import END_HOLD_SECONDS

        if not self.driver.finished:  # still playing, or restarted with R
            self.shown = 0.0
        elif not (viewer.paused or viewer.show_help):
            self.shown += self.frame_seconds
            if self.shown >= END_HOLD_SECONDS:
                raise _NextFile


def _play_files(items: list[str | DemoError], args: argparse.Namespace, prog: str) -> int:
    """Show the replays one after another in one window; 1 if any file could not be played.

    Every file is loaded (without frames) and checked before the window opens, so most problems are
    reported at once; an env that cannot be made is found when its turn comes and skipped. Each file
    gets its own Viewer (files may differ in env and options) on the same window.
    """
    from sim.viewer import DisplayUnavailableError, Viewer, ViewerStats
    from training.data.demo_reader import load_episode
    from training.data.demos import DemoError

    failed = False
    episodes = []
    for item in items:
        try:
            if isinstance(item, DemoError):
                raise item
            # Without frames: the viewer re-simulates them, and all files' frames could fill the memory.
            episode = load_episode(item, frames=False)
        except DemoError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            failed = True
            continue
        if episode.meta.get("reset_seed") is None:
            print(f"{prog}: error: {item} has no reset_seed; its episode cannot be rebuilt", file=sys.stderr)
            failed = True
            continue
        episodes.append((item, episode))
    if not episodes:
        return 1
    problem = _check_view_args(args)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    problem = display_problem(prog)
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1

    viewer: Viewer | None = None
    env: gym.Env | None = None
    frames = steps = replays = 0
    start = time.perf_counter()
    try:
        for i, (name, episode) in enumerate(episodes):
            meta = episode.meta
            try:
                next_env = make_env(meta, name)
            except DemoError as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                failed = True
                continue
            if env is not None:
                # The window stays open: the next Viewer's open() gets pygame's one display back.
                env.close()
            env = next_env
            driver = ReplayDriver(episode.actions)
            position = f"file {i + 1} of {len(episodes)}: {Path(name).name}"
            viewer = Viewer(
                env,
                driver,
                size=(args.width, args.height),
                fps=args.fps,
                seed=int(meta["reset_seed"]),
                same_seed=True,
                label="REPLAY",
                at_episode_end="hold",
                title=f"camdrive replay - {Path(name).name} ({meta['driver']})",
                hud_extra=(lambda position=position: [position]) if len(episodes) > 1 else None,
            )
            try:
                viewer.open()
            except DisplayUnavailableError as e:
                print(f"{prog}: {e}. {display_problem(prog) or 'Is a display available?'}", file=sys.stderr)
                return 1
            last = i == len(episodes) - 1
            frame_seconds = 1.0 / args.fps if args.fps > 0 else viewer.period
            elapsed = time.perf_counter() - start
            try:
                viewer.run(
                    max_frames=None if args.frames is None else args.frames - frames,
                    max_seconds=None if args.seconds is None else args.seconds - elapsed,
                    after_frame=None if last else _EndOfFile(driver, frame_seconds),
                )
                stopped = True  # Esc, Q, the window closed, or --frames / --seconds used up
            except _NextFile:
                stopped = False
            frames, steps, replays = (
                frames + viewer.frames,
                steps + viewer.total_steps,
                replays + viewer.episodes,
            )
            if stopped:
                break
        if viewer is None:
            return 1
        _save_screenshot(viewer, args)
    finally:
        if viewer is not None:
            viewer.close()
        if env is not None:
            env.close()
    _print_stats(ViewerStats(frames, steps, episodes=replays, seconds=time.perf_counter() - start), args)
    return 1 if failed else 0
