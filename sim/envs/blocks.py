"""Blocks of sub-envs for the native vector env: stepped here, or in worker processes, one per core.

The world step is Python, so one process steps one world at a time. `EnvBlock` steps a run of
sub-envs and writes their observations, rewards and flags into arrays it is given; the vector env
keeps one block in its own process (`workers=1`) or hands one block to each worker process
(`WorkerBlocks`), whose observations land in shared memory, so that a step costs one small message
per worker, not a pickled frame per env.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from sim.envs.base import CamDriveEnv

WORKER_START_METHOD: str | None = None
"""multiprocessing's default, as Gymnasium's AsyncVectorEnv: fork on Linux (a worker starts in
milliseconds and needs no `if __name__ == "__main__"` guard in the user's script), spawn on macOS and
Windows (where scripts need the guard). Workers only run sim code, never torch."""


class EnvBlock:
    """`count` sub-envs made with the same options, stepped one after another in this process."""

    def __init__(
        self,
        env_class: type[CamDriveEnv],
        count: int,
        render_mode: str | None,
        options: dict[str, Any],
        step_limit: int | None,
        observations: np.ndarray,
    ) -> None:
        self.envs = [env_class(render_mode=render_mode, **options) for _ in range(count)]
        self.step_limit = step_limit
        self.observations = observations
        """(count, *observation shape): where this block's observations are written."""
        self.autoreset = np.zeros(count, dtype=np.bool_)

    def reset(self, seeds: list[int | None]) -> list[dict[str, Any]]:
        """Reset every sub-env with its seed; their info dicts."""
        for env, seed in zip(self.envs, seeds, strict=True):
            env._new_episode(seed)
        self.autoreset[:] = False
        return self._observe()

    def step(
        self, actions: np.ndarray, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> list[dict[str, Any]]:
        """Step every sub-env, or reset those that ended on the previous step (NEXT_STEP autoreset);
        rewards and flags into the arrays given, observations into `observations`; the info dicts."""
        for i, env in enumerate(self.envs):
            if self.autoreset[i]:
                env._new_episode(None)
                rewards[i], terminations[i], truncations[i] = 0.0, False, False
            else:
                reward, terminated, truncated = env._advance(actions[i])
                if self.step_limit is not None and env.steps >= self.step_limit:
                    truncated = True  # TimeLimit truncates even an episode that also terminated
                rewards[i], terminations[i], truncations[i] = reward, terminated, truncated
        self.autoreset[:] = terminations | truncations
        return self._observe()

    def _observe(self) -> list[dict[str, Any]]:
        for i, env in enumerate(self.envs):
            self.observations[i] = env.observe()
        return [env.current_info() for env in self.envs]

    def render(self) -> list[Any]:
        return [env.render() for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            env.close()


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

    def reset(self, seeds: list[int | None]) -> list[dict[str, Any]]:
        replies = self._call_all([("reset", seeds[part]) for part in self.slices])
        return [row for rows in replies for row in rows]

    def step(
        self, actions: np.ndarray, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray
    ) -> list[dict[str, Any]]:
        replies = self._call_all([("step", actions[part]) for part in self.slices])
        rows: list[dict[str, Any]] = []
        for part, (block_rewards, block_terminations, block_truncations, block_rows) in zip(
            self.slices, replies, strict=True
        ):
            rewards[part], terminations[part], truncations[part] = (
                block_rewards,
                block_terminations,
                block_truncations,
            )
            rows += block_rows
        return rows

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
        for connection in self._connections:
            with contextlib.suppress(BrokenPipeError, OSError):  # a worker that already died
                connection.send(("close", None))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        for connection in self._connections:
            connection.close()
        del self.observations
        self._memory.close()
        self._memory.unlink()


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
                    rows = block.step(argument, rewards, terminations, truncations)
                    reply = (rewards, terminations, truncations, rows)
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
