"""`camdrive bench`: how fast camdrive's environments step, render and reset, next to CarRacing-v3.

Every environment is created with `gymnasium.make(env_id)` and its registered defaults, as a user's
training script would; `--option KEY=VALUE` passes keywords to the camdrive environments (to see what
an option costs, e.g. `traffic_cars=0` for the price of the traffic). Three numbers per environment:

- steps/s: `env.step(random action)` in a loop, the actions drawn from the seeded action space. Episodes
  that end are reset inside the timed loop, as in a training loop, so the reset cost is included.
- render fps: `env.unwrapped.observe()` called repeatedly: re-rendering the current observation without
  stepping. Environments without `observe()` (CarRacing-v3) have none.
- reset ms: mean wall time of `env.reset(seed=...)` over several different seeds.

With `--vector N` (a list of sizes), each camdrive environment is also measured as
`gymnasium.make_vec(env_id, num_envs=N)`, camdrive's native vector env: env-steps/s of batched random
actions (N env-steps per call), sub-envs autoresetting inside the timed loop. Its ratios to CarRacing-v3
and to the same environment's single-env steps/s, both measured in the same run, show what batching buys.
`--threads K` sets the threads that draw its frames (the vector env's `threads=`; by default 1),
`--workers K` the processes that step it instead.

The measuring functions are pure: they take an env id or an env and return plain dicts, so tests can call
them on a tiny registered env with a few steps. Only `main` prints.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from training.common import exit_codes
from training.common.outputs import OutputError, check_output_file, remove_stale_temps, write_text
from training.common.version import package_version

CAMDRIVE_ENV_IDS: tuple[str, ...] = ("camdrive/LaneKeep-v0", "camdrive/Traffic-v0")
REFERENCE_ENV_ID = "CarRacing-v3"
RESETS = 20
"""Seeded resets timed per environment."""
WARMUP_STEPS = 10
"""Untimed steps before the step timer starts (first-call checks, caches)."""
WARMUP_FRAMES = 3
"""Untimed observe() calls before the render timer starts."""
VECTOR_MIN_CALLS = 3
"""Timed `step` calls of a vector env at least, however many sub-envs share the env-steps."""

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


def parse_vector_sizes(values: Sequence[str] | None) -> list[int]:
    """The sizes given with --vector (each value one size or a comma list), in order, without repeats.

    ValueError naming --vector for anything but integers >= 1, so that a typo ends the command before
    any measuring rather than after the single-env measurements.
    """
    sizes: list[int] = []
    for value in values or []:
        for item in (part.strip() for part in value.split(",")):
            try:
                size = int(item)
            except ValueError:
                size = 0
            if size < 1:
                raise ValueError(f"--vector expects integers >= 1 (e.g. --vector 1,4,16), got {item!r}")
            sizes.append(size)
    return list(dict.fromkeys(sizes))


def time_vector_steps(envs: gym.vector.VectorEnv, steps: int, seed: int) -> dict[str, Any]:
    """Env-steps per second of a vector env taking random batched actions: about `steps` env-steps, in at
    least VECTOR_MIN_CALLS calls. Sub-envs that end reset on their next step (Gymnasium's NEXT_STEP
    autoreset), so resets are inside the timed loop, as in a training loop; that step counts as N env-steps
    like any other, as a trainer's step counter counts it."""
    n = envs.num_envs
    calls = max(VECTOR_MIN_CALLS, math.ceil(steps / n))
    envs.action_space.seed(seed)
    envs.reset(seed=seed)
    for _ in range(math.ceil(WARMUP_STEPS / n)):
        envs.step(envs.action_space.sample())
    episodes_ended = 0
    start = time.perf_counter()
    for _ in range(calls):
        _, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
        episodes_ended += int(np.count_nonzero(terminated | truncated))
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
    workers: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """`time_vector_steps` of the environment's native vector env (its registered vector_entry_point)
    with `num_envs` sub-envs made with `options`, stepped by `workers` processes (1: this one) and,
    in this one, drawn by `threads` threads (None: the vector env's default)."""
    if on_phase is not None:
        on_phase(f"{env_id} vector x{num_envs}")
    vector_options: dict[str, Any] = {
        **(options or {}),
        **({"workers": workers} if workers > 1 else {}),
        **({"threads": threads} if threads is not None else {}),
    }
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **vector_options)
    try:
        result: dict[str, Any] = {
            "env_id": env_id,
            "num_envs": num_envs,
            "workers": workers,
            "threads": getattr(envs.unwrapped, "threads", None),
            "vector_env": type(envs).__name__,
            "observation_space": str(envs.observation_space),
            "action_space": str(envs.action_space),
        }
        result.update(time_vector_steps(envs, steps, seed))
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


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }


FIRST_STEP_SCRIPT = """
import time
start = time.perf_counter()
import gymnasium, sim
env = gymnasium.make({env_id!r})
env.reset(seed=0)
env.step(env.action_space.sample())
print(time.perf_counter() - start)
"""
"""A new process's first step: imports, env construction, and numba compiling or loading the kernels."""


def measure_first_step(env_id: str = CAMDRIVE_ENV_IDS[0]) -> dict[str, Any]:
    """Seconds to a new process's first step of `env_id`, with an empty compiled-code cache (numba
    compiles the renderer's kernels) and again with the cache that run left (what every later process
    pays). Each runs in its own interpreter with NUMBA_CACHE_DIR pointing at a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="camdrive-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        script = FIRST_STEP_SCRIPT.format(env_id=env_id)
        seconds = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            )
            seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return {"env_id": env_id, "cold_cache_s": seconds[0], "warm_cache_s": seconds[1]}


def run_bench(
    env_ids: Sequence[str] = CAMDRIVE_ENV_IDS,
    steps: int = 1000,
    seed: int = 0,
    resets: int = RESETS,
    reference: bool = True,
    on_phase: PhaseHook | None = None,
    options: Mapping[str, Any] | None = None,
    vector: Sequence[int] = (),
    first_step: bool = False,
    vector_workers: int = 1,
    vector_threads: int | None = None,
) -> dict[str, Any]:
    """Measure `env_ids` (made with `options`) and (if `reference` and Box2D is importable)
    CarRacing-v3 (always with its defaults); then each of `env_ids` as a native vector env of each size
    in `vector` (stepped by `vector_workers` processes, frames drawn by `vector_threads` threads: None
    for the vector env's default), under "vector_results"; with `first_step`,
    `measure_first_step` under "first_step".

    Ids that are not registered are listed under "skipped" with the reason, not measured.
    """
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    ids = list(env_ids)
    if not reference:
        skipped.append({"env_id": REFERENCE_ENV_ID, "reason": "--no-carracing"})
    elif not box2d_available():
        skipped.append(
            {"env_id": REFERENCE_ENV_ID, "reason": "Box2D is not installed (pip install -e '.[bench]')"}
        )
    else:
        ids.append(REFERENCE_ENV_ID)
    for env_id in ids:
        if env_id not in gym.registry:
            skipped.append({"env_id": env_id, "reason": "not registered with Gymnasium"})
            continue
        env_options = None if env_id == REFERENCE_ENV_ID else options
        results.append(
            measure_env(env_id, steps, seed=seed, resets=resets, on_phase=on_phase, options=env_options)
        )

    single_rates = {r["env_id"]: r["steps_per_s"] for r in results}
    vector_results = [
        measure_vector_env(
            env_id,
            n,
            steps,
            seed=seed,
            on_phase=on_phase,
            options=options,
            workers=vector_workers,
            threads=vector_threads,
        )  # fmt: skip
        for env_id in env_ids
        if env_id in single_rates
        for n in vector
    ]
    reference_rate = single_rates.get(REFERENCE_ENV_ID)
    for r in results + vector_results:
        r["ratio_vs_reference"] = _ratio(r["steps_per_s"], reference_rate)
    for r in vector_results:
        r["ratio_vs_single_env"] = _ratio(r["steps_per_s"], single_rates[r["env_id"]])
    if first_step and on_phase is not None:
        on_phase("first step in a new process")
    return {
        "settings": {
            "steps": steps,
            "seed": seed,
            "resets": resets,
            "warmup_steps": WARMUP_STEPS,
            "options": dict(options or {}),
            "vector": list(vector),
            "vector_workers": vector_workers,
            "vector_threads": vector_threads,
            "vector_min_calls": VECTOR_MIN_CALLS,
        },
        "reference": REFERENCE_ENV_ID,
        "results": results,
        "vector_results": vector_results,
        "first_step": measure_first_step() if first_step else None,
        "skipped": skipped,
    }


def _ratio(rate: float, base: float | None) -> float | None:
    return None if base is None else rate / base


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _times(ratio: float | None) -> str:
    return _number(ratio, ".2f") + ("x" if ratio is not None else "")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])
        for row in [header, *rows]
    ]


def _vector_table(report: dict[str, Any]) -> list[str]:
    """The native vector envs' rows (none without --vector)."""
    rows = [
        (
            r["env_id"],
            str(r["num_envs"]),
            str(r["workers"]),
            _number(r.get("threads"), "d"),
            _number(r["steps_per_s"], ".1f"),
            _times(r["ratio_vs_reference"]),
            _times(r["ratio_vs_single_env"]),
        )
        for r in report["vector_results"]
    ]
    if not rows:
        return []
    reference = f"vs {report['reference']}"
    header = ("vector env", "N", "workers", "threads", "env-steps/s", reference, "vs single env")
    return ["", *_table(header, rows)]


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report: each env's configuration, the table, and what the numbers mean."""
    lines = []
    for r in report["results"]:
        cfg = r["config"]
        lines.append(
            f"{r['env_id']}: kwargs {cfg['kwargs']}, max_episode_steps {cfg['max_episode_steps']}, "
            f"observation {r['observation_space']}, action {r['action_space']}"
        )
    if lines:
        lines.append("")
    header = ("env", "steps/s", f"vs {report['reference']}", "render fps", "reset ms", "median")
    rows = [
        (
            r["env_id"],
            _number(r["steps_per_s"], ".1f"),
            _times(r["ratio_vs_reference"]),
            _number(r["render_fps"], ".1f"),
            _number(r["reset_ms"], ".2f"),
            _number(r["reset_ms_median"], ".2f"),
        )
        for r in report["results"]
    ]
    lines += _table(header, rows)
    lines += _vector_table(report)
    for s in report["skipped"]:
        lines.append(f"skipped {s['env_id']}: {s['reason']}")
    settings = report["settings"]
    lines += [
        "",
        f"steps/s: {settings['steps']} random-action steps after {settings['warmup_steps']} untimed ones;",
        "  episodes that end are reset inside the timed loop, as in a training loop (included).",
        f"render fps: env.unwrapped.observe() called {settings['steps']} times without stepping.",
        f"reset ms: mean and median of {settings['resets']} env.reset(seed=...) calls with different seeds.",
    ]
    first = report["first_step"]
    if first is not None:
        lines.append(
            f"first step of {first['env_id']} in a new process: {first['cold_cache_s']:.2f} s with an empty "
            f"numba cache (compiling the kernels), {first['warm_cache_s']:.2f} s with a warm one."
        )
    if report["vector_results"]:
        lines += [
            f"vector: gymnasium.make_vec(env_id, num_envs=N), about {settings['steps']} env-steps in calls "
            f"of N random actions (at least {settings['vector_min_calls']} calls);",
            "  sub-envs autoreset on their next step, inside the timed loop. vs single env: steps/s above.",
            "  threads: threads drawing its frames in its own process (--threads; 1 in each worker).",
        ]
    return "\n".join(lines)


def _progress_bar(total: int) -> tuple[PhaseHook, Callable[[], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal): a phase hook and a closer."""
    from tqdm import tqdm

    bar = tqdm(total=total, file=sys.stderr, disable=None, leave=False, unit="phase")
    started = 0

    def hook(label: str) -> None:
        nonlocal started
        if started:
            bar.update(1)
        started += 1
        bar.set_description(label)

    def close() -> None:
        bar.update(bar.total - bar.n)
        bar.close()

    return hook, close


def main(args: argparse.Namespace) -> int:
    """`camdrive bench`. Exit code 1 if a camdrive environment is not registered, 2 for a bad option or
    --json path (refused before measuring, not after minutes of it)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    importlib.import_module("sim")  # registers the camdrive/* environments
    try:
        sizes = parse_vector_sizes(args.vector)
        if args.json:
            check_output_file(args.json, "--json", force=getattr(args, "force", False))
    except (ValueError, OutputError) as error:
        print(f"camdrive bench: {error}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    phases = (3 + len(sizes)) * len(CAMDRIVE_ENV_IDS) + (0 if args.no_carracing else 3) + args.first_step
    options = dict(args.option or [])
    hook, close = _progress_bar(phases)
    try:
        report = run_bench(
            CAMDRIVE_ENV_IDS,
            steps=args.steps,
            seed=args.seed,
            reference=not args.no_carracing,
            on_phase=hook,
            options=options,
            vector=sizes,
            first_step=args.first_step,
            vector_workers=args.workers,
            vector_threads=getattr(args, "threads", None),
        )
    except ValueError as error:  # a bad --option: the env names the option and its allowed range
        print(f"camdrive bench: {error}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    finally:
        close()
    print(format_report(report))
    if args.json:
        document = {
            "camdrive": package_version(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            **report,
        }
        remove_stale_temps(args.json)
        write_text(args.json, json.dumps(document, indent=2, default=repr) + "\n")
    missing = [s["env_id"] for s in report["skipped"] if s["env_id"] in CAMDRIVE_ENV_IDS]
    return exit_codes.FAILED if missing else exit_codes.OK
