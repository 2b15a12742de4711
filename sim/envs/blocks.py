"""Blocks of sub-envs for the native vector env: stepped here, or in worker processes, one per core.

`EnvBlock` steps a run of sub-envs and writes their observations, rewards, flags and infos into
arrays it is given; it draws the frames from a few threads (the renderer releases the interpreter).
The vector env keeps one block in its own process (`workers=1`) or hands one block to each worker
process (`WorkerBlocks`), whose observations land in shared memory, so that a step costs one small
message per worker, not a pickled frame per env.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from sim.envs.base import CamDriveEnv

WORKER_START_METHOD: str | None = None
"""multiprocessing's default, as Gymnasium's AsyncVectorEnv: fork on Linux (a worker starts in
milliseconds and needs no `if __name__ == "__main__"` guard in the user's script), spawn on macOS and
Windows (where scripts need the guard). Workers only run sim code, never torch."""


STEP_IN_THREADS = False
"""Whether `EnvBlock` steps its worlds from its threads too, or only renders from them.

The world step is still partly Python: from two threads that part only takes turns on the
interpreter lock, and its short compiled calls hand the lock back and forth, which keeps the
renderer's threads waiting (no gain was measured). So the worlds step in the calling thread, one
after another, and the frames are then drawn by all the threads. Once `World.step` runs as one nogil
compiled call, stepping from the threads spreads it over the cores too: set this True (the results
do not change: tests/test_vector_env.py checks it)."""


class EnvBlock:
    """`count` sub-envs made with the same options, stepped in this process by `threads` threads.

    The worlds are stepped first (here, or from the threads with `STEP_IN_THREADS`), then observed in
    three phases (`_observe_all`): the calling thread prepares every frame (the Python part:
    `CamDriveEnv.prepare_observation`) and writes the infos; then the sub-envs are split into
    `threads` consecutive runs, the calling thread draws the first run's frames while a small
    persistent pool draws the others'; then the calling thread finishes them (roofs seen from above,
    grayscale). A frame is one compiled call that releases the interpreter
    (`kernels.draw_camera_frame`), so two threads draw two frames at once on two cores, and they
    take turns on the interpreter only between whole frames. (With each frame's Python part between
    the calls instead, two threads were slower than one in several runs on the 2-vCPU development
    machine; in alternating runs the three phases gave two threads 11-27 % more env-steps/s.) A
    sub-env's frame depends only on its own world and renderer, so the results do not depend on the
    number of threads.
    """

    def __init__(
        self,
        env_class: type[CamDriveEnv],
        count: int,
        render_mode: str | None,
        options: dict[str, Any],
        step_limit: int | None,
        observations: np.ndarray,
        threads: int = 1,
    ) -> None:
        self.envs = [env_class(render_mode=render_mode, **options) for _ in range(count)]
        self.step_limit = step_limit
        self.observations = observations
        """(count, *observation shape): where this block's observations are written."""
        self.autoreset = np.zeros(count, dtype=np.bool_)
        self.infos = BatchedInfos(self.envs[0].current_info(), count)
        edges = np.linspace(0, count, min(threads, count) + 1).round().astype(int)
        self._runs = [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        """Which sub-envs each thread takes: the calling thread the first run, the pool the others."""
        self._pool = ThreadPoolExecutor(len(self._runs) - 1) if len(self._runs) > 1 else None

    def reset(self, seeds: list[int | None]) -> dict[str, np.ndarray]:
        """Reset every sub-env with its seed and observe it; their infos, batched."""
        for env, seed in zip(self.envs, seeds, strict=True):
            env.new_episode(seed)
        self._observe_all()
        self.autoreset[:] = False
        return self.infos.arrays

    def step(
        self, actions: np.ndarray, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Step every sub-env, or reset those that ended on the previous step (NEXT_STEP autoreset);
        rewards and flags into the arrays given, observations into `observations`; the infos, batched."""

        def step_run(run: range) -> None:
            for i in run:
                self._step_one(i, actions[i], rewards, terminations, truncations)

        if STEP_IN_THREADS:
            self._across_threads(step_run)
        else:
            step_run(range(len(self.envs)))
        self._observe_all()
        np.logical_or(terminations, truncations, out=self.autoreset)
        return self.infos.arrays

    def _step_one(
        self, i: int, action: Any, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> None:
        env = self.envs[i]
        if self.autoreset[i]:
            env.new_episode(None)
            rewards[i], terminations[i], truncations[i] = 0.0, False, False
            return
        reward, terminated, truncated = env.advance(action)
        if self.step_limit is not None and env.steps >= self.step_limit:
            truncated = True  # TimeLimit truncates even an episode that also terminated
        rewards[i], terminations[i], truncations[i] = reward, terminated, truncated

    def _observe_all(self) -> None:
        """Observe every sub-env, frames drawn straight into `observations` and infos into rows: the
        frames prepared here, drawn from all the threads, then finished here."""
        jobs = []
        for i, env in enumerate(self.envs):
            jobs.append(env.prepare_observation(self.observations[i]))
            self.infos.write(i, env.current_info())
        if all(job is None for job in jobs):  # observed already (no camera): no frames to draw
            return

        def draw_run(run: range) -> None:
            for i in run:
                job = jobs[i]
                if job is not None:
                    job.draw()

        self._across_threads(draw_run)
        for job in jobs:
            if job is not None:
                job.finish()

    def _across_threads(self, work: Callable[[range], None]) -> None:
        """`work(run)` for every run of sub-envs, the first here and the others in the pool; an
        exception in any of them is raised here, once all have finished."""
        if self._pool is None:
            work(self._runs[0])
            return
        others = [self._pool.submit(work, run) for run in self._runs[1:]]
        try:
            work(self._runs[0])
        finally:
            for future in others:
                future.result()

    def render(self) -> list[Any]:
        return [env.render() for env in self.envs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        for env in self.envs:
            env.close()


class BatchedInfos:
    """The sub-envs' infos in Gymnasium's vector format, as `VectorEnv._add_info` builds it.

    Every camdrive info has the same keys with plain values (int, float, bool) in every sub-env, so
    each key is one array of the first sub-env's value type, written in place row by row, and its
    "_key" mask is all True.
    """

    def __init__(self, example: dict[str, Any], count: int) -> None:
        self.columns = {key: np.zeros(count, dtype=type(value)) for key, value in example.items()}
        self.masks = {f"_{key}": np.ones(count, dtype=np.bool_) for key in example}

    def write(self, i: int, info: dict[str, Any]) -> None:
        """Sub-env i's info into row i."""
        for key, value in info.items():
            self.columns[key][i] = value

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """A copy of the current rows, each key followed by its mask (the order `_add_info` gives)."""
        infos: dict[str, np.ndarray] = {}
        for key, column in self.columns.items():
            infos[key] = column.copy()
            infos[f"_{key}"] = self.masks[f"_{key}"].copy()
        return infos


class WorkerBlocks:
    """Consecutive blocks of sub-envs, each stepped by a worker process of its own.

    Observations are written by the workers straight into one shared-memory batch; a step sends
    each worker its actions and receives its rewards, flags and info dicts. An exception in a worker
    is raised here (RuntimeError naming it); closing stops the workers and frees the memory.
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
    ) -> None:
        size = int(np.prod((num_envs, *observation_shape))) * np.dtype(observation_dtype).itemsize
        self._memory = SharedMemory(create=True, size=max(size, 1))
        self.observations = np.ndarray((num_envs, *observation_shape), observation_dtype, self._memory.buf)
        edges = np.linspace(0, num_envs, workers + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        context = multiprocessing.get_context(WORKER_START_METHOD)
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        # Also run at interpreter exit for a vector env never closed: the workers stop and the memory
        # is released, rather than left for the resource tracker to warn about.
        self._release = weakref.finalize(
            self, _stop_workers, self._connections, self._processes, self._memory
        )
        try:
            self._start(context, env_class, render_mode, options, step_limit)
            self._call_all([("ready", None)] * len(self.slices))
        except BaseException:
            self.close()
            raise

    def _start(self, context: Any, env_class: type[CamDriveEnv], render_mode: str | None,
               options: dict[str, Any], step_limit: int | None) -> None:  # fmt: skip
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(child, env_class, part, render_mode, options, step_limit, self._memory.name,
                      self.observations.shape, self.observations.dtype),
                daemon=True,
            )  # fmt: skip
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)

    def reset(self, seeds: list[int | None]) -> dict[str, np.ndarray]:
        replies = self._call_all([("reset", seeds[part]) for part in self.slices])
        return _joined_infos(replies)

    def step(
        self, actions: np.ndarray, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> dict[str, np.ndarray]:
        replies = self._call_all([("step", actions[part]) for part in self.slices])
        for part, (block_rewards, block_terminations, block_truncations, _) in zip(
            self.slices, replies, strict=True
        ):
            rewards[part], terminations[part], truncations[part] = (
                block_rewards,
                block_terminations,
                block_truncations,
            )
        return _joined_infos([infos for *_, infos in replies])

    def render(self) -> list[Any]:
        return [frame for frames in self._call_all([("render", None)] * len(self.slices)) for frame in frames]

    def _call_all(self, messages: list[tuple[str, Any]]) -> list[Any]:
        """Send every worker its message, then collect the replies (the workers run meanwhile)."""
        for connection, message in zip(self._connections, messages, strict=True):
            connection.send(message)
        replies = []
        for k, connection in enumerate(self._connections):
            try:
                status, value = connection.recv()
            except (EOFError, ConnectionError):
                self._processes[k].join(timeout=1)
                code = self._processes[k].exitcode
                raise RuntimeError(f"vector env worker {k} died (exit code {code})") from None
            if status == "error":
                raise RuntimeError(f"vector env worker {k}: {value}")
            replies.append(value)
        return replies

    def close(self) -> None:
        if hasattr(self, "observations"):
            del self.observations  # the memory's buffer, which must be let go before the memory closes
        self._release()


def _stop_workers(connections: list[Connection], processes: list[Any], memory: SharedMemory) -> None:
    """Stop the workers and free the shared memory (`WorkerBlocks.close`, or at exit if never closed)."""
    for connection in connections:
        with contextlib.suppress(BrokenPipeError, OSError):  # a worker that already died
            connection.send(("close", None))
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
    for connection in connections:
        connection.close()
    memory.unlink()
    with contextlib.suppress(BufferError):  # at exit the vector env may still hold the observations
        memory.close()


def _joined_infos(blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The batched infos of consecutive blocks as those of all their sub-envs together."""
    return {key: np.concatenate([infos[key] for infos in blocks]) for key in blocks[0]}


def _worker(
    connection: Connection,
    env_class: type[CamDriveEnv],
    part: slice,
    render_mode: str | None,
    options: dict[str, Any],
    step_limit: int | None,
    memory_name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> None:
    """A worker process: build its block of sub-envs, then answer the parent's messages until "close".

    Ctrl-C is the parent's to handle (it closes the workers), so the worker ignores SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    memory = SharedMemory(name=memory_name)  # the parent unlinks it (one resource tracker serves both)
    observations = None
    try:
        observations = np.ndarray(shape, dtype, memory.buf)[part]
        count = part.stop - part.start
        block = EnvBlock(env_class, count, render_mode, options, step_limit, observations)
        rewards = np.zeros(count)
        terminations = np.zeros(count, dtype=np.bool_)
        truncations = np.zeros(count, dtype=np.bool_)
        while True:
            command, argument = connection.recv()
            try:
                if command == "close":
                    block.close()
                    return
                if command == "ready":
                    reply: Any = None
                elif command == "reset":
                    reply = block.reset(argument)
                elif command == "step":
                    infos = block.step(argument, rewards, terminations, truncations)
                    reply = (rewards, terminations, truncations, infos)
                else:  # "render"
                    reply = block.render()
                connection.send(("ok", reply))
            except Exception as error:  # reported to the parent, which raises it
                connection.send(("error", f"{type(error).__name__}: {error}"))
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        del observations
        memory.close()
