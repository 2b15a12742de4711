"""`camdrive export --minari`: copy our demonstrations into a Minari dataset.

Why our own format stays primary: Minari (Farama's standard for offline Gymnasium datasets) writes a
whole dataset into one store at the end (HDF5 or Arrow), so a recorder killed mid-session can lose or
corrupt everything, and it has no notion of a checkpointed partial episode or per-step expert labels
next to the executed actions. camdrive records one self-contained, atomically written file per episode
and exports to Minari for tools that read it. Labels and privileged state travel in `infos`.

The export is lossless unless asked otherwise: Minari (0.5.x) JPEG-encodes image observations by
default: in a LaneKeep-v0 recording (200x66 camera) nearly every pixel changed, by 3 levels on average
and up to 145 along edges, so a dataset trained on is not the recording and its frames no longer
re-simulate. We pass `jpeg_encoding=False`; `--jpeg` turns Minari's encoding back on for a dataset
about 6 times smaller.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

import sim  # noqa: F401  (registers the envs, so Minari can record the env spec)
from training.common import exit_codes
from training.common.outputs import OutputError, check_output_dir
from training.data.demo_reader import iter_episodes, list_files
from training.data.demos import DemoError


def export_minari(directory: Path, dataset_id: str, root: Path | None = None, *, jpeg: bool = False) -> int:
    """Write every complete episode in `directory` to the Minari dataset `dataset_id`; returns the count.

    `root` is where Minari keeps its datasets for this call only: Minari reads it from the environment
    variable MINARI_DATASETS_PATH, which is restored afterwards. It is made absolute: Minari 0.5.4 writes
    a dataset under a relative one and then fails to find its file (it joins the path twice). The frames
    are stored as they were recorded unless `jpeg`, which lets Minari JPEG-encode them (smaller, lossy:
    see the module docstring).
    """
    if root is None:
        return _export(directory, dataset_id, jpeg)
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root.absolute())
    try:
        return _export(directory, dataset_id, jpeg)
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _export(directory: Path, dataset_id: str, jpeg: bool) -> int:
    list_files(directory)  # DemoError for a missing directory, before the slow Minari import
    import minari
    from minari.data_collector import EpisodeBuffer

    if "jpeg_encoding" not in inspect.signature(minari.create_dataset_from_buffers).parameters:
        # Without the switch we cannot tell whether this Minari would store the frames lossy or not.
        raise ValueError(
            f"Minari {minari.__version__} cannot be told how to store images (it has no jpeg_encoding "
            "option); upgrade it: pip install -U minari"
        )

    buffers: list[EpisodeBuffer]
    buffers, env_id, options = [], None, {}
    for episode in iter_episodes(directory):
        if env_id is None:
            env_id, options = episode.meta["env_id"], episode.meta.get("env_options", {})
        elif episode.meta["env_id"] != env_id:
            raise ValueError(
                f"{episode.path}: env {episode.meta['env_id']} is not {env_id}; export one env at a time"
            )
        steps = episode.steps
        assert episode.frames is not None  # iter_episodes loads the frames by default
        infos = {f"state_{k}": np.asarray(v) for k, v in episode.state.items()}
        if episode.labels is not None:
            infos["label"] = np.concatenate((episode.labels, episode.labels[-1:]))
        buffers.append(
            EpisodeBuffer(
                id=len(buffers),
                seed=reset_seed(episode.meta),
                observations=list(episode.frames),
                actions=list(episode.actions),
                rewards=list(episode.rewards.astype(float)),
                terminations=[False] * (steps - 1) + [bool(episode.meta.get("terminated", False))],
                truncations=[False] * (steps - 1) + [bool(episode.meta.get("truncated", False))],
                infos=infos,
            )
        )
    if not buffers:
        raise ValueError(f"{directory}: no complete episodes to export")
    try:
        env = gym.make(cast(str, env_id), **options)  # set by the first episode: buffers is not empty
    except (ValueError, gym.error.Error) as e:
        raise ValueError(f"{directory}: cannot make {env_id} with the recorded env_options ({e})") from None
    minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env,
        algorithm_name="camdrive record",
        data_format="hdf5",
        jpeg_encoding=jpeg,
        author="camdrive",
        description=f"camdrive demonstrations exported from {directory}",
    )
    return len(buffers)


def reset_seed(meta: dict[str, Any]) -> int | None:
    """The episode's reset seed for Minari, None when it has none.

    Takeover stretches recorded by `camdrive watch --record` start mid-episode, so they have no seed
    that rebuilds their start; Minari's EpisodeBuffer takes seed=None for exactly that.
    """
    seed = meta.get("reset_seed")
    return None if seed is None else int(seed)


def check_ready(args: argparse.Namespace) -> Path | None:
    """The --root to export to; DemoError, OutputError or ImportError for what makes the export
    impossible (no such DIR, a --root that cannot be written, no Minari), before any file is read."""
    root = check_output_dir(args.root, "--root") if args.root else None
    list_files(Path(args.directory))
    import minari  # noqa: F401

    return root


def main(args: argparse.Namespace) -> int:
    """`camdrive export`: 0 on success; 2 when refused before any work (no Minari, no such DIR, a bad
    --root), 1 when the export itself failed; a one-line message on stderr either way."""
    try:
        root = check_ready(args)
    except ImportError:
        print("camdrive export: error: Minari is not installed: pip install -e '.[minari]'", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except (DemoError, OutputError) as err:
        print(f"camdrive export: error: {err}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    try:
        n = export_minari(Path(args.directory), args.minari, root, jpeg=args.jpeg)
    except (ValueError, DemoError) as err:
        print(f"camdrive export: error: {err}", file=sys.stderr)
        return exit_codes.FAILED
    how = "JPEG-encoded frames (lossy)" if args.jpeg else "frames as recorded (lossless)"
    print(f"exported {n} episodes to Minari dataset {args.minari}, {how}")
    return exit_codes.OK
