"""Hostile actions and `gymnasium.make` options: each is accepted with its documented meaning or refused
with a ValueError naming the action space (or the option), never another exception, and a refused action
leaves the env as it was.

The rules are those of `sim.actions` (and the envs' "Action Space" sections) and `sim.validation`. A
fixed corpus pins the decision for each kind of hostile value; hypothesis then throws arbitrary values
(nested containers, numpy scalars and arrays of every dtype and shape) at both envs.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import fields
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction
from typing import Any

import gymnasium as gym
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.envs.lane_keep import LaneKeepOptions
from sim.envs.traffic import TrafficOptions

LANE_KEEP = "camdrive/LaneKeep-v0"
TRAFFIC = "camdrive/Traffic-v0"
SMALL = {"camera_width": 32, "camera_height": 16}
KINDS = {
    "steer": (LANE_KEEP, SMALL),
    "steer_throttle": (LANE_KEEP, {**SMALL, "action_type": "steer_throttle"}),
    "discrete_steer": (TRAFFIC, {"obs_type": "grid"}),
    "discrete_lane": (TRAFFIC, {"obs_type": "grid", "action_mode": "lane"}),
}
"""Every action space and action type the envs have: (env id, options) by name."""
NEUTRAL = {"steer": [0.0], "steer_throttle": [0.0, 0.0], "discrete_steer": 0, "discrete_lane": 0}
"""An ordinary action of each kind, stepped after a hostile one."""
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Lever(IntEnum):
    """An action enum as a program might define one: IntEnum members are ints."""

    RIGHT = 4


class ArrayLike:
    """Neither a list nor an ndarray, but convertible as a torch tensor or a jax array is."""

    def __init__(self, values: list) -> None:
        self.values = values

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.array(self.values, dtype=dtype)


def read_only(values: list) -> np.ndarray:
    array = np.array(values)
    array.flags.writeable = False
    return array


# ------------------------------------------------------------------------------- the fixed corpus

ACCEPTED: dict[str, list[tuple[str, Any, Any]]] = {
    "steer": [
        ("float32 array", np.array([0.25], dtype=np.float32), [0.25]),
        ("float64 array", np.array([-0.3]), [-0.3]),
        ("float16 array", np.array([0.5], dtype=np.float16), [0.5]),
        ("int8 array", np.array([1], dtype=np.int8), [1.0]),
        ("uint64 array", np.array([0], dtype=np.uint64), [0.0]),
        ("list", [0.1], [0.1]),
        ("tuple", (-0.7,), [-0.7]),
        ("list of an int", [1], [1.0]),
        ("list of a numpy float", [np.float32(0.1)], [float(np.float32(0.1))]),
        ("list of a numpy int", [np.int64(-1)], [-1.0]),
        ("array-like", ArrayLike([0.4]), [0.4]),
        ("read-only array", read_only([0.2]), [0.2]),
        ("too large: clipped", [5.0], [1.0]),
        ("huge float: clipped", [-1e300], [-1.0]),
        ("huge int that fits a float: clipped", [10**300], [1.0]),
        ("negative zero", [-0.0], [-0.0]),
        ("longdouble array", np.array([0.5], dtype=np.longdouble), [0.5]),
    ],
    "steer_throttle": [
        ("float32 array", np.array([0.1, -0.5], dtype=np.float32), [float(np.float32(0.1)), -0.5]),
        ("mixed list", [1, np.float64(0.5)], [1.0, 0.5]),
        ("tuple clipped", (-3.0, 7), [-1.0, 1.0]),
        ("int32 array", np.array([0, -1], dtype=np.int32), [0.0, -1.0]),
    ],
    "discrete_steer": [
        ("int", 3, 3),
        ("numpy int64", np.int64(4), 4),
        ("numpy int8", np.int8(1), 1),
        ("numpy uint64", np.uint64(2), 2),
        ("0-d int array", np.array(2), 2),
        ("0-d uint8 array", np.array(3, dtype=np.uint8), 3),
        ("IntEnum", Lever.RIGHT, 4),
    ],
    "discrete_lane": [
        ("int", 4, 4),
        ("numpy int32", np.int32(3), 3),
        ("0-d int16 array", np.array(1, np.int16), 1),
    ],
}
"""Hostile-looking actions that have a meaning: (name, action, the plain action it means)."""

BOX_REFUSED: list[tuple[str, Any]] = [
    ("str", "0.5"),
    ("bytes", b"0.5"),
    ("bool", True),
    ("numpy bool", np.True_),
    ("None", None),
    ("dict", {"steer": 0.5}),
    ("set", {0.5}),
    ("bare float", 0.5),
    ("bare int", 1),
    ("numpy float scalar", np.float32(0.5)),
    ("0-d array", np.array(0.5)),
    ("shape (1, 1)", np.array([[0.5]])),
    ("nested list", [[0.5]]),
    ("empty list", []),
    ("list of str", ["0.5"]),
    ("list of bytes", [b"0.5"]),
    ("list of bool", [True]),
    ("list of numpy bool", [np.False_]),
    ("list of None", [None]),
    ("list of complex", [0.5j]),
    ("list of Decimal", [Decimal("0.5")]),
    ("list of Fraction", [Fraction(1, 2)]),
    ("list of 0-d array", [np.array(0.5)]),
    ("bool array", np.array([True])),
    ("complex array", np.array([0.5 + 0j])),
    ("str array", np.array(["0.5"])),
    ("bytes array", np.array([b"0.5"])),
    ("object array", np.array([0.5], dtype=object)),
    ("datetime64 array", np.array(["2020-01-01"], dtype="datetime64[D]")),
    ("timedelta64 array", np.array([1], dtype="timedelta64[s]")),
    ("NaN", [math.nan]),
    ("inf", [math.inf]),
    ("-inf array", np.array([-np.inf], dtype=np.float32)),
    ("NaN float16", np.array([np.nan], dtype=np.float16)),
    ("10**400", [10**400]),
    ("-10**400", [-(10**400)]),
    ("longdouble beyond float64", np.array([np.longdouble("1e4000")])),
    ("bytearray", bytearray(b"\x01")),
    ("memoryview", memoryview(b"\x01")),
    ("range", range(1)),
    ("array-like of str", ArrayLike(["0.5"])),
    ("object", object()),
]
"""Refused by both Box spaces (shape (1,) and (2,))."""

REFUSED: dict[str, list[tuple[str, Any]]] = {
    "steer": [
        *BOX_REFUSED,
        ("shape (2,)", np.array([0.1, 0.2])),
        ("shape (2, 1)", np.array([[0.1], [0.2]])),
        ("two values", [0.1, 0.2]),
    ],
    "steer_throttle": [
        *BOX_REFUSED,
        ("shape (2, 1)", np.array([[0.1], [0.2]])),
        ("shape (1, 2)", np.array([[0.1, 0.2]])),
        ("one value", [0.1]),
        ("three values", (0.1, 0.2, 0.3)),
        ("NaN throttle", [0.0, math.nan]),
        ("bool throttle", [0.0, True]),
        ("str throttle", [0.0, "1"]),
        ("ragged", [0.1, [0.2]]),
    ],
    "discrete_steer": [
        ("5", 5),
        ("-1", -1),
        ("10**400", 10**400),
        ("-10**400", -(10**400)),
        ("numpy int out of range", np.int64(5)),
        ("numpy uint64 max", np.uint64(2**64 - 1)),
        ("bool", True),
        ("False", False),
        ("numpy bool", np.True_),
        ("0-d bool array", np.array(True)),
        ("integral float", 1.0),
        ("numpy float", np.float32(3.0)),
        ("0-d float array", np.array(2.0)),
        ("fraction", 1.5),
        ("NaN", math.nan),
        ("inf", math.inf),
        ("complex", 1 + 0j),
        ("Decimal", Decimal(1)),
        ("str", "1"),
        ("bytes", b"1"),
        ("None", None),
        ("list", [1]),
        ("tuple", (1,)),
        ("shape (1,) array", np.array([1])),
        ("shape (1, 1) array", np.array([[1]])),
        ("empty list", []),
        ("dict", {1: 1}),
        ("0-d str array", np.array("1")),
        ("datetime64", np.datetime64(1, "D")),
        ("0-d datetime64 array", np.array(1, dtype="datetime64[D]")),
        ("timedelta64", np.timedelta64(1, "s")),
        ("object", object()),
    ],
    "discrete_lane": [("5", 5), ("list", [1]), ("bool", True), ("float", 4.0), ("str", "left")],
}
"""Actions without a meaning: each must be a ValueError naming the env and its action space."""


@pytest.fixture(scope="module")
def twins():
    """`twins(kind)`: two envs of that action kind, made once for the module (reset by each test)."""
    made: dict[str, tuple[gym.Env, gym.Env]] = {}

    def get(kind: str) -> tuple[gym.Env, gym.Env]:
        if kind not in made:
            env_id, options = KINDS[kind]
            made[kind] = (gym.make(env_id, **options), gym.make(env_id, **options))
        return made[kind]

    yield get
    for pair in made.values():
        for env in pair:
            env.close()


def same_step(env: gym.Env, action: Any, twin: gym.Env, twin_action: Any) -> None:
    """Step both envs; their results must be identical."""
    obs, reward, terminated, truncated, info = env.step(action)
    obs2, reward2, terminated2, truncated2, info2 = twin.step(twin_action)
    assert np.array_equal(obs, obs2)
    assert (reward, terminated, truncated, info) == (reward2, terminated2, truncated2, info2)


def assert_names_space(err: pytest.ExceptionInfo, env: gym.Env) -> None:
    """A refusal names the env and its action space, in one line."""
    message = str(err.value)
    assert env.spec is not None and env.spec.id in message
    assert str(env.action_space) in message
    assert "\n" not in message


def corpus(table: dict[str, list]) -> list:
    """The table's cases as pytest params (kind, action[, meaning]), each with a readable id."""
    return [
        pytest.param(kind, *case[1:], id=f"{kind}-{case[0]}")
        for kind, cases in table.items()
        for case in cases
    ]


@pytest.mark.parametrize(("kind", "action", "meaning"), corpus(ACCEPTED))
def test_accepted_actions_mean_what_the_rule_says(twins, kind: str, action: Any, meaning: Any) -> None:
    env, twin = twins(kind)
    env.reset(seed=3)
    twin.reset(seed=3)
    plain = meaning if isinstance(meaning, int) else np.array(meaning, dtype=np.float64)
    same_step(env, action, twin, plain)
    if not isinstance(meaning, int):
        assert env.unwrapped.last_controls[0] == meaning[0]
        assert math.copysign(1.0, env.unwrapped.last_controls[0]) == math.copysign(1.0, meaning[0])
    same_step(env, NEUTRAL[kind], twin, NEUTRAL[kind])


@pytest.mark.parametrize(("kind", "action"), corpus(REFUSED))
@pytest.mark.slow
def test_refused_actions_name_the_space_and_leave_the_env_untouched(twins, kind: str, action: Any) -> None:
    env, twin = twins(kind)
    env.reset(seed=4)
    twin.reset(seed=4)
    with pytest.raises(ValueError) as err:
        env.step(action)
    assert_names_space(err, env)
    same_step(env, NEUTRAL[kind], twin, NEUTRAL[kind])


def test_the_issue_examples_are_refused_with_the_reason(twins) -> None:
    """The reports of issue 14: what each refusal says is the fault."""
    steer, _ = twins("steer")
    traffic, _ = twins("discrete_steer")
    steer.reset(seed=0)
    traffic.reset(seed=0)
    for action, reason in [("0.5", "got '0.5'"), (np.array([[0.5]]), "shape (1, 1)"), ([10**400], "finite")]:
        with pytest.raises(ValueError, match=re.escape(reason)):
            steer.step(action)
    with pytest.raises(ValueError, match=r"an integer in \[0, 4\].*got \[1\]"):
        traffic.step([1])


# ------------------------------------------------------------------------------ hypothesis: actions

DTYPES = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
    st.just(np.dtype(object)),
)
NUMPY_SCALARS = hnp.scalar_dtypes().flatmap(hnp.from_dtype)
ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
PYTHON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.decimals(),
    st.fractions(),
)
ANYTHING = st.recursive(
    st.one_of(PYTHON_SCALARS, NUMPY_SCALARS, ARRAYS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=2), inner, max_size=2),
        st.builds(ArrayLike, st.lists(inner, max_size=2)),
    ),
    max_leaves=6,
)
"""Any value a confused or hostile caller might pass."""

NUMBERS = st.one_of(st.floats(), st.integers(-3, 6), NUMPY_SCALARS)
NEAR_BOX = st.one_of(
    st.lists(NUMBERS, min_size=1, max_size=2),
    hnp.arrays(hnp.scalar_dtypes(), st.sampled_from([(1,), (2,), (), (1, 1), (2, 1)])),
)
NEAR_DISCRETE = st.one_of(
    st.integers(-2, 7), NUMPY_SCALARS, hnp.arrays(hnp.scalar_dtypes(), st.sampled_from([(), (1,)]))
)
"""Values close to valid ones, so that the accepting path is exercised too."""


def box_meaning(action: Any, size: int) -> list[float] | None:
    """What the rule makes of `action` for Box(-1, 1, (size,)), worked out here on its own; None: refused."""
    if isinstance(action, list | tuple):
        if len(action) != size or not all(is_real(v) for v in action):
            return None
        values = [as_float(v) for v in action]
    else:
        array = as_array(action)
        if array is None or array.shape != (size,) or array.dtype.kind not in "iuf":
            return None
        values = [as_float(v) for v in array]
    return [min(max(v, -1.0), 1.0) for v in values] if all(math.isfinite(v) for v in values) else None


def discrete_meaning(action: Any) -> int | None:
    """What the rule makes of `action` for Discrete(5); None: refused."""
    if isinstance(action, int) and not isinstance(action, bool):
        return action if 0 <= action < 5 else None
    array = as_array(action)
    if array is None or array.shape != () or array.dtype.kind not in "iu" or not 0 <= array < 5:
        return None
    return int(array)


def is_real(value: Any) -> bool:
    """An int or float, Python or numpy, that is not a bool (nor a timedelta64, which numpy counts as an
    integer)."""
    numbers = (int, float, np.integer, np.floating)
    return isinstance(value, numbers) and not isinstance(value, bool | np.bool_ | np.timedelta64)


def as_float(value: Any) -> float:
    """`value` as a float64; inf if it is too large for one."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def as_array(action: Any) -> np.ndarray | None:
    """An array (numpy's or one with `__array__`) as numpy makes it; None for anything else, or if numpy
    cannot convert it."""
    if not hasattr(action, "__array__"):
        return None
    try:
        return np.asarray(action)
    except Exception:
        return None


def check_one_action(twins, kind: str, action: Any) -> None:
    """`action` is accepted exactly when the rule gives it a meaning, and then means that; else it is a
    ValueError naming the space; either way the env steps on as its twin does."""
    env, twin = twins(kind)
    env.reset(seed=1)
    twin.reset(seed=1)
    size = env.action_space.shape[0] if kind.startswith("steer") else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's conversions of odd values may warn; the result matters
        meaning = box_meaning(action, size) if size else discrete_meaning(action)
    if meaning is None:
        with pytest.raises(ValueError) as err:
            env.step(action)
        assert_names_space(err, env)
    else:
        plain = np.array(meaning, dtype=np.float64) if size else meaning
        same_step(env, action, twin, plain)
    same_step(env, NEUTRAL[kind], twin, NEUTRAL[kind])


@SETTINGS
@given(kind=st.sampled_from(["steer", "steer_throttle"]), action=st.one_of(NEAR_BOX, ANYTHING))
def test_any_box_action_is_accepted_by_the_rule_or_refused(twins, kind: str, action: Any) -> None:
    check_one_action(twins, kind, action)


@SETTINGS
@given(kind=st.sampled_from(["discrete_steer", "discrete_lane"]), action=st.one_of(NEAR_DISCRETE, ANYTHING))
@pytest.mark.slow
def test_any_discrete_action_is_accepted_by_the_rule_or_refused(twins, kind: str, action: Any) -> None:
    check_one_action(twins, kind, action)


# ------------------------------------------------------------------------------------ gymnasium.make

OPTIONS = {LANE_KEEP: LaneKeepOptions, TRAFFIC: TrafficOptions}
NUMPY_TYPES = {int: (np.int64, np.int32, np.uint16), float: (np.float32, np.float64, np.float16)}
"""For each Python type of an option, numpy scalar types its values may come as."""
PYTHON_TYPES = {"b": bool, "i": int, "u": int, "f": float, "U": str}
"""The Python type an option keeps a numpy scalar as, by its dtype kind."""


def option_fields(env_id: str) -> list[tuple[str, Any]]:
    """(name, default) of every `gymnasium.make` option of the env, render_mode included."""
    return [(f.name, f.default) for f in fields(OPTIONS[env_id])] + [("render_mode", None)]


def build(env_id: str, **options: Any) -> gym.Env:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium.make warns about an unknown render_mode first
        return gym.make(env_id, **options)


def numpy_cases() -> list:
    """Every numeric option's default as each numpy type of its kind (and bools as np.bool_)."""
    cases = []
    for env_id in OPTIONS:
        for name, default in option_fields(env_id):
            kinds = (np.bool_,) if type(default) is bool else NUMPY_TYPES.get(type(default), ())
            for numpy_type in kinds:
                cases.append(
                    pytest.param(
                        env_id, name, numpy_type(default), id=f"{env_id[8:]}-{name}-{numpy_type.__name__}"
                    )
                )
    return cases


MORE_NUMPY = [
    pytest.param(LANE_KEEP, "cruise_speed", np.int64(25), id="int for a float"),
    pytest.param(TRAFFIC, "speed_limit", np.longdouble(30), id="longdouble"),
    pytest.param(TRAFFIC, "action_mode", np.str_("lane"), id="numpy str"),
]


@pytest.mark.parametrize(("env_id", "name", "value"), numpy_cases() + MORE_NUMPY)
@pytest.mark.slow
def test_numpy_scalars_are_accepted_as_their_python_values(env_id: str, name: str, value: Any) -> None:
    env = build(env_id, **{name: value})
    try:
        kept = getattr(env.unwrapped.options, name)
        assert kept == value and type(kept) is PYTHON_TYPES[np.dtype(type(value)).kind]
    finally:
        env.close()


REFUSED_OPTIONS = [
    (LANE_KEEP, "lanes", True),
    (LANE_KEEP, "lanes", np.True_),
    (LANE_KEEP, "lanes", 3.0),
    (LANE_KEEP, "lanes", np.float64(3.0)),
    (LANE_KEEP, "lanes", "3"),
    (LANE_KEEP, "lanes", np.array(3)),
    (LANE_KEEP, "lanes", np.array([3])),
    (LANE_KEEP, "lanes", np.int64(8)),
    (LANE_KEEP, "lanes", 10**400),
    (LANE_KEEP, "camera_width", np.uint64(2**64 - 1)),
    (LANE_KEEP, "camera_height", None),
    (LANE_KEEP, "curviness", np.float32("nan")),
    (LANE_KEEP, "curviness", np.longdouble("1e4000")),
    (LANE_KEEP, "curviness", 10**400),
    (LANE_KEEP, "curviness", 0.5j),
    (LANE_KEEP, "curviness", np.datetime64(1, "D")),
    (LANE_KEEP, "cruise_speed", np.timedelta64(10, "s")),
    (LANE_KEEP, "lane_width", Decimal("3.5")),
    (LANE_KEEP, "grayscale", 1),
    (LANE_KEEP, "grayscale", "True"),
    (LANE_KEEP, "grayscale", np.array(True)),
    (LANE_KEEP, "action_type", b"steer"),
    (LANE_KEEP, "action_type", np.array("steer")),
    (LANE_KEEP, "action_type", np.array(["steer", "steer"])),
    (LANE_KEEP, "action_type", ["steer"]),
    (TRAFFIC, "traffic_cars", np.int64(61)),
    (TRAFFIC, "safety", np.int64(1)),
    (TRAFFIC, "obs_type", None),
    (TRAFFIC, "grid_patches_ahead", np.float32(10)),
    (TRAFFIC, "speed_limit", np.float64("inf")),
    (TRAFFIC, "render_mode", 3),
    (TRAFFIC, "render_mode", b"human"),
    (TRAFFIC, "render_mode", ["human"]),
    (TRAFFIC, "render_mode", "vr"),
    (TRAFFIC, "render_mode", True),
]
"""Values `gymnasium.make` must refuse with a ValueError naming the option."""


@pytest.mark.parametrize(("env_id", "name", "value"), REFUSED_OPTIONS, ids=repr)
def test_bad_options_are_value_errors_naming_them(env_id: str, name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        build(env_id, **{name: value})


def test_render_mode_refusal_lists_the_modes() -> None:
    with pytest.raises(
        ValueError, match=r"render_mode must be one of \['human', 'rgb_array'\] or None, got 3"
    ):
        build(LANE_KEEP, render_mode=3)


@pytest.mark.parametrize("mode", [None, "rgb_array", np.str_("rgb_array"), "rgb_array_list"])
def test_good_render_modes_build(mode: Any) -> None:
    env = build(TRAFFIC, obs_type="grid", render_mode=mode)
    env.reset(seed=0)
    env.close()


OPTION_VALUES = st.one_of(
    ANYTHING,
    st.integers(-5, 5000),
    st.floats(-100, 100),
    NUMPY_SCALARS,
    st.sampled_from(["steer", "steer_throttle", "lane", "camera", "grid", "rgb_array", "human"]),
)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), env_id=st.sampled_from(sorted(OPTIONS)))
@pytest.mark.slow
def test_any_option_value_builds_or_is_refused_by_name(data: st.DataObject, env_id: str) -> None:
    name = data.draw(st.sampled_from([name for name, _ in option_fields(env_id)]), label="option")
    value = data.draw(OPTION_VALUES, label="value")
    try:
        env = build(env_id, **{name: value})
    except ValueError as err:
        assert name in str(err) and "\n" not in str(err)
    else:
        env.close()
