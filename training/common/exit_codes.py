"""One exit-code convention for every `camdrive` command.

A script that drives camdrive (a CI job, a sweep) should be able to tell "my input was wrong" from "the
work ran and its check failed" from "someone stopped it" without parsing messages. Every command returns
one of these codes; `camdrive --help` and the README state them.
"""

from __future__ import annotations

OK = 0
"""The work ran and succeeded."""

FAILED = 1
"""The work ran and found a failure: a replay that does not match, a file that fails verification."""

BAD_INPUT = 2
"""Refused before any work: a bad option, path or file (argparse uses 2 for bad options too)."""

INTERRUPTED = 130
"""Stopped by Ctrl-C or SIGTERM, after keeping what was already written (128 + SIGINT, the shell's code)."""
