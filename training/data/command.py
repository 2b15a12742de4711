"""`camdrive record`, `data` and `export`: their options; the work is in record.py, info.py, export.py."""

from __future__ import annotations

import argparse

from training.common.arguments import (
    Subparsers,
    add_parser,
    key_value,
    non_negative_float,
    positive_int,
)


def add_record(subparsers: Subparsers) -> None:
    parser = add_parser(
        subparsers,
        "record",
        "drive episodes headlessly with a driver and save them as demonstrations",
        "Drive --episodes episodes (reset seeds seed, seed+1, ...) with a driver, headless, and write one "
        "crash-safe .npz file per episode to --out (see training/data/demos.py for the format). With --noise "
        "the executed action is perturbed while the driver's clean action is stored as the label.",
    )
    parser.add_argument(
        "--driver",
        default="expert",
        help="expert, imperfect (a late, keyboard-steering, sometimes inattentive driver whose demos store "
        "no labels), or MODULE:CLASS of a Driver (default: %(default)s)",
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
    parser.set_defaults(run=run_record)


def add_data(subparsers: Subparsers) -> None:
    parser = add_parser(
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
        "list its bad and partial files. Exit code 0 when every episode file is readable, 1 when a file is "
        "bad (each named on stderr) or none is readable, 2 when DIR cannot be read (missing, not a "
        "directory, not listable).",
    )
    info.add_argument("directory", metavar="DIR", help="directory of episode files")
    info.add_argument("--verify", action="store_true", help="also read every frame (finds corrupt data)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run=run_info)


def add_export(subparsers: Subparsers) -> None:
    parser = add_parser(
        subparsers,
        "export",
        "copy recorded demonstrations into another format (Minari)",
        "Export every complete episode in DIR to a Minari dataset (needs pip install -e '.[minari]'). "
        "The camera frames are stored exactly as recorded, unlike Minari's own default (JPEG).",
    )
    parser.add_argument("directory", metavar="DIR", help="directory of camdrive demonstrations")
    parser.add_argument("--minari", required=True, metavar="DATASET_ID", help="e.g. camdrive/lane-expert-v0")
    parser.add_argument("--root", metavar="PATH", help="Minari datasets folder (default: Minari's own)")
    parser.add_argument(
        "--jpeg",
        action="store_true",
        help="store the camera frames JPEG-encoded (Minari's default): a smaller dataset, but LOSSY, its "
        "frames differ from the recording and no longer re-simulate (default: lossless raw frames)",
    )
    parser.set_defaults(run=run_export)


def run_record(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.data.record import main

    return main(args)


def run_info(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.data.info import info_main

    return info_main(args)


def run_export(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.data.export import main

    return main(args)
