"""The ego car: a kinematic bicycle model in SI units, stepped at a fixed physics rate.

Steering convention (as in Gymnasium's CarRacing): the normalised steering input is -1 for full LEFT
and +1 for full RIGHT. Internally the front-wheel angle delta is positive to the left
(counter-clockwise), so delta = -steer * max_wheel_angle(speed).

Steering is speed-sensitive, as in steer-by-wire cars and most driving games: full input turns the
wheels to `max_steer_angle` at walking pace, but never further than what produces
`max_lateral_accel` at the current speed. Without this, a full-scale input at 30 m/s would ask for
tens of g and useful highway steering would live in the first 1 % of the input range, which makes a
regression target for behaviour cloning badly scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba

from sim.validation import check_range

STOPPED_SPEED = 1e-3
"""m/s: a braking car slower than this has stopped (see `Vehicle.step`)."""


@dataclass(frozen=True)
class VehicleParams:
    """Physical limits of a car. Defaults: a mid-size saloon."""

    wheelbase: float = 2.7
    """Axle distance, metres."""
    length: float = 4.6
    """Body length, metres (collision box and drawing)."""
    width: float = 1.9
    """Body width, metres."""
    height: float = 1.5
    """Body height, metres (drawing only)."""
    max_steer_angle: float = 0.6
    """Front-wheel angle at full lock, radians."""
    max_lateral_accel: float = 6.0
    """Speed-sensitive steering: full input never asks for more than this lateral acceleration, m/s^2."""
    steer_rate: float = 4.0
    """How fast the steering input can move, in normalised units per second (full lock to centre)."""
    max_accel: float = 3.5
    """Strongest forward acceleration, m/s^2."""
    max_brake: float = 8.0
    """Strongest braking deceleration, m/s^2."""
    max_speed: float = 45.0
    """Top speed, m/s."""

    def validate(self) -> VehicleParams:
        check_range("wheelbase", self.wheelbase, 1.0, 6.0)
        check_range("max_steer_angle", self.max_steer_angle, 0.05, 1.0)
        check_range("max_lateral_accel", self.max_lateral_accel, 0.5, 15.0)
        check_range("steer_rate", self.steer_rate, 0.1, 100.0)
        check_range("max_accel", self.max_accel, 0.1, 15.0)
        check_range("max_brake", self.max_brake, 0.1, 15.0)
        check_range("max_speed", self.max_speed, 1.0, 100.0)
        return self

    def max_wheel_angle(self, speed: float) -> float:
        """Largest front-wheel angle (rad) that full steering input gives at `speed` (m/s).

        The one formula is `_max_wheel_angle`, which `_bicycle_steps` calls compiled; here its plain
        Python (`py_func`) runs it, since a call into compiled code would cost more than the formula
        (the safety system and the lane controller ask every step). libm's atan in both: the same
        numbers (tests/test_vehicle.py)."""
        return float(
            _max_wheel_angle.py_func(speed, self.max_steer_angle, self.wheelbase, self.max_lateral_accel)
        )


class Vehicle:
    """State and integration of one car. Reference point: the centre of the body."""

    def __init__(self, params: VehicleParams) -> None:
        self.params = params.validate()
        self.x = 0.0
        self.y = 0.0
        self.yaw = 0.0
        self.speed = 0.0
        self.steer = 0.0
        """Current normalised steering (-1 left .. +1 right), after the rate limit."""

    def reset(self, x: float, y: float, yaw: float, speed: float) -> None:
        self.x, self.y, self.yaw, self.speed, self.steer = x, y, yaw, speed, 0.0

    def step(self, steer_cmd: float, accel_cmd: float, dt: float, substeps: int = 1) -> None:
        """Advance `substeps` steps of `dt` seconds each with steering input `steer_cmd` (-1..1) and
        acceleration `accel_cmd`.

        `accel_cmd` is in m/s^2 and is clipped to [-max_brake, max_accel]; the steering input moves
        toward `steer_cmd` no faster than `steer_rate`. The sub-steps run in one compiled call
        (`_bicycle_steps`): the world steps the car five times per control period.
        """
        p = self.params
        self.x, self.y, self.yaw, self.speed, self.steer = _bicycle_steps(
            self.x, self.y, self.yaw, self.speed, self.steer, steer_cmd, accel_cmd, dt, substeps,
            p.wheelbase, p.max_steer_angle, p.max_lateral_accel, p.steer_rate, p.max_accel, p.max_brake,
            p.max_speed,
        )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _max_wheel_angle(
    speed: float, max_steer_angle: float, wheelbase: float, max_lateral_accel: float
) -> float:
    """`VehicleParams.max_wheel_angle`, compiled so that `_bicycle_steps` calls it too."""
    if speed < 1e-3:
        return max_steer_angle
    return min(max_steer_angle, math.atan(wheelbase * max_lateral_accel / (speed * speed)))


@numba.njit(cache=True, nogil=True)
def _bicycle_steps(
    x: float,
    y: float,
    yaw: float,
    speed: float,
    steer: float,
    steer_cmd: float,
    accel_cmd: float,
    dt: float,
    substeps: int,
    wheelbase: float,
    max_steer_angle: float,
    max_lateral_accel: float,
    steer_rate: float,
    max_accel: float,
    max_brake: float,
    max_speed: float,
) -> tuple[float, float, float, float, float]:
    """`substeps` steps of the kernel of `Vehicle.step`: (x, y, yaw, speed, steer) after them.

    Plain float arithmetic and libm's trigonometry, as in Python: compiled, the same numbers.
    """
    for _ in range(substeps):
        max_step = steer_rate * dt
        delta_cmd = min(max(steer_cmd, -1.0), 1.0) - steer
        steer = steer + min(max(delta_cmd, -max_step), max_step)
        accel = min(max(accel_cmd, -max_brake), max_accel)
        speed = min(max(speed + accel * dt, 0.0), max_speed)
        if accel < 0.0 and speed < STOPPED_SPEED:
            # Braking that would only halve a crawl every step stops the car: a speed decaying
            # towards zero without reaching it (1e-40 m/s) reads as "faster than the stopped car
            # behind", and the traffic lets a follower creep into a car that is really standing.
            speed = 0.0
        delta = -steer * _max_wheel_angle(speed, max_steer_angle, wheelbase, max_lateral_accel)
        # Kinematic bicycle about the body centre (rear axle half a wheelbase behind it).
        tan_delta = math.tan(delta)
        beta = math.atan(0.5 * tan_delta)
        x += speed * math.cos(yaw + beta) * dt
        y += speed * math.sin(yaw + beta) * dt
        yaw = yaw + speed / wheelbase * math.cos(beta) * tan_delta * dt
    return x, y, yaw, speed, steer
