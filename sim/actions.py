"""Action types: how an agent's action becomes steering and acceleration. Chosen by name in each env.

Every action type turns an action into a `Controls` (steering input -1 left .. +1 right, acceleration
m/s^2). Continuous actions outside the space are clipped (documented in the envs); non-finite actions
raise ValueError, so a NaN from a diverged policy never reaches the physics or the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from sim.lane_control import steer_to_offset
from sim.world import World

NOOP, ACCELERATE, DECELERATE, LEFT, RIGHT = range(5)
DISCRETE_ACTION_NAMES = ("noop", "accelerate", "decelerate", "left", "right")


@dataclass(frozen=True)
class Controls:
    steer: float
    accel: float


def _finite_values(action: object, shape: tuple[int, ...]) -> list[float]:
    """The action's values (as many as `shape` holds) as floats, clipped to [-1, 1].

    Raises ValueError if it does not hold exactly that many values or any is not finite. Plain floats:
    the same IEEE doubles as the float64 array this used to return, without numpy's per-call cost.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.size != math.prod(shape):
        raise ValueError(f"action must have shape {shape}, got {np.asarray(action).shape}")
    values = a.ravel().tolist()
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"action must be finite, got {values}")
    return [min(max(v, -1.0), 1.0) for v in values]


def cruise_accel(world: World, target_speed: float, gain: float = 1.0) -> float:
    """Proportional cruise control: the acceleration that closes the speed gap in about 1/gain seconds."""
    return gain * (target_speed - world.ego.speed)


class SteeringAction:
    """Box(-1, 1, (1,)): steering only; a cruise controller holds `cruise_speed`."""

    name = "steer"

    def __init__(self, cruise_speed: float) -> None:
        self.cruise_speed = cruise_speed
        self.space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, world: World) -> None:
        """Nothing to remember between steps."""

    def controls(self, action: object, world: World) -> Controls:
        a = _finite_values(action, (1,))
        return Controls(a[0], cruise_accel(world, self.cruise_speed))


class SteeringThrottleAction:
    """Box(-1, 1, (2,)): [steering, throttle]; throttle > 0 accelerates, < 0 brakes."""

    name = "steer_throttle"

    def __init__(self) -> None:
        self.space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def reset(self, world: World) -> None:
        """Nothing to remember between steps."""

    def controls(self, action: object, world: World) -> Controls:
        a = _finite_values(action, (2,))
        p = world.ego.params
        accel = a[1] * (p.max_accel if a[1] >= 0 else p.max_brake)
        return Controls(a[0], accel)


class DiscreteSteerAction:
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
        self.steer_amount, self.accel_step, self.speed_limit = steer_amount, accel_step, speed_limit
        self.space = spaces.Discrete(5)
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
        a = _discrete(action)
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
        self.target_lane = world.state().lane
        world.set_target_lane(self.target_lane)

    def controls(self, action: object, world: World) -> Controls:
        a = _discrete(action)
        assert world.road is not None
        safety = world.safety.enabled
        here = world.state().lane
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
        st = world.state()
        d_target = world.lane_centre(self.target_lane)
        steer = steer_to_offset(world.road, world.ego.params, st.s, st.d, st.yaw, st.speed, d_target)
        return Controls(steer, cruise_accel(world, self._speed_target(a, world), gain=2.0))


def _discrete(action: object) -> int:
    # Fast path for what agents pass (a Python int or a numpy integer scalar); bool is not an int here.
    if type(action) is int or isinstance(action, np.integer):
        a = int(action)
        if 0 <= a < 5:
            return a
    a = np.asarray(action)
    if a.size != 1 or not np.issubdtype(a.dtype, np.integer) or not 0 <= int(a) < 5:
        raise ValueError(f"action must be an integer in [0, 4], got {action!r}")
    return int(a)
