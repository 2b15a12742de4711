"""Reading demonstrations: one episode file (`load_episode`), or a directory's episodes one at a time.

Every file is checked by `demo_checks` before an array is read, and a directory's files are sorted into
finished episodes, partial ones and leftovers (`list_files`), so that a reader never takes a recording
in progress or a half-written temporary file for an episode, and one bad file never hides the others.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data.demo_checks import (
    READ_ERRORS,
    Member,
    check_actions,
    check_members,
    check_meta,
    open_regular,
)
from training.data.demos import (
    EPISODE_SUFFIX,
    NUMERIC_KINDS,
    PARTIAL_SUFFIX,
    STATE_KEYS,
    TEMP_SUFFIX,
    DemoError,
    Episode,
)

ZIP_MAGIC = b"PK\x03\x04"


def load_episode(path: str | os.PathLike[str], *, frames: bool = True) -> Episode:
    """Load and validate one episode file; any problem raises DemoError naming the file.

    With frames=False the frames are not read (only their shape), which makes summaries of large
    datasets fast; corruption inside the frame data then goes unnoticed until they are loaded.
    Never executes code from the file (no pickle), opens only regular files and reads no array before
    its declared size is checked against the bytes the file really holds (`_check_member`).
    """
    path = Path(path)
    with open_regular(path) as f:
        head = f.read(len(ZIP_MAGIC))
        if not head:
            raise DemoError(path, "empty file")
        if head != ZIP_MAGIC:
            raise DemoError(path, "not an npz archive (no zip header): not a camdrive demo")
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except READ_ERRORS as e:
            raise DemoError(path, f"corrupt or truncated zip archive ({type(e).__name__}: {e})") from None
        with zf:
            members = check_members(path, zf, os.fstat(f.fileno()).st_size, frames)
            return _read_episode(path, zf, members, frames)


def _read_episode(path: Path, zf: zipfile.ZipFile, members: dict[str, Member], frames: bool) -> Episode:
    """The episode in `zf`, whose members `check_members` has checked; DemoError for any problem."""

    def read(name: str) -> np.ndarray:
        try:
            with zf.open(f"{name}.npy") as stream:
                return np.lib.format.read_array(stream, allow_pickle=False)
        except READ_ERRORS as e:
            raise DemoError(
                path, f"array {name!r} is unreadable, the file is corrupt ({type(e).__name__}: {e})"
            ) from None

    if "meta" not in members:
        listed = ", ".join(sorted(members)) or "none"
        raise DemoError(path, f"no 'meta' array: not a camdrive demo (arrays: {listed})")
    meta = check_meta(path, read("meta"))
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
    rows("actions", actions, steps, kinds=NUMERIC_KINDS)
    rewards = read("rewards")
    rows("rewards", rewards, steps, dtype=np.float32)
    if rewards.ndim != 1:
        raise DemoError(path, f"'rewards' must be one-dimensional, got shape {rewards.shape}")
    labels = read("labels") if "labels" in members else None
    if labels is not None:
        rows("labels", labels, steps, kinds=NUMERIC_KINDS)
    check_actions(path, meta, actions, labels)
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
