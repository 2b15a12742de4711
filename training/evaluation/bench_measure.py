"""The measurements of `camdrive bench`: how fast one environment steps, renders and resets.

Every environment is created with `gymnasium.make(env_id)` and its registered defaults, updated by the
options given, as a user's training script would. Three numbers per environment:

- steps/s: `env.step(random action)` in a loop, the actions drawn from the seeded action space. Episodes
  that end are reset inside the timed loop, as in a training loop, so the reset cost is included.
- render fps: `env.unwrapped.observe()` called repeatedly: re-rendering the current observation without
  stepping. Environments without `observe()` (CarRacing-v3) have none.
- reset ms: mean wall time of `env.reset(seed=...)` over several different seeds.

A native vector env (`gymnasium.make_vec(env_id, num_envs=N)`) is measured in env-steps/s of batched
random actions (N env-steps per call), sub-envs autoresetting inside the timed loop.

The functions are pure: they take an env id or an env and return plain dicts, so tests can call them on
a tiny registered env with a few steps.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

CAMDRIVE_ENV_IDS: tuple[str, ...] = ("camdrive/LaneKeep-v0", "camdrive/Traffic-v0")
REFERENCE_ENV_ID = "CarRacing-v3"
RESETS = 20
"""Seeded resets timed per environment."""
WARMUP_STEPS = 300
"""Untimed steps before the step timer starts: 30 s of driving, long enough for the rare events (a
car trying a lane change, a car recycled, a car close enough for the exact collision test, an episode
ending) to have happened. numba compiles a kernel at its first call, for seconds, once after an
install: with 10 warm-up steps the first bench on a fresh install timed those compilations, and
reported LaneKeep-v0 at about a tenth of its rate."""
WARMUP_FRAMES = 3
"""Untimed observe() calls before the render timer starts."""
VECTOR_MIN_CALLS = 3
"""Timed `step` calls of a vector env at least, however many sub-envs share the env-steps."""
VECTOR_MIN_SECONDS = 2.0
"""Seconds a vector env is timed for at least (`camdrive bench --vector-seconds`), however few calls its
`steps` take. 4,000 env-steps at N=16 took a quarter of a second on the 2-vCPU development machine, and
CarRacing-v3's 4,000 steps 27 s: a rate timed for a quarter of a second moved with the machine's moment
(from one N=16 round to the next by up to a third), where the reference's averages over half a minute."""

PhaseHook = Callable[[str], None]


def env_config(env: gym.Env) -> dict[str, Any]:
    """What the environment was configured with: the kwargs of its registered spec."""
    spec = env.unwrapped.spec
    kwargs = {} if spec is None else dict(spec.kwargs)
    # The outer spec carries the TimeLimit that gymnasium.make wrapped around the env.
    max_episode_steps = None if env.spec is None else env.spec.max_episode_steps
    return {"kwargs": kwargs, "max_episode_steps": max_episode_steps}


def time_steps(env: gym.Env, steps: int, seed: int) -> dict[str, Any]:
    """Steps per second with random actions; episodes that end are reset inside the timed loop."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(WARMUP_STEPS):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    episodes_ended = 0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
            episodes_ended += 1
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "step_seconds": seconds,
        "steps_per_s": steps / seconds,
        "episodes_ended": episodes_ended,
    }


def time_observe(env: gym.Env, frames: int, seed: int) -> dict[str, Any]:
    """Frames per second of `env.unwrapped.observe()`; None when the env has no such method."""
    observe = getattr(env.unwrapped, "observe", None)
    if observe is None:
        return {"frames": 0, "render_seconds": None, "render_fps": None}
    env.reset(seed=seed)
    for _ in range(WARMUP_FRAMES):
        observe()
    start = time.perf_counter()
    for _ in range(frames):
        observe()
    seconds = time.perf_counter() - start
    return {"frames": frames, "render_seconds": seconds, "render_fps": frames / seconds}


def time_resets(env: gym.Env, resets: int, seed: int) -> dict[str, Any]:
    """Mean and worst wall time of `env.reset(seed=seed + i)`, i = 1..resets, in milliseconds."""
    env.reset(seed=seed)
    times = []
    for i in range(1, resets + 1):
        start = time.perf_counter()
        env.reset(seed=seed + i)
        times.append(time.perf_counter() - start)
    return {
        "resets": resets,
        "reset_ms": 1000.0 * float(np.mean(times)),
        "reset_ms_median": 1000.0 * float(np.median(times)),
        "reset_ms_max": 1000.0 * float(np.max(times)),
    }


def time_vector_steps(
    envs: gym.vector.VectorEnv, steps: int, seed: int, min_seconds: float = VECTOR_MIN_SECONDS
) -> dict[str, Any]:
    """Env-steps per second of a vector env taking random batched actions: about `steps` env-steps, in at
    least VECTOR_MIN_CALLS calls, and more calls until `min_seconds` have passed. Sub-envs that end reset
    on their next step (Gymnasium's NEXT_STEP autoreset), so resets are inside the timed loop, as in a
    training loop; that step counts as N env-steps like any other, as a trainer's step counter counts it."""
    n = envs.num_envs
    least_calls = max(VECTOR_MIN_CALLS, math.ceil(steps / n))
    envs.action_space.seed(seed)
    envs.reset(seed=seed)
    for _ in range(math.ceil(WARMUP_STEPS / n)):
        envs.step(envs.action_space.sample())
    episodes_ended = calls = 0
    start = time.perf_counter()
    while calls < least_calls or time.perf_counter() - start < min_seconds:
        _, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
        episodes_ended += int(np.count_nonzero(terminated | truncated))
        calls += 1
    seconds = time.perf_counter() - start
    return {
        "calls": calls,
        "steps": calls * n,
        "step_seconds": seconds,
        "steps_per_s": calls * n / seconds,
        "episodes_ended": episodes_ended,
    }


def measure_vector_env(
    env_id: str,
    num_envs: int,
    steps: int,
    seed: int = 0,
    on_phase: PhaseHook | None = None,
    options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    min_seconds: float = VECTOR_MIN_SECONDS,
) -> dict[str, Any]:
    """`time_vector_steps` (for at least `min_seconds`) of the environment's native vector env (its
    registered vector_entry_point) with `num_envs` sub-envs made with `options`, stepped by `workers`
    processes (1: this one) and, in this one, drawn by `threads` threads (None for either: the vector
    env's default). The result
    names the workers and threads the vector env used."""
    if on_phase is not None:
        on_phase(f"{env_id} vector x{num_envs}")
    vector_options: dict[str, Any] = {
        **(options or {}),
        **({"workers": workers} if workers is not None else {}),
        **({"threads": threads} if threads is not None else {}),
    }
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **vector_options)
    try:
        result: dict[str, Any] = {
            "env_id": env_id,
            "num_envs": num_envs,
            "workers": getattr(envs.unwrapped, "workers", None),
            "threads": getattr(envs.unwrapped, "threads", None),
            "vector_env": type(envs).__name__,
            "observation_space": str(envs.observation_space),
            "action_space": str(envs.action_space),
        }
        result.update(time_vector_steps(envs, steps, seed, min_seconds))
    finally:
        envs.close()
    return result


def measure_env(
    env_id: str,
    steps: int,
    seed: int = 0,
    resets: int = RESETS,
    on_phase: PhaseHook | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """All three measurements of one registered environment, made with its defaults updated by
    `options` (`gymnasium.make` keywords)."""

    def phase(name: str) -> None:
        if on_phase is not None:
            on_phase(f"{env_id} {name}")

    phase("steps")
    env = gym.make(env_id, **(options or {}))
    try:
        result: dict[str, Any] = {
            "env_id": env_id,
            "config": env_config(env),
            "observation_space": str(env.observation_space),
            "action_space": str(env.action_space),
        }
        result.update(time_steps(env, steps, seed))
        phase("render")
        result.update(time_observe(env, steps, seed))
        phase("resets")
        result.update(time_resets(env, resets, seed))
    finally:
        env.close()
    return result


def box2d_available() -> bool:
    try:
        importlib.import_module("Box2D")
    except ImportError:
        return False
    return True
