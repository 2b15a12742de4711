"""Writing demonstration episodes (the format is in `demos`) so that a crash loses only the last seconds.

Every write goes to a hidden temporary file in the same directory, is fsynced, then renamed over its
target, so a reader sees either the old file or the new one, never half of one. While an episode is
being recorded, `<name>.partial.npz` holds the episode so far (rewritten every `checkpoint_seconds`);
the finished episode becomes `<name>.npz` and the partial file is removed. A killed recorder therefore
leaves complete episodes, at most one `.partial.npz` per recorder (skipped by readers unless asked for)
and perhaps a hidden `.*.tmp` file, which readers ignore.

Finished episodes are written with `np.savez_compressed` and checkpoints with `np.savez`. Camera frames
are flat-coloured and compress very well, for a cost paid once per finished episode; checkpoints are
overwritten every few seconds while someone may be driving, so they take the faster uncompressed write
(docs/demos.md has the sizes and times).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from training.common.outputs import fsync_dir, temp_path
from training.common.version import package_version
from training.data.demos import (
    EPISODE_SUFFIX,
    FORMAT,
    FORMAT_VERSION,
    NUMERIC_KINDS,
    PARTIAL_SUFFIX,
    REQUIRED_META,
    STATE_KEYS,
)

DEFAULT_CHECKPOINT_SECONDS = 5.0
RESERVED_META = frozenset(REQUIRED_META) | {"reset_seed", "camdrive_version"}
"""Meta fields the writer sets itself, which `extra_meta` must not override."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_temp(directory: Path, stem: str, arrays: dict[str, np.ndarray], compress: bool) -> Path:
    """Write `arrays` as an npz to a new hidden temp file in `directory`, fsynced; returns its path.

    The name is `common.outputs.temp_path`'s, `.STEM.PID.HEX.tmp`: hidden and ending in
    `demos.TEMP_SUFFIX`, so that no reader takes it for an episode, and naming its writer's process, so
    that a later recorder removes it only when that process is gone (`record.remove_leftovers`). It is
    created with O_EXCL and mode 0o666 (minus the umask), unlike mkstemp's 0o600, so published episodes
    get ordinary permissions.
    """
    for array in arrays.values():
        if array.dtype.hasobject:
            raise TypeError("demo arrays must not hold Python objects (they would need pickle to load)")
    tmp = temp_path(directory / stem)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            # A file object, not a name: np.savez would append ".npz" to a name.
            (np.savez_compressed if compress else np.savez)(f, **cast(dict[str, Any], arrays))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _publish(tmp: Path, target: Path, *, exclusive: bool) -> None:
    """Atomically make `tmp` appear as `target`.

    exclusive=True never replaces an existing file (a hard link fails if `target` exists) and raises
    FileExistsError instead; that is how a writer both reserves a name and fills it in one step.
    """
    try:
        if exclusive:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise
            except OSError:
                # No hard links on this file system: check-then-rename (a small race between writers).
                if target.exists():
                    raise FileExistsError(target) from None
                os.replace(tmp, target)
            else:
                tmp.unlink()
        else:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def _state_value(info: dict[str, Any], key: str) -> float:
    value = info.get(key)
    return math.nan if value is None else float(value)


class EpisodeWriter:
    """Records one episode to `directory`, checkpointing it so that a crash loses only the last seconds.

    A checkpoint is written from `add` once `checkpoint_seconds` of wall time (default 5 s; None: never)
    have passed since the last one, or 10 times the last checkpoint's write time if that is longer (only
    for episodes of hundreds of MB, where rewriting the whole episode every 5 s would dominate).

    Usage: `start(obs, info)` with what `env.reset` returned, then `add(...)` after every `env.step`,
    then `close(terminated, truncated)`. As a context manager it checkpoints the episode so far when the
    block is left without `close` (an exception, Ctrl-C), so the partial file records how far it got.

    meta holds format, format_version, env_id, env_options (the `gymnasium.make` keywords), reset_seed
    (the seed given to `env.reset`), driver, noise_sigma, steps, terminated, truncated, complete, created
    (ISO 8601, UTC), camdrive_version and control_hz, plus the caller's `extra_meta`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        env_id: str,
        env_options: dict[str, Any],
        reset_seed: int | None,
        driver: str,
        *,
        noise_sigma: float = 0.0,
        control_hz: float = 10.0,
        checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
        compress: bool = True,
        extra_meta: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.checkpoint_seconds = checkpoint_seconds
        self.compress = compress
        self._clock = clock
        created = _utc_now()
        extra = dict(extra_meta or {})
        clash = sorted(set(extra) & RESERVED_META)
        if clash:
            raise ValueError(f"extra_meta must not override {', '.join(clash)}")
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "env_id": env_id,
            "env_options": dict(env_options),
            "reset_seed": None if reset_seed is None else int(reset_seed),
            "driver": driver,
            "noise_sigma": float(noise_sigma),
            "steps": 0,
            "terminated": False,
            "truncated": False,
            "complete": False,
            "created": created.isoformat(timespec="seconds"),
            "camdrive_version": package_version(),
            "control_hz": float(control_hz),
            **extra,
        }
        # Fail now, not at the first checkpoint minutes later, if something is not JSON.
        json.dumps(self.meta)
        seed_part = "unseeded" if reset_seed is None else str(int(reset_seed))
        self._base = f"episode_{seed_part}_{created.strftime('%Y%m%dT%H%M%S')}"
        self._stem: str | None = None
        self._frames: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._labels: list[np.ndarray] | None = None
        self._rewards: list[float] = []
        self._state: dict[str, list[float]] = {key: [] for key in STATE_KEYS}
        self._last_checkpoint = 0.0
        self._gap = checkpoint_seconds or 0.0
        self._closed = False

    # -------------------------------------------------------------------------------------- names
    @property
    def path(self) -> Path:
        """Where the finished episode goes (known after `start`)."""
        if self._stem is None:
            raise RuntimeError("EpisodeWriter.start() has not been called")
        return self.directory / f"{self._stem}{EPISODE_SUFFIX}"

    @property
    def partial_path(self) -> Path:
        if self._stem is None:
            raise RuntimeError("EpisodeWriter.start() has not been called")
        return self.directory / f"{self._stem}{PARTIAL_SUFFIX}"

    @property
    def steps(self) -> int:
        """Steps stored whole. A step is whole once its reward is stored, the last thing `add` does."""
        return len(self._rewards)

    # ------------------------------------------------------------------------------------ recording
    def start(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        """The observation and info from `env.reset`. Reserves a file name that no other file has."""
        if self._frames:
            raise RuntimeError("EpisodeWriter.start() called twice")
        self._append_frame(obs, info)
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        for n in itertools.count():
            stem = self._base if n == 0 else f"{self._base}-{n}"
            if (self.directory / f"{stem}{EPISODE_SUFFIX}").exists():
                continue
            tmp = _write_temp(self.directory, stem, arrays, compress=False)
            try:
                _publish(tmp, self.directory / f"{stem}{PARTIAL_SUFFIX}", exclusive=True)
            except FileExistsError:
                continue
            if (self.directory / f"{stem}{EPISODE_SUFFIX}").exists():
                # Another writer finished this name between our check and our reservation.
                (self.directory / f"{stem}{PARTIAL_SUFFIX}").unlink()
                continue
            self._stem = stem
            break
        self._last_checkpoint = self._clock()

    def add(self, obs: np.ndarray, action: Any, label: Any, reward: float, info: dict[str, Any]) -> None:
        """One step: the observation and info `env.step(action)` returned, the action executed, the
        expert's label for it (None when there is none: then for every step) and the reward."""
        if self._stem is None:
            raise RuntimeError("EpisodeWriter.start() must be called with the reset observation first")
        if self._closed:
            raise RuntimeError("EpisodeWriter.add() after close()")
        action_array = np.array(action)
        if action_array.dtype.kind not in NUMERIC_KINDS:
            raise ValueError(f"actions must be numeric, got {action!r}")
        if self._actions and action_array.shape != self._actions[0].shape:
            raise ValueError(f"action shape {action_array.shape} differs from {self._actions[0].shape}")
        if not self._actions:
            if label is not None:
                self._labels = []
        elif (label is None) != (self._labels is None):
            raise ValueError("labels must be given for every step of an episode or for none")
        if label is not None:
            assert self._labels is not None
            label_array = np.array(label)
            if label_array.dtype.kind not in NUMERIC_KINDS:
                raise ValueError(f"labels must be numeric, got {label!r}")
            self._labels.append(label_array)
        self._append_frame(obs, info)
        self._actions.append(action_array)
        self._rewards.append(float(reward))
        if self.checkpoint_seconds is not None and self._clock() - self._last_checkpoint >= self._gap:
            self.checkpoint()

    def _append_frame(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        frame = np.asarray(obs)
        if frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(
                "demos store camera frames: expected a uint8 (H, W, C) observation, "
                f"got {frame.dtype} {frame.shape}"
            )
        if self._frames and frame.shape != self._frames[0].shape:
            raise ValueError(f"frame shape {frame.shape} differs from {self._frames[0].shape}")
        self._frames.append(frame.copy())  # envs may reuse their observation buffer
        for key in STATE_KEYS:
            self._state[key].append(_state_value(info, key))

    def _arrays(self, **meta_updates: Any) -> dict[str, np.ndarray]:
        """The episode's whole steps as the file's arrays. Ctrl-C or SIGTERM can cut an `add` short
        (its frame stored, not yet its action or reward): the checkpoint the exit then writes leaves
        that half step out, so that its arrays agree in length and the file loads."""
        steps = self.steps
        meta = {**self.meta, **meta_updates, "steps": steps}
        actions, labels = self._actions[:steps], None if self._labels is None else self._labels[:steps]
        arrays: dict[str, np.ndarray] = {
            "frames": np.stack(self._frames[: steps + 1]),
            "actions": np.stack(actions) if actions else np.zeros((0,), np.float32),
            "rewards": np.asarray(self._rewards, dtype=np.float32),
        }
        if labels is not None:
            arrays["labels"] = np.stack(labels) if labels else np.zeros((0,), np.float32)
        for key, values in self._state.items():
            arrays[f"state_{key}"] = np.asarray(values[: steps + 1], dtype=np.float64)
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    def checkpoint(self) -> Path:
        """Write the episode so far to `<name>.partial.npz` (atomically); returns its path."""
        if self._closed:
            raise RuntimeError("EpisodeWriter.checkpoint() after close()")
        target = self.partial_path
        began = self._clock()
        _publish(
            _write_temp(self.directory, self._stem or "", self._arrays(), compress=False),
            target,
            exclusive=False,
        )
        self._last_checkpoint = self._clock()
        # Each checkpoint rewrites the whole episode so far: for very long episodes, space them out so
        # that checkpointing never takes more than ~10 % of the time.
        self._gap = max(self.checkpoint_seconds or 0.0, 10 * (self._last_checkpoint - began))
        return target

    def close(self, terminated: bool, truncated: bool) -> Path:
        """Write the finished episode to `<name>.npz` (atomically, never over another file), remove the
        partial file and return the episode's path."""
        if self._closed:
            raise RuntimeError("EpisodeWriter.close() called twice")
        ending = {"terminated": bool(terminated), "truncated": bool(truncated), "complete": True}
        final = self.path
        tmp = _write_temp(self.directory, self._stem or "", self._arrays(**ending), compress=self.compress)
        _publish(tmp, final, exclusive=True)
        self.meta.update(ending)
        self._closed = True
        with contextlib.suppress(FileNotFoundError):
            self.partial_path.unlink()
        fsync_dir(self.directory)
        return final

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._closed or self._stem is None:
            return
        if exc_type is None:
            self.checkpoint()
            return
        try:
            self.checkpoint()
        except Exception as e:  # keep the original exception, which is the one that matters
            warnings.warn(f"could not checkpoint {self.partial_path}: {e}", stacklevel=2)
