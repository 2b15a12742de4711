"""Demonstrations on disk: one `.npz` file per episode, written crash-safely and read without trusting it.

Why this format:

- One file per episode, so a crash, a bad disk block or a bug can spoil at most one episode, datasets are
  merged by copying files, and readers stream episode by episode instead of loading a whole dataset.
- Plain `.npz` (a zip of `.npy` arrays) whose arrays are read with `allow_pickle=False`: loading a file
  never executes code, whoever made it. Every array is a plain numeric array; the metadata is JSON in a
  0-d unicode array. Reading trusts nothing: only regular files are opened (a named pipe would block),
  every array's declared shape and dtype must match the bytes its zip member really holds, which its
  compressed size must be able to give, before any array is allocated; meta fields, actions and labels
  are checked against the env the meta names. Any problem is a DemoError naming the file, in one line.
- Crash safety. Every write goes to a hidden temporary file in the same directory, is fsynced, then
  renamed over its target, so a reader sees either the old file or the new one, never half of one. While
  an episode is being recorded, `<name>.partial.npz` holds the episode so far (rewritten every
  `checkpoint_seconds`); the finished episode becomes `<name>.npz` and the partial file is removed.
  A killed recorder therefore leaves complete episodes, at most one `.partial.npz` per recorder (skipped
  by readers unless asked for) and perhaps a hidden `.*.tmp` file, which readers ignore.
- Finished episodes are written with `np.savez_compressed` and checkpoints with `np.savez`. Camera frames
  are flat-coloured and compress about 30x (a 600-frame 66x200x3 episode: 0.73 MB instead of 24 MB), for
  ~120 ms once per finished episode; checkpoints are overwritten every few seconds while someone may be
  driving at 10 Hz, so they take the ~30 ms uncompressed write instead.

Layout of an episode of T steps (format_version 1):

    frames        uint8   (T+1, H, W, C)  observation after reset and after every step
    actions       numeric (T, ...)        the actions executed
    labels        numeric (T, ...)        the expert's label for each step (absent when there is none)
    rewards       float32 (T,)
    state_<key>   float64 (T+1,)          privileged state from `info`, for each key of STATE_KEYS
                                          (NaN where the env did not report it; booleans as 0/1)
    meta          0-d unicode             JSON: see EpisodeWriter
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import math
import os
import re
import secrets
import stat
import sys
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim import check_env_id
from sim.validation import check_at_least
from training.common.outputs import fsync_dir
from training.common.version import package_version

FORMAT = "camdrive-demo"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
"""format_version values this code reads. A newer writer bumps FORMAT_VERSION when old readers would
misread its files; readers refuse versions they do not know rather than guess."""

STATE_KEYS: tuple[str, ...] = (
    "lateral_offset",
    "heading_error",
    "speed",
    "lane",
    "distance",
    "s",
    "d",
    "x",
    "y",
    "yaw",
    "steer",
    "collision",
    "off_road",
)
"""`info` keys stored per frame as `state_<key>`: enough to compute metrics and relabel without replaying."""

EPISODE_SUFFIX = ".npz"
PARTIAL_SUFFIX = ".partial.npz"
TEMP_SUFFIX = ".tmp"
DEFAULT_CHECKPOINT_SECONDS = 5.0

REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "env_id": str,
    "env_options": dict,
    "driver": str,
    "noise_sigma": (int, float),
    "steps": int,
    "terminated": bool,
    "truncated": bool,
    "complete": bool,
    "created": str,
    "control_hz": (int, float),
}
_RESERVED_META = frozenset(REQUIRED_META) | {"reset_seed", "camdrive_version"}
_ZIP_MAGIC = b"PK\x03\x04"
_NUMERIC_KINDS = "biuf"


class DemoError(Exception):
    """A demonstration file (or directory) that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.what = " ".join(what.splitlines())  # one line, even when it quotes a multi-line message
        super().__init__(f"{self.path}: {self.what}")


@dataclass
class Episode:
    """One loaded episode. `frames` is None when it was loaded with `frames=False` (summaries)."""

    path: Path
    meta: dict[str, Any]
    frames: np.ndarray | None
    frame_shape: tuple[int, ...]
    """Shape of the frames array, (T+1, H, W, C), known even when the frames were not read."""
    actions: np.ndarray
    rewards: np.ndarray
    labels: np.ndarray | None
    state: dict[str, np.ndarray] = field(default_factory=dict)
    """STATE_KEYS -> float64 (T+1,) arrays (the file's `state_<key>` arrays)."""

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frame_shape[0])

    @property
    def driver(self) -> str:
        return str(self.meta["driver"])

    @property
    def complete(self) -> bool:
        return bool(self.meta["complete"])

    @property
    def control_hz(self) -> float:
        return float(self.meta["control_hz"])

    @property
    def kilometres(self) -> float:
        """Distance driven along the road, from the last `distance` reading (0 when it is unknown)."""
        distance = self.state.get("distance")
        if distance is None or distance.size == 0 or not math.isfinite(float(distance[-1])):
            return 0.0
        return float(distance[-1]) / 1000.0


# ------------------------------------------------------------------------------------------- writing
def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_temp(directory: Path, stem: str, arrays: dict[str, np.ndarray], compress: bool) -> Path:
    """Write `arrays` as an npz to a new hidden temp file in `directory`, fsynced; returns its path.

    The name starts with "." and ends with TEMP_SUFFIX so that no reader takes it for an episode. It is
    created with O_EXCL and mode 0o666 (minus the umask), unlike mkstemp's 0o600, so published episodes
    get ordinary permissions.
    """
    for array in arrays.values():
        if array.dtype.hasobject:
            raise TypeError("demo arrays must not hold Python objects (they would need pickle to load)")
    tmp = directory / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            # A file object, not a name: np.savez would append ".npz" to a name.
            (np.savez_compressed if compress else np.savez)(f, **arrays)
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
        clash = sorted(set(extra) & _RESERVED_META)
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
        return len(self._actions)

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
        if action_array.dtype.kind not in _NUMERIC_KINDS:
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
            if label_array.dtype.kind not in _NUMERIC_KINDS:
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
        meta = {**self.meta, **meta_updates, "steps": len(self._actions)}
        arrays: dict[str, np.ndarray] = {
            "frames": np.stack(self._frames),
            "actions": np.stack(self._actions) if self._actions else np.zeros((0,), np.float32),
            "rewards": np.asarray(self._rewards, dtype=np.float32),
        }
        if self._labels is not None:
            arrays["labels"] = np.stack(self._labels) if self._labels else np.zeros((0,), np.float32)
        for key, values in self._state.items():
            arrays[f"state_{key}"] = np.asarray(values, dtype=np.float64)
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


# ------------------------------------------------------------------------------------------- reading
MAX_DEFLATE_RATIO = 1032
"""Deflate's largest possible expansion (a long run of one byte value). A zip member claiming to hold
more bytes than this times its compressed size is lying, and none is read."""

_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    RuntimeError,  # zipfile: an encrypted member (refused before reading, so only a race gets here)
    NotImplementedError,  # zipfile: an unknown compression method (likewise)
)


@dataclass(frozen=True)
class _Member:
    """What a .npy member's headers say, checked against the bytes it holds (see `_check_member`)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def _open_regular(path: Path) -> Any:
    """The file opened for reading, or DemoError unless it is a regular file.

    Opened without blocking and checked on the open descriptor: a named pipe would otherwise block the
    reader until a writer comes (forever), and a device such as /dev/zero never ends.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DemoError(path, "no such file") from None
    except OSError as e:
        raise DemoError(path, f"cannot read the file ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "a device"
        raise DemoError(path, f"not a regular file ({kind})")
    return os.fdopen(fd, "rb")


def _memory_bytes() -> int | None:
    """This machine's physical memory, or None where the platform cannot tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


def _read_header(stream: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"unsupported .npy version {version}")


def _check_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive_size: int) -> _Member:
    """Shape, dtype and size of a .npy member from its headers alone, or DemoError.

    numpy allocates the whole array its header declares before reading a byte of it, so a 1 KB file
    declaring 40 GB of frames would end in a MemoryError (or worse). Here the declared size must equal
    the bytes the member holds, and those must be possible from its compressed size, before any array
    is read. Object arrays, which only pickle can load, are refused by their header.
    """
    name = info.filename.removesuffix(".npy")
    if info.flag_bits & 0x1:
        raise DemoError(path, f"array {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        method = info.compress_type
        raise DemoError(
            path, f"array {name!r} uses zip method {method}, not stored or deflated as numpy writes"
        )
    if info.header_offset + info.compress_size > archive_size:
        raise DemoError(path, f"array {name!r} runs past the end of the file (truncated?)")
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO
    if info.file_size > info.compress_size * ratio + 64:
        raise DemoError(
            path,
            f"array {name!r} claims {info.file_size} bytes from {info.compress_size} compressed ones, more "
            "than zip compression can give (a corrupt or forged zip header)",
        )
    try:
        with zf.open(info) as stream:
            shape, _, dtype = _read_header(stream)
            held = info.file_size - stream.tell()
    except Exception as e:  # numpy parses the header text with tokenize and ast: SyntaxError, TokenError...
        # (but it evaluates only literals, never code); whatever it raises, the header is the problem.
        raise DemoError(
            path, f"array {name!r} has no readable .npy header ({type(e).__name__}: {e})"
        ) from None
    if dtype.hasobject:
        raise DemoError(path, f"array {name!r} holds Python objects, which only pickle could load: refused")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != held:
        raise DemoError(
            path, f"array {name!r} declares {dtype} {tuple(shape)} ({nbytes} bytes) but holds {held} bytes"
        )
    return _Member(tuple(int(n) for n in shape), np.dtype(dtype), nbytes)


def _check_members(path: Path, zf: zipfile.ZipFile, archive_size: int, frames: bool) -> dict[str, _Member]:
    """Every .npy member checked by `_check_member`, by array name, and the arrays to be read must fit in
    this machine's memory (a real 1000:1 deflate bomb has honest sizes)."""
    members = {}
    for info in zf.infolist():
        if info.filename.endswith(".npy"):
            members[info.filename.removesuffix(".npy")] = _check_member(path, zf, info, archive_size)
    needed = sum(m.nbytes for name, m in members.items() if frames or name != "frames")
    memory = _memory_bytes()
    if memory is not None and needed > memory:
        raise DemoError(
            path,
            f"its arrays would take {_size(needed)}, more than this machine's {_size(memory)} of memory",
        )
    return members


def _parse_meta(path: Path, meta_array: np.ndarray) -> dict[str, Any]:
    """The meta JSON object. Python's parser raises ValueError for a number of more than 4300 digits and
    RecursionError for arrays nested thousands deep as well as JSONDecodeError: all bad meta."""
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise DemoError(
            path, f"'meta' is not a JSON string (a 0-d unicode array): {meta_array.dtype} {meta_array.shape}"
        )
    try:
        meta = json.loads(str(meta_array[()]))
    except (ValueError, RecursionError) as e:
        raise DemoError(path, f"'meta' is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(meta, dict):
        raise DemoError(path, "'meta' is not a JSON object")
    return meta


def _check_meta(path: Path, meta_array: np.ndarray) -> dict[str, Any]:
    meta = _parse_meta(path, meta_array)
    if meta.get("format") != FORMAT:
        raise DemoError(path, f"not a camdrive demo (meta format is {meta.get('format')!r}, not {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        readable = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise DemoError(
            path,
            f"unsupported format_version {version!r} (this camdrive reads version {readable}); "
            "it was written by a newer camdrive: upgrade to read it",
        )
    missing = sorted(key for key in REQUIRED_META if key not in meta)
    if missing:
        raise DemoError(path, f"meta lacks field(s) {', '.join(missing)}")
    for key, types in REQUIRED_META.items():
        value = meta[key]
        wrong_bool = isinstance(value, bool) and types is not bool
        if not isinstance(value, types) or wrong_bool:
            raise DemoError(path, f"meta field {key!r} has the wrong type ({value!r:.80})")
    _check_meta_values(path, meta)
    return meta


def _check_meta_values(path: Path, meta: dict[str, Any]) -> None:
    """The meta fields that are used as numbers, seeds and env arguments hold values that work as such."""
    from agent.env_spec import check_env_options

    # Durations are frames / control_hz (summaries, hours of data): 0 would divide by zero, and a
    # negative, NaN or infinite rate (JSON allows NaN and Infinity) would give nonsense totals.
    try:
        check_at_least("control_hz", meta["control_hz"], 0, strict=True)
    except ValueError:
        raise DemoError(
            path, f"meta field 'control_hz' must be a finite number > 0, got {meta['control_hz']!r}"
        ) from None
    sigma = meta["noise_sigma"]
    if not (math.isfinite(sigma) and sigma >= 0):
        raise DemoError(path, f"meta field 'noise_sigma' must be a finite number >= 0, got {sigma!r}")
    if meta["steps"] < 0:
        raise DemoError(path, f"meta field 'steps' must be >= 0, got {meta['steps']}")
    seed = meta.get("reset_seed")  # replay and train bc reset the env with it
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise DemoError(path, f"meta field 'reset_seed' must be an integer >= 0 or null, got {seed!r:.80}")
    try:
        check_env_id(meta["env_id"])  # it is passed to gymnasium.make, which could import a module
    except ValueError as e:
        raise DemoError(path, f"meta field 'env_id': {e}") from None
    try:
        check_env_options(meta["env_options"])
    except ValueError as e:
        raise DemoError(path, f"meta field {e}") from None


def _action_problem(space: Any, actions: np.ndarray) -> str | None:
    """Why the recorded `actions` (T, ...) are not actions of `space`, or None (also for spaces other
    than Discrete and Box, which camdrive's envs do not have)."""
    import gymnasium as gym

    if len(actions) == 0:  # an episode stopped before its first step: no action, whatever its shape
        return None
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n - 1)
        if actions.ndim != 1 or actions.dtype.kind not in "iu":
            return f"must be integers, one per step, for {space}; got {actions.dtype} {actions.shape}"
        if actions.size and (actions.min() < low or actions.max() > high):
            return f"must be in {low} .. {high} for {space}; got {actions.min()} .. {actions.max()}"
    elif isinstance(space, gym.spaces.Box):
        if actions.shape[1:] != space.shape:
            return f"must have shape {space.shape} per step for {space}; got {actions.shape[1:]}"
        if not np.isfinite(actions).all():
            return "must be finite numbers"
    return None


def _check_actions(path: Path, meta: dict[str, Any], actions: np.ndarray, labels: np.ndarray | None) -> None:
    """The actions (and labels: the expert's actions) are actions of the env the meta names, so that
    replaying and training on them cannot fail half way. An env this camdrive cannot make any more
    (an option since removed) leaves them unchecked: the frames and labels are still usable, and a
    replay reports the env."""
    from agent.env_spec import env_spaces

    try:
        _, space = env_spaces(meta["env_id"], meta["env_options"])
    except ValueError:
        space = None
    for name, array in (("actions", actions), ("labels", labels)):
        problem = None if array is None or space is None else _action_problem(space, array)
        if problem:
            raise DemoError(path, f"{name!r} {problem}")
    if labels is not None and labels.shape[1:] != actions.shape[1:]:
        raise DemoError(
            path, f"'labels' have shape {labels.shape[1:]} per step, 'actions' {actions.shape[1:]}"
        )


def load_episode(path: str | os.PathLike[str], *, frames: bool = True) -> Episode:
    """Load and validate one episode file; any problem raises DemoError naming the file.

    With frames=False the frames are not read (only their shape), which makes summaries of large
    datasets fast; corruption inside the frame data then goes unnoticed until they are loaded.
    Never executes code from the file (no pickle), opens only regular files and reads no array before
    its declared size is checked against the bytes the file really holds (`_check_member`).
    """
    path = Path(path)
    with _open_regular(path) as f:
        head = f.read(len(_ZIP_MAGIC))
        if not head:
            raise DemoError(path, "empty file")
        if head != _ZIP_MAGIC:
            raise DemoError(path, "not an npz archive (no zip header): not a camdrive demo")
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except _READ_ERRORS as e:
            raise DemoError(path, f"corrupt or truncated zip archive ({type(e).__name__}: {e})") from None
        with zf:
            members = _check_members(path, zf, os.fstat(f.fileno()).st_size, frames)
            return _read_episode(path, zf, members, frames)


def _read_episode(path: Path, zf: zipfile.ZipFile, members: dict[str, _Member], frames: bool) -> Episode:
    """The episode in `zf`, whose members `_check_members` has checked; DemoError for any problem."""

    def read(name: str) -> np.ndarray:
        try:
            with zf.open(f"{name}.npy") as stream:
                return np.lib.format.read_array(stream, allow_pickle=False)
        except _READ_ERRORS as e:
            raise DemoError(
                path, f"array {name!r} is unreadable, the file is corrupt ({type(e).__name__}: {e})"
            ) from None

    if "meta" not in members:
        listed = ", ".join(sorted(members)) or "none"
        raise DemoError(path, f"no 'meta' array: not a camdrive demo (arrays: {listed})")
    meta = _check_meta(path, read("meta"))
    required = ["frames", "actions", "rewards", *(f"state_{key}" for key in STATE_KEYS)]
    missing = [name for name in required if name not in members]
    if missing:
        raise DemoError(path, f"missing array(s) {', '.join(missing)}")

    frame_shape, frame_dtype = members["frames"].shape, members["frames"].dtype
    if frame_dtype != np.uint8 or len(frame_shape) != 4 or frame_shape[0] < 1:
        raise DemoError(
            path, f"frames must be uint8 (T+1, H, W, C) with T >= 0, got {frame_dtype} {frame_shape}"
        )
    steps = frame_shape[0] - 1

    def rows(name: str, array: np.ndarray, expected: int, dtype: Any = None, kinds: str = "") -> None:
        if array.ndim < 1 or array.shape[0] != expected:
            got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise DemoError(
                path,
                f"length mismatch: {name!r} has {got}, expected {expected} "
                f"(frames has {steps + 1} = steps + 1)",
            )
        if dtype is not None and array.dtype != dtype:
            raise DemoError(path, f"{name!r} must be {np.dtype(dtype)}, got {array.dtype}")
        if kinds and array.dtype.kind not in kinds:
            raise DemoError(path, f"{name!r} must be numeric, got {array.dtype}")

    if meta["steps"] != steps:
        raise DemoError(path, f"length mismatch: meta says {meta['steps']} steps, the arrays hold {steps}")
    actions = read("actions")
    rows("actions", actions, steps, kinds=_NUMERIC_KINDS)
    rewards = read("rewards")
    rows("rewards", rewards, steps, dtype=np.float32)
    if rewards.ndim != 1:
        raise DemoError(path, f"'rewards' must be one-dimensional, got shape {rewards.shape}")
    labels = read("labels") if "labels" in members else None
    if labels is not None:
        rows("labels", labels, steps, kinds=_NUMERIC_KINDS)
    _check_actions(path, meta, actions, labels)
    state: dict[str, np.ndarray] = {}
    for key in STATE_KEYS:
        array = read(f"state_{key}")
        rows(f"state_{key}", array, steps + 1, dtype=np.float64)
        if array.ndim != 1:
            raise DemoError(path, f"'state_{key}' must be one-dimensional, got shape {array.shape}")
        state[key] = array
    frame_array = read("frames") if frames else None
    return Episode(
        path=path,
        meta=meta,
        frames=frame_array,
        frame_shape=tuple(frame_shape),
        actions=actions,
        rewards=rewards,
        labels=labels,
        state=state,
    )


def _natural_key(path: Path) -> list[Any]:
    """Sort key putting episode_2_... before episode_10_... (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


@dataclass
class Listing:
    """The files of a demo directory, by kind (in natural name order). Other files are not listed."""

    episodes: list[Path]
    partial: list[Path]
    """`.partial.npz` files of unfinished recordings (in progress, or their recorder died)."""
    stale: list[Path]
    """`.partial.npz` files whose finished `.npz` exists: the recorder stopped between publishing the
    episode and removing its checkpoint. Never read (they duplicate the episode); safe to delete."""
    temp: list[Path]
    """Hidden `.*.tmp` files: an interrupted write; never episodes, safe to delete when no recorder runs."""


def list_files(directory: str | os.PathLike[str]) -> Listing:
    """Sort the files of `directory` (not its subdirectories) into finished episodes, partial ones, stale
    partial ones and leftover temp files. Raises DemoError when the directory cannot be read."""
    directory = Path(directory)
    _check_directory(directory)
    listing = Listing([], [], [], [])
    try:
        paths = sorted(directory.iterdir(), key=_natural_key)
    except OSError as e:  # no permission to list it
        raise DemoError(directory, f"cannot list the directory ({e.strerror or e})") from None
    names = {path.name for path in paths}
    for path in paths:
        name = path.name
        if name.startswith("."):
            if name.endswith(TEMP_SUFFIX):
                listing.temp.append(path)
            continue
        if not name.endswith(EPISODE_SUFFIX):
            continue
        if name.endswith(PARTIAL_SUFFIX) and path.is_file():
            finished = name[: -len(PARTIAL_SUFFIX)] + EPISODE_SUFFIX
            (listing.stale if finished in names else listing.partial).append(path)
        else:
            # Also what only looks like an episode (a named pipe, a directory, a broken or looping
            # symlink called *.npz): loading it reports it as a bad file instead of skipping it silently.
            listing.episodes.append(path)
    return listing


def _check_directory(directory: Path) -> None:
    """DemoError unless `directory` is a directory, for every reason it is not: `Path.is_dir` raises
    for a name too long for the file system and would end a command in a traceback."""
    try:
        mode = directory.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DemoError(directory, "no such directory") from None
    except OSError as e:  # a name too long, a loop of symbolic links, no permission on the way
        raise DemoError(directory, f"cannot read the directory ({e.strerror or e})") from None
    if not stat.S_ISDIR(mode):
        raise DemoError(directory, "not a directory")


def iter_episodes(
    directory: str | os.PathLike[str],
    include_partial: bool = False,
    *,
    on_error: Callable[[DemoError], None] | None = None,
    on_partial: Callable[[Path], None] | None = None,
    frames: bool = True,
) -> Iterator[Episode]:
    """Yield the episodes of `directory` one at a time (only one episode's frames in memory at once).

    A file that fails to load is passed to `on_error` (default: a warning) and the iteration goes on,
    so one bad file never hides the others; pass `errors.append` to collect them. `.partial.npz` files
    (episodes still being recorded, or whose recorder died) are passed to `on_partial` and skipped,
    unless include_partial, in which case they are loaded too (their meta says complete=False).
    Hidden temp files and stale partial files (see Listing) are never read. Raises DemoError when the
    directory does not exist.
    """
    listing = list_files(directory)
    paths = listing.episodes
    if include_partial:
        paths = sorted([*paths, *listing.partial], key=_natural_key)
    elif on_partial is not None:
        for path in listing.partial:
            on_partial(path)
    for path in paths:
        try:
            episode = load_episode(path, frames=frames)
        except DemoError as e:
            if on_error is None:
                warnings.warn(str(e), stacklevel=2)
            else:
                on_error(e)
            continue
        yield episode


def summarize(directory: str | os.PathLike[str], *, verify: bool = False) -> dict[str, Any]:
    """Totals of a demo directory: episodes, frames, steps, hours (frames / control_hz), kilometres (sum of
    each episode's final distance), drivers and env ids (counts), and the partial, bad, stale and temp
    files (see Listing).

    verify=True reads every frame too (slower; finds corruption inside frame data).
    """
    bad: list[DemoError] = []
    partial: list[Path] = []
    drivers: Counter[str] = Counter()
    env_ids: Counter[str] = Counter()
    episodes = frames = steps = 0
    seconds = kilometres = 0.0
    for episode in iter_episodes(directory, on_error=bad.append, on_partial=partial.append, frames=verify):
        episodes += 1
        frames += episode.num_frames
        steps += episode.steps
        seconds += episode.steps / episode.control_hz  # as `camdrive record` counts the time driven
        kilometres += episode.kilometres
        drivers[episode.driver] += 1
        env_ids[str(episode.meta["env_id"])] += 1
    leftovers = list_files(directory)
    return {
        "directory": str(directory),
        "episodes": episodes,
        "frames": frames,
        "steps": steps,
        "hours": seconds / 3600.0,
        "kilometres": kilometres,
        "drivers": dict(sorted(drivers.items())),
        "env_ids": dict(sorted(env_ids.items())),
        "partial": [str(p) for p in partial],
        "bad": [{"path": str(e.path), "error": e.what} for e in bad],
        "stale": [str(p) for p in leftovers.stale],
        "temp": [str(p) for p in leftovers.temp],
    }


# ---------------------------------------------------------------------------------- `camdrive data info`
def format_summary(summary: dict[str, Any]) -> str:
    """The text `camdrive data info` prints. Steps first, as `camdrive record` reports them; frames are
    one more per episode (the reset's observation), which read as a different count when alone."""

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    lines = [
        f"directory   {summary['directory']}",
        f"episodes    {summary['episodes']}",
        f"steps       {summary['steps']}",
        f"frames      {summary['frames']} (one per step, and each episode's first)",
        f"hours       {summary['hours']:.3f}",
        f"kilometres  {summary['kilometres']:.2f}",
        f"drivers     {counts(summary['drivers'])}",
        f"envs        {counts(summary['env_ids'])}",
        f"partial     {len(summary['partial'])}",
    ]
    lines += [f"  {p}  (unfinished recording: skipped)" for p in summary["partial"]]
    lines.append(f"bad         {len(summary['bad'])}")
    lines += [f"  {b['path']}: {b['error']}" for b in summary["bad"]]
    if summary["stale"]:
        lines.append(f"stale       {len(summary['stale'])} partial file(s) of finished episodes (ignored)")
    if summary["temp"]:
        lines.append(f"temp        {len(summary['temp'])} leftover temporary file(s) (ignored)")
    return "\n".join(lines)


def info_main(args: argparse.Namespace) -> int:
    """`camdrive data info DIR` (exit codes of `common.exit_codes`): 0 when the directory holds readable
    episodes and no bad file, 1 when a file is bad (each named on stderr, in one line) or no episode is
    readable, 2 when DIR itself cannot be read."""
    from training.common import exit_codes

    prog = "camdrive data info"
    try:
        summary = summarize(args.directory, verify=args.verify)
    except DemoError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    for bad in summary["bad"]:
        print(f"{prog}: error: {bad['path']}: {bad['error']}", file=sys.stderr)
    if summary["episodes"] == 0:
        print(f"{prog}: no readable episodes in {args.directory}", file=sys.stderr)
        return exit_codes.FAILED
    return exit_codes.FAILED if summary["bad"] else exit_codes.OK
