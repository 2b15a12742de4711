"""The viewer's `EpisodeSink`s that save demonstrations: `Recorder` for `camdrive play --record` (every
episode) and `TakeoverRecorder` for `camdrive watch --record` (every stretch a person drove).

Recording goes through `training.data.demo_writer.EpisodeWriter`. Its checkpoint rewrites the whole
episode so far (uncompressed, fsynced), which takes long enough at a 30 Hz control rate to freeze the
picture, and the final compressed write takes longer (docs/demos.md). A frozen picture while driving is
not acceptable, so `Recorder` does both on a background thread: while a write runs, new steps wait in a
list and are handed to the writer once it is idle, so the writer is never touched by two threads at
once and the viewer never blocks on the disk (except when quitting, which waits for the last episode
to be written).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from training.data.demo_writer import EpisodeWriter

CHECKPOINT_SECONDS = 5.0


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


class TakeoverRecorder:
    """An `EpisodeSink` that saves each stretch a person drove as one demonstration file.

    A stretch starts with the frame the person saw when taking over and ends when the model has the car
    again or the episode ends. Its file has no reset seed (it does not start at a reset): the episode's
    seed and the step it started at are in `takeover` in its meta.
    """

    recording = True

    def __init__(
        self, directory: str | os.PathLike[str], driver: Any, model_name: str, control_hz: float
    ) -> None:
        self.directory, self.driver = Path(directory), driver
        self.model_name, self.control_hz = model_name, control_hz
        self.saved: list[Path] = []
        self._options: dict[str, Any]
        self._env_id, self._options, self._seed = "", {}, 0
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._step = 0
        self._writer: Any = None

    def begin(self, env: gym.Env, seed: int, observation: Any, info: dict[str, Any]) -> None:
        spec = env.unwrapped.spec
        self._env_id = spec.id if spec is not None else ""
        self._options = dict(spec.kwargs) if spec is not None else {}
        self._seed, self._step = int(seed), 0
        self._last = (np.array(observation), dict(info))

    def step(
        self,
        action: Any,
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        if self.driver.human_drove_last_step:
            if self._writer is None:
                self._open()
            self._writer.add(np.array(observation), np.array(action), None, reward, dict(info))
        elif self._writer is not None:
            self._close(False, False)
        self._last = (np.array(observation), dict(info))
        self._step += 1

    def end(self, terminated: bool, truncated: bool) -> None:
        if self._writer is not None:
            self._close(terminated, truncated)

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM: save the stretch being driven so far as a partial file."""
        if self._writer is not None:
            self._writer.checkpoint()

    def _open(self) -> None:
        assert self._last is not None
        self._writer = EpisodeWriter(
            self.directory,
            self._env_id,
            self._options,
            None,
            "human",
            control_hz=self.control_hz,
            extra_meta={
                "takeover": {"model": self.model_name, "episode_seed": self._seed, "from_step": self._step}
            },
        )
        self._writer.start(*self._last)

    def _close(self, terminated: bool, truncated: bool) -> None:
        path = self._writer.close(terminated, truncated)
        self.saved.append(path)
        print(f"recorded takeover {path} ({self._writer.steps} steps)", flush=True)
        self._writer = None
