"""The `camdrive` command line: the top-level parser, and how every command ends.

Each command's options are declared next to its work, in the `command.py` of its package
(`training/apps`, `data`, `evaluation`, `bc`, `dqn`, `rllib`), by a function `add_<name>(subparsers)` listed
in `SUBCOMMANDS` (or, for `train bc|dqn|rllib`, called by `_add_train`). It sets `run` to a function of
that module which imports the command's work when it runs, so `camdrive --help` stays fast and never
imports torch. `run` receives the parsed `argparse.Namespace` and returns the exit code (None means 0).

To add a command: write `add_<name>` and its `run_<name>` in the command.py of its package, and list it
in `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from training.apps.command import add_play, add_replay, add_watch
from training.bc.command import add_train_bc
from training.common import exit_codes
from training.common.arguments import Subparsers, add_parser
from training.common.interrupts import interruption, sigterm_as_ctrl_c
from training.common.version import package_version
from training.data.command import add_data, add_export, add_record
from training.dqn.command import add_train_dqn
from training.evaluation.command import add_bench, add_eval
from training.rllib.command import add_train_rllib

PROG = "camdrive"


def _add_train(subparsers: Subparsers) -> None:
    parser = add_parser(
        subparsers,
        "train",
        "train a driving policy (bc: PilotNet by behaviour cloning; dqn: Double DQN in traffic; rllib: Ray)",
        "Train a driving policy. `train bc`: PilotNet by behaviour cloning of the expert in LaneKeep-v0; "
        "`train dqn`: Double DQN in Traffic-v0; `train rllib`: PPO, APPO or DQN from Ray RLlib.",
    )
    train_commands = parser.add_subparsers(title="training methods", metavar="METHOD", required=True)
    add_train_bc(train_commands)
    add_train_dqn(train_commands)
    add_train_rllib(train_commands)


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    add_bench,
    add_eval,
    add_export,
    add_record,
    add_data,
    add_play,
    add_replay,
    _add_train,
    add_watch,
]


EXIT_CODES_EPILOG = (
    f"exit codes, the same for every command: {exit_codes.OK} ok; {exit_codes.FAILED} the work ran and "
    f"failed (a check failed, a run trained nothing); {exit_codes.BAD_INPUT} refused before any work (a bad "
    f"option, path or file; one line on stderr names it); {exit_codes.INTERRUPTED} stopped by Ctrl-C or "
    "SIGTERM, after keeping what was already written. No command replaces a file it did not make "
    "without --force."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="camdrive: a camera-based driving simulator, its driving policies and tools.",
        epilog=EXIT_CODES_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.set_defaults(run=None)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def command_name(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The words that name the command in messages: "camdrive train bc" for argv ["train", "bc", ...]."""
    words = [PROG]
    for token in argv:
        children = {
            name: sub
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()
        }
        if token not in children:
            break
        words.append(token)
        parser = children[token]
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `camdrive` console script. Returns the exit code (`training.common.exit_codes`).

    Ctrl-C and SIGTERM end every command the same way: what it already wrote is kept (the commands'
    own handlers say what), and one line `camdrive CMD: interrupted...` replaces the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    name = command_name(parser, argv)
    with sigterm_as_ctrl_c():
        try:
            args = parser.parse_args(argv)
            if args.run is None:
                parser.print_help(sys.stderr)
                return exit_codes.BAD_INPUT
            code = args.run(args)
        except BaseException as error:
            stop = interruption(error)
            if stop is None:
                raise
            detail = f"; {stop}" if str(stop) else ""
            print(f"{name}: interrupted{detail}", file=sys.stderr, flush=True)
            return exit_codes.INTERRUPTED
    return exit_codes.OK if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
