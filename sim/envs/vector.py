"""Native vector environments: N worlds of one camdrive environment, stepped by one object.

`gymnasium.make_vec("camdrive/LaneKeep-v0", num_envs=N)` builds a `LaneKeepVectorEnv` (Traffic-v0 a
`TrafficVectorEnv`) through the ids' `vector_entry_point`. Everything is the single environments' own
code (their action parsing, physics, reward, info and renderer), which is why the results equal, bit
for bit, those of a `gymnasium.vector.SyncVectorEnv` of `gymnasium.make` environments seeded and
driven the same way.

Where worker processes start by fork (Linux, before Python 3.14), the sub-envs are split by
default into one block per core (`workers`, `default_workers`): the first block is stepped in this
process and each other one in a worker process of its own, side by side, so the world step's Python
part runs on every core; everything they return is written into shared memory (`sim.envs.workers`).
Elsewhere, or with `workers=1` or `threads=K`, the worlds are stepped in this process one after
another (the world step is partly Python, which holds the interpreter), then the N frames are drawn
by `threads` threads, by default one per core this process may use: a frame is one compiled call that
releases the interpreter (`kernels.draw_camera_frame`), so two cores draw two frames at once
(`blocks.STEP_IN_THREADS` is the switch for stepping from the threads too, once the whole env step
is compiled). On the 2-vCPU development machine two workers stepped 1.2x-1.45x the env-steps/s of
one process with two drawing threads at N=2 to 16 (README).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, create_empty_array

from sim.actions import checked_batch
from sim.envs.base import CamDriveEnv, registered_id
from sim.envs.blocks import EnvBlock, make_envs
from sim.envs.lane_keep import LaneKeepEnv
from sim.envs.traffic import TrafficEnv
from sim.envs.workers import SPIN_S, WorkerBlocks, worker_start_method
from sim.validation import check_at_least, check_seed, short_repr

RENDER_MODES = ["rgb_array"]
"""A vector env has no window of its own; "rgb_array" returns every sub-env's frame."""


class CamDriveVectorEnv(VectorEnv):
    """N copies of one camdrive environment (`env_class`), stepped together.

    ## Description
    Holds `num_envs` unwrapped environments made with the same options and steps them in one call:
    every world moves first, then all observations are rendered into one batch array.
    Observations, rewards, terminations, truncations and infos are exactly those of
    `SyncVectorEnv([lambda: gymnasium.make(id, **options)] * N)` (its default NEXT_STEP autoreset)
    given the same seeds and actions, across autoresets too.

    ## Observation Space
    The single env's space batched: `Box(0, 255, (N, 66, 200, 3), uint8)` camera frames by default,
    `(N, height, width, 1)` with `grayscale=True`, `Box(0, 1, (N, rows, columns), float32)` for
    Traffic-v0's `obs_type="grid"`. `step` and `reset` return a new array each call unless `copy=False`,
    in which case they return one batch buffer, overwritten by the next call.

    ## Action Space
    The single env's space batched by `gymnasium.vector.utils.batch_space`: LaneKeep-v0
    `Box(-1, 1, (N, 1), float32)` (`(N, 2)` with `action_type="steer_throttle"`), Traffic-v0
    `MultiDiscrete([5] * N)`. A batch is an array of that shape, or a list or tuple of N actions, each
    row held to the single env's rule (`sim.actions`): a bool is no action (not steering 1.0, not
    action 1), nor is a string, a float for Discrete, NaN or inf. Continuous values outside [-1, 1] are
    clipped, as by the single env. Anything else is a ValueError naming the env, the batched space and
    the sub-env, raised before any world moves.

    ## Autoreset
    `AutoresetMode.NEXT_STEP` (also in `metadata["autoreset_mode"]`), Gymnasium's default: on the step
    after a sub-env terminated or truncated, that sub-env is reset instead of stepped (without a seed, so
    its generator continues) and its action is ignored; it returns the episode's first observation and
    reset info, reward 0, terminated and truncated False.

    ## Seeding
    `reset(seed=s)` resets sub-env i with seed s + i, as `SyncVectorEnv` does; a list of N seeds (ints or
    None) gives each its own; `seed=None` leaves them unseeded (a fresh random seed the first time). A
    seed is the single env's: an int or a numpy integer >= 0, never a bool (`sim.validation.check_seed`).

    ## Info
    Gymnasium's vector format, as `VectorEnv._add_info` builds it from each sub-env's info dict: every key
    of the single env's info (x, y, speed, ..., collision, off_road, seed) maps to an array over the
    sub-envs, with a boolean mask under "_key".

    ## Arguments
    `gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", **options)` (the mode
    is the default for these ids). `options` are the single env's `gymnasium.make` keywords, validated by
    it (a bad one is a ValueError naming it), plus:
    - `render_mode`: None or "rgb_array"; `render()` then returns a tuple of the N frames.
    - `max_episode_steps`: as `gymnasium.make`'s TimeLimit: truncate after that many steps (None or -1:
      no limit beyond the env's own `episode_seconds`).
    - `copy`: whether observations are returned as copies (default True, like `SyncVectorEnv`).
    - `workers`: processes stepping the sub-envs side by side: this one and workers - 1 worker
      processes, each with a block of consecutive sub-envs and a core of its own (at most num_envs).
      Default None: `default_workers`, one per core this process may use where processes start by
      fork, else 1 (this process only); 1 also when `threads` is given, and in a daemonic process.
      A worker starts in milliseconds where processes fork, in a second or two where they spawn
      (macOS, Windows; pass workers=K there to have them). Between steps a worker polls for the
      next one for 0.2 ms before it sleeps, unless there are more processes than cores
      (`sim.envs.workers.SPIN_S`). `envs`, the sub-env objects, exist only with workers=1.
    - `threads`: with `workers=1`, threads drawing the frames, the calling thread among them (default
      None: one per core this process may use, `usable_cores()`; at most num_envs). 1 draws in the
      calling thread only. The results do not depend on it (`camdrive bench --vector 16 --threads K`
      measures the rate). With workers > 1 every block draws with one thread.

    ## Version History
    - v0: initial release.
    """

    env_class: type[CamDriveEnv]
    """Set by each subclass: the environment this vector env holds N of."""

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        copy: bool = True,
        workers: int | None = None,
        threads: int | None = None,
        **options: Any,
    ) -> None:
        check_at_least("num_envs", num_envs, 1, integer=True)
        if workers is None:
            workers = 1 if threads is not None else default_workers(num_envs)
        check_at_least("workers", workers, 1, integer=True)
        if min(workers, num_envs) > 1 and multiprocessing.current_process().daemon:
            raise ValueError(
                f"workers={workers}: this is a daemonic process (a Pool's or a vector env's worker), which "
                "may not start processes; pass workers=1"
            )
        if threads is None:
            threads = usable_cores()
        check_at_least("threads", threads, 1, integer=True)
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {RENDER_MODES} or None, got {render_mode!r}")
        if not isinstance(copy, bool):
            raise ValueError(f"copy must be True or False, got {copy!r}")
        self.step_limit = _step_limit(max_episode_steps)
        self.copy = copy
        probe = self.env_class(**options)  # checks the options here, before any worker starts
        probe.close()
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.metadata = {
            "render_modes": RENDER_MODES,
            "render_fps": probe.metadata["render_fps"],
            "autoreset_mode": AutoresetMode.NEXT_STEP,
        }
        self.single_observation_space = probe.observation_space
        self.observation_space = batch_space(probe.observation_space, num_envs)
        self.single_action_space = probe.action_space
        self.action_space = batch_space(probe.action_space, num_envs)
        space = " ".join(str(self.action_space).split())  # numpy's repr of a long MultiDiscrete wraps
        self._action_where = f"{registered_id(self.env_class)} actions for {space}"
        """How refusals of a batch begin: they must say whose batched action space it missed."""
        self.workers = min(workers, num_envs)
        self.threads = 1
        """Threads drawing the sub-envs' frames in this process (each worker process uses one)."""
        self._blocks: EnvBlock | WorkerBlocks
        if self.workers == 1:
            observations = create_empty_array(self.single_observation_space, num_envs)
            assert isinstance(observations, np.ndarray)  # a Box's batch
            self.threads = min(threads, num_envs)
            envs = make_envs(self.env_class, num_envs, render_mode, options)
            self._blocks = EnvBlock(envs, self.step_limit, observations, self.threads)
        else:
            obs_space = self.single_observation_space
            assert isinstance(obs_space, gym.spaces.Box)  # frames or a grid
            self._blocks = WorkerBlocks(
                self.env_class, num_envs, self.workers, render_mode, options, self.step_limit,
                obs_space.shape, obs_space.dtype, self.single_action_space,
                SPIN_S if self.workers <= usable_cores() else 0.0,
            )  # fmt: skip
        self._observations: np.ndarray = self._blocks.observations
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminations = np.zeros(num_envs, dtype=np.bool_)
        self._truncations = np.zeros(num_envs, dtype=np.bool_)
        self._needs_reset = True

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (sub-env i with seed + i for an int seed); see the class docstring."""
        seeds = self._seeds(seed)
        if options:
            raise ValueError(f"camdrive envs take no reset options, got {sorted(options)}")
        observations = self._new_batch()
        self._blocks.reset(seeds, observations)
        infos = self._blocks.infos.arrays
        self._rewards[:] = 0.0
        self._terminations[:] = False
        self._truncations[:] = False
        self._needs_reset = False
        return observations, infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env (reset those that ended on the previous step), then render all of them."""
        if self._needs_reset:
            raise ResetNeeded("Cannot call step() before calling reset()")  # as gymnasium.make's envs
        actions = self._checked_actions(actions)
        observations = self._new_batch()
        self._blocks.step(actions, self._rewards, self._terminations, self._truncations, observations)
        infos = self._blocks.infos.arrays
        return observations, self._rewards.copy(), self._terminations.copy(), self._truncations.copy(), infos

    @property
    def envs(self) -> list[CamDriveEnv]:
        """The sub-envs themselves, when they live in this process (workers=1)."""
        if not isinstance(self._blocks, EnvBlock):
            raise AttributeError(
                f"with workers={self.workers} the sub-envs live in worker processes: make the vector env "
                "with workers=1 to reach them"
            )
        return self._blocks.envs

    def _new_batch(self) -> np.ndarray:
        """Where this call's observations go: a new array with `copy` (the frames are drawn into it
        directly, not drawn into the buffer and copied: the copy took 2-4 % of a 16-env step), else
        the buffer every call returns."""
        return np.empty_like(self._observations) if self.copy else self._observations

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        """One seed per sub-env, as `SyncVectorEnv.reset` derives them, all checked (by the single env's
        rule) before any reset."""
        if seed is None:
            return [None] * self.num_envs
        if not (isinstance(seed, list | tuple) or (isinstance(seed, np.ndarray) and seed.ndim == 1)):
            first = check_seed(seed)
            assert first is not None
            return [first + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"seed must be an int, None or {self.num_envs} seeds, got {short_repr(seed)}")
        return [check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]

    def _checked_actions(self, actions: Any) -> np.ndarray:
        """`actions` as an array of the batched action space's shape, or ValueError naming what is wrong.

        Checked as a whole before any world moves (`sim.actions.checked_batch`, the single env's rule
        for each row), so a bad action of one sub-env never leaves the others stepped and it unstepped.
        """
        return checked_batch(actions, self.single_action_space, self.num_envs, self._action_where)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Each sub-env's `render()` frame, in a tuple, as `SyncVectorEnv.render` returns them."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return tuple(self._blocks.render())

    def close_extras(self, **kwargs: Any) -> None:
        blocks = getattr(self, "_blocks", None)  # None when __init__ failed (a bad option)
        if blocks is not None:
            blocks.close()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS reports one), at least 1:
    the vector env's default number of drawing threads."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def default_workers(num_envs: int) -> int:
    """`workers=None`'s choice: one process per usable core (at most one per sub-env) where worker
    processes start by fork, else 1; also 1 in a daemonic process (a `multiprocessing.Pool` worker,
    an `AsyncVectorEnv` worker), which may not start processes of its own.

    Why processes by default: the world step's Python part holds the interpreter, so in one process
    only the frames' drawing spreads over the cores; on the 2-vCPU development machine two processes
    stepped 1.2x-1.45x the env-steps/s of one with two drawing threads at N=2 to 16, alternating in
    one process. Why only where they fork: there a worker starts in milliseconds and the user's script
    needs no `if __name__ == "__main__"` guard; where they spawn, each worker would import everything
    again and a script without the guard would fail, so processes are left for the user to ask for.
    """
    if worker_start_method() != "fork" or multiprocessing.current_process().daemon:
        return 1
    return min(usable_cores(), num_envs)


def _step_limit(max_episode_steps: object) -> int | None:
    """`gymnasium.make`'s max_episode_steps: None or -1 for no TimeLimit, else an integer >= 1."""
    if max_episode_steps is None or (type(max_episode_steps) is int and max_episode_steps == -1):
        return None
    check_at_least("max_episode_steps", max_episode_steps, 1, integer=True)
    assert isinstance(max_episode_steps, int)
    return max_episode_steps


class LaneKeepVectorEnv(CamDriveVectorEnv):
    """N camdrive/LaneKeep-v0 environments (see `CamDriveVectorEnv` and `LaneKeepEnv`)."""

    env_class = LaneKeepEnv


class TrafficVectorEnv(CamDriveVectorEnv):
    """N camdrive/Traffic-v0 environments (see `CamDriveVectorEnv` and `TrafficEnv`)."""

    env_class = TrafficEnv
