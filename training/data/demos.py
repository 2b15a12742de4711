"""Demonstrations on disk: the episode file format, one `.npz` file per episode.

Why this format:

- One file per episode, so a crash, a bad disk block or a bug can spoil at most one episode, datasets are
  merged by copying files, and readers stream episode by episode instead of loading a whole dataset.
- Plain `.npz` (a zip of `.npy` arrays) whose arrays are read with `allow_pickle=False`: loading a file
  never executes code, whoever made it. Every array is a plain numeric array; the metadata is JSON in a
  0-d unicode array.

This module holds what writer and readers share: the layout's names and rules, `DemoError` and the
loaded `Episode`. Writing crash-safely is `demo_writer`; reading a directory is `demo_reader`, which
trusts no file and checks each one with `demo_checks` first; `info` totals a directory for
`camdrive data info`.

Layout of an episode of T steps (format_version 1):

    frames        uint8   (T+1, H, W, C)  observation after reset and after every step
    actions       numeric (T, ...)        the actions executed
    labels        numeric (T, ...)        the expert's label for each step (absent when there is none)
    rewards       float32 (T,)
    state_<key>   float64 (T+1,)          privileged state from `info`, for each key of STATE_KEYS
                                          (NaN where the env did not report it; booleans as 0/1)
    meta          0-d unicode             JSON: see `demo_writer.EpisodeWriter`

While an episode is being recorded, `<name>.partial.npz` holds the episode so far; the finished episode
is `<name>.npz`. Hidden `.*.tmp` files are writes in progress (or interrupted): never episodes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.common.outputs import TEMP_MARK

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
TEMP_SUFFIX = TEMP_MARK
"""Temporary files are named by `common.outputs.temp_path`, as every atomic write of camdrive is."""

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
NUMERIC_KINDS = "biuf"
"""numpy dtype kinds allowed for actions and labels: booleans, signed and unsigned integers, floats."""


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
