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


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [_add_bench]


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
