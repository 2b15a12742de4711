"""The `camdrive` command line.

Each subcommand is declared by one small function `_add_<name>(subparsers)` listed in `SUBCOMMANDS`: it
adds the subparser with its help and arguments, and sets `run` to a "module:function" string. The module
is imported only when that subcommand runs, so `camdrive --help` stays fast and never imports torch. The
function receives the parsed `argparse.Namespace` and returns the process exit code (None means 0).

To add a subcommand (play, record, train, eval, watch...): write `_add_<name>` below and append it to
`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

PROG = "camdrive"

# The type argparse's add_subparsers() returns (private in argparse, hence the alias).
Subparsers = argparse._SubParsersAction


def package_version() -> str:
    """The installed distribution's version, or a marker when running from an uninstalled tree."""
    try:
        return metadata.version("camdrive")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_parser(subparsers: Subparsers, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
    )


def _add_bench(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "bench",
        "measure how fast the environments step, render and reset",
        "Measure steps/s (random actions), render-only frames/s and reset time of camdrive/LaneKeep-v0 "
        "and camdrive/Traffic-v0 with their default options, next to Gymnasium's CarRacing-v3 "
        "(when Box2D is installed: pip install -e '.[bench]'), and print a table.",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=1000, help="timed steps per environment (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of resets and random actions (default: %(default)s)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers and machine info to FILE")
    parser.add_argument("--no-carracing", action="store_true", help="skip the CarRacing-v3 reference")
    parser.set_defaults(run="training.bench:main")


def _add_eval(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "eval",
        "score a driver: NVIDIA autonomy (lane) or the DeepTraffic score (traffic)",
        "Drive a model, the expert or a baseline on seeds seed, seed+1, ... and print the task's metric. "
        "lane: NVIDIA's autonomy %% (an intervention whenever |lateral offset| > 1 m; the car is put "
        "back on the lane centre; autonomy = (1 - interventions * 6 s / elapsed s) * 100). traffic: the "
        "median over runs of the average speed, with the noop, random and expert baselines on the same "
        "seeds. Shipped models are evaluated on seeds >= 1000000, which training never uses.",
    )
    parser.add_argument(
        "--model", default="expert", help="model file, or expert|noop|random (default: %(default)s)"
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--episodes", type=positive_int, default=10, help="episodes / runs (default: 10)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first seed (default: 1000000)")
    parser.add_argument("--km", type=float, help="lane: drive this many kilometres instead of --episodes")
    parser.add_argument(
        "--run-seconds", type=float, default=45.0, help="traffic: seconds per run (default: 45)"
    )
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="traffic: skip the noop/random/expert rows",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run="training.evaluate:main")


def _add_record(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "record",
        "drive episodes headlessly with a driver and save them as demonstrations",
        "Drive --episodes episodes (reset seeds seed, seed+1, ...) with a driver, headless, and write one "
        "crash-safe .npz file per episode to --out (see training/demos.py for the format). With --noise "
        "the executed action is perturbed while the driver's clean action is stored as the label.",
    )
    parser.add_argument(
        "--driver", default="expert", help="expert, or MODULE:CLASS of a Driver (default: %(default)s)"
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the episode files")
    parser.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.0,
        metavar="SIGMA",
        help="steering noise std (continuous actions) or probability of a random action (discrete) "
        "(default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode (default: 0)")
    parser.add_argument(
        "--steps-per-episode", type=positive_int, metavar="K", help="end an episode after K steps"
    )
    parser.add_argument(
        "--action-mode",
        choices=["steer", "lane"],
        help="traffic: left/right steer (steer) or change lane (lane); lane env: steer only",
    )
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="environment option passed to gymnasium.make, e.g. camera_width=64 (repeatable)",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=non_negative_float,
        default=5.0,
        metavar="S",
        help="save the episode so far every S seconds of wall time (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run="training.record:main")


def _add_data(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "data",
        "inspect recorded demonstrations",
        "Inspect directories of recorded demonstrations (camdrive record).",
    )
    data_commands = parser.add_subparsers(title="data commands", metavar="DATA_COMMAND", required=True)
    info = data_commands.add_parser(
        "info",
        help="count the episodes, frames, hours and kilometres of a directory; list bad and partial files",
        description="Print the episodes, frames, hours, kilometres and drivers of a demo directory and "
        "list its bad and partial files. Exit code 0 when it holds readable episodes, else 1.",
    )
    info.add_argument("directory", metavar="DIR", help="directory of episode files")
    info.add_argument("--verify", action="store_true", help="also read every frame (finds corrupt data)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run="training.demos:info_main")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, object]:
    """argparse type for KEY=VALUE: VALUE is read as JSON (64, 0.5, true, "x"), True/False/None as Python
    spells them, anything else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    literals: dict[str, object] = {"True": True, "False": False, "None": None}
    if raw in literals:
        return key.strip(), literals[raw]
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [_add_bench, _add_eval, _add_record, _add_data]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="camdrive: a camera-based driving simulator, its driving policies and tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.set_defaults(run=None)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `camdrive` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None:
        parser.print_help(sys.stderr)
        return 2
    module_name, function_name = args.run.split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    code = run(args)
    return 0 if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
