"""The world's per-step logic in compiled calls: `World.step`'s common path (`world_step`) and the
lane-keeping assist's check (`sweeps_unsafe_lane`).

A control step was a dozen small compiled calls glued by Python: the safety brake, the ego's physics,
its projection on the road, the band it will sweep, the traffic's car following, the collision
pre-filter. Called one by one from Python they cost about as much as the work itself, and more when
a vector env steps many worlds in turn (each call's Python path falls out of the CPU's caches), so
`world_step` runs them in the same order on the same numbers, in one call. The rare events are
called from `World.step` when they happen: a traffic car trying a lane change and a car recycled
(compiled too: `Traffic.rare_events`), the exact collision test when a car is close, and extending
the road.

tests/reference_world.py has both composed from Python, as they were before (`step`,
`sweeps_unsafe_lane`); tests/test_world_step.py holds them equal, bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.collision import frenet_neighbours
from sim.road import _project_and_heading
from sim.safety import COMFORT_BRAKE, EGO_LOOKAHEAD_S, LANE_CHANGE_CLOSING_S, SAFE_LATERAL_MARGIN_M
from sim.traffic.step_kernel import common_step, set_ego_slot
from sim.vehicle import _bicycle_steps, _max_wheel_angle
from sim.world_kernels import lane_has_room, strongest_brake

CALLEE_SOURCES_SHA256 = "6653354a03a3a3b0f237d3f8dc26ca3c2dec2d546c7860b42f1b11c38b96b376"
"""sha256 of the files whose compiled functions and constants `world_step` uses (tests/
test_kernel_cache.py lists them): numba's cache keys it by this file's text alone, so their digest
here makes an edit there change this file too (`sim.render.kernels` says more)."""

COLLISION_MARGIN_M = 1.5
"""The collision pre-filter's margin around the Frenet boxes, for the cars' yaw (`World._hits_traffic`)."""


@numba.njit(cache=True, nogil=True)
def ego_band(
    d: float, speed: float, heading_error: float, target_d: float, half_width: float, lookahead_s: float
) -> tuple[float, float]:
    """`World.ego_band`: the lateral interval the ego's body occupies, sweeps within `lookahead_s`
    at its heading relative to the road, or is heading for (`target_d`; nan: none)."""
    swept = d + speed * math.sin(heading_error) * lookahead_s
    lo, hi = min(d, swept), max(d, swept)
    if target_d == target_d:
        lo, hi = min(lo, target_d), max(hi, target_d)
    return lo - half_width, hi + half_width


@numba.njit(cache=True, nogil=True)
def wrap_angle(a: float) -> float:
    """`sim.road.wrap_angle` of a float (numba's float % is Python's)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


@numba.njit(cache=True, nogil=True)
def world_step(
    ego: np.ndarray,
    steer_cmd: float,
    accel_cmd: float,
    heading_error: float,
    target_d: float,
    sub_dt: float,
    substeps: int,
    vehicle: np.ndarray,
    safety_on: bool,
    safety_margin: float,
    safety_headway: float,
    road_s: np.ndarray,
    road_x: np.ndarray,
    road_y: np.ndarray,
    road_heading: np.ndarray,
    search_lo: int,
    search_hi: int,
    lane_width: float,
    t_s: np.ndarray,
    t_d: np.ndarray,
    t_speed: np.ndarray,
    t_desired: np.ndarray,
    t_length: np.ndarray,
    t_width: np.ndarray,
    t_lane: np.ndarray,
    t_from_lane: np.ndarray,
    t_d_from: np.ndarray,
    t_lc_elapsed: np.ndarray,
    t_lat_vel: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    centres: np.ndarray,
    draws: np.ndarray,
    acc: np.ndarray,
    tries: np.ndarray,
    near: np.ndarray,
    traffic: np.ndarray,
    lane_change_chance: float,
    dt: float,
) -> tuple[float, bool, float, int, bool, bool]:
    """One control step of `dt` seconds, in place, up to the rare events.

    `ego` is (x, y, yaw, speed, steer, s, d) and is updated; `vehicle` the ego's `VehicleParams`
    (wheelbase, max_steer_angle, max_lateral_accel, steer_rate, max_accel, max_brake, max_speed,
    length, width); `traffic` the traffic's parameters (`Traffic.kernel_params`) and
    `lane_change_chance` its lane_change_rate * dt; the t_ and buf_ arrays are the traffic's
    (`Traffic.kernel_arrays`), its draws for this step already made. `target_d` is the lane-change
    target's offset or nan; `search_lo`..`search_hi` the road samples the projection searches (the
    road extended that far).

    In order, as `World.step`: the safety brake (when `safety_on`), the ego's physics in `substeps`
    sub-steps of `sub_dt`, its projection on the road and heading error, the band it will sweep,
    the traffic's ego slot and common step (`common_step`), then, when no car tries a lane change
    or leaves the window, the collision pre-filter (`frenet_neighbours` into `near`).

    Returns (applied accel, braked: the brake overrode the driver, heading error, n_tries, leaves,
    near_car: the pre-filter found a car (always False after a rare event: the caller runs the
    rare events, then the whole collision test)).
    """
    x, y, yaw, speed, steer, s, d = ego[0], ego[1], ego[2], ego[3], ego[4], ego[5], ego[6]
    length, width, max_brake = vehicle[7], vehicle[8], vehicle[5]
    half_width = 0.5 * width
    accel, braked = accel_cmd, False
    if safety_on:
        lo, hi = ego_band(d, speed, heading_error, target_d, half_width, EGO_LOOKAHEAD_S)
        lo, hi = lo - SAFE_LATERAL_MARGIN_M, hi + SAFE_LATERAL_MARGIN_M
        strongest = strongest_brake(
            t_s, t_d, t_width, t_length, t_speed, centres, t_lane, s, 0.5 * (lo + hi), 0.5 * (hi - lo),
            0.5 * length, speed, safety_margin, safety_margin + safety_headway * speed, COMFORT_BRAKE,
        )  # fmt: skip
        if strongest == strongest:  # not nan: some car asked
            needed = -(strongest + 0.5)
            if needed < accel:
                braked = True
                accel = max(needed, -max_brake)
    x, y, yaw, speed, steer = _bicycle_steps(
        x, y, yaw, speed, steer, steer_cmd, accel, sub_dt, substeps, vehicle[0], vehicle[1], vehicle[2],
        vehicle[3], vehicle[4], max_brake, vehicle[6],
    )  # fmt: skip
    s, d, heading = _project_and_heading(
        road_s, road_x, road_y, road_heading, search_lo, search_hi, x, y, 2.0
    )
    heading_error = wrap_angle(yaw - heading)
    ego[0], ego[1], ego[2], ego[3], ego[4], ego[5], ego[6] = x, y, yaw, speed, steer, s, d
    lo, hi = ego_band(d, speed, heading_error, target_d, half_width, EGO_LOOKAHEAD_S)
    # The traffic's ego slot: the ego as wide as the band it will sweep.
    set_ego_slot(
        buf_s, buf_v, buf_hl, buf_bits, centres, s, 0.5 * (lo + hi), speed, length, hi - lo, lane_width
    )
    if t_s.size == 0:
        return accel, braked, heading_error, 0, False, False
    n_tries, leaves = common_step(
        t_s, t_d, t_speed, t_desired, t_length, t_lane, t_from_lane, t_d_from, t_lc_elapsed, t_lat_vel,
        buf_s, buf_v, buf_v0, buf_hl, buf_bits, centres, draws, dt, traffic[0], traffic[1], traffic[2],
        traffic[3], traffic[4], lane_change_chance, max(s - traffic[5], 0.0), s + traffic[6], acc, tries,
    )  # fmt: skip
    near_car = False
    if n_tries == 0 and not leaves:
        near_car = frenet_neighbours(
            t_s, t_d, t_length, t_width, s, d, length, width, COLLISION_MARGIN_M, near
        )
    return accel, braked, heading_error, n_tries, leaves, near_car


@numba.njit(cache=True, nogil=True)
def sweeps_unsafe_lane(
    t_s: np.ndarray,
    t_d: np.ndarray,
    t_width: np.ndarray,
    t_length: np.ndarray,
    t_speed: np.ndarray,
    centres: np.ndarray,
    t_lane: np.ndarray,
    ego_s: float,
    ego_d: float,
    speed: float,
    heading_error: float,
    target_d: float,
    vehicle: np.ndarray,
    road_half_width: float,
    lane_width: float,
    margin: float,
) -> bool:
    """`World.sweeps_unsafe_lane`, with the world's numbers as `world_step` takes them.

    The band is `ego_band` over the seconds the ego needs to come back parallel to the road (a full
    reversal of the steering input, then the heading error turned away at the tightest turn its
    speed allows), at least EGO_LOOKAHEAD_S: the car really slows its drift while turning back, so
    the band is wider than the sweep (on the safe side), and a fixed second is too short at a large
    heading (with the wheel at full lock a car crosses safe lanes at 25-30 degrees and still crosses
    the next, unsafe, line while turning back). Every lane the band reaches, other than the one the
    ego's centre is in, must have room (`lane_has_room`, as `sim.safety.lane_is_safe`); lanes past
    the edges (-1 and `lanes`) never do.
    """
    wheelbase, length, width = vehicle[0], vehicle[7], vehicle[8]
    turn_rate = speed * math.tan(_max_wheel_angle(speed, vehicle[1], wheelbase, vehicle[2])) / wheelbase
    recovery_s = 2.0 / vehicle[3] + abs(heading_error) / max(turn_rate, 1e-6)
    lo, hi = ego_band(ego_d, speed, heading_error, target_d, 0.5 * width, max(EGO_LOOKAHEAD_S, recovery_s))
    lanes = centres.size
    own = min(max(int(math.floor((road_half_width - ego_d) / lane_width)), 0), lanes - 1)
    leftmost = max(math.floor((road_half_width - hi) / lane_width), -1)
    rightmost = min(math.floor((road_half_width - lo) / lane_width), lanes)
    for j in range(leftmost, rightmost + 1):
        if j == own:
            continue
        if not 0 <= j < lanes:
            return True
        room = lane_has_room(
            t_s, t_d, t_width, t_length, t_speed, centres, t_lane, ego_s, centres[j], 0.5 * width,
            0.5 * length, speed, margin, LANE_CHANGE_CLOSING_S,
        )  # fmt: skip
        if not room:
            return True
    return False
