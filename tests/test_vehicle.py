"""The ego car's kinematic bicycle: steering sign and rate limit, speed limits, speed-sensitive steering.

Convention under test (sim.vehicle docstring): steering input -1 is full LEFT, +1 full RIGHT; yaw is
counter-clockwise from +x, so steering right makes yaw decrease.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.vehicle import Vehicle, VehicleParams, _max_wheel_angle

DT = 0.02  # the world's physics step


def car(speed: float = 20.0, yaw: float = 0.0, **params: float) -> Vehicle:
    v = Vehicle(VehicleParams(**params))
    v.reset(0.0, 0.0, yaw, speed)
    return v


def drive(v: Vehicle, steer: float, accel: float, steps: int, dt: float = DT) -> list[tuple[float, ...]]:
    """Step `v` and return (x, y, yaw, speed, steer) after every step."""
    out = []
    for _ in range(steps):
        v.step(steer, accel, dt)
        out.append((v.x, v.y, v.yaw, v.speed, v.steer))
    return out


# ------------------------------------------------------------------------------------- heading


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5])
def test_zero_steering_holds_heading_exactly(yaw: float) -> None:
    v = car(speed=25.0, yaw=yaw)
    trace = drive(v, 0.0, 1.0, 500)
    assert all(t[2] == yaw for t in trace)
    # The car moves along its heading: the displacement points exactly along yaw.
    assert math.hypot(v.x, v.y) > 100.0
    assert math.atan2(v.y, v.x) == pytest.approx(yaw, abs=1e-12)


def test_zero_steering_along_x_keeps_y_exactly_zero() -> None:
    v = car(speed=30.0)
    drive(v, 0.0, 0.0, 1000)
    assert v.y == 0.0
    assert v.x == pytest.approx(30.0 * 1000 * DT)


def test_steer_right_turns_clockwise() -> None:
    v = car(speed=15.0)
    trace = np.array(drive(v, 1.0, 0.0, 50))
    assert np.all(np.diff(trace[:, 2]) <= 0.0)  # yaw never increases
    assert trace[-1, 2] < -0.1
    assert trace[-1, 1] < -0.5  # drifted to the right of +x, i.e. toward -y
    assert trace[-1, 0] > 0.0


def test_steer_left_turns_counter_clockwise() -> None:
    v = car(speed=15.0)
    trace = np.array(drive(v, -1.0, 0.0, 50))
    assert np.all(np.diff(trace[:, 2]) >= 0.0)
    assert trace[-1, 2] > 0.1
    assert trace[-1, 1] > 0.5


def test_left_and_right_are_mirror_images() -> None:
    right, left = car(speed=12.0), car(speed=12.0)
    for cmd in np.sin(np.linspace(0.0, 6.0, 200)):
        right.step(float(cmd), 0.5, DT)
        left.step(float(-cmd), 0.5, DT)
    assert left.x == pytest.approx(right.x, abs=1e-9)
    assert left.y == pytest.approx(-right.y, abs=1e-9)
    assert left.yaw == pytest.approx(-right.yaw, abs=1e-12)
    assert left.steer == pytest.approx(-right.steer, abs=1e-12)


def test_constant_steering_drives_a_circle() -> None:
    """Once the wheel has settled, a kinematic bicycle at constant speed follows a circle."""
    v = car(speed=8.0)
    drive(v, 0.6, 0.0, 50)  # let the steering reach its command
    pts = np.array(drive(v, 0.6, 0.0, 400))[:, :2]
    # Least-squares circle fit: x^2 + y^2 = 2 a x + 2 b y + c.
    A = np.column_stack((2 * pts[:, 0], 2 * pts[:, 1], np.ones(len(pts))))
    a, b, c = np.linalg.lstsq(A, (pts**2).sum(axis=1), rcond=None)[0]
    radius = math.sqrt(c + a * a + b * b)
    dist = np.hypot(pts[:, 0] - a, pts[:, 1] - b)
    assert np.max(np.abs(dist - radius)) < 0.01 * radius
    # Centre of a right turn (heading +x at the start) lies to the right, i.e. at negative y.
    assert b < 0.0


# --------------------------------------------------------------------------------------- speed


def test_full_throttle_never_exceeds_max_speed() -> None:
    v = car(speed=0.0)
    trace = np.array(drive(v, 0.0, 1e6, 2000))
    assert np.all(trace[:, 3] <= v.params.max_speed)
    assert trace[-1, 3] == v.params.max_speed
    # Acceleration is clipped to max_accel: the first step gains exactly max_accel * dt.
    assert trace[0, 3] == pytest.approx(v.params.max_accel * DT)


def test_full_brake_never_goes_below_zero_and_never_reverses() -> None:
    v = car(speed=30.0)
    trace = np.array(drive(v, 0.0, -1e6, 1000))
    assert np.all(trace[:, 3] >= 0.0)
    assert trace[-1, 3] == 0.0
    assert trace[0, 3] == pytest.approx(30.0 - v.params.max_brake * DT)
    assert np.all(np.diff(trace[:, 0]) >= 0.0)  # never rolls backwards
    x_stop = v.x
    drive(v, 1.0, -5.0, 100)
    assert v.x == x_stop and v.yaw == 0.0  # standing still: steering does not move it


def test_speed_bounds_with_large_time_steps() -> None:
    v = car(speed=44.0)
    v.step(0.0, 100.0, 1.0)
    assert v.speed == v.params.max_speed
    v.step(0.0, -100.0, 10.0)
    assert v.speed == 0.0


# ------------------------------------------------------------------------------------ steering


def test_steering_rate_limit() -> None:
    v = car(speed=20.0)
    p = v.params
    max_step = p.steer_rate * DT
    trace = np.array(drive(v, 1.0, 0.0, 40) + drive(v, -1.0, 0.0, 60))
    steer = np.concatenate(([0.0], trace[:, 4]))
    assert np.max(np.abs(np.diff(steer))) <= max_step + 1e-12
    # It moves at exactly the limit until it reaches the command: 0 -> 1 takes 1 / steer_rate seconds.
    n_up = math.ceil(1.0 / max_step - 1e-9)
    assert steer[n_up - 1] < 1.0
    assert steer[n_up] == pytest.approx(1.0)
    assert steer[n_up - 1] == pytest.approx((n_up - 1) * max_step)
    assert steer[40] == 1.0  # clipped exactly at the command
    # Full right to full left takes 2 / steer_rate seconds.
    n_down = math.ceil(2.0 / max_step - 1e-9)
    assert steer[40 + n_down - 1] > -1.0
    assert steer[40 + n_down] == pytest.approx(-1.0)


def test_steering_command_is_clipped_to_unit_range() -> None:
    v = car(speed=20.0)
    drive(v, 7.0, 0.0, 100)
    assert v.steer == 1.0
    drive(v, -7.0, 0.0, 100)
    assert v.steer == -1.0


def test_rate_limit_scales_with_time_step() -> None:
    v = car(speed=20.0)
    v.step(1.0, 0.0, 0.1)
    assert v.steer == pytest.approx(v.params.steer_rate * 0.1)


@pytest.mark.parametrize("speed", [5.0, 15.0, 30.0, 44.0])
def test_full_lock_lateral_acceleration_is_bounded(speed: float) -> None:
    """Speed-sensitive steering: full input never asks for more than max_lateral_accel."""
    v = car(speed=speed)
    drive(v, 1.0, 0.0, 20)  # wheel at full lock
    assert v.steer == 1.0
    yaw0 = v.yaw
    drive(v, 1.0, 0.0, 10)
    yaw_rate = (v.yaw - yaw0) / (10 * DT)
    lateral = abs(yaw_rate) * speed
    assert lateral <= v.params.max_lateral_accel + 1e-9
    assert yaw_rate < 0.0


def test_max_wheel_angle_decreases_with_speed() -> None:
    p = VehicleParams()
    angles = [p.max_wheel_angle(s) for s in (0.0, 2.0, 10.0, 20.0, 40.0)]
    assert angles[0] == p.max_steer_angle
    assert all(a >= b for a, b in zip(angles, angles[1:], strict=False))
    assert angles[-1] < 0.1 * p.max_steer_angle


def test_max_wheel_angle_is_the_compiled_formula() -> None:
    """`VehicleParams.max_wheel_angle` (Python, for the safety system and the lane controller) gives
    what the physics' compiled `_max_wheel_angle` gives, bit for bit."""
    speeds = np.concatenate(
        ([0.0, 1e-3, np.nextafter(1e-3, 0.0), 1e-300, 1e300], np.geomspace(1e-4, 100.0, 2000))
    )
    for p in (VehicleParams(), VehicleParams(wheelbase=3.3, max_steer_angle=0.9, max_lateral_accel=12.5)):
        for speed in speeds.tolist():
            compiled = _max_wheel_angle(speed, p.max_steer_angle, p.wheelbase, p.max_lateral_accel)
            assert np.float64(p.max_wheel_angle(speed)).tobytes() == np.float64(compiled).tobytes()


def test_steering_still_turns_at_highway_speed() -> None:
    """At 30 m/s, full right must still produce a clearly useful turn (not a vanishing one)."""
    v = car(speed=30.0)
    drive(v, 1.0, 0.0, 50)  # 1 s
    assert v.y < -1.0


# ----------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wheelbase", 0.0),
        ("max_steer_angle", 2.0),
        ("steer_rate", -1.0),
        ("max_accel", float("nan")),
        ("max_brake", 0.0),
        ("max_speed", 1000.0),
        ("max_lateral_accel", True),
    ],
)
def test_bad_vehicle_params_raise_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Vehicle(VehicleParams(**{field: value}))
