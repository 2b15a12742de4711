"""A block of sub-envs stepped in one process: the native vector env's unit of work.

`EnvBlock` steps a run of sub-envs and writes their observations, rewards, flags and infos into
arrays it is given; it draws the frames from a few threads (the renderer releases the interpreter).
The vector env keeps one block in its own process (`workers=1`), or splits the sub-envs into blocks
that run side by side, one in its own process and the others in worker processes, all writing into
shared memory (`sim.envs.workers`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sim.envs.base import CamDriveEnv

STEP_IN_THREADS = False
"""Whether `EnvBlock` steps its worlds from its threads too, or only renders from them.

`World.step`'s common path is one compiled call (`sim.world_step`), but an env step is still
mostly Python around it (the action, the rare traffic events, the reward and info, the frame's
preparation): from two threads that part only takes turns on the interpreter lock, and the short
compiled calls hand the lock back and forth, which keeps the renderer's threads waiting. Measured
with two threads at N=16 (two vector envs alternating in one process): 0.82x (Traffic-v0)
and 0.90x (LaneKeep-v0) the env-steps/s of stepping in the calling thread. So the worlds step in
the calling thread, one after another, and the frames are then drawn by all the threads. Once the
env step is compiled end to end, stepping from the threads spreads it over the cores too: set this
True (the results do not change: tests/test_vector_env.py checks it). Until then, worker processes
(`workers=K`) are what spreads the step over the cores."""


def make_envs(
    env_class: type[CamDriveEnv], count: int, render_mode: str | None, options: dict[str, Any]
) -> list[CamDriveEnv]:
    """`count` unwrapped sub-envs made with the same options."""
    return [env_class(render_mode=render_mode, **options) for _ in range(count)]


class EnvBlock:
    """Sub-envs made with the same options (`make_envs`), stepped in this process by `threads` threads.

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
        envs: list[CamDriveEnv],
        step_limit: int | None,
        observations: np.ndarray,
        threads: int = 1,
        info_columns: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.envs = envs
        count = len(envs)
        self.step_limit = step_limit
        self.observations = observations
        """(count, *observation shape): where this block's observations are written."""
        self.autoreset = np.zeros(count, dtype=np.bool_)
        self.infos = BatchedInfos(info_columns or BatchedInfos.columns_for(envs[0].current_info(), count))
        """The sub-envs' infos of the last reset or step, one row each (`info_columns`, if given)."""
        edges = np.linspace(0, count, min(threads, count) + 1).round().astype(int)
        self._runs = [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        """Which sub-envs each thread takes: the calling thread the first run, the pool the others."""
        self._pool = ThreadPoolExecutor(len(self._runs) - 1) if len(self._runs) > 1 else None

    def reset(self, seeds: list[int | None], out: np.ndarray | None = None) -> None:
        """Reset every sub-env with its seed and observe it: observations into `out` (default: the
        block's `observations`), infos into `infos`."""
        for env, seed in zip(self.envs, seeds, strict=True):
            env.new_episode(seed)
        self._observe_all(self.observations if out is None else out)
        self.autoreset[:] = False

    def step(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        out: np.ndarray | None = None,
    ) -> None:
        """Step every sub-env, or reset those that ended on the previous step (NEXT_STEP autoreset):
        rewards and flags into the arrays given, observations into `out` (default: the block's
        `observations`), infos into `infos`."""

        def step_run(run: range) -> None:
            for i in run:
                self._step_one(i, actions[i], rewards, terminations, truncations)

        if STEP_IN_THREADS:
            self._across_threads(step_run)
        else:
            step_run(range(len(self.envs)))
        self._observe_all(self.observations if out is None else out)
        np.logical_or(terminations, truncations, out=self.autoreset)

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

    def _observe_all(self, observations: np.ndarray) -> None:
        """Observe every sub-env, frames drawn straight into `observations` and infos into rows: the
        frames prepared here, drawn from all the threads, then finished here."""
        jobs = []
        for i, env in enumerate(self.envs):
            jobs.append(env.prepare_observation(observations[i]))
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
    each key is one array (a column) of the first sub-env's value type, written in place row by row,
    and its "_key" mask is all True. The columns may live in shared memory (`sim.envs.workers`).
    """

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns
        count = len(next(iter(columns.values()))) if columns else 0
        self.masks = {f"_{key}": np.ones(count, dtype=np.bool_) for key in columns}

    @staticmethod
    def column_types(example: dict[str, Any]) -> dict[str, np.dtype]:
        """The dtype of each key's column, from one sub-env's info."""
        return {key: np.dtype(type(value)) for key, value in example.items()}

    @staticmethod
    def columns_for(example: dict[str, Any], count: int) -> dict[str, np.ndarray]:
        """New zeroed columns of `count` rows for infos like `example`."""
        return {key: np.zeros(count, dtype) for key, dtype in BatchedInfos.column_types(example).items()}

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
