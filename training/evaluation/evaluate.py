"""`camdrive eval`: score any driver with the metric its task is known by.

- LaneKeep-v0: NVIDIA's autonomy metric (Bojarski et al. 2016, simulation test). Whenever the car is
  more than 1 m from its lane centre an intervention is counted and the car is put back on the
  centre line, as a safety driver would; driving then goes on.
  autonomy = (1 - interventions * 6 s / elapsed s) * 100.
- Traffic-v0: MIT DeepTraffic's score: each run lasts a fixed stretch of simulated time, and the
  score is the median over runs of each run's average speed (mph). Collisions, off-road exits and
  safety-system actions are counted per 100 runs, and the mean distance from the lane centre is
  reported. The baselines (noop, random, expert) drive in the same action mode as the model being
  evaluated (`baseline_env_options`): a lane-mode model is compared with lane-mode baselines, not with
  the steer-mode ones. The oracle (`agent.oracle`, a planner that searches ahead with the true
  traffic) drives every traffic table too, and each score is also given as % of the oracle's: how
  much of what the traffic allows a driver takes.
- `--safety on|off` (default on, DeepTraffic's rules) switches the simulator's safety system for every
  row; off, a driver must avoid crashes itself.

Evaluation seeds are the caller's; the shipped models are evaluated on seeds >= 1_000_000, which
training never uses.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

from agent.baselines import BUILTIN, load_driver, model_env_options
from agent.driver import Driver
from sim import ENV_IDS  # importing sim registers the camdrive environments
from sim.envs.base import unwrap
from training.common import exit_codes
from training.common.outputs import OutputError, check_output_file, remove_stale_temps, write_text

INTERVENTION_OFFSET_M = 1.0
INTERVENTION_COST_S = 6.0
"""NVIDIA's assumption: each intervention costs six seconds of human driving."""
MPH = 2.2369363
PROG = "camdrive eval"
ERROR_EXIT = exit_codes.BAD_INPUT
"""Exit code of a bad argument, output path or model file, refused before any driving (the convention
of every command, `training.common.exit_codes`)."""


class EvalError(Exception):
    """A bad argument or model file, reported as `camdrive eval: error: ...` before any driving."""


def autonomy_pct(interventions: int, seconds: float) -> float:
    """NVIDIA's autonomy: each intervention costs INTERVENTION_COST_S of the elapsed seconds.

    Nothing elapsed yet counts as 100 % (an intervention is only ever counted after driving).
    """
    if seconds <= 0:
        return 100.0
    return (1.0 - interventions * INTERVENTION_COST_S / seconds) * 100.0


@dataclass
class LaneTally:
    """Running sums for the autonomy metric."""

    seconds: float = 0.0
    metres: float = 0.0
    interventions: int = 0
    collisions: int = 0
    offroad: int = 0
    abs_offset_sum: float = 0.0
    max_abs_offset: float = 0.0
    speed_sum: float = 0.0
    steer_change_sum: float = 0.0
    steps: int = 0

    def result(self) -> dict[str, Any]:
        km = self.metres / 1000.0
        n = max(self.steps, 1)
        return {
            "autonomy_pct": autonomy_pct(self.interventions, self.seconds),
            "interventions": self.interventions,
            "interventions_per_100km": self.interventions / km * 100.0 if km > 0 else math.nan,
            "distance_km": km,
            "elapsed_s": self.seconds,
            "mean_abs_offset_m": self.abs_offset_sum / n,
            "max_abs_offset_m": self.max_abs_offset,
            "mean_speed_kmh": self.speed_sum / n * 3.6,
            "steering_smoothness": self.steer_change_sum / n,
            "collisions": self.collisions,
            "offroad": self.offroad,
        }


def evaluate_lane(
    driver: Driver, env: gym.Env, episodes: int, seed: int, km: float | None, progress: bool = False
) -> dict[str, Any]:
    """NVIDIA autonomy over `episodes` episodes (or until `km` kilometres) on seeds seed, seed+1, ..."""
    tally = LaneTally()
    bar = _bar(progress, total=km * 1000 if km else None, unit="m")
    episode = 0
    while (km is None and episode < episodes) or (km is not None and tally.metres < km * 1000):
        obs, info = env.reset(seed=seed + episode)
        driver.reset(env)
        camdrive = unwrap(env)
        world = camdrive.world
        last_steer, last_distance = 0.0, info["distance"]
        while True:
            action = driver.act(obs, info)
            obs, _, terminated, truncated, info = env.step(action)
            tally.steps += 1
            tally.seconds += camdrive.dt
            tally.speed_sum += info["speed"]
            offset = abs(info["lateral_offset"])
            tally.abs_offset_sum += offset
            tally.max_abs_offset = max(tally.max_abs_offset, offset)
            tally.steer_change_sum += abs(info["steer"] - last_steer)
            last_steer = info["steer"]
            tally.metres += info["distance"] - last_distance
            if bar is not None:
                bar.update(info["distance"] - last_distance)
            last_distance = info["distance"]
            if info["collision"]:
                tally.collisions += 1
            if offset > INTERVENTION_OFFSET_M and not terminated:
                tally.interventions += 1
                world.put_back_on_lane_centre()
                obs = camdrive.observe()
                info = camdrive.current_info()
            elif terminated and info["off_road"]:
                tally.offroad += 1
                tally.interventions += 1
            if terminated or truncated or (km is not None and tally.metres >= km * 1000):
                break
        episode += 1
    if bar is not None:
        bar.close()
    out = tally.result()
    out["episodes"] = episode
    return out


def evaluate_traffic(
    driver: Driver, env: gym.Env, runs: int, seed: int, progress: bool = False
) -> dict[str, Any]:
    """DeepTraffic score over `runs` runs of `env`'s episode length on seeds seed, seed+1, ..."""
    speeds, collisions, offroad, brakes, refusals, offsets = [], 0, 0, 0, 0, []
    bar = _bar(progress, total=runs, unit="run")
    for run in range(runs):
        obs, info = env.reset(seed=seed + run)
        driver.reset(env)
        run_speeds = []
        while True:
            obs, _, terminated, truncated, info = env.step(driver.act(obs, info))
            run_speeds.append(info["speed"])
            offsets.append(abs(info["lateral_offset"]))
            if terminated or truncated:
                break
        speeds.append(float(np.mean(run_speeds)))
        collisions += bool(info["collision"])
        offroad += bool(info["off_road"])
        brakes += info["safety_brakes"]
        refusals += info["safety_refusals"]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    median = float(np.median(speeds))
    return {
        "score_mph": median * MPH,
        "score_kmh": median * 3.6,
        "mean_speed_kmh": float(np.mean(speeds)) * 3.6,
        "runs": runs,
        "run_seconds": unwrap(env).options.episode_seconds,
        "collisions": collisions,
        "offroad": offroad,
        "collisions_per_100_runs": collisions / runs * 100,
        "safety_brakes_per_run": brakes / runs,
        "safety_refusals_per_run": refusals / runs,
        "mean_abs_offset_m": float(np.mean(offsets)),
    }


def _bar(enabled: bool, total: float | None, unit: str):
    """A progress bar on stderr that counts in whole units: metres arrive as floats, which tqdm would
    print as they are ("453.7056287605945/1000.0 m")."""
    if not enabled:
        return None
    from tqdm import tqdm

    if total is None:
        layout = "{n:.0f} " + unit + " [{elapsed}, {rate_fmt}]"
    else:
        layout = "{l_bar}{bar}| {n:.0f}/{total:.0f} " + unit + " [{elapsed}<{remaining}, {rate_fmt}]"
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False, bar_format=layout)


def _table(rows: list[tuple[str, dict[str, Any]]], keys: list[str]) -> str:
    width = max(len(name) for name, _ in rows)
    widths = [max(16, len(k)) for k in keys]
    lines = [f"{'driver':<{width}}  " + "  ".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True))]
    for name, result in rows:
        cells = []
        for k, w in zip(keys, widths, strict=True):
            v = result[k]
            cells.append(f"{v:>{w}.3f}" if isinstance(v, float) else f"{v:>{w}}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """`camdrive eval`. A bad argument or an unusable model file is one line on stderr and exit code
    ERROR_EXIT, not a traceback: these are the user's mistakes, and the message says which one."""
    from agent.checkpoint import CheckpointError

    try:
        return run(args)
    except (EvalError, CheckpointError, OutputError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return ERROR_EXIT


def check_args(args: argparse.Namespace) -> None:
    """Refuse numbers the evaluation cannot use, before a model is loaded or an env is built.

    argparse only checks that they are numbers. Left alone, a bad one ends in a ValueError from deep
    inside gymnasium.make (naming an env option, not the flag), a negative seed in gymnasium's seeding,
    and a --km that is not a positive finite distance drives nothing or never stops.
    """
    for flag, option, value in (
        ("--randomize", "randomize", args.randomize),
        ("--run-seconds", "episode_seconds", args.run_seconds),
    ):
        problem = env_option_problem(option, value)
        if problem:
            raise EvalError(f"{flag} {value:g}: {problem}")
    if args.km is not None and not (math.isfinite(args.km) and args.km > 0):
        raise EvalError(f"--km must be a finite distance > 0, got {args.km:g}")
    if args.seed < 0:
        raise EvalError(f"--seed must be >= 0 (gymnasium seeds are non-negative), got {args.seed}")
    if args.json:  # checked now, not after the whole evaluation has run
        check_output_file(args.json, "--json", force=getattr(args, "force", False))


def env_option_problem(option: str, value: object) -> str | None:
    """What the camdrive envs say about `value` for the shared env option `option`, or None if valid.

    The envs own the allowed ranges (`sim.envs.base.CommonOptions.check_common`); asking them, instead
    of repeating their limits here, keeps one source of truth while letting the command name its own
    flag in the message.
    """
    from sim.envs.base import CommonOptions

    try:
        CommonOptions(**cast(dict[str, Any], {option: value})).check_common()
    except ValueError as e:
        return str(e)
    return None


def check_model_env(spec: str, env: str) -> None:
    """Refuse a model file trained in another env than `--env`.

    A model's observations and actions belong to the env it was trained in: PilotNet's steering in
    Traffic-v0, or a DQN's discrete actions and action mode in LaneKeep-v0, otherwise fail deep inside
    the env with a message about actions or options that hides the real mistake. The built-in drivers
    (expert, noop, random) drive either env. A model file without an env_id is a LaneKeep-v0 model, as
    `camdrive watch` also assumes.
    """
    if spec in BUILTIN:
        return
    from agent.checkpoint import CheckpointError, check_regular_file, read_metadata

    try:  # a directory, a named pipe or a loop of links is named as such, not as a missing file
        check_regular_file(Path(spec))
    except CheckpointError as e:
        hint = f" (or use {', '.join(BUILTIN)})" if e.what == "no such file" else ""
        raise EvalError(f"--model {e}{hint}") from None
    trained = str(read_metadata(spec).get("env_id", ENV_IDS["lane"]))  # an id of ENV_IDS: checked there
    wanted = ENV_IDS[env]
    if trained != wanted:
        names = {env_id: name for name, env_id in ENV_IDS.items()}
        raise EvalError(
            f"{spec} was trained in {trained}, not in {wanted} (--env {env}); "
            f"evaluate it with --env {names[trained]}"
        )


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table; EvalError / CheckpointError for bad arguments or model files."""
    check_args(args)
    check_model_env(args.model, args.env)
    env_id = ENV_IDS[args.env]
    options: dict[str, Any] = {"randomize": args.randomize} if args.randomize else {}
    if getattr(args, "safety", "on") == "off":
        options["safety"] = False
    models = [args.model]
    if args.env == "traffic":
        options["episode_seconds"] = args.run_seconds
        models += ["noop", "random", "expert"] if args.baselines else []
        models.append("oracle")  # every traffic table says how much of what the traffic allows each takes
    model_options = model_env_options(args.model)
    action_mode = getattr(args, "action_mode", None)
    trained_mode = model_options.get("action_mode")
    if action_mode is not None and trained_mode is not None and trained_mode != action_mode:
        raise EvalError(
            f"--action-mode {action_mode} contradicts {args.model}, which was trained in "
            f"{trained_mode!r} mode"
        )
    rows = []
    for spec in dict.fromkeys(models):
        spec_options = model_options if spec == args.model else model_env_options(spec)
        if args.env == "traffic":
            spec_options = {**baseline_env_options(model_options, action_mode), **spec_options}
        try:
            env = gym.make(env_id, **options, **spec_options)
        except ValueError as e:  # options recorded in a model file that this camdrive's env rejects
            raise EvalError(f"{spec}: {env_id} rejects its options: {e}") from None
        try:
            driver = load_driver(spec)
        except Exception:
            env.close()
            raise
        if args.env == "lane":
            result = evaluate_lane(driver, env, args.episodes, args.seed, args.km, progress=not args.quiet)
        else:
            result = evaluate_traffic(driver, env, args.episodes, args.seed, progress=not args.quiet)
        built = unwrap(env).options  # validated, defaults filled in
        result.update(driver=spec, env=env_id, seed=args.seed, safety=bool(built.safety))
        if args.env == "traffic":
            result["action_mode"] = built.action_mode
        rows.append((spec, result))
        env.close()
    if args.env == "traffic":
        oracle = dict(rows)["oracle"]["score_mph"]
        for _, result in rows:
            result["pct_of_oracle"] = 100.0 * result["score_mph"] / oracle if oracle > 0 else math.nan
    keys = (
        [
            "autonomy_pct",
            "interventions",
            "distance_km",
            "mean_abs_offset_m",
            "max_abs_offset_m",
            "mean_speed_kmh",
            "collisions",
            "offroad",
        ]
        if args.env == "lane"
        else [
            "score_mph",
            "pct_of_oracle",
            "mean_speed_kmh",
            "collisions",
            "offroad",
            "runs",
            "mean_abs_offset_m",
            "safety_brakes_per_run",
        ]
    )
    print(f"safety system {'on' if rows[0][1]['safety'] else 'off'} (--safety)")
    print(_table(rows, keys))
    if args.json:
        payload = rows[0][1] if len(rows) == 1 else {name: r for name, r in rows}
        remove_stale_temps(args.json)
        write_text(args.json, json.dumps(payload, indent=2))
    return exit_codes.OK


def baseline_env_options(model_options: dict[str, Any], action_mode: str | None = None) -> dict[str, Any]:
    """Traffic-v0 options for the noop/random/expert rows: the action mode of the evaluated model.

    `action_mode` (the command line's --action-mode) wins when given; otherwise the model's recorded
    action mode; a built-in driver without either drives in the env's default ("steer").
    """
    mode = action_mode or model_options.get("action_mode")
    return {"action_mode": mode} if mode else {}
