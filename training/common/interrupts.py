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

Why a stop waits while numba or llvmlite code runs (`sigterm_as_ctrl_c`): a KeyboardInterrupt raised
inside numba's compiler, or inside the ctypes callback llvmlite runs while it writes a kernel to the
cache, does not stop the command: llvmlite swallows it ("Exception ignored on calling ctypes callback
function") and numba fails later with "RuntimeError: no compiled object yet", a traceback and exit
code 1. Seen with `camdrive record` stopped by SIGTERM during its first compilation (an empty numba cache,
as after an install). Compiled code itself runs no Python, so it is never interrupted half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What `signal.getsignal` returns."""

STOP_RETRY_S = 0.02
"""How long a stop that arrived inside numba or llvmlite waits before it is tried again."""


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt, as Ctrl-C does, and neither raises it
    inside numba's or llvmlite's own Python code: there the stop waits until that code has returned.

    Why: a scheduler, `timeout` or `kill` stops a job with SIGTERM, which by default ends the process at
    once, like SIGKILL: no partial episode kept, no message, temporary files left. Why the wait: see the
    module docstring. A waiting stop is retried every STOP_RETRY_S by a SIGALRM timer, so the block must
    not use SIGALRM itself. A worker process forked while the block runs inherits the handlers; there a
    signal keeps the meaning it had before the block (SIGTERM ends the worker and its parent reports it),
    so the handler gives it back and passes the signal on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    owner = os.getpid()
    waiting = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal waiting
        if os.getpid() != owner:
            _pass_on(signum, frame, previous[signum])
            return
        if signum == signal.SIGALRM and not waiting:
            return  # no stop is waiting: not our timer's
        if _inside_compiler(frame):
            waiting = True
            signal.setitimer(signal.ITIMER_REAL, STOP_RETRY_S)
            return
        waiting = False
        raise KeyboardInterrupt

    taken: list[int] = [signal.SIGTERM, signal.SIGALRM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        taken.append(signal.SIGINT)  # not when Ctrl-C is ignored, as in a shell's background job
    previous = {signum: signal.signal(signum, handler) for signum in taken}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, before in previous.items():
            signal.signal(signum, before)


def _pass_on(signum: int, frame: FrameType | None, before: _Handler) -> None:
    """In a forked process: give `signum` back its handler from before the block, and let it act."""
    signal.signal(signum, signal.SIG_DFL if before is None else before)
    if callable(before):
        before(signum, frame)  # Ctrl-C's default handler raises KeyboardInterrupt, as it always did
    else:
        os.kill(os.getpid(), signum)


def _inside_compiler(frame: FrameType | None) -> bool:
    """Whether `frame`, or a frame it was called from, runs numba's or llvmlite's Python code."""
    packages = (sys.modules.get("numba"), sys.modules.get("llvmlite"))
    folders = tuple(os.path.dirname(p.__file__) + os.sep for p in packages if p is not None and p.__file__)
    while frame is not None:
        if frame.f_code.co_filename.startswith(folders):
            return True
        frame = frame.f_back
    return False


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
