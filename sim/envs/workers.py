"""Sub-envs stepped side by side in several processes, everything they return in shared memory.

`WorkerBlocks` splits the vector env's sub-envs into K consecutive blocks (`EnvBlock`s): the first is
stepped in the calling process, each other one in a worker process of its own, all at the same time.
So the world step, which is partly Python and holds its interpreter, runs on K cores, not one.

Actions, observations, rewards, flags and info columns are arrays in one shared-memory segment
(`SharedBatch`): the calling process writes the actions, and every block writes its rows of the
rest in place. A step costs each worker a one-byte message and a one-byte reply, nothing pickled
(pickling the actions and the reply took about a tenth of a 16-env step's time on the development
machine). The calling process signals the workers first and steps its own block while they step
theirs.

Each side waits for the other's message by polling the pipe for a moment (`SPIN_S`) before it blocks
on it: a process that blocks leaves its core idle, and waking it again took tens of microseconds on
the development machine, twice per step (see `SPIN_S`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
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

_STEP = b"s"
"""The message that has a worker step its block with the actions in shared memory."""
_DONE = b"k"
"""A worker's reply to `_STEP` when its block has stepped (an error is a pickled ("error", text))."""

SPIN_S = 200e-6
"""How long a process waiting for the other side's message (a worker for the next step, the calling
process for a worker's reply) polls the pipe before it blocks on it, in seconds.

Why: a 1-byte round trip through a pipe to a blocked worker took 58 us (median) on the 2-vCPU
development machine, against 11 us to a worker already awake: a blocked process's core goes idle,
and waking it costs time. With N=16 and `workers=2`, a step took 1,078 us where one core steps 8
sub-envs in 890 us; the calling process waited 99 us of that for its worker. Polling for up to 200 us
gave 1.03x-1.13x the env-steps/s at N=16 (1.20x at N=4, 1.01x at N=64), alternating with blocking
at once in one process, observations equal; 100 us and 500 us did about as well. The bound caps
what polling costs when the calling process is busy between steps (a policy's forward pass): a
worker then polls 200 us per step, then sleeps. No polling when there are more processes than
cores (`WorkerBlocks`' `spin_s`): a polling process would then take a core that another one needs."""

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
        """How long to poll for a message before blocking on it (`SPIN_S`; 0: block at once)."""
        context = multiprocessing.get_context(worker_start_method())
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        """The worker processes, of blocks 1.. in order (block 0 is this process's)."""
        # Also run at interpreter exit for a vector env never closed: the workers stop and the memory
        # is released, rather than left for the resource tracker to warn about.
        self._release = weakref.finalize(
            self, _stop_workers, self._connections, self._processes, self._shared, self._local
        )
        try:
            for part in self.slices[1:]:
                self._start(context, env_class, part, render_mode, options, step_limit)
            self._call_all([("ready", None)] * len(self.slices[1:]), lambda: None)
        except BaseException:
            self.close()
            raise

    def _start(self, context: Any, env_class: type[CamDriveEnv], part: slice, render_mode: str | None,
               options: dict[str, Any], step_limit: int | None) -> None:  # fmt: skip
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker,
            args=(child, env_class, part, render_mode, options, step_limit, self._shared.memory.name,
                  self._shared.layout, self._spin_s),
            daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        self._connections.append(parent)
        self._processes.append(process)

    @property
    def memory_name(self) -> str:
        """The shared-memory segment's name (it no longer exists once the blocks are closed)."""
        return self._shared.memory.name

    @property
    def worker_processes(self) -> list[Any]:
        """The worker processes, of blocks 1.. in order (block 0 is stepped in this process)."""
        return list(self._processes)

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
        self._actions[:] = actions  # every value exactly: integers as int64, floats as float64
        local = self.slices[0]
        actions_here, out_here = self._actions[local], out[local]
        self._call_all(
            [_STEP] * len(self._connections),
            lambda: self._local.step(actions_here, *self._local_flags, out_here),
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
        self, messages: list[tuple[str, Any]] | list[bytes], here: Callable[[], object]
    ) -> list[Any]:
        """Send every worker its message (`_STEP`, or a (command, argument) pair), run `here()` (this
        process's block) meanwhile, then collect the workers' replies (None for `_DONE`); an error here
        or in a worker is raised once all have answered."""
        for connection, message in zip(self._connections, messages, strict=True):
            if isinstance(message, bytes):
                connection.send_bytes(message)
            else:
                connection.send(message)
        error: BaseException | None = None
        try:
            here()
        except BaseException as raised:  # the workers' replies must still be read, or the next call desyncs
            error = raised
        replies = []
        for k, connection in enumerate(self._connections):
            try:
                reply = _receive(connection, self._spin_s)
            except (EOFError, ConnectionError):
                self._processes[k].join(timeout=1)
                code = self._processes[k].exitcode
                error = error or RuntimeError(f"vector env worker {k + 1} died (exit code {code})")
                continue
            status, value = ("ok", None) if reply == _DONE else pickle.loads(reply)
            if status == "error":
                error = error or RuntimeError(f"vector env worker {k + 1}: {value}")
            replies.append(value)
        if error is not None:
            raise error
        return replies

    def close(self) -> None:
        self._release()


def _stop_workers(
    connections: list[Connection], processes: list[Any], shared: SharedBatch, local: EnvBlock
) -> None:
    """Stop the workers and free the shared memory (`WorkerBlocks.close`, or at exit if never closed)."""
    local.close()
    for connection in connections:
        with contextlib.suppress(BrokenPipeError, OSError):  # a worker that already died
            connection.send(("close", None))
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
    for connection in connections:
        connection.close()
    shared.release()
    shared.memory.unlink()
    with contextlib.suppress(BufferError):  # views may remain (the vector env's observations): the
        shared.memory.close()  # mapping then goes with the last of them


def _worker(
    connection: Connection,
    env_class: type[CamDriveEnv],
    part: slice,
    render_mode: str | None,
    options: dict[str, Any],
    step_limit: int | None,
    memory_name: str,
    layout: Layout,
    spin_s: float,
) -> None:
    """A worker process: build its block of sub-envs, then answer the parent's messages until "close".

    Ctrl-C is the parent's to handle (it closes the workers), so the worker ignores SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shared = SharedBatch.attach(memory_name, layout)  # the parent unlinks it (one resource tracker)
    try:
        envs = make_envs(env_class, part.stop - part.start, render_mode, options)
        _serve(connection, envs, step_limit, shared, part, spin_s)
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        shared.release()  # the block's views went with `_serve`
        with contextlib.suppress(BufferError):
            shared.memory.close()


def _serve(
    connection: Connection,
    envs: list[CamDriveEnv],
    step_limit: int | None,
    shared: SharedBatch,
    part: slice,
    spin_s: float,
) -> None:
    """Step the block of `envs` (rows `part` of the shared batch) as the parent's messages say."""
    block, flags = shared.block(envs, step_limit, part), shared.flags(part)
    actions = shared.arrays[_ACTIONS][part]
    try:
        while True:
            message = _receive(connection, spin_s)
            try:
                if message == _STEP:  # every step: no pickle either way
                    block.step(actions, *flags)
                    connection.send_bytes(_DONE)
                    continue
                command, argument = pickle.loads(message)  # a (command, argument) pair, as `send` sent it
                if command == "close":
                    return
                reply: Any = None
                if command == "reset":
                    block.reset(argument)
                elif command == "render":
                    reply = block.render()
                connection.send(("ok", reply))
            except Exception as error:  # reported to the parent, which raises it
                connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        block.close()


def _receive(connection: Connection, spin_s: float) -> bytes:
    """The next message on `connection`: polled for up to `spin_s` seconds, then waited for
    (`SPIN_S` says why). EOFError if the other end has closed."""
    if spin_s > 0 and not connection.poll(0):
        deadline = time.perf_counter() + spin_s
        while not connection.poll(0) and time.perf_counter() < deadline:
            pass
    return connection.recv_bytes()
