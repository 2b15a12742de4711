"""Hostile actions and seeds for the native vector envs (`sim.envs.vector`): the rule is the single env's.

A batch is accepted exactly when each of its rows is an action a single env accepts (`sim.actions`), and
then means what those rows mean; anything else is a ValueError naming the env, its batched action space
and the sub-env, raised before any world moves. The single-env corpus and rule of
`tests/test_hostile_actions.py` are reused row by row, so the two can never drift apart. Seeds follow the
single env's rule too: ints and numpy integers >= 0, never a bool.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st
from test_hostile_actions import (
    ACCEPTED,
    ANYTHING,
    KINDS,
    NEAR_BOX,
    NEAR_DISCRETE,
    NEUTRAL,
    REFUSED,
    SETTINGS,
    box_meaning,
    corpus,
    discrete_meaning,
)

N = 2
"""Sub-envs of each vector env: the hostile action goes to the last one, a plain one to the first."""


@pytest.fixture(scope="module")
def twins():
    """`twins(kind)`: two vector envs of N sub-envs of that action kind, made once for the module."""
    made: dict[str, tuple[gym.vector.VectorEnv, gym.vector.VectorEnv]] = {}

    def get(kind: str) -> tuple[gym.vector.VectorEnv, gym.vector.VectorEnv]:
        if kind not in made:
            env_id, options = KINDS[kind]
            made[kind] = tuple(gym.make_vec(env_id, num_envs=N, **options) for _ in range(2))
        return made[kind]

    yield get
    for pair in made.values():
        for envs in pair:
            envs.close()


def same_step(envs: gym.vector.VectorEnv, actions: Any, twin: gym.vector.VectorEnv, plain: Any) -> None:
    """Step both vector envs; their results must be identical."""
    assert data_equivalence(envs.step(actions), twin.step(plain))


def plain_batch(kind: str, meanings: list[Any]) -> np.ndarray:
    """The batch of plain actions with these meanings, as a float64 or int64 array."""
    return np.array(meanings, dtype=np.int64 if kind.startswith("discrete") else np.float64)


def check_batch(twins, kind: str, actions: Any, meanings: list[Any] | None) -> str:
    """`actions` (a batch) is accepted exactly when `meanings` (each row's, by the single env's rule)
    is not None and then means that; else it is a one-line ValueError naming the env and its batched
    action space, whose message is returned; either way the envs step on as their twins do."""
    envs, twin = twins(kind)
    envs.reset(seed=1)
    twin.reset(seed=1)
    message = ""
    if meanings is None:
        with pytest.raises(ValueError) as err:
            envs.step(actions)
        message = str(err.value)
        assert KINDS[kind][0] in message and " ".join(str(envs.action_space).split()) in message, message
        assert "\n" not in message
    else:
        same_step(envs, actions, twin, plain_batch(kind, meanings))
    neutral = plain_batch(kind, [NEUTRAL[kind]] * N)
    same_step(envs, neutral, twin, neutral)
    return message


# ------------------------------------------------------------------ the single env's corpus, row by row


@pytest.mark.parametrize(("kind", "action", "meaning"), corpus(ACCEPTED))
def test_a_batch_of_accepted_actions_means_what_they_do(twins, kind: str, action: Any, meaning: Any) -> None:
    check_batch(twins, kind, [NEUTRAL[kind], action], [NEUTRAL[kind], meaning])


@pytest.mark.parametrize(("kind", "action"), corpus(REFUSED))
@pytest.mark.slow
def test_a_batch_with_a_refused_action_is_refused_naming_the_sub_env(twins, kind: str, action: Any) -> None:
    assert f"sub-env {N - 1}: " in check_batch(twins, kind, [NEUTRAL[kind], action], None)


NUMPY_CASES = [
    case
    for table in (ACCEPTED, REFUSED)
    for case in corpus(table)
    if isinstance(case.values[1], np.ndarray | np.generic)
]


@pytest.mark.parametrize(("kind", "action"), [pytest.param(*c.values[:2], id=c.id) for c in NUMPY_CASES])
def test_an_array_batch_follows_the_rule_of_its_rows(twins, kind: str, action: Any) -> None:
    """numpy stacks the action into a batch of its dtype: float32, float16, longdouble, bool, datetime64...
    The fast path for whole arrays must not let through a dtype the rule refuses (longdouble beyond
    float64, timedelta64, which numpy counts as an integer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = np.array([action] * N)
    check_batch(twins, kind, batch, row_meanings(kind, list(batch)))


def test_the_examples_of_the_issue(twins) -> None:
    """A bool was steering 1.0 and Discrete action 1 in a batch, while a single env refuses it."""
    for kind, batch in [("steer", [[True], [0.1]]), ("discrete_steer", [True, 1])]:
        envs, _ = twins(kind)
        envs.reset(seed=1)
        with pytest.raises(ValueError, match=r"sub-env 0: .*\bgot \[?True\b"):
            envs.step(batch)


# ------------------------------------------------------------------------------ hypothesis: batches


def row_meanings(kind: str, rows: list[Any]) -> list[Any] | None:
    """Each row's meaning by the single env's rule, worked out in test_hostile_actions; None if any row
    is refused."""
    size = 2 if kind == "steer_throttle" else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meanings = [
            box_meaning(row, size) if kind.startswith("steer") else discrete_meaning(row) for row in rows
        ]
    return None if any(m is None for m in meanings) else meanings


@SETTINGS
@given(kind=st.sampled_from(list(KINDS)), rows=st.data())
@pytest.mark.slow
def test_any_list_batch_follows_the_rule_of_its_rows(twins, kind: str, rows: st.DataObject) -> None:
    near = NEAR_BOX if kind.startswith("steer") else NEAR_DISCRETE
    batch = rows.draw(st.lists(st.one_of(near, ANYTHING), min_size=N, max_size=N))
    check_batch(twins, kind, batch, row_meanings(kind, batch))


@SETTINGS
@given(kind=st.sampled_from(list(KINDS)), data=st.data())
@pytest.mark.slow
def test_any_array_batch_follows_the_rule_of_its_rows(twins, kind: str, data: st.DataObject) -> None:
    envs, _ = twins(kind)
    batch = data.draw(hnp.arrays(hnp.scalar_dtypes(), envs.action_space.shape))
    check_batch(twins, kind, batch, row_meanings(kind, list(batch)))


# ------------------------------------------------------------------------------------------- seeds

GOOD_SEEDS = [0, 7, np.int64(3), np.uint8(2), 2**70, [1, np.int64(2)], [None, np.uint16(5)], (3, 4)]
BAD_SEEDS = [
    True, False, np.True_, -1, np.int64(-1), 1.5, np.float64(2.0), "3", b"3", np.array(3), [True, 1],
    [1, np.False_], [1, -2], [1, 1.0], [1, "x"], [1, 2, 3], [[1], [2]], {1: 1},
]  # fmt: skip


def as_plain(seed: Any) -> Any:
    """The Python ints a seed stands for."""
    return [None if s is None else int(s) for s in seed] if isinstance(seed, list | tuple) else int(seed)


@pytest.fixture(scope="module")
def single_twins():
    """Two single Traffic-v0 envs, for the single env's side of the seed rule."""
    env_id, options = KINDS["discrete_steer"]
    pair = gym.make(env_id, **options), gym.make(env_id, **options)
    yield pair
    for env in pair:
        env.close()


@pytest.mark.parametrize("seed", GOOD_SEEDS, ids=repr)
def test_integer_seeds_of_any_kind_seed_as_their_values(twins, single_twins, seed: Any) -> None:
    envs, twin = twins("discrete_steer")
    assert data_equivalence(envs.reset(seed=seed), twin.reset(seed=as_plain(seed)))
    if not isinstance(seed, list | tuple):
        single, single_twin = single_twins
        assert data_equivalence(single.reset(seed=seed), single_twin.reset(seed=int(seed)))


@pytest.mark.parametrize("seed", BAD_SEEDS, ids=repr)
def test_bools_and_non_integers_are_no_seeds(twins, single_twins, seed: Any) -> None:
    envs, _ = twins("discrete_steer")
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed=seed)
    if not isinstance(seed, list | tuple | dict):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            single_twins[0].reset(seed=seed)
