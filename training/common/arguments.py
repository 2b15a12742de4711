"""What the commands' parsers share: argument types and the options several commands have."""

from __future__ import annotations

import argparse
import json
import math

# The type argparse's add_subparsers() returns (private in argparse, hence the alias).
Subparsers = argparse._SubParsersAction


def add_parser(subparsers: Subparsers, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
    )


def _integer_at_least(text: str, low: int, wanted: str) -> int:
    """argparse type body: an integer >= `low`; `wanted` says so in the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer_at_least(text, 0, "an integer >= 0")


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


def add_force(parser: argparse.ArgumentParser, what: str) -> None:
    """--force: the only way a command replaces files that exist (`what` names them)."""
    parser.add_argument(
        "--force", action="store_true", help=f"replace {what} if already there (default: refuse to start)"
    )


def add_tensorboard(parser: argparse.ArgumentParser, scalars: str) -> None:
    """--tensorboard for the trainers that do not make it from a config field; `scalars` says what it
    writes."""
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help=f"also write TensorBoard scalars ({scalars}) to DIR, for `tensorboard --logdir DIR`; needs "
        "the tensorboard package (pip install tensorboard)",
    )


def add_view_arguments(
    parser: argparse.ArgumentParser, seconds_help: str = "quit after S seconds (wall clock)"
) -> None:
    """Window options shared by play, replay and watch."""
    parser.add_argument("--width", type=positive_int, default=960, help="window width (default: 960)")
    parser.add_argument("--height", type=positive_int, default=600, help="window height (default: 600)")
    parser.add_argument(
        "--fps",
        type=non_negative_float,
        default=60.0,
        help="display frame-rate cap (default: %(default)s); 0 = unpaced: one env step per frame, as "
        "fast as the machine can (measures the achievable frame rate)",
    )
    parser.add_argument("--seconds", type=non_negative_float, metavar="S", help=seconds_help)
    parser.add_argument("--frames", type=positive_int, metavar="N", help="quit after N displayed frames")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window to PNG when quitting")
