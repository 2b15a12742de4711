"""Lane changes in the spirit of MOBIL (Kesting, Treiber and Helbing, 2007).

A car that is held up considers changing lanes (`sim.traffic.step_kernel.common_step` picks them):
it changes when the adjacent lane lets it accelerate more, and only if the new follower would not
have to brake harder than `comfort_brake` (`try_lane_change`). During the change it moves over
along a cosine lateral profile (`advance_lane_changes`) and counts in both lanes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.traffic.idm import idm1, one_car_params

LANE_CHANGE_GAIN = 0.2
"""MOBIL threshold: a lane change must improve the car's IDM acceleration by this much, m/s^2."""
BLOCKED_MARGIN = 1.0
"""A car counts as held up when it and its leader are this much (m/s) below its desired speed."""

CALLEE_SOURCES_SHA256 = "8987ff28d6e3a3543826c631c7df28fa1a1649c707c86bcde0298dfdba901ee7"
"""sha256 of idm.py, whose compiled `idm1` `try_lane_change` calls: numba's cache keys it by this
file's text alone (`sim.render.kernels` says more)."""


@numba.njit(cache=True, nogil=True)
def try_lane_change(
    i: int,
    acc_now: float,
    d: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    d_from: np.ndarray,
    lc_elapsed: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    n_lanes: int,
    params: np.ndarray,
) -> bool:
    """Start car i's change to the adjacent lane that is safe and improves its acceleration (now
    `acc_now`) most, if any; returns whether it started one (`Traffic.start_lane_change`'s work).

    Safe means: at least min_gap + the car's length to the new leader and to the new follower,
    and neither the car nor its new follower (ego included) must brake harder than comfort_brake.
    `params` is `Traffic.kernel_params`. tests/reference_rare_events.py has the Python version.
    """
    time_headway, inv_2sqrt_ab, min_gap, max_accel, comfort_brake = one_car_params(params)
    need = min_gap + length[i]
    best_lane, best_acc = -1, acc_now + LANE_CHANGE_GAIN
    for target in (lane[i] - 1, lane[i] + 1):
        if not 0 <= target < n_lanes:
            continue
        gap_ahead, v_ahead, _, gap_behind, _, behind = neighbours_in_lane(
            buf_s, buf_hl, buf_v, buf_bits, i, target, buf_s[i], buf_hl[i]
        )
        if gap_ahead < need or gap_behind < need:
            continue
        v = speed[i]
        lead_v = v_ahead if np.isfinite(gap_ahead) else v
        new_acc = idm1(v, desired_speed[i], gap_ahead, lead_v, time_headway, inv_2sqrt_ab, min_gap, max_accel)
        if new_acc < -comfort_brake:
            continue
        if np.isfinite(gap_behind):
            follower_acc = idm1(
                buf_v[behind], buf_v0[behind], gap_behind, v, time_headway, inv_2sqrt_ab, min_gap, max_accel
            )
            if follower_acc < -comfort_brake:
                continue
        if new_acc > best_acc:
            best_lane, best_acc = target, new_acc
    if best_lane < 0:
        return False
    from_lane[i] = lane[i]
    lane[i] = best_lane
    d_from[i] = d[i]
    lc_elapsed[i] = 0.0
    buf_bits[i] |= 1 << best_lane
    return True


@numba.njit(cache=True, nogil=True)
def advance_lane_changes(
    d: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    d_from: np.ndarray,
    lc_elapsed: np.ndarray,
    lat_vel: np.ndarray,
    centres: np.ndarray,
    dt: float,
    duration: float,
) -> None:
    """Move the cars changing lanes along a cosine lateral profile (zero lateral speed at both
    ends); a car that arrives is back in a single lane. libm's sin and cos, as numpy's here."""
    for i in range(d.size):
        if lane[i] == from_lane[i]:
            continue
        t = lc_elapsed[i] + dt
        p = min(t / duration, 1.0)
        delta = centres[lane[i]] - d_from[i]
        d[i] = d_from[i] + delta * 0.5 * (1.0 - math.cos(math.pi * p))
        lat_vel[i] = delta * (0.5 * math.pi / duration) * math.sin(math.pi * p)
        if p >= 1.0:
            from_lane[i] = lane[i]
            lc_elapsed[i] = 0.0
            lat_vel[i] = 0.0
        else:
            lc_elapsed[i] = t


@numba.njit(cache=True, nogil=True)
def neighbours_in_lane(
    buf_s: np.ndarray,
    buf_hl: np.ndarray,
    buf_v: np.ndarray,
    buf_bits: np.ndarray,
    i: int,
    lane: int,
    s: float,
    half_length: float,
) -> tuple[float, float, int, float, float, int]:
    """(gap, speed, index) of the nearest vehicle in `lane` ahead
    of a body centred at `s` (centre strictly beyond it), then of the nearest behind; the first of
    equals, (inf, inf, -1) for none; vehicle i (if a traffic car) left out."""
    n = buf_s.size - 1
    gap_ahead, v_ahead, ahead = np.inf, np.inf, -1
    gap_behind, v_behind, behind = np.inf, np.inf, -1
    for j in range(n + 1):
        if (buf_bits[j] >> lane) & 1 != 1 or (j == i and 0 <= i < n):
            continue
        ds = buf_s[j] - s
        clear = abs(ds) - buf_hl[j] - half_length
        if ds > 0.0:
            if ahead < 0 or clear < gap_ahead:
                gap_ahead, v_ahead, ahead = clear, buf_v[j], j
        elif ds <= 0.0 and (behind < 0 or clear < gap_behind):
            gap_behind, v_behind, behind = clear, buf_v[j], j
    return gap_ahead, v_ahead, ahead, gap_behind, v_behind, behind
