"""Action types: how an agent's action becomes steering and acceleration. Chosen by name in each env.

Every action type turns an action into a `Controls` (steering input -1 left .. +1 right, acceleration
m/s^2). What counts as an action is one rule per action space, checked here and nowhere else (the vector
env's batch is checked here too, `checked_batch`, row by row by the same rule, before any sub-env moves):

Box(-1, 1, (n,)) (LaneKeep-v0; n = 1 for "steer", 2 for "steer_throttle") accepts
- a list or tuple of n numbers: Python int or float, or numpy integer or floating scalars;
- a numpy array of shape (n,) with an integer or floating dtype, of any width;
- any other array-like (an object with `__array__`: a torch tensor, a jax array), held to the array rule
  after `np.asarray`.
Each value is taken as a float64 and clipped to [-1, 1]. NaN, +-inf and an int too large for a float64
are refused, so a NaN from a diverged policy never reaches the physics or the frame. A bare number is
not an action of shape (1,): write [steer].

Discrete(5) (Traffic-v0) accepts an integer in [0, 4]: a Python int (an IntEnum member is one), a numpy
integer scalar, or a 0-d integer array (what `Discrete.sample()` and SB3's `predict` return, or an
array-like that `np.asarray` makes one). A float, even 1.0, a list such as [1] and an array of shape (1,)
are refused: they are what a batch or a continuous policy's output look like, not an action index.

Bools are never numbers (np.bool_ neither; numpy's timedelta64, which numpy files under integers, is a
duration, not one): True is not steering 1 or action 1. Anything else is a ValueError, in one line naming
the env, its action space and the fault, raised before the world moves, so the env steps on as if the
refused action had never been passed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from sim.lane_control import steer_to_offset
from sim.validation import short_repr
from sim.world import World

NOOP, ACCELERATE, DECELERATE, LEFT, RIGHT = range(5)
DISCRETE_ACTION_NAMES = ("noop", "accelerate", "decelerate", "left", "right")
_N_DISCRETE = len(DISCRETE_ACTION_NAMES)
_NUMPY_INTS = frozenset(np.dtype(code).type for code in np.typecodes["AllInteger"])
"""numpy's integer scalar types (not its bool, nor timedelta64, which it files under integers): one set
lookup on `_discrete`'s fast path instead of isinstance checks."""


class Controls(NamedTuple):
    """What an action asks of the car: steering input (-1 left .. +1 right) and acceleration (m/s^2).
    A named tuple: one is made every step, at a third of a frozen dataclass's cost."""

    steer: float
    accel: float


_FLOAT_CHARS = "efd"
"""dtype chars of float16, float32 and float64, whose `tolist` gives Python floats (longdouble's does not)."""
_REAL_KINDS = "iuf"
"""dtype kinds of real numbers: signed and unsigned integers, floats (not bool, complex, datetime, ...)."""


def _finite_values(action: object, shape: tuple[int, ...], where: str = "action") -> list[float]:
    """The values of a Box(-1, 1, `shape`) action as floats clipped to [-1, 1], by the module's rule.

    Raises ValueError starting with `where` (the env and its space) for anything else. Fast paths first,
    for what agents pass every step (a float array of the right shape, a list of floats): this runs once
    per step of a simulator doing thousands of steps a second.
    """
    if type(action) is np.ndarray and action.shape == shape and action.dtype.char in _FLOAT_CHARS:
        values = action.tolist()  # the array's values exactly, as Python floats
    elif type(action) is list and len(action) == shape[0] and all(type(v) is float for v in action):
        values = action
    else:
        values = _box_floats(action, shape, where)
    clipped = []
    for v in values:
        if v - v != 0.0:  # NaN or +-inf (inf - inf is NaN): math.isfinite without its lookup and call
            raise ValueError(f"{where}: values must be finite numbers within float64, got {_show(action)}")
        clipped.append(-1.0 if v < -1.0 else 1.0 if v > 1.0 else v)  # min/max's calls cost more
    return clipped


def _box_floats(action: object, shape: tuple[int, ...], where: str) -> list[float]:
    """A Box action's values as floats (not yet checked finite or clipped), whatever form it came in."""
    if isinstance(action, list | tuple):
        if len(action) != shape[0]:
            raise ValueError(f"{where}: must have shape {shape}, got {len(action)} values: {_show(action)}")
        if not all(_is_real(v) for v in action):
            raise ValueError(f"{where}: must hold int or float numbers (not bool), got {_show(action)}")
        return [_as_float(v) for v in action]
    array = _as_array(action, where, f"a list, tuple or array of shape {shape}")
    if array.shape != shape:
        raise ValueError(f"{where}: must have shape {shape}, got shape {array.shape}: {_show(action)}")
    if array.dtype.kind not in _REAL_KINDS:
        raise ValueError(f"{where}: must hold int or float numbers, not dtype {array.dtype}: {_show(action)}")
    return [_as_float(v) for v in array.tolist()]


def _discrete(action: object, where: str = "action") -> int:
    """A Discrete(5) action as the int it stands for, by the module's rule; ValueError starting with
    `where` for anything else. Fast paths first (a Python int, a numpy integer): this runs every step."""
    if type(action) is int:
        if 0 <= action < _N_DISCRETE:
            return action
    elif type(action) in _NUMPY_INTS:
        value = int(action)  # type: ignore[call-overload]  # a numpy integer: its type was just checked
        if 0 <= value < _N_DISCRETE:
            return value
    return _discrete_general(action, where)


def _discrete_general(action: object, where: str) -> int:
    """`_discrete` for the forms agents rarely pass (an IntEnum, a 0-d array), and its refusals."""
    last = _N_DISCRETE - 1
    expected = f"an integer in [0, {last}] (an int or a numpy integer, not a bool, float or list)"
    if isinstance(action, int) and not isinstance(action, bool):
        value = int(action)
    else:
        array = _as_array(action, where, expected)
        if array.shape != () or array.dtype.kind not in "iu":
            raise ValueError(f"{where}: must be {expected}, got {_show(action)}")
        value = int(array)
    if not 0 <= value <= last:
        raise ValueError(f"{where}: must be {expected}, got {_show(action)}")
    return value


def checked_batch(actions: object, space: spaces.Space, num_envs: int, where: str) -> np.ndarray:
    """A vector env's `actions` as an array of shape (num_envs, *space.shape), `space` being the single
    env's; ValueError starting with `where` (the env and its batched space) for anything else.

    Why row by row by the single env's rule: a vector env must accept exactly what `num_envs` single envs
    would, no bool that `np.asarray` turns into 1.0 or 1. Fast path first, for what vector agents pass
    every step: an array of the batch's shape whose dtype the rule takes as it is, checked whole by one or
    two numpy reductions and returned unchanged. Anything else is parsed row by row (`_parsed_batch`).
    """
    discrete = isinstance(space, spaces.Discrete)
    assert space.shape is not None  # a Box's or a Discrete's: never None
    shape = (num_envs, *space.shape)
    if type(actions) is np.ndarray and actions.shape == shape and _valid_as_is(actions, discrete):
        return actions
    return _parsed_batch(actions, space, num_envs, where)


def _valid_as_is(batch: np.ndarray, discrete: bool) -> bool:
    """Whether every row of an array of the batch's shape is an action as it is: integers in [0, 4]
    (Discrete), or integers or finite float16/32/64 values (Box). False is no refusal: the batch then
    goes row by row, which refuses or accepts it."""
    if batch.dtype.kind in "iu":
        if not discrete:
            return True
        low, high = np.minimum.reduce(batch, axis=None), np.maximum.reduce(batch, axis=None)
        return bool(low >= 0 and high < _N_DISCRETE)
    if discrete or batch.dtype.char not in _FLOAT_CHARS:
        return False
    return bool(np.isfinite(batch).all())


def _parsed_batch(actions: object, space: spaces.Space, num_envs: int, where: str) -> np.ndarray:
    """The batch parsed row by row by the single env's rule, into a float64 or int64 array; a refused
    row is a ValueError naming its sub-env."""
    assert space.shape is not None  # a Box's or a Discrete's: never None
    rows = _batch_rows(actions, (num_envs, *space.shape), where)
    if isinstance(space, spaces.Discrete):
        return np.array([_discrete(row, f"{where}, sub-env {i}") for i, row in enumerate(rows)], np.int64)
    assert isinstance(space, spaces.Box)
    values = [_finite_values(row, space.shape, f"{where}, sub-env {i}") for i, row in enumerate(rows)]
    return np.array(values, dtype=np.float64)


def _batch_rows(actions: object, shape: tuple[int, ...], where: str) -> Sequence[object] | np.ndarray:
    """The rows of a batch: a list's or tuple's items, an array's (or array-like's) rows; ValueError for
    anything else, for an array of another shape and for another number of rows than sub-envs."""
    rows: Sequence[object] | np.ndarray
    if isinstance(actions, list | tuple):
        rows = actions
    else:
        rows = _as_array(actions, where, f"a list, tuple or array of shape {shape}")
        if rows.shape != shape:
            raise ValueError(
                f"{where}: must have shape {shape} (num_envs, *action shape), got shape {rows.shape}: "
                f"{_show(actions)}"
            )
    if len(rows) != shape[0]:
        raise ValueError(f"{where}: must hold {shape[0]} actions, one per sub-env, got {_show(actions)}")
    return rows


def _is_real(value: object) -> bool:
    """Whether `value` is an int or float number, Python's or numpy's, by the module's rule."""
    if isinstance(value, bool | np.bool_ | np.timedelta64):
        return False
    return isinstance(value, int | float | np.integer | np.floating)


def _as_float(value: object) -> float:
    """`value` (a real number) as a float64: inf if it is too large for one, which is then refused as not
    finite rather than an OverflowError."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf


def _as_array(action: object, where: str, expected: str) -> np.ndarray:
    """An array or array-like as numpy sees it; ValueError for anything else, or one numpy cannot read."""
    if not hasattr(action, "__array__"):
        raise ValueError(f"{where}: must be {expected}, got {_show(action)}")
    try:
        return np.asarray(action)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{where}: must be {expected}, got {_show(action)} ({err})") from None


def _show(action: object) -> str:
    """An action for an error message: its short one-line repr and its type, which is what is wrong with
    many hostile actions."""
    return f"{short_repr(action)} ({type(action).__name__})"


def cruise_accel(world: World, target_speed: float, gain: float = 1.0) -> float:
    """Proportional cruise control: the acceleration that closes the speed gap in about 1/gain seconds."""
    return gain * (target_speed - world.ego.speed)


class ActionType(ABC):
    """What every action type has: its space, the words its refusals start with, and the two calls the
    env makes: `reset` at the start of an episode, `controls` for every action."""

    name: str
    """The option value that chooses it (`action_type` of LaneKeep-v0, `action_mode` of Traffic-v0)."""

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        self.where = f"action for {space}"  # how refusals begin; the env adds its name (`name_env`)

    @abstractmethod
    def reset(self, world: World) -> None:
        """Start an episode in `world` (just reset): forget what earlier steps set."""

    @abstractmethod
    def controls(self, action: object, world: World) -> Controls:
        """The steering and acceleration `action` asks for in `world`'s current state; ValueError,
        before anything moves, for what is no action of this space (module docstring)."""

    def name_env(self, env_id: str) -> None:
        """Name the env in refusals ("camdrive/Traffic-v0 action for Discrete(5): ..."): an action is
        refused deep inside `env.step`, and the message must say whose action space it missed."""
        self.where = f"{env_id} action for {self.space}"


class SteeringAction(ActionType):
    """Box(-1, 1, (1,)): steering only; a cruise controller holds `cruise_speed`."""

    name = "steer"

    def __init__(self, cruise_speed: float) -> None:
        super().__init__(spaces.Box(-1.0, 1.0, (1,), dtype=np.float32))
        self.cruise_speed = cruise_speed

    def reset(self, world: World) -> None:
        """Nothing to remember between steps."""

    def controls(self, action: object, world: World) -> Controls:
        a = _finite_values(action, (1,), self.where)
        return Controls(a[0], cruise_accel(world, self.cruise_speed))


class SteeringThrottleAction(ActionType):
    """Box(-1, 1, (2,)): [steering, throttle]; throttle > 0 accelerates, < 0 brakes."""

    name = "steer_throttle"

    def __init__(self) -> None:
        super().__init__(spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))

    def reset(self, world: World) -> None:
        """Nothing to remember between steps."""

    def controls(self, action: object, world: World) -> Controls:
        a = _finite_values(action, (2,), self.where)
        p = world.ego.params
        accel = a[1] * (p.max_accel if a[1] >= 0 else p.max_brake)
        return Controls(a[0], accel)


class DiscreteSteerAction(ActionType):
    """Discrete(5) noop/accelerate/decelerate/left/right, where left/right turn the wheel.

    The wheel is held at `steer_amount` left or right during the step and self-centres otherwise,
    so a policy must learn lane keeping as well as lane changes from what it sees. Speed changes by
    `accel_step` m/s per accelerate/decelerate step and is otherwise held (cruise control).
    With the safety system on, whatever the action, a lane-keeping assist takes the wheel for the
    step (steering back toward the centre of the lane the car's centre is in, counted as a refusal)
    whenever the band the car occupies or will sweep before it could turn back reaches an unsafe
    lane or the road's edge (`World.sweeps_unsafe_lane`). It must act on every action, not only on
    left/right: with the wheel released the car keeps its heading, and holding a few degrees of it
    is how policies drifted into the side of a car alongside or off the road.
    """

    name = "steer"

    def __init__(self, steer_amount: float, accel_step: float, speed_limit: float) -> None:
        super().__init__(spaces.Discrete(_N_DISCRETE))
        self.steer_amount, self.accel_step, self.speed_limit = steer_amount, accel_step, speed_limit
        self.target_speed = 0.0

    def reset(self, world: World) -> None:
        self.target_speed = world.ego.speed

    def _speed_target(self, action: int, world: World) -> float:
        if action == ACCELERATE:
            self.target_speed = min(self.target_speed + self.accel_step, self.speed_limit)
        elif action == DECELERATE:
            self.target_speed = max(self.target_speed - self.accel_step, 0.0)
        # Follow the car's real speed down when something (the safety system) slowed it.
        self.target_speed = min(self.target_speed, world.ego.speed + self.accel_step)
        return self.target_speed

    def controls(self, action: object, world: World) -> Controls:
        a = _discrete(action, self.where)
        steer = 0.0
        if a in (LEFT, RIGHT):
            steer = (-1 if a == LEFT else 1) * self.steer_amount
        if world.safety.enabled and world.sweeps_unsafe_lane():
            # Refused: a lane-keeping assist steers back to the centre of the current lane.
            world.refuse_lane_change()
            st = world.state()
            assert world.road is not None
            centre = world.lane_centre(st.lane)
            steer = steer_to_offset(world.road, world.ego.params, st.s, st.d, st.yaw, st.speed, centre)
        return Controls(steer, cruise_accel(world, self._speed_target(a, world), gain=2.0))


class DiscreteLaneAction(DiscreteSteerAction):
    """Discrete(5) with DeepTraffic's meaning: left/right ask a built-in controller to change lane.

    A lane change to a lane that does not exist is ignored. With the safety system on:
    - a change is accepted only into a gap that passes `World.lane_is_safe`, and only one lane at a
      time (the target may be at most one lane from the lane the car's centre is in), else refused;
    - until the car's body reaches the target lane the check is repeated every step, and the change
      is aborted (back to the lane the car's centre is in, counted as a refusal) once the gap closes;
    - going back to the lane the car's centre is still in is always allowed;
    - the target lane is reported to the world (`World.set_target_lane`), so the safety brake brakes
      for the cars of the lane being entered and that lane's traffic follows the car.
    The built-in controller (`lane_control.steer_to_offset`) keeps the car centred in its target lane.
    """

    name = "lane"

    def __init__(self, accel_step: float, speed_limit: float) -> None:
        super().__init__(0.0, accel_step, speed_limit)
        self.target_lane = 0

    def reset(self, world: World) -> None:
        super().reset(world)
        self.target_lane = world.ego_lane()
        world.set_target_lane(self.target_lane)

    def controls(self, action: object, world: World) -> Controls:
        a = _discrete(action, self.where)
        assert world.road is not None
        safety = world.safety.enabled
        here = world.ego_lane()
        if a in (LEFT, RIGHT):
            direction = -1 if a == LEFT else 1
            lane = self.target_lane + direction
            if 0 <= lane < world.road_config.lanes:
                # Going back to the lane the car is still in (aborting a change) is always allowed.
                if safety and lane != here and (abs(lane - here) > 1 or not world.lane_is_safe(lane)):
                    world.refuse_lane_change()
                else:
                    self.target_lane = lane
        if (
            safety
            and self.target_lane != here
            and not world.body_in_lane(self.target_lane)
            and not world.lane_is_safe(self.target_lane)
        ):
            # The gap closed before the car got there: abort, back to the lane it is still in.
            world.refuse_lane_change()
            self.target_lane = here
        world.set_target_lane(self.target_lane)
        e = world.ego
        d_target = world.lane_centre(self.target_lane)
        steer = steer_to_offset(world.road, e.params, world.s, world.d, e.yaw, e.speed, d_target)
        return Controls(steer, cruise_accel(world, self._speed_target(a, world), gain=2.0))
