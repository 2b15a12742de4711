"""The native vector envs (`sim.envs.vector`): built by `gymnasium.make_vec`, equal to a SyncVectorEnv of
`gymnasium.make` envs step for step (autoresets included), seeded like it, and strict about bad input."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from multiprocessing.shared_memory import SharedMemory

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from sim.envs.vector import CamDriveVectorEnv, LaneKeepVectorEnv, TrafficVectorEnv, default_workers

LANE_KEEP = "camdrive/LaneKeep-v0"
TRAFFIC = "camdrive/Traffic-v0"
SMALL = {"camera_width": 64, "camera_height": 32}
SHORT = {**SMALL, "episode_seconds": 3.0}
"""Small frames and 30-step episodes, so that 150 steps see many autoresets."""


@pytest.fixture
def make_vec():
    """`make_vec(id, num_envs, **options)`: the native vector env, closed at the end of the test."""
    made: list[gym.vector.VectorEnv] = []

    def make(env_id: str, num_envs: int = 3, **options) -> CamDriveVectorEnv:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **options)
        made.append(envs)
        return envs

    yield make
    for envs in made:
        envs.close()


def sync_vec(env_id: str, num_envs: int, **options) -> SyncVectorEnv:
    """The reference: Gymnasium's SyncVectorEnv of `gymnasium.make` envs, NEXT_STEP autoreset."""
    fns = [lambda: gym.make(env_id, **options)] * num_envs
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)


def run_program(*lines: str) -> subprocess.CompletedProcess:
    """`lines` run as a Python program in a new process, which must succeed (its stderr shown if not)."""
    program = "\n".join(lines)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def crashing_actions(envs: gym.vector.VectorEnv, crash: object) -> np.ndarray:
    """Random actions, except that sub-env 0 always takes `crash`, which ends its episodes early:
    terminations as well as truncations then reset sub-envs."""
    actions = envs.action_space.sample()
    actions[0] = crash
    return actions


def assert_same_runs(envs, reference, crash: object, seed: int, action_seed: int, steps: int) -> None:
    """`envs` and `reference` reset with `seed` and then stepped `steps` times with the same batches
    (`crashing_actions`, drawn from `action_seed`) return equal results, exactly, at every call."""
    assert data_equivalence(envs.reset(seed=seed), reference.reset(seed=seed), exact=True)
    envs.action_space.seed(action_seed)
    for k in range(steps):
        actions = crashing_actions(envs, crash)
        assert data_equivalence(envs.step(actions), reference.step(actions), exact=True), f"step {k}"


# ------------------------------------------------------------------------------ make_vec and spaces


@pytest.mark.parametrize(("env_id", "cls"), [(LANE_KEEP, LaneKeepVectorEnv), (TRAFFIC, TrafficVectorEnv)])
@pytest.mark.parametrize("num_envs", [1, 3])
def test_make_vec_builds_the_native_vector_env(env_id: str, cls: type, num_envs: int) -> None:
    envs = gym.make_vec(env_id, num_envs=num_envs, **SMALL)  # the default mode uses the vector_entry_point
    single = gym.make(env_id, **SMALL)
    try:
        assert type(envs) is cls and envs.num_envs == num_envs
        assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
        assert envs.single_observation_space == single.observation_space
        assert envs.single_action_space == single.action_space
        assert envs.observation_space == batch_space(single.observation_space, num_envs)
        assert envs.action_space == batch_space(single.action_space, num_envs)
        assert envs.spec is not None and envs.spec.id == env_id and envs.spec.kwargs["camera_width"] == 64
        assert list(inspect.signature(envs.reset).parameters) == ["seed", "options"]
        obs, infos = envs.reset(seed=0)
        assert obs.dtype == envs.observation_space.dtype and envs.observation_space.contains(obs)
        single_info = single.reset(seed=0)[1]
        assert set(infos) == set(single_info) | {f"_{key}" for key in single_info}
        assert all(infos[f"_{key}"].all() for key in single_info)
    finally:
        envs.close()
        single.close()


@pytest.mark.parametrize(
    ("env_id", "options", "action_space"),
    [
        (LANE_KEEP, {}, spaces.Box(-1.0, 1.0, (3, 1), np.float32)),
        (LANE_KEEP, {"action_type": "steer_throttle"}, spaces.Box(-1.0, 1.0, (3, 2), np.float32)),
        (TRAFFIC, {}, spaces.MultiDiscrete([5, 5, 5])),
    ],
)
def test_action_spaces(make_vec, env_id: str, options: dict, action_space: spaces.Space) -> None:
    assert make_vec(env_id, **SMALL, **options).action_space == action_space


@pytest.mark.parametrize(
    ("env_id", "options", "shape", "dtype"),
    [
        (LANE_KEEP, SMALL, (2, 32, 64, 3), np.uint8),
        (LANE_KEEP, {**SMALL, "grayscale": True}, (2, 32, 64, 1), np.uint8),
        (TRAFFIC, {"obs_type": "grid"}, (2, 10, 3), np.float32),
    ],
)
def test_observation_spaces(make_vec, env_id: str, options: dict, shape: tuple, dtype: type) -> None:
    envs = make_vec(env_id, num_envs=2, **options)
    assert envs.observation_space.shape == shape and envs.observation_space.dtype == dtype


# ------------------------------------------------------------------- the SyncVectorEnv equivalence

EQUIVALENCE_CASES = {
    "lane_keep": (LANE_KEEP, SHORT, [1.0]),
    "lane_keep_throttle_gray": (
        LANE_KEEP,
        {**SHORT, "action_type": "steer_throttle", "grayscale": True},
        [1.0, 1.0],
    ),
    "traffic": (TRAFFIC, {**SHORT, "lanes": 3, "traffic_cars": 6, "safety": False}, 4),
    "traffic_randomised_looks": (  # a new look per episode, with sensor noise in the frames
        TRAFFIC,
        {**SHORT, "lanes": 3, "traffic_cars": 6, "safety": False, "randomize": 1.0},
        4,
    ),
    "traffic_speedometer_grayscale": (  # the speed bar painted last, over the gray frame
        TRAFFIC,
        {**SHORT, "lanes": 3, "traffic_cars": 6, "safety": False, "grayscale": True, "speedometer": True},
        4,
    ),
    "traffic_grid_time_limit": (
        TRAFFIC,
        {"obs_type": "grid", "safety": False, "steer_amount": 1.0, "max_episode_steps": 20},
        4,
    ),
}


@pytest.mark.parametrize(("env_id", "options", "crash"), EQUIVALENCE_CASES.values(), ids=EQUIVALENCE_CASES)
@pytest.mark.slow
def test_equals_sync_vector_env_across_autoresets(make_vec, env_id: str, options: dict, crash) -> None:
    native = make_vec(env_id, **options)
    reference = sync_vec(env_id, 3, **options)
    try:
        assert data_equivalence(native.reset(seed=11), reference.reset(seed=11), exact=True)
        native.action_space.seed(5)
        terminated = truncated = 0
        for k in range(150):
            if k == 60:  # an unseeded reset continues each sub-env's generator
                assert data_equivalence(native.reset(), reference.reset(), exact=True)
            actions = crashing_actions(native, crash)
            result = native.step(actions)
            assert data_equivalence(result, reference.step(actions), exact=True), f"step {k}"
            assert native.observation_space.contains(result[0])
            assert result[1].dtype == np.float64 and result[2].dtype == result[3].dtype == np.bool_
            terminated += int(result[2].sum())
            truncated += int(result[3].sum())
        assert terminated > 0 and truncated > 0  # both kinds of autoreset were compared
    finally:
        reference.close()


def test_rgb_array_render_equals_sync_vector_env(make_vec) -> None:
    native = make_vec(LANE_KEEP, num_envs=2, render_mode="rgb_array", **SMALL)
    reference = sync_vec(LANE_KEEP, 2, render_mode="rgb_array", **SMALL)
    try:
        native.reset(seed=3)
        reference.reset(seed=3)
        frames = native.render()
        assert len(frames) == 2 and frames[0].ndim == 3 and frames[0].dtype == np.uint8
        assert data_equivalence(frames, reference.render(), exact=True)
    finally:
        reference.close()


def test_render_without_render_mode_warns_and_returns_none(make_vec) -> None:
    envs = make_vec(LANE_KEEP, **SMALL)
    envs.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert envs.render() is None


# --------------------------------------------------------------------------------------- seeding


def drive(envs: gym.vector.VectorEnv, seed: int | list[int], steps: int = 20) -> list[np.ndarray]:
    """The observations of a reset with `seed` and `steps` steps of the same fixed-seed random actions."""
    observations = [envs.reset(seed=seed)[0]]
    envs.action_space.seed(0)
    observations += [envs.step(envs.action_space.sample())[0] for _ in range(steps)]
    return observations


def test_same_seed_same_trajectory_different_seed_different_frames(make_vec) -> None:
    first, second = make_vec(LANE_KEEP, **SHORT), make_vec(LANE_KEEP, **SHORT)
    run = drive(first, 7)
    assert data_equivalence(run, drive(second, 7), exact=True)
    assert data_equivalence(run, drive(second, [7, 8, 9]), exact=True)  # an int seed s means s, s+1, s+2
    other = drive(second, 8)
    assert not np.array_equal(run[0], other[0])
    assert np.array_equal(run[0][1], other[0][0])  # sub-env 1 of seed 7 is sub-env 0 of seed 8
    assert not np.array_equal(run[0][0], run[0][1])  # the sub-envs do not share a seed


def test_unseeded_reset_is_random(make_vec) -> None:
    envs = make_vec(TRAFFIC, num_envs=2, obs_type="grid")
    first, second = envs.reset()[1]["seed"], envs.reset()[1]["seed"]
    assert first.shape == (2,) and not np.array_equal(first, second)


@pytest.mark.parametrize("seed", [[1, 2], [1, 2, 3, 4], "abc", 1.5, [1, -2, 3], [1, "x", 3]])
def test_bad_seeds_are_value_errors(make_vec, seed) -> None:
    envs = make_vec(TRAFFIC, obs_type="grid")
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed=seed)


def test_reset_options_are_refused(make_vec) -> None:
    envs = make_vec(TRAFFIC, obs_type="grid")
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(seed=0, options={"reset_mask": np.ones(3, dtype=bool)})


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"traffic_cars": -1}, "traffic_cars"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"camera_width": 8}, "camera_width"),
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2.5}, "num_envs"),
        ({"render_mode": "human"}, "render_mode"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"copy": "yes"}, "copy"),
    ],
)
def test_bad_options_are_value_errors_naming_them(options: dict, named: str) -> None:
    kwargs = {"num_envs": 2, **options}
    for env_id in (LANE_KEEP, TRAFFIC):
        with pytest.raises(ValueError, match=named):
            gym.make_vec(env_id, vectorization_mode="vector_entry_point", **kwargs)


BAD_ACTIONS = {
    "lane_wrong_shape": (LANE_KEEP, np.zeros((3, 2), np.float32), r"shape \(3, 1\)"),
    "lane_too_few": (LANE_KEEP, np.zeros((2, 1), np.float32), r"shape \(3, 1\)"),
    "lane_nan": (LANE_KEEP, np.array([[0.0], [0.1], [np.nan]], np.float32), "sub-env 2: values must be"),
    "lane_inf": (LANE_KEEP, np.array([[np.inf], [0.1], [0.0]]), "sub-env 0: values must be finite"),
    "lane_text": (LANE_KEEP, np.array([["a"], ["b"], ["c"]]), "sub-env 0: must hold int or float numbers"),
    "lane_ragged": (LANE_KEEP, [[0.0], [0.1, 0.2], [0.0]], r"sub-env 1: must have shape \(1,\)"),
    "traffic_out_of_range": (TRAFFIC, np.array([0, 5, 1]), r"sub-env 1: must be an integer in \[0, 4\]"),
    "traffic_negative": (TRAFFIC, np.array([-1, 0, 1]), r"sub-env 0: must be an integer in \[0, 4\]"),
    "traffic_float": (TRAFFIC, np.array([0.0, 1.0, 2.0]), "sub-env 0: must be an integer"),
    "traffic_bool": (TRAFFIC, np.array([True, False, True]), "sub-env 0: must be an integer"),
    "traffic_wrong_shape": (TRAFFIC, np.array([[0, 1, 2]]), r"shape \(3,\)"),
}


@pytest.mark.parametrize(("env_id", "actions", "message"), BAD_ACTIONS.values(), ids=BAD_ACTIONS)
def test_bad_actions_are_value_errors_before_any_world_moves(make_vec, env_id, actions, message) -> None:
    envs = make_vec(env_id, workers=1, **SMALL)  # the sub-envs in this process, to look at
    envs.reset(seed=1)
    before = [(env.world.s, env.world.ego.x, env.steps) for env in envs.envs]
    with pytest.raises(ValueError, match=message):
        envs.step(actions)
    assert [(env.world.s, env.world.ego.x, env.steps) for env in envs.envs] == before


def test_step_before_reset_is_refused(make_vec) -> None:
    envs = make_vec(TRAFFIC, obs_type="grid")
    with pytest.raises(ResetNeeded):
        envs.step(np.zeros(3, dtype=np.int64))


# ------------------------------------------------------------------------------- buffers, close


@pytest.mark.parametrize("workers", [1, 2])
def test_observations_are_new_arrays_unless_copy_false(make_vec, workers: int) -> None:
    """With copy (the default) every call returns a new array, which later calls leave alone; with
    copy=False one buffer, overwritten. Both hold the same observations."""
    copied = make_vec(LANE_KEEP, workers=workers, **SMALL)
    shared = make_vec(LANE_KEEP, workers=workers, copy=False, **SMALL)
    kept = copied.reset(seed=0)[0]
    kept_before = kept.copy()
    buffer = shared.reset(seed=0)[0]
    assert np.array_equal(buffer, kept)
    actions = np.ones((3, 1), np.float32)
    stepped = copied.step(actions)[0]
    assert stepped is not kept and np.array_equal(kept, kept_before)
    assert shared.step(actions)[0] is buffer and np.array_equal(buffer, stepped)
    assert not np.array_equal(buffer, kept_before)


def test_close_closes_the_sub_envs(make_vec) -> None:
    envs = make_vec(LANE_KEEP, num_envs=2, workers=1, render_mode="rgb_array", **SMALL)
    envs.reset(seed=0)
    envs.render()  # opens each sub-env's render view
    assert all(env._view is not None for env in envs.envs)
    envs.close()
    assert envs.closed and all(env._view is None for env in envs.envs)


# ------------------------------------------------------------------------------ worker processes


@pytest.mark.parametrize(("env_id", "options", "crash"), EQUIVALENCE_CASES.values(), ids=EQUIVALENCE_CASES)
@pytest.mark.slow
def test_worker_processes_give_the_same_results(make_vec, env_id: str, options: dict, crash) -> None:
    """Sub-envs stepped in two worker processes (frames in shared memory) equal those stepped here."""
    workers = make_vec(env_id, num_envs=5, workers=2, **options)
    here = make_vec(env_id, num_envs=5, **options)
    assert workers.unwrapped.workers == 2
    assert_same_runs(workers, here, crash, seed=11, action_seed=5, steps=60)


@pytest.mark.parametrize(("env_id", "options", "crash"), EQUIVALENCE_CASES.values(), ids=EQUIVALENCE_CASES)
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.slow
def test_the_number_of_threads_changes_nothing(make_vec, env_id: str, options: dict, crash, threads) -> None:
    """Frames drawn by 2 or 3 threads (a pool beside the caller) equal those drawn by the calling thread
    alone, autoresets included."""
    these = make_vec(env_id, num_envs=5, threads=threads, **options)
    default = make_vec(env_id, num_envs=5, threads=1, **options)
    assert these.unwrapped.threads == threads
    assert_same_runs(these, default, crash, seed=11, action_seed=5, steps=60)


def test_threads_step_the_worlds_too_when_switched_on(make_vec, monkeypatch) -> None:
    """The hook for a compiled world step: stepping the worlds from the threads gives the same results."""
    from sim.envs import blocks

    env_id, options, crash = EQUIVALENCE_CASES["traffic"]
    reference = make_vec(env_id, num_envs=4, threads=1, **options)
    monkeypatch.setattr(blocks, "STEP_IN_THREADS", True)
    threaded = make_vec(env_id, num_envs=4, threads=2, **options)
    assert_same_runs(threaded, reference, crash, seed=3, action_seed=1, steps=60)


def test_threads_default_to_the_usable_cores_at_most_one_per_sub_env(make_vec, monkeypatch) -> None:
    from sim.envs import vector

    monkeypatch.setattr(vector.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert vector.usable_cores() == 3
    assert make_vec(LANE_KEEP, num_envs=4, workers=1, **SMALL).unwrapped.threads == 3
    assert make_vec(LANE_KEEP, num_envs=2, workers=1, **SMALL).unwrapped.threads == 2
    assert make_vec(LANE_KEEP, num_envs=4, threads=1, **SMALL).unwrapped.threads == 1


@pytest.mark.parametrize(
    ("start_method", "num_envs", "workers"), [("fork", 4, 3), ("fork", 2, 2), ("spawn", 4, 1)]
)
def test_workers_default_to_one_per_core_where_processes_fork(
    make_vec, monkeypatch, start_method: str, num_envs: int, workers: int
) -> None:
    from sim.envs import vector
    from sim.envs import workers as worker_module

    monkeypatch.setattr(vector.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(worker_module, "WORKER_START_METHOD", start_method)
    assert vector.default_workers(num_envs) == workers
    if start_method == "fork":  # spawning workers would take seconds; the rule is what matters here
        envs = make_vec(LANE_KEEP, num_envs=num_envs, **SMALL)
        assert envs.unwrapped.workers == workers and envs.unwrapped.threads == 1
        with pytest.raises(AttributeError, match="workers=1"):
            _ = envs.unwrapped.envs
    threaded = make_vec(LANE_KEEP, num_envs=num_envs, threads=2, **SMALL)  # threads asks for one process
    assert threaded.unwrapped.workers == 1 and threaded.unwrapped.threads == 2


def _default_workers_in_this_process(num_envs: int, answer: multiprocessing.SimpleQueue) -> None:
    """Puts `default_workers(num_envs)`, then what asking for two workers here does."""
    answer.put(default_workers(num_envs))
    try:
        gym.make_vec(LANE_KEEP, num_envs=num_envs, workers=2, **SMALL).close()
        answer.put("made")
    except ValueError as refused:
        answer.put(str(refused))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_daemonic_process_steps_its_sub_envs_itself(monkeypatch) -> None:
    """A daemonic process (a Pool's or an AsyncVectorEnv's worker) may not start processes: there the
    default is 1, and workers=2 is a ValueError saying so (multiprocessing's own refusal was an
    AssertionError from deep inside it)."""
    from sim.envs import vector
    from sim.envs import workers as worker_module

    monkeypatch.setattr(vector.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(worker_module, "WORKER_START_METHOD", "fork")
    context = multiprocessing.get_context("fork")
    answer = context.SimpleQueue()
    refusal = "workers=2: this is a daemonic process (a Pool's or a vector env's worker), which may not"
    for daemon, expected, asking_for_two in ((True, 1, refusal), (False, 2, "made")):
        process = context.Process(target=_default_workers_in_this_process, args=(4, answer), daemon=daemon)
        process.start()
        process.join(timeout=60)
        assert answer.get() == expected, f"daemon={daemon}"
        assert answer.get().startswith(asking_for_two), f"daemon={daemon}"


def test_finding_the_default_leaves_the_programs_start_method_unset() -> None:
    """`default_workers` reads the start method without fixing it, so a later
    `multiprocessing.set_start_method` of the user's still works."""
    done = run_program(
        "import multiprocessing, gymnasium as gym, sim",
        f"envs = gym.make_vec({LANE_KEEP!r}, num_envs=2, camera_width=64, camera_height=32)",
        "envs.close()",
        "print(multiprocessing.get_start_method(allow_none=True))",
        "multiprocessing.set_start_method('spawn')",
    )
    assert done.stdout.strip() == "None"


def test_threads_must_be_a_positive_integer() -> None:
    for threads in (0, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            gym.make_vec(LANE_KEEP, num_envs=2, threads=threads)


def test_workers_render_and_close_cleanly(make_vec) -> None:
    envs = make_vec(LANE_KEEP, num_envs=3, workers=2, render_mode="rgb_array", **SMALL)
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 3 and all(f.ndim == 3 and f.dtype == np.uint8 for f in frames)
    blocks = envs.unwrapped._blocks
    processes, memory = blocks.worker_processes, blocks.memory_name
    envs.close()
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(FileNotFoundError):
        SharedMemory(name=memory)  # freed


@pytest.mark.slow
def test_a_vector_env_never_closed_leaves_no_worker_or_memory_behind() -> None:
    """A program that ends without close(): its workers stop and its shared memory is freed at exit,
    so the resource tracker has nothing to warn about."""
    done = run_program(
        "import gymnasium as gym, sim",
        f"envs = gym.make_vec({LANE_KEEP!r}, num_envs=2, workers=2, camera_width=64, camera_height=32)",
        "envs.reset(seed=0)",
        "envs.step(envs.action_space.sample())",
        "print(envs.unwrapped._blocks.memory_name)",
    )
    assert "leaked" not in done.stderr, done.stderr
    with pytest.raises(FileNotFoundError):
        SharedMemory(name=done.stdout.strip())


def test_an_error_in_a_worker_is_raised_in_the_caller(make_vec, monkeypatch) -> None:
    envs = make_vec(LANE_KEEP, num_envs=2, workers=2, **SMALL)
    envs.reset(seed=0)
    os.kill(envs.unwrapped._blocks.worker_processes[0].pid, signal.SIGKILL)  # block 1's
    with pytest.raises(RuntimeError, match="vector env worker 1 died"):
        envs.step(np.zeros((2, 1), dtype=np.float32))


def test_an_exception_in_a_workers_step_is_raised_in_the_caller_and_the_workers_go_on(
    make_vec, monkeypatch
) -> None:
    """A step that fails in a worker is a RuntimeError here with the worker's message; the next step
    still goes through every block (the signals stay in step)."""
    from sim.envs.lane_keep import LaneKeepEnv

    here, advance = os.getpid(), LaneKeepEnv.advance

    def advance_failing_once_in_a_worker(self, action):
        if os.getpid() != here and not getattr(self, "failed", False):
            self.failed = True
            raise ValueError("a broken world")
        return advance(self, action)

    monkeypatch.setattr(LaneKeepEnv, "advance", advance_failing_once_in_a_worker)  # before the fork
    envs = make_vec(LANE_KEEP, num_envs=2, workers=2, **SMALL)
    envs.reset(seed=0)
    with pytest.raises(RuntimeError, match="vector env worker 1: ValueError: a broken world"):
        envs.step(np.zeros((2, 1), dtype=np.float32))
    observations, *_ = envs.step(np.zeros((2, 1), dtype=np.float32))
    assert observations.shape == (2, 32, 64, 3)


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_started_without_fork_give_the_same_results(make_vec, monkeypatch, start_method) -> None:
    """Where processes spawn (macOS, Windows; forkserver on Linux from Python 3.14) `workers=2` still
    works, its semaphores and pipe handed to a fresh interpreter, with the same results."""
    from sim.envs import workers

    monkeypatch.setattr(workers, "WORKER_START_METHOD", start_method)
    env_id, options, crash = EQUIVALENCE_CASES["traffic"]
    started = make_vec(env_id, num_envs=3, workers=2, **options)
    here = make_vec(env_id, num_envs=3, workers=1, **options)
    assert_same_runs(started, here, crash, seed=5, action_seed=5, steps=25)


def test_a_step_interrupted_while_it_waits_for_a_worker_leaves_the_next_steps_right(
    make_vec, monkeypatch
) -> None:
    """Ctrl-C while the calling process waits for a worker (a notebook's interrupt) stops that step
    with KeyboardInterrupt; every world has still moved, and the following steps are those of a
    vector env that finished it: the next step first waits for the worker's unfinished reply rather
    than take it for its own and read the shared arrays while the worker writes them."""
    from sim.envs import workers

    env_id, options, crash = EQUIVALENCE_CASES["traffic"]
    reference = make_vec(env_id, num_envs=4, workers=1, **options)
    envs = make_vec(env_id, num_envs=4, workers=2, **options)
    assert data_equivalence(envs.reset(seed=3), reference.reset(seed=3), exact=True)
    envs.action_space.seed(3)
    actions = [crashing_actions(envs, crash) for _ in range(30)]
    here, wait = os.getpid(), workers._wait
    interrupted: list[bool] = []

    def wait_interrupted_once(semaphore, spin_s, other_side_alive):
        if os.getpid() == here and not interrupted:  # the workers, forked before this, wait as before
            interrupted.append(True)
            raise KeyboardInterrupt
        return wait(semaphore, spin_s, other_side_alive)

    monkeypatch.setattr(workers, "_wait", wait_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        envs.step(actions[0])
    reference.step(actions[0])
    for k, batch in enumerate(actions[1:], start=1):
        assert data_equivalence(envs.step(batch), reference.step(batch), exact=True), f"step {k}"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from Linux's /proc")
def test_a_worker_exits_when_its_calling_process_is_killed() -> None:
    """A calling process killed outright (SIGKILL: it closes nothing) leaves no worker running on: a
    worker sleeping on its next step sees that its parent is gone within `ALIVE_CHECK_S`."""
    program = "\n".join([
        "import os, signal, sys, gymnasium as gym, sim",
        f"envs = gym.make_vec({LANE_KEEP!r}, num_envs=2, workers=2, camera_width=64, camera_height=32)",
        "envs.reset(seed=0)",
        "print(envs.unwrapped._blocks.worker_processes[0].pid, flush=True)",
        "os.kill(os.getpid(), signal.SIGKILL)",
    ])  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    worker = int(done.stdout.strip())

    def running() -> bool:
        try:
            with open(f"/proc/{worker}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10.0
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(), "the worker outlived its calling process by 10 s"


def test_workers_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match="workers"):
        gym.make_vec(LANE_KEEP, num_envs=2, workers=0)


@pytest.mark.parametrize("spin_s", [0.0, 1.0])
def test_workers_give_the_same_results_whether_they_poll_or_sleep(make_vec, monkeypatch, spin_s) -> None:
    """Messages to and from the workers arrive whether the waiting side blocks at once (0 s) or polls
    (1 s, longer than any step here: every message then comes while it polls)."""
    from sim.envs import vector

    monkeypatch.setattr(vector, "SPIN_S", spin_s)
    env_id, options, crash = EQUIVALENCE_CASES["traffic"]
    workers = make_vec(env_id, num_envs=4, workers=2, **options)
    here = make_vec(env_id, num_envs=4, **options)
    assert_same_runs(workers, here, crash, seed=2, action_seed=2, steps=40)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU times from Linux's /proc")
def test_an_idle_worker_sleeps_rather_than_polls(make_vec) -> None:
    """Between steps a worker polls for the next one only briefly (`SPIN_S`), then sleeps: a vector env
    left idle (the caller training, or waiting for a person) costs its workers no CPU."""
    envs = make_vec(LANE_KEEP, num_envs=2, workers=2, **SMALL)
    envs.reset(seed=0)
    envs.step(np.zeros((2, 1), dtype=np.float32))
    pid = envs.unwrapped._blocks.worker_processes[0].pid

    def cpu_ticks() -> int:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks

    before = cpu_ticks()
    time.sleep(1.0)
    used_s = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
    assert used_s < 0.1, f"an idle worker used {used_s:.2f} s of CPU in 1 s"
