"""`camdrive record`: drive episodes headlessly with a driver (the expert) and save them as demonstrations.

Episode i is `env.reset(seed=seed + i)`, so a dataset is reproducible from its command line and every
file says which seed made it. With `--noise SIGMA` the executed action is perturbed (DART-style noise
injection: the recorded states include recoveries from small mistakes) while the driver's clean action is
stored as the label, so a policy learns to correct the drift rather than to copy the noise. The expert's
clean action is always stored as the label.

The episodes are written by `training.data.demo_writer.EpisodeWriter` (crash-safe, one file per episode).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm import tqdm

from agent.driver import Driver
from sim import ENV_IDS, seeding  # importing sim registers the camdrive environments
from training.common import exit_codes
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import OutputError, check_output_dir, temp_writer_alive
from training.data.demo_reader import list_files
from training.data.demo_writer import DEFAULT_CHECKPOINT_SECONDS, EpisodeWriter

DRIVERS: dict[str, str] = {"expert": "agent.expert:Expert", "imperfect": "agent.imperfect:ImperfectDriver"}
"""Driver names `--driver` accepts, and the class each one builds (imported only when chosen)."""
LABELLED_DRIVERS = frozenset({"expert"})
"""Drivers whose clean actions are expert labels, stored even without noise."""


class RecordError(Exception):
    """A problem with the command's arguments or the driver, reported as `camdrive record: error: ...`."""


# ---------------------------------------------------------------------------------------- arguments
def env_options(env: str, option_pairs: Sequence[tuple[str, Any]], action_mode: str | None) -> dict[str, Any]:
    """The `gymnasium.make` keywords from `--option` pairs and `--action-mode`."""
    options = dict(option_pairs)
    if action_mode is not None:
        if env == "lane":
            if action_mode != "steer":
                raise RecordError(
                    f"--action-mode {action_mode} needs --env traffic (LaneKeep-v0 actions are steering)"
                )
        else:
            if "action_mode" in options and options["action_mode"] != action_mode:
                raise RecordError("--action-mode and --option action_mode=... disagree")
            options["action_mode"] = action_mode
    return options


def load_driver(spec: str) -> Driver:
    """A driver from a name in DRIVERS or a "module:Class" spec (built with no arguments)."""
    target = DRIVERS.get(spec, spec)
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        known = ", ".join(sorted(DRIVERS))
        raise RecordError(f"unknown driver {spec!r}: use one of {known} or MODULE:CLASS")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RecordError(f"driver {spec!r} is not available: cannot import {module_name} ({e})") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise RecordError(f"driver {spec!r} is not available: {module_name} has no {class_name}")
    if not isinstance(cls, type):
        # Calling a function would run arbitrary code that is not a driver at all.
        raise RecordError(f"driver {spec!r}: {module_name}.{class_name} is not a class")
    try:
        driver = cls()
    except Exception as e:  # a class that needs arguments (TypeError) or fails to build: the user's spec
        raise RecordError(
            f"driver {spec!r} cannot be built with no arguments, as --driver builds it "
            f"({type(e).__name__}: {e})"
        ) from None
    if not isinstance(driver, Driver):
        raise RecordError(f"driver {spec!r} lacks the Driver interface (name, reset(env), act(obs, info))")
    return driver


# ------------------------------------------------------------------------------------------- noise
def executed_action(clean: Any, space: gym.Space, sigma: float, rng: np.random.Generator) -> Any:
    """The action to execute: the driver's `clean` action, perturbed when sigma > 0.

    Box: N(0, sigma) is added to the steering (element 0) and the result clipped to the space.
    Discrete: with probability sigma the action is replaced by one drawn uniformly from the space.
    The result is normalised to the space's dtype and shape, so stored actions have one dtype.
    """
    if isinstance(space, spaces.Discrete):
        array = np.asarray(clean)
        if array.size != 1 or array.dtype.kind not in "iu":
            raise ValueError(f"the driver's action must be an integer for {space}, got {clean!r}")
        action: int | np.ndarray = int(array.reshape(()))
        if sigma > 0 and rng.random() < sigma:
            action = int(space.start + rng.integers(space.n))
        return action
    if isinstance(space, spaces.Box):
        action = np.array(clean, dtype=space.dtype).reshape(space.shape)
        if sigma > 0:
            action.reshape(-1)[0] += rng.normal(0.0, sigma)
            action = np.clip(action, space.low, space.high).astype(space.dtype)
        return action
    raise RecordError(f"cannot record actions of {space}: only Box and Discrete action spaces")


def check_noise(space: gym.Space, sigma: float) -> None:
    if isinstance(space, spaces.Discrete) and sigma > 1:
        raise RecordError(
            f"--noise {sigma}: with discrete actions the noise is the probability of a random action (0..1)"
        )


# ----------------------------------------------------------------------------------------- recording
@dataclass
class EpisodeResult:
    path: Path
    steps: int
    terminated: bool
    truncated: bool
    kilometres: float
    control_hz: float


def control_hz(env: gym.Env) -> float:
    options = getattr(env.unwrapped, "options", None)
    if options is not None and hasattr(options, "control_hz"):
        return float(options.control_hz)
    return float(env.metadata.get("render_fps") or 10.0)


def record(
    env_id: str,
    options: dict[str, Any],
    driver: Driver,
    episodes: int,
    out: str | Path,
    *,
    noise: float = 0.0,
    seed: int = 0,
    steps_per_episode: int | None = None,
    checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
    progress: bool = True,
) -> list[EpisodeResult]:
    """Record `episodes` episodes of `env_id` (made with `options`) driven by `driver` into `out`.

    Raises RecordError for options the env rejects (when it is made or first reset) or
    observations/actions that cannot be recorded.
    A KeyboardInterrupt (Ctrl-C, or SIGTERM under `camdrive`) leaves the current episode as a
    `.partial.npz` file and propagates, its message saying what was kept.
    """
    if seed < 0:
        raise RecordError(f"--seed must be >= 0 (reset seeds are seed, seed+1, ...), got {seed}")
    try:
        env = gym.make(env_id, **options)
    except (ValueError, TypeError) as e:
        raise RecordError(f"bad environment option for {env_id}: {e}") from None
    results: list[EpisodeResult] = []
    with (
        contextlib.closing(env),
        saying_what_is_kept(functools.partial(_kept_between_episodes, results, out)),
    ):
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
            raise RecordError(f"demos store camera frames; {env_id} observes {space} with these options")
        check_noise(env.action_space, noise)
        name = str(getattr(driver, "name", type(driver).__name__.lower()))
        store_labels = noise > 0 or name in LABELLED_DRIVERS
        hz = control_hz(env)
        max_steps = int(getattr(env.unwrapped, "max_steps", 0)) or None
        per_episode = min(filter(None, (steps_per_episode, max_steps)), default=None)
        total = None if per_episode is None else episodes * per_episode
        with tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, disable=not progress) as bar:
            for i in range(episodes):
                reset_seed = seed + i
                bar.set_postfix_str(f"episode {i + 1}/{episodes}")
                rng = seeding.stream(reset_seed, seeding.RECORD_NOISE)  # reproducible per episode
                try:
                    obs, info = env.reset(seed=reset_seed)
                except ValueError as e:
                    if i > 0:
                        raise  # the options worked for the first episode: a bug, keep its traceback
                    # Options gymnasium.make accepts can still describe a road the env cannot set up
                    # (more traffic than fits on it): that is a bad command line, not a crash.
                    raise RecordError(f"bad environment option for {env_id}: {e}") from None
                driver.reset(env)
                writer = EpisodeWriter(
                    out,
                    env_id,
                    options,
                    reset_seed,
                    name,
                    noise_sigma=noise,
                    control_hz=hz,
                    checkpoint_seconds=checkpoint_seconds,
                    extra_meta={
                        "episode_seed": int(getattr(env.unwrapped, "episode_seed", reset_seed)),
                        "step_limit": steps_per_episode,
                        "action_space": str(env.action_space),
                    },
                )
                writer.start(obs, info)
                terminated = truncated = False
                with writer, saying_what_is_kept(functools.partial(_kept_so_far, results, writer)):
                    while True:
                        clean = driver.act(obs, info)
                        action = executed_action(clean, env.action_space, noise, rng)
                        label = executed_action(clean, env.action_space, 0.0, rng) if store_labels else None
                        obs, reward, terminated, truncated, info = env.step(action)
                        writer.add(obs, action, label, float(reward), info)
                        bar.update()
                        if terminated or truncated:
                            break
                        if steps_per_episode is not None and writer.steps >= steps_per_episode:
                            truncated = True  # a time limit, as gymnasium's TimeLimit would report it
                            break
                    path = writer.close(terminated, truncated)
                if total is not None and per_episode is not None and writer.steps < per_episode:
                    bar.total -= per_episode - writer.steps  # the episode ended early
                    bar.refresh()
                distance = info.get("distance")
                results.append(
                    EpisodeResult(
                        path,
                        writer.steps,
                        bool(terminated),
                        bool(truncated),
                        0.0 if distance is None else float(distance) / 1000.0,
                        hz,
                    )
                )
    return results


def _kept_between_episodes(results: Sequence[EpisodeResult], out: str | Path) -> str:
    """What an interruption outside an episode (the env being made or reset) leaves: the finished
    episodes, or nothing at all (then `out` may not even exist, so it is not named)."""
    if not results:
        return "no episode was finished; nothing was written"
    return f"kept {len(results)} finished episode(s) in {out}"


def _kept_so_far(results: Sequence[EpisodeResult], writer: EpisodeWriter) -> str:
    """What an interruption leaves: the finished episodes, and the partial file the writer's exit
    writes (its block encloses the one that asks, so the words come first, then the file)."""
    return (
        f"kept {len(results)} finished episode(s) and the episode so far ({writer.steps} steps) as "
        f"{writer.partial_path}"
    )


def remove_leftovers(out: Path) -> list[Path]:
    """Delete what killed recorders left in `out`; returns the files removed.

    Temporary files (`.*.tmp`) of processes that no longer run are half-written checkpoints; partial
    files whose finished episode exists duplicate it (the recorder stopped between the two). Unfinished
    partial files are kept: they are the only copy of their episode.
    """
    if not out.is_dir():
        return []
    listing = list_files(out)
    removed = []
    for path in [*listing.temp, *listing.stale]:
        stem = path.name[1:].split(".", 1)[0]  # .STEM.PID.HEX.tmp: episode stems hold no dot
        if path in listing.temp and temp_writer_alive(path.name, stem):
            continue  # a recorder running now is writing it
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def summary_line(
    results: Sequence[EpisodeResult], driver: str, env_id: str, out: Path, seconds: float
) -> str:
    steps = sum(r.steps for r in results)
    hours = sum(r.steps / r.control_hz for r in results) / 3600
    frames = steps + len(results)  # `camdrive data info` counts both: a frame per step, and the first
    return (
        f"recorded {len(results)} episode(s), {steps} steps, {frames} frames ({hours:.3f} h, "
        f"{sum(r.kilometres for r in results):.2f} km; {sum(r.terminated for r in results)} terminated, "
        f"{sum(r.truncated for r in results)} truncated) with {driver} on {env_id} to {out} "
        f"in {seconds:.1f} s"
    )


def main(args: argparse.Namespace) -> int:
    """`camdrive record`: 0 on success, 2 for bad arguments, --out or an unavailable driver. Ctrl-C and
    SIGTERM keep the episode so far and end in `camdrive`'s one line and exit code 130."""
    env_id = ENV_IDS[args.env]
    start = time.perf_counter()
    try:
        out = check_output_dir(args.out, "--out")
        options = env_options(args.env, args.option or [], args.action_mode)
        driver = load_driver(args.driver)
        remove_leftovers(out)
        results = record(
            env_id,
            options,
            driver,
            args.episodes,
            out,
            noise=args.noise,
            seed=args.seed,
            steps_per_episode=args.steps_per_episode,
            checkpoint_seconds=args.checkpoint_seconds,
            progress=not args.quiet,
        )
    except (RecordError, OutputError) as e:
        print(f"camdrive record: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    name = str(getattr(driver, "name", args.driver))
    print(summary_line(results, name, env_id, out, time.perf_counter() - start))
    return exit_codes.OK
