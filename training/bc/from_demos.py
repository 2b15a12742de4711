"""Behaviour cloning from recorded demonstrations (`camdrive train bc --data DIR`).

LaneKeep-v0 episodes recorded by `camdrive record` are learnt from their labels when the file has
them, else from the executed actions; episodes of another env or without continuous steering are
skipped, each in one stderr line naming the file. The extra views need world states, so each episode
is re-simulated from its reset seed and actions (the env is deterministic); the replay is checked
against the recorded states, and augmentation stops for an episode that diverges.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from agent.pilotnet import INPUT_SHAPE
from sim import seeding
from sim.envs.base import unwrap
from training.bc.augment import LookPool, render_state
from training.bc.config import ENV_ID, BCConfig
from training.bc.data import Dataset, extra_views


class NoUsableDemosError(ValueError):
    """`--data` holds no episode to learn from: bad input, found before any training, so `camdrive
    train bc` reports it in one line with exit code 2, as it does a bad option."""


def warn_line(message: str) -> None:
    """One line on stderr about a `--data` file (skipped, or used without its extra views).

    Why not `warnings.warn`: it prints the line of camdrive's code under each message, two lines a
    file, which a directory of hundreds of files turns into a log nobody reads.
    """
    text = " ".join(message.splitlines())
    print(f"camdrive train bc: warning: {text}", file=sys.stderr, flush=True)


def load_demos(cfg: BCConfig, data: Dataset, log: Any, looks: LookPool | None = None) -> None:
    """Demonstrations from `cfg.data`, with the extra views rendered by re-simulating each episode.

    With training looks (`cfg.randomize` > 0) the re-simulated states are also redrawn in looks picked
    per frame, recorded frames included, so that a frame's look says nothing about its label. A file
    that cannot be used is skipped in one `warn_line`; NoUsableDemosError when no file is left.
    """
    from training.data.demo_reader import iter_episodes

    assert cfg.data is not None
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        warn_line(f"{message}; skipped")

    for ep in iter_episodes(cfg.data, on_error=lambda error: skip(str(error))):
        assert ep.frames is not None
        if ep.frames.shape[1:] != INPUT_SHAPE:
            skip(f"{ep.path}: frames {ep.frames.shape[1:]} are not PilotNet's {INPUT_SHAPE}")
            continue
        labels, problem = steering_labels(ep)
        if labels is None:
            skip(f"{ep.path}: {problem}")
            continue
        frames = ep.frames[: ep.steps]
        if cfg.augment or cfg.look_config().enabled:
            extra = replay_views(ep, cfg, looks)
            if extra is not None:
                views, view_labels, centres = extra
                if centres is not None:
                    frames = frames.copy()
                    frames[: len(centres)] = centres
                frames = np.concatenate([frames, views])
                labels = np.concatenate([labels, view_labels])
        data.add_episode(frames, labels, "demo", ep.steps)
    if data.episodes == 0:
        why = f"{len(skipped)} file(s) skipped" if skipped else "no finished episode files"
        raise NoUsableDemosError(f"--data {cfg.data}: no usable episodes ({why})")
    log(f"demo data: {data.episodes} episodes, {data.states} states, {data.size} frames (with views)")


def steering_labels(ep: Any) -> tuple[np.ndarray | None, str]:
    """The episode's steering labels (its labels, else its executed actions), or None and why not.

    Only LaneKeep-v0 episodes qualify: another env's frames can have the same size (Traffic-v0's are
    also 66x200x3) while its actions mean something else (Traffic-v0's discrete action numbers 0..4
    would be learnt as steering). Continuous steering is a float array whose first column is within
    the steering range -1..1 (LaneKeep-v0 records steering, or steering and throttle from `play`).
    """
    env_id = ep.meta.get("env_id")
    if env_id != ENV_ID:
        return None, f"recorded in {env_id}, not {ENV_ID}: its actions are not {ENV_ID} steering"
    if ep.steps == 0:
        return None, "it has no steps"
    which = "labels" if ep.labels is not None else "actions"
    source = np.asarray(ep.labels if ep.labels is not None else ep.actions)
    if source.dtype.kind != "f":
        return None, f"its {which} are {source.dtype} numbers, not continuous steering"
    steering = source.reshape(ep.steps, -1)[:, 0].astype(np.float32)
    if not np.all(np.isfinite(steering)) or np.any(np.abs(steering) > 1.0):
        return None, f"its {which} are not steering values in -1 .. 1"
    return steering, ""


def data_problem(directory: Path) -> str | None:
    """Why `--data DIR` cannot be read at all (no such directory...), or None."""
    from training.data.demo_reader import list_files
    from training.data.demos import DemoError

    try:
        list_files(directory)
    except DemoError as e:
        return f"--data {e}"
    return None


def replay_views(
    ep: Any, cfg: BCConfig, looks: LookPool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Re-simulate a recorded episode from its seed and actions and render the extra views of each state.

    Returns (views, their labels, the replayed states' own frames redrawn in picked looks or None when
    the looks are off), or None (with a `warn_line`) when the episode cannot be replayed: no reset seed,
    another env, or a replay that leaves the recorded trajectory (then only the states before that are
    augmented).
    """
    from agent.env_spec import make_env as make_checked_env

    meta = ep.meta
    if meta.get("reset_seed") is None or meta.get("env_id") != ENV_ID:
        warn_line(
            f"{ep.path}: cannot re-simulate (env {meta.get('env_id')}, seed "
            f"{meta.get('reset_seed')}); no extra views"
        )
        return None
    try:
        env = make_checked_env(meta["env_id"], meta.get("env_options", {}))  # any failure a ValueError
    except ValueError as e:
        # An option this camdrive no longer knows (or a value it rejects): the recorded frames and
        # labels are still usable, only the re-simulation for the views is not.
        warn_line(
            f"{ep.path}: cannot re-simulate, {meta['env_id']} rejects the recorded env_options "
            f"({type(e).__name__}: {e}); no extra views"
        )
        return None
    rng = seeding.stream(int(meta["reset_seed"]), seeding.BC_RECORDED_VIEWS)
    recorded, _ = steering_labels(ep)
    frames, labels, centres = [], [], []
    try:
        env.reset(seed=int(meta["reset_seed"]))
        u = unwrap(env)
        if looks is None or not looks.matches(env):
            looks = LookPool(env, cfg.look_config(), cfg.seed)
        picker = looks.picker(int(meta["reset_seed"]), seeding.BC_RECORDED_LOOKS)
        for t in range(ep.steps):
            if not _matches(u.world, ep.state, t):
                warn_line(f"{ep.path}: replay diverges from the recording at step {t}; views stop there")
                break
            w = u.world
            if picker.enabled:
                (r,) = picker.pick()
                centres.append(render_state(r, w)[None])
            if cfg.augment:
                steer = None if recorded is None else float(recorded[t])
                f, lab = extra_views(
                    w, u.camera.renderer, w.state().lane, cfg.augment, cfg.views, rng, picker, steer
                )
                frames.append(f)
                labels.append(lab)
            env.step(ep.actions[t])
    finally:
        env.close()
    if not frames and not centres:
        return None
    shape = (0, *INPUT_SHAPE)
    return (
        np.concatenate(frames) if frames else np.zeros(shape, dtype=np.uint8),
        np.concatenate(labels) if labels else np.zeros(0, dtype=np.float32),
        np.concatenate(centres) if centres else None,
    )


def _matches(world: Any, state: dict[str, np.ndarray], t: int, tol: float = 1e-3) -> bool:
    for key, value in (("x", world.ego.x), ("y", world.ego.y), ("yaw", world.ego.yaw)):
        rec = state.get(key)
        if rec is not None and t < len(rec) and np.isfinite(rec[t]) and abs(rec[t] - value) > tol:
            return False
    return True
