"""`camdrive replay`: watch recorded episodes in the viewer, one file after another, or `--verify` them.

replay re-creates the env from each file's env_id and env_options, resets it with the file's reset_seed
and executes the recorded actions (`ReplayDriver`), so the viewer shows the episode as it was driven
without storing a window's worth of pictures. It takes several files (a shell glob of a directory's
episodes, or the directory itself): the viewer plays them one after another in one window; `--verify`
(`replay_verify`) checks each one headless and prints a line per file and a summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

import sim  # noqa: F401  (registers the camdrive environments)
from training.apps.replay_verify import make_env, verify_files
from training.apps.viewer_session import (
    check_outputs,
    check_view_args,
    display_problem,
    open_window,
    print_stats,
    save_screenshot,
)
from training.common import exit_codes
from training.common.outputs import OutputError
from training.data.demo_reader import list_files, load_episode
from training.data.demos import DemoError


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
            check_outputs(args)
        except OutputError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return exit_codes.BAD_INPUT
    items = _replay_items(args.files)
    if args.verify:
        return verify_files(items, prog)
    return _play_files(items, args, prog)


def _replay_items(arguments: list[str]) -> list[str | DemoError]:
    """The files to replay, in order: each FILE as given (so messages name it as the user wrote it), and
    for a directory its finished episodes as `camdrive data info` counts them (partial ones left out).
    A directory that cannot be listed or holds no finished episode is a DemoError in its place."""
    items: list[str | DemoError] = []
    for argument in arguments:
        if not Path(argument).is_dir():
            items.append(argument)
            continue
        episodes = [str(path) for path in list_files(argument).episodes]
        items.extend(episodes or [DemoError(argument, "no finished episode files")])
    return items


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
    from sim.viewer import Viewer, ViewerStats

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
    problem = check_view_args(args)
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
                # cast: mypy cannot infer a lambda with a default argument (binding the loop's value).
                hud_extra=cast(Callable[[], list[str]], lambda position=position: [position])
                if len(episodes) > 1
                else None,
            )
            if not open_window(viewer, prog):
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
        save_screenshot(viewer, args)
    finally:
        if viewer is not None:
            viewer.close()
        if env is not None:
            env.close()
    print_stats(ViewerStats(frames, steps, episodes=replays, seconds=time.perf_counter() - start), args)
    return 1 if failed else 0
