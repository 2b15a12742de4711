"""Sub-envs stepped side by side in several processes, everything they return in shared memory.

`WorkerBlocks` splits the vector env's sub-envs into K consecutive blocks (`EnvBlock`s): the first is
stepped in the calling process, each other one in a worker process of its own, all at the same time.
So the world step, which is partly Python and holds its interpreter, runs on K cores, not one.

Actions, observations, rewards, flags and info columns are arrays in one shared-memory segment
(`SharedBatch`): the calling process writes the actions, and every block writes its rows of the
rest in place. A step is signalled through two semaphores per worker, "go" and "done", nothing
sent or pickled (pickling the actions and the reply took about a tenth of a 16-env step's time on the
development machine; a one-byte message each way through a pipe, 20 us a round trip, where the
semaphores take 0.3 us). The calling process signals the workers first and steps its own block while
they step theirs. Anything else (reset, render, close, a worker's error) is a pickled message on the
worker's pipe, sent before the semaphore is released, so the other side finds it waiting there.

Each side waits for the other's signal by polling for a moment (`SPIN_S`) before it sleeps on it: a
process that sleeps leaves its core idle, and waking it again takes tens of microseconds, twice per
step. A sleeping side wakes every `ALIVE_CHECK_S` to check that the other is still there: the calling
process reports a worker that died, and a worker whose calling process died exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import gymnasium as gym
import numpy as np

from sim.envs.base import CamDriveEnv
from sim.envs.blocks import BatchedInfos, EnvBlock, make_envs

WORKER_START_METHOD: str | None = None
"""None: the start method the program chose (`multiprocessing.set_start_method`), else the platform's
default, as Gymnasium's AsyncVectorEnv: fork on Linux before Python 3.14 (a worker starts in
milliseconds and needs no `if __name__ == "__main__"` guard in the user's script), spawn on macOS and
Windows and forkserver on Linux from 3.14 (where scripts need the guard and a worker takes a second or
two to start). Workers only run sim code, never torch."""


def worker_start_method() -> str:
    """How worker processes start (`WORKER_START_METHOD`), found without fixing multiprocessing's
    default for the program (`multiprocessing.get_context()` would, and a later
    `set_start_method` of the user's would then fail)."""
    chosen = multiprocessing.get_start_method(allow_none=True)
    return WORKER_START_METHOD or chosen or multiprocessing.get_all_start_methods()[0]


Layout = list[tuple[str, tuple[int, ...], str]]
"""A shared batch's arrays: (name, shape, dtype string), in the order they are laid out."""

_ALIGN = 64
"""Every array of a shared batch starts on a cache line of its own."""

SPIN_S = 200e-6
"""How long a process waiting for the other side's signal (a worker for the next step, the calling
process for a worker's reply) polls before it sleeps on it, in seconds.

Why: a 1-byte round trip through a pipe to a blocked worker took 58 us (median) on the 2-vCPU
development machine, against 11 us to a worker already awake: a blocked process's core goes idle,
and waking it costs time. With N=16 and `workers=2`, a step took 1,078 us where one core steps 8
sub-envs in 890 us; the calling process waited 99 us of that for its worker. Polling for up to 200 us
gave 1.03x-1.13x the env-steps/s at N=16 (1.20x at N=4, 1.01x at N=64), alternating with blocking
at once in one process, observations equal; 100 us and 500 us did about as well. (Measured when steps
were signalled through the pipe. A sleeping process still takes tens of microseconds to wake through a
semaphore: 31 us median here, against 50 us through the pipe.) The bound caps
what polling costs when the calling process is busy between steps (a policy's forward pass): a
worker then polls 200 us per step, then sleeps. No polling when there are more processes than
cores (`WorkerBlocks`' `spin_s`): a polling process would then take a core that another one needs."""

_STEP_OWED, _ERROR_MAYBE, _COMMAND_OWED = "step", "error?", "command"
"""The states of a worker's reply still to be taken (`WorkerLink`)."""

ALIVE_CHECK_S = 0.1
"""How often a process sleeping on the other side's signal wakes to check that the other side is
still alive, in seconds (the semaphores, unlike a pipe, say nothing when a process dies)."""

_ACTIONS = "actions"
_OBSERVATIONS = "observations"
_REWARDS = "rewards"
_TERMINATIONS = "terminations"
_TRUNCATIONS = "truncations"
_INFO = "info:"
"""Prefix of the info columns' names in a batch's layout (the other names are the arrays above)."""


class SharedBatch:
    """Named arrays in one shared-memory segment, laid out by a `Layout` that every process rebuilds
    the same views from (`attach`). The creator unlinks the segment (`_stop_workers`)."""

    def __init__(self, memory: SharedMemory, layout: Layout) -> None:
        self.memory = memory
        self.layout = layout
        offsets, _ = _offsets(layout)
        self.arrays = {
            name: np.ndarray(shape, np.dtype(dtype), memory.buf, offset)
            for (name, shape, dtype), offset in zip(layout, offsets, strict=True)
        }

    @classmethod
    def create(cls, layout: Layout) -> SharedBatch:
        _, size = _offsets(layout)
        return cls(SharedMemory(create=True, size=max(size, 1)), layout)

    @classmethod
    def attach(cls, name: str, layout: Layout) -> SharedBatch:
        return cls(SharedMemory(name=name), layout)

    def info_columns(self, part: slice) -> dict[str, np.ndarray]:
        """The rows `part` of every info column, by info key."""
        return {name[len(_INFO) :]: a[part] for name, a in self.arrays.items() if name.startswith(_INFO)}

    def flags(self, part: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows `part` of the rewards, terminations and truncations, as `EnvBlock.step` fills them."""
        return self.arrays[_REWARDS][part], self.arrays[_TERMINATIONS][part], self.arrays[_TRUNCATIONS][part]

    def block(self, envs: list[CamDriveEnv], step_limit: int | None, part: slice) -> EnvBlock:
        """An `EnvBlock` of `envs` writing its observations and infos into the rows `part`."""
        observations = self.arrays[_OBSERVATIONS][part]
        return EnvBlock(envs, step_limit, observations, info_columns=self.info_columns(part))

    def release(self) -> None:
        """Drop the views (they must go before the segment's buffer can close)."""
        self.arrays.clear()


def _offsets(layout: Layout) -> tuple[list[int], int]:
    """Where each array of `layout` starts in the segment, each on a fresh cache line; the size."""
    offsets, end = [], 0
    for _, shape, dtype in layout:
        offsets.append(end)
        end += int(np.prod(shape)) * np.dtype(dtype).itemsize
        end = -(-end // _ALIGN) * _ALIGN
    return offsets, end


def batch_layout(
    count: int,
    observation_shape: tuple[int, ...],
    observation_dtype: np.dtype,
    info: dict[str, Any],
    action_space: gym.Space,
) -> Layout:
    """The shared arrays of `count` sub-envs: actions (of the single env's `action_space`: int64 for
    a Discrete, float64 for a Box, each value exactly as the env reads it), observations, rewards,
    flags, and a column per key of `info` (one sub-env's info, for its keys and value types)."""
    assert action_space.shape is not None  # a Box's or a Discrete's
    action_dtype = np.int64 if isinstance(action_space, gym.spaces.Discrete) else np.float64
    layout: Layout = [
        (_ACTIONS, (count, *action_space.shape), np.dtype(action_dtype).str),
        (_OBSERVATIONS, (count, *observation_shape), np.dtype(observation_dtype).str),
        (_REWARDS, (count,), np.dtype(np.float64).str),
        (_TERMINATIONS, (count,), np.dtype(np.bool_).str),
        (_TRUNCATIONS, (count,), np.dtype(np.bool_).str),
    ]
    for key, dtype in BatchedInfos.column_types(info).items():
        layout.append((_INFO + key, (count,), dtype.str))
    return layout


class WorkerBlocks:
    """The sub-envs in `workers` consecutive blocks: the first stepped here, the others each by a
    worker process of its own, side by side; everything they return lands in shared memory.

    An exception in a worker is raised here (RuntimeError naming it), once every block has finished
    the call; closing stops the workers and frees the memory. Every block draws its frames with one
    thread (each block has a core of its own).
    """

    def __init__(
        self,
        env_class: type[CamDriveEnv],
        num_envs: int,
        workers: int,
        render_mode: str | None,
        options: dict[str, Any],
        step_limit: int | None,
        observation_shape: tuple[int, ...],
        observation_dtype: np.dtype,
        action_space: gym.Space,
        spin_s: float = SPIN_S,
    ) -> None:
        edges = np.linspace(0, num_envs, workers + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        local = self.slices[0]
        envs = make_envs(env_class, local.stop - local.start, render_mode, options)
        info = envs[0].current_info()
        layout = batch_layout(num_envs, observation_shape, observation_dtype, info, action_space)
        self._shared = SharedBatch.create(layout)
        self._actions = self._shared.arrays[_ACTIONS]
        self.observations = self._shared.arrays[_OBSERVATIONS]
        self.infos = BatchedInfos(self._shared.info_columns(slice(None)))
        self._flags = self._shared.flags(slice(None))
        self._local = self._shared.block(envs, step_limit, local)
        self._local_flags = self._shared.flags(local)
        self._spin_s = spin_s
        """How long to poll for a signal before sleeping on it (`SPIN_S`; 0: sleep at once)."""
        context = multiprocessing.get_context(worker_start_method())
        self._links: list[WorkerLink] = []
        """The workers, of blocks 1.. in order (block 0 is this process's)."""
        # Also run at interpreter exit for a vector env never closed: the workers stop and the memory
        # is released, rather than left for the resource tracker to warn about.
        self._release = weakref.finalize(self, _stop_workers, self._links, self._shared, self._local)
        try:
            for part in self.slices[1:]:
                self._links.append(
                    WorkerLink.start(context, env_class, part, render_mode, options, step_limit,
                                     self._shared, spin_s)
                )  # fmt: skip
            self._call_all([("ready", None)] * len(self._links), lambda: None)
        except BaseException:
            self.close()
            raise

    @property
    def memory_name(self) -> str:
        """The shared-memory segment's name (it no longer exists once the blocks are closed)."""
        return self._shared.memory.name

    @property
    def worker_processes(self) -> list[Any]:
        """The worker processes, of blocks 1.. in order (block 0 is stepped in this process)."""
        return [link.process for link in self._links]

    def reset(self, seeds: list[int | None], out: np.ndarray) -> None:
        """Reset every block's sub-envs with their seeds: observations into `out` (see `step`), infos
        in shared memory."""
        local, others = self.slices[0], self.slices[1:]
        self._call_all(
            [("reset", seeds[part]) for part in others], lambda: self._local.reset(seeds[local], out[local])
        )
        self._gather_observations(out)

    def step(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        out: np.ndarray,
    ) -> None:
        """Step every block (`EnvBlock.step`) with `actions` (checked: `sim.actions.checked_batch`),
        through shared memory; rewards and flags copied into the arrays given.

        Observations go into `out`: the shared `observations`, or an array of their shape that this
        process's block draws its rows into directly and the workers' rows are then copied into.
        """
        local = self.slices[0]
        actions_here, out_here = self._actions[local], out[local]
        self._call_all(
            [None] * len(self._links),
            lambda: self._local.step(actions_here, *self._local_flags, out_here),
            actions=actions,
        )
        rewards[:], terminations[:], truncations[:] = self._flags
        self._gather_observations(out)

    def _gather_observations(self, out: np.ndarray) -> None:
        """The workers' rows of the shared observations into `out`, unless it is that array."""
        if out is not self.observations:
            for part in self.slices[1:]:
                out[part] = self.observations[part]

    def render(self) -> list[Any]:
        frames: list[Any] = []
        others = self._call_all(
            [("render", None)] * len(self.slices[1:]), lambda: frames.extend(self._local.render())
        )
        return frames + [frame for block_frames in others for frame in block_frames]

    def _call_all(
        self,
        messages: list[tuple[str, Any] | None],
        here: Callable[[], object],
        actions: np.ndarray | None = None,
    ) -> list[Any]:
        """Have every worker step (message None) or run a (command, argument) message, run `here()` (this
        process's block) meanwhile, then collect the workers' replies (None for a step); an error here
        or in a worker is raised once all have answered. `actions`, for a step, go into shared memory
        first, once every worker has finished what an interrupted call asked of it (`WorkerLink.settle`):
        before that, a worker may still be reading the last ones."""
        for link in self._links:
            link.settle()
        if actions is not None:
            self._actions[:] = actions  # every value exactly: integers as int64, floats as float64
        for link, message in zip(self._links, messages, strict=True):
            link.send(message)
        error: BaseException | None = None
        try:
            here()
        except BaseException as raised:  # the workers' replies must still be read, or the next call desyncs
            error = raised
        replies = []
        for k, link in enumerate(self._links):
            try:
                status, value = link.reply()
            except (EOFError, ConnectionError):
                link.process.join(timeout=1)
                code = link.process.exitcode
                error = error or RuntimeError(f"vector env worker {k + 1} died (exit code {code})")
                continue
            if status == "error":
                error = error or RuntimeError(f"vector env worker {k + 1}: {value}")
            replies.append(value)
        if error is not None:
            raise error
        return replies

    def close(self) -> None:
        self._release()


class WorkerLink:
    """This process's end of one worker: the process, its pipe, and the two semaphores of a step.

    A step is `go` released here and `done` released by the worker, with nothing on the pipe unless
    the worker failed; any other message goes on the pipe first and then releases `go`, and its reply
    comes back on the pipe. A reply not taken (a call interrupted by Ctrl-C while it waited) is taken
    before the next call (`settle`): otherwise the next step would change the actions under the worker
    still stepping, find the last step's `done` and read the shared arrays while the worker writes them.
    """

    def __init__(self, process: Any, connection: Connection, go: Any, done: Any, spin_s: float) -> None:
        self.process, self.connection, self.go, self.done = process, connection, go, done
        self._spin_s = spin_s
        self._message_waiting = message_test(connection)
        self._owed: str | None = None
        """What of the worker's reply is still to be taken: `_STEP_OWED` (its `done`), `_ERROR_MAYBE`
        (a step's error, if it sent one), `_COMMAND_OWED` (a command's reply) or nothing (None)."""

    @staticmethod
    def start(context: Any, env_class: type[CamDriveEnv], part: slice, render_mode: str | None,
              options: dict[str, Any], step_limit: int | None, shared: SharedBatch,
              spin_s: float) -> WorkerLink:  # fmt: skip
        """Start a worker process stepping the sub-envs `part` of `shared`."""
        parent, child = context.Pipe()
        go, done = context.Semaphore(0), context.Semaphore(0)
        process = context.Process(
            target=_worker,
            args=(child, go, done, env_class, part, render_mode, options, step_limit, shared.memory.name,
                  shared.layout, spin_s),
            daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        return WorkerLink(process, parent, go, done, spin_s)

    def settle(self) -> None:
        """Take the reply an interrupted call left (Ctrl-C while it waited), if any: the worker has then
        finished that call, before this process writes the next step's actions or sends another message."""
        if self._owed is not None:
            with contextlib.suppress(EOFError, ConnectionError):  # a dead worker: the next call says so
                self.reply()

    def send(self, message: tuple[str, Any] | None) -> None:
        """Have the worker step (None) or run a (command, argument) message (after `settle`)."""
        self._owed = _STEP_OWED if message is None else _COMMAND_OWED
        if message is not None:
            self.connection.send(message)
        self.go.release()

    def reply(self) -> tuple[str, Any]:
        """The worker's answer to the last `send`: ("ok", value) or ("error", text); EOFError if it died."""
        if self._owed == _STEP_OWED:
            if not _wait(self.done, self._spin_s, self.process.is_alive):
                raise EOFError("the worker died")
            self._owed = _ERROR_MAYBE
        if self._owed == _ERROR_MAYBE and not self._message_waiting():
            self._owed = None
            return "ok", None
        answer = self.connection.recv()
        self._owed = None
        return answer


def _stop_workers(links: list[WorkerLink], shared: SharedBatch, local: EnvBlock) -> None:
    """Stop the workers and free the shared memory (`WorkerBlocks.close`, or at exit if never closed)."""
    local.close()
    for link in links:
        # No `settle` first: "close" needs no reply, and a worker stuck in a step is terminated below.
        with contextlib.suppress(BrokenPipeError, OSError):  # a worker that already died
            link.send(("close", None))
    for link in links:
        link.process.join(timeout=5)
        if link.process.is_alive():
            link.process.terminate()
    for link in links:
        link.connection.close()
    shared.release()
    shared.memory.unlink()
    with contextlib.suppress(BufferError):  # views may remain (the vector env's observations): the
        shared.memory.close()  # mapping then goes with the last of them


def _worker(
    connection: Connection,
    go: Any,
    done: Any,
    env_class: type[CamDriveEnv],
    part: slice,
    render_mode: str | None,
    options: dict[str, Any],
    step_limit: int | None,
    memory_name: str,
    layout: Layout,
    spin_s: float,
) -> None:
    """A worker process: build its block of sub-envs, then answer the parent's messages until "close"
    (or until the parent is gone).

    Ctrl-C is the parent's to handle (it closes the workers), so the worker ignores SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shared = SharedBatch.attach(memory_name, layout)  # the parent unlinks it (one resource tracker)
    try:
        envs = make_envs(env_class, part.stop - part.start, render_mode, options)
        _serve(connection, go, done, envs, step_limit, shared, part, spin_s)
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        shared.release()  # the block's views went with `_serve`
        with contextlib.suppress(BufferError):
            shared.memory.close()


def _serve(
    connection: Connection,
    go: Any,
    done: Any,
    envs: list[CamDriveEnv],
    step_limit: int | None,
    shared: SharedBatch,
    part: slice,
    spin_s: float,
) -> None:
    """Step the block of `envs` (rows `part` of the shared batch) as the parent's signals say: `go`
    with nothing on the pipe is a step, answered by `done` (and an error first on the pipe); a
    message on the pipe is a command, answered on the pipe."""
    block, flags = shared.block(envs, step_limit, part), shared.flags(part)
    actions = shared.arrays[_ACTIONS][part]
    parent, message_waiting = os.getppid(), message_test(connection)
    try:
        while _wait(go, spin_s, lambda: os.getppid() == parent):
            if not message_waiting():  # a step: the common case, nothing sent either way
                try:
                    block.step(actions, *flags)
                except Exception as error:  # reported to the parent, which raises it
                    connection.send(("error", f"{type(error).__name__}: {error}"))
                done.release()
                continue
            command, argument = connection.recv()
            if command == "close":
                return
            try:
                reply: Any = None
                if command == "reset":
                    block.reset(argument)
                elif command == "render":
                    reply = block.render()
                connection.send(("ok", reply))
            except Exception as error:
                connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        block.close()


def _wait(semaphore: Any, spin_s: float, other_side_alive: Callable[[], bool]) -> bool:
    """Take `semaphore`: polled for up to `spin_s` seconds, then slept on (`SPIN_S` says why), waking
    every `ALIVE_CHECK_S` to ask `other_side_alive()`. False if the other side is gone."""
    if semaphore.acquire(False):
        return True
    deadline = time.perf_counter() + spin_s
    while time.perf_counter() < deadline:
        if semaphore.acquire(False):
            return True
    while not semaphore.acquire(timeout=ALIVE_CHECK_S):
        if not other_side_alive():
            return False
    return True


def message_test(connection: Connection) -> Callable[[], bool]:
    """A test of whether a message (or the end of the pipe) waits on `connection`, for every step:
    `select.poll` where the platform has it (0.5 us on the development machine, against 3-14 us for
    `Connection.poll`, which builds a selector at every call), else `Connection.poll`."""
    if not hasattr(select, "poll"):
        return lambda: connection.poll(0)
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return lambda: bool(poller.poll(0))
