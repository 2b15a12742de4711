"""Checks that a demonstration file can be read without trusting it: its bytes, its meta, its actions.

Anyone can hand camdrive an `.npz` file, so reading trusts nothing: only regular files are opened (a
named pipe would block), every array's declared shape and dtype must match the bytes its zip member
really holds, which its compressed size must be able to give, before any array is allocated; meta
fields, actions and labels are checked against the env the meta names. Any problem is a DemoError
naming the file, in one line. `demo_reader.load_episode` runs these checks on every file it reads.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim import check_env_id
from sim.validation import check_at_least
from training.data.demos import FORMAT, REQUIRED_META, SUPPORTED_VERSIONS, DemoError

MAX_DEFLATE_RATIO = 1032
"""Deflate's largest possible expansion (a long run of one byte value). A zip member claiming to hold
more bytes than this times its compressed size is lying, and none is read."""

READ_ERRORS = (
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
class Member:
    """What a .npy member's headers say, checked against the bytes it holds (see `_check_member`)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def open_regular(path: Path) -> Any:
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


def _check_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive_size: int) -> Member:
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
    return Member(tuple(int(n) for n in shape), np.dtype(dtype), nbytes)


def check_members(path: Path, zf: zipfile.ZipFile, archive_size: int, frames: bool) -> dict[str, Member]:
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


def check_meta(path: Path, meta_array: np.ndarray) -> dict[str, Any]:
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


def check_actions(path: Path, meta: dict[str, Any], actions: np.ndarray, labels: np.ndarray | None) -> None:
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
