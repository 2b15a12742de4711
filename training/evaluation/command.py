"""`camdrive eval` and `camdrive bench`: their options; the work is in evaluate.py and bench.py."""

from __future__ import annotations

import argparse

from training.common.arguments import (
    Subparsers,
    add_force,
    add_parser,
    key_value,
    non_negative_float,
    positive_int,
)


def add_eval(subparsers: Subparsers) -> None:
    parser = add_parser(
        subparsers,
        "eval",
        "score a driver: NVIDIA autonomy (lane) or the DeepTraffic score (traffic)",
        "Drive a model, the expert or a baseline on seeds seed, seed+1, ... and print the task's metric. "
        "lane: NVIDIA's autonomy % (an intervention whenever |lateral offset| > 1 m; the car is put "
        "back on the lane centre; autonomy = (1 - interventions * 6 s / elapsed s) * 100). traffic: the "
        "median over runs of the average speed, with the noop, random and expert baselines on the same "
        "seeds and in the same action mode. Shipped models are evaluated on seeds >= 1000000, which "
        "training never uses.",
    )
    parser.add_argument(
        "--model", default="expert", help="model file, or expert|noop|random|oracle (default: %(default)s)"
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--episodes", type=positive_int, default=10, help="episodes / runs (default: 10)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first seed (default: 1000000)")
    parser.add_argument("--km", type=float, help="lane: drive this many kilometres instead of --episodes")
    parser.add_argument(
        "--run-seconds", type=float, default=45.0, help="traffic: seconds per run (default: 45)"
    )
    parser.add_argument(
        "--randomize",
        type=float,
        default=0.0,
        help="domain randomisation strength 0..1 of the evaluation roads (default: 0, the default look)",
    )
    parser.add_argument(
        "--action-mode",
        choices=["steer", "lane"],
        help="traffic: action mode of the built-in drivers (default: the model's own mode, else steer); "
        "the noop/random/expert rows always drive in the same mode as the model",
    )
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="traffic: skip the noop/random/expert rows (the oracle, the reference of the %% column, "
        "always drives)",
    )
    parser.add_argument(
        "--safety",
        choices=["on", "off"],
        default="on",
        help="the simulator's safety system (DeepTraffic's brake, lane-change check and, in steer mode, "
        "lane-keeping assist) for every row: on (default, DeepTraffic's rules) or off, where a driver "
        "must avoid crashes itself",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_force(parser, "--json FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_evaluate)


def add_bench(subparsers: Subparsers) -> None:
    parser = add_parser(
        subparsers,
        "bench",
        "measure how fast the environments step, render and reset",
        "Measure steps/s (random actions), render-only frames/s and reset time of camdrive/LaneKeep-v0 "
        "and camdrive/Traffic-v0 with their default options (or those given by --option), next to "
        "Gymnasium's CarRacing-v3 "
        "(when Box2D is installed: pip install -e '.[bench]'), and print a table. With --vector, also "
        "their native vector envs' env-steps/s.",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=1000, help="timed steps per environment (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of resets and random actions (default: %(default)s)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers and machine info to FILE")
    add_force(parser, "--json FILE")
    parser.add_argument("--no-carracing", action="store_true", help="skip the CarRacing-v3 reference")
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="option passed to gymnasium.make for both camdrive envs (not CarRacing-v3), e.g. "
        "traffic_cars=0 or grayscale=true (repeatable)",
    )
    parser.add_argument(
        "--vector",
        action="append",
        metavar="N[,N...]",
        help="also measure env-steps/s of gymnasium.make_vec(env, num_envs=N), camdrive's native vector env, "
        "for each N (a comma list, or repeat the option), e.g. --vector 1,4,16,64",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        metavar="K",
        help="processes stepping each vector env's sub-envs, for --vector (default: the vector env's own "
        "default for its workers= option: one per core where processes fork, else 1)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="K",
        help="threads drawing each vector env's frames in the bench's process, for --vector; makes workers 1 "
        "unless --workers is given (default: the vector env's own default for its threads= option: one per "
        "core the process may use)",
    )
    parser.add_argument(
        "--vector-seconds",
        type=non_negative_float,
        default=2.0,
        metavar="S",
        help="time each vector env for at least S seconds, however few calls --steps takes (default: "
        "%(default)s): a rate timed for a fraction of a second moves with the machine's moment",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        metavar="R",
        help="measure everything R times, in rounds (each measures every env once, CarRacing-v3 "
        "included), and report each figure's median and each ratio's median over the rounds, the "
        "ratios taken within each round (default: %(default)s): steadier ratios on a machine whose speed "
        "drifts",
    )
    parser.add_argument(
        "--first-step",
        action="store_true",
        help="also time a new process's first step, with an empty and with a warm cache of numba's "
        "compiled renderer kernels",
    )
    parser.set_defaults(run=run_bench)


def run_evaluate(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.evaluation.evaluate import main

    return main(args)


def run_bench(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.evaluation.bench import main

    return main(args)
