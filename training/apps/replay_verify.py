"""`camdrive replay --verify`: re-simulate recorded episodes headless and compare them with the recording.

The simulator is deterministic, so re-creating the env from the file's env_id and env_options,
resetting it with the file's reset_seed and executing the recorded actions must give the recorded
frames and rewards bit for bit. A difference means the file, or the simulator since it was recorded,
has changed; the message says where the two first part.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from training.data.demo_reader import load_episode
from training.data.demos import DemoError


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


def verify_files(items: list[str | DemoError], prog: str) -> int:
    """`--verify` of every item: an OK or MISMATCH line per file, a summary line when there are several.

    Exit code as cmp and diff have it: 0 all match, 1 a mismatch, 2 trouble (a file could not be
    checked), which wins over 1 because then not everything was compared.
    """
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
