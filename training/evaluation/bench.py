"""`camdrive bench`: how fast camdrive's environments step, render and reset, next to CarRacing-v3.

`--option KEY=VALUE` passes keywords to the camdrive environments (to see what an option costs, e.g.
`traffic_cars=0` for the price of the traffic); CarRacing-v3 always runs with its defaults. What is
measured and how is in `bench_measure`; the report in `bench_report`; `--first-step` in
`bench_first_step`.

With `--vector N` (a list of sizes), each camdrive environment is also measured as
`gymnasium.make_vec(env_id, num_envs=N)`, camdrive's native vector env. Its ratios to CarRacing-v3
and to the same environment's single-env steps/s, both measured in the same run, show what batching buys.
By default it runs as a user's `make_vec` does (`sim.envs.vector.default_workers`: one process per
core where processes fork); `--workers K` sets the processes that step it, `--threads K` the threads
that draw its frames in one process (the vector env's `workers=` and `threads=`).

With `--rounds R` everything is measured R times over, in rounds (each round measures every
environment once, CarRacing-v3 included), and each figure is reported as its median over the rounds
and each ratio as the median of the ratios taken within each round. A ratio of two rates measured
minutes apart moves with the machine's speed in between (on the shared 2-vCPU development machine
the same configuration's rate varied by a third from run to run); within a round the two are measured
close together, and the median leaves out a round the machine slowed.

Only `main` prints.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from training.common import exit_codes
from training.common.outputs import OutputError, check_output_file, remove_stale_temps, write_text
from training.evaluation.bench_first_step import measure_first_step
from training.evaluation.bench_measure import (
    CAMDRIVE_ENV_IDS,
    REFERENCE_ENV_ID,
    RESETS,
    VECTOR_MIN_CALLS,
    VECTOR_MIN_SECONDS,
    WARMUP_STEPS,
    PhaseHook,
    box2d_available,
    measure_env,
    measure_vector_env,
)
from training.evaluation.bench_report import format_report, json_document


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
    vector_workers: int | None = None,
    vector_threads: int | None = None,
    rounds: int = 1,
    vector_seconds: float = VECTOR_MIN_SECONDS,
) -> dict[str, Any]:
    """Measure `env_ids` (made with `options`) and (if `reference` and Box2D is importable)
    CarRacing-v3 (always with its defaults); then each of `env_ids` as a native vector env of each size
    in `vector` (stepped by `vector_workers` processes, frames drawn by `vector_threads` threads: None
    for the vector env's default; timed for at least `vector_seconds`), under "vector_results"; with
    `first_step`,
    `measure_first_step` under "first_step". All of it `rounds` times, one round after the other
    (`median_of_rounds` combines them).

    Ids that are not registered are listed under "skipped" with the reason, not measured.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not vector_seconds >= 0:
        raise ValueError(f"vector_seconds must be a number >= 0, got {vector_seconds!r}")
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
    missing = [env_id for env_id in ids if env_id not in gym.registry]
    skipped += [{"env_id": env_id, "reason": "not registered with Gymnasium"} for env_id in missing]
    ids = [env_id for env_id in ids if env_id not in missing]
    measured = [
        _measure_round(
            ids,
            env_ids,
            steps,
            seed,
            resets,
            on_phase,
            options,
            vector,
            vector_workers,
            vector_threads,
            vector_seconds,
        )  # fmt: skip
        for _ in range(rounds)
    ]
    results = median_of_rounds([single for single, _ in measured])
    vector_results = median_of_rounds([vectors for _, vectors in measured])
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
            "vector_seconds": vector_seconds,
            "rounds": rounds,
        },
        "reference": REFERENCE_ENV_ID,
        "results": results,
        "vector_results": vector_results,
        "first_step": measure_first_step() if first_step else None,
        "skipped": skipped,
    }


def _measure_round(
    ids: Sequence[str],
    env_ids: Sequence[str],
    steps: int,
    seed: int,
    resets: int,
    on_phase: PhaseHook | None,
    options: Mapping[str, Any] | None,
    vector: Sequence[int],
    workers: int | None,
    threads: int | None,
    vector_seconds: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One round: every env of `ids` (the reference among them, with its defaults), then the vector envs
    of `env_ids`; each result with its ratios to the reference's and its single env's rate of this round."""
    results = [
        measure_env(
            env_id,
            steps,
            seed=seed,
            resets=resets,
            on_phase=on_phase,
            options=None if env_id == REFERENCE_ENV_ID else options,
        )  # fmt: skip
        for env_id in ids
    ]
    single_rates = {r["env_id"]: r["steps_per_s"] for r in results}
    vector_results = [
        measure_vector_env(
            env_id,
            n,
            steps,
            seed=seed,
            on_phase=on_phase,
            options=options,
            workers=workers,
            threads=threads,
            min_seconds=vector_seconds,
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
    return results, vector_results


def median_of_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rounds' results combined, row by row (every round measures the same rows in the same order):
    each number (rates, times, ratios) the median over the rounds (a count the same in every round stays
    as it is), the rest as the first round has it;
    "rounds" lists each round's numbers and "ratio_vs_reference_range" the lowest and highest ratio
    (absent without a reference). One round gives its own numbers."""
    combined = []
    for rows in zip(*rounds, strict=True):
        numbers = [{k: v for k, v in row.items() if _is_number(v)} for row in rows]
        row = dict(rows[0])
        for key in numbers[0]:
            values = [n[key] for n in numbers]
            row[key] = values[0] if len(set(values)) == 1 else float(np.median(values))
        row["rounds"] = numbers
        ratios = [n["ratio_vs_reference"] for n in numbers if "ratio_vs_reference" in n]
        if ratios:
            row["ratio_vs_reference_range"] = [min(ratios), max(ratios)]
        combined.append(row)
    return combined


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ratio(rate: float, base: float | None) -> float | None:
    return None if base is None else rate / base


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
    rounds = getattr(args, "rounds", 1)
    phases = ((3 + len(sizes)) * len(CAMDRIVE_ENV_IDS) + (0 if args.no_carracing else 3)) * rounds
    phases += args.first_step
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
            vector_seconds=getattr(args, "vector_seconds", VECTOR_MIN_SECONDS),
            rounds=rounds,
        )
    except ValueError as error:  # a bad --option: the env names the option and its allowed range
        print(f"camdrive bench: {error}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    finally:
        close()
    print(format_report(report))
    if args.json:
        remove_stale_temps(args.json)
        write_text(args.json, json_document(report))
    missing = [s["env_id"] for s in report["skipped"] if s["env_id"] in CAMDRIVE_ENV_IDS]
    return exit_codes.FAILED if missing else exit_codes.OK
