"""Ctrl-C and SIGTERM: one way to stop every `camdrive` command, keeping what it wrote.

`camdrive` (training/cli.py) turns SIGTERM into KeyboardInterrupt for the whole command
(`sigterm_as_ctrl_c`), so a scheduler's or `kill`'s stop takes the path Ctrl-C always had: the commands'
`finally` blocks and context managers close files and envs, and their `saying_what_is_kept` blocks add
what was kept to the one line `camdrive` prints before exiting with code 130.

Why `interruption` looks behind other exceptions: a KeyboardInterrupt raised while Python code runs
inside a C extension can come out wrapped. numba's compiled-function dispatcher returns a result with
the exception still set, and CPython reports that as "SystemError: CPUDispatcher(...) returned a result
with an exception set", the KeyboardInterrupt as its cause; seen when SIGTERM hit `camdrive record` in
the simulator's step. Such an error is the interruption, not a bug.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt, as Ctrl-C does.

    Why: a scheduler, `timeout` or `kill` stops a job with SIGTERM, which by default ends the process at
    once, like SIGKILL: no partial episode kept, no message, temporary files left. A worker process
    forked while the block runs inherits the handler; there SIGTERM keeps its default meaning (the
    worker ends and its parent reports it), so the handler gives it back and re-sends the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt `error` is, or was raised from (see the module docstring), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def saying_what_is_kept(describe: Callable[[], str]) -> Iterator[None]:
    """Re-raise an interruption of the block as KeyboardInterrupt(describe()): what the command kept,
    for the one line `camdrive` prints. An interruption that already says it passes unchanged, so the
    innermost block, which knows most, has the last word."""
    try:
        yield
    except BaseException as error:
        stop = interruption(error)
        if stop is None:
            raise
        if stop is error and str(error):
            raise
        raise KeyboardInterrupt(describe()) from None
