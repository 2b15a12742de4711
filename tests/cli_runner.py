"""Run `camdrive` in-process from a test, with the exit code the shell would see."""

from __future__ import annotations

import sys

from training import cli


def run_cli(argv: list[str]) -> int:
    """`camdrive ARGV`'s exit code. argparse's SystemExit gives its code; a SystemExit(message) is
    printed to stderr and counts as 1, as the interpreter does."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        return 0 if e.code is None else int(e.code)
