"""The common path of `Traffic.step` in one compiled call (`common_step`).

Leaders, IDM, integration, lane changes in progress and the choice of the cars that try a change
run here for every car each step, without the random generator (the draws are made before). The
rare events (a lane change tried, recycling) are compiled calls of their own, made by
`Traffic.rare_events` only when they happen. The numpy reference is tests/reference_traffic.py.
"""

from __future__ import annotations

import numba
import numpy as np

from sim.traffic.idm import idm_all, leader_search
from sim.traffic.lane_changes import BLOCKED_MARGIN, advance_lane_changes

CALLEE_SOURCES_SHA256 = "77f9b94d24a6e93855bb007cc62f4377a60d2fe082d553479ee2f08c5c389939"
"""sha256 of idm.py then lane_changes.py, whose compiled functions `common_step` calls: numba's cache
keys it by this file's text alone, so their digest here (the tests check it) makes an edit there
change this file too, and the stale cached step is not loaded (`sim.render.kernels` says more)."""


@numba.njit(cache=True, nogil=True)
def common_step(
    s: np.ndarray,
    d: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    d_from: np.ndarray,
    lc_elapsed: np.ndarray,
    lat_vel: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    centres: np.ndarray,
    draws: np.ndarray,
    dt: float,
    time_headway: float,
    inv_2sqrt_ab: float,
    min_gap: float,
    max_accel: float,
    lane_change_time: float,
    lane_change_chance: float,
    window_lo: float,
    window_hi: float,
    acc: np.ndarray,
    tries: np.ndarray,
) -> tuple[int, bool]:
    """Everything of `Traffic.step` but the rare events, in place: (n_tries, leaves).

    Refreshes the all-vehicle buffers (the ego slot is already set), finds the leaders, applies IDM
    (into `acc`), moves the cars (one that would reverse stops where it reaches zero speed), moves
    the cars changing lanes along the cosine profile, and refreshes the buffers again for the
    lane-change tests. `tries[:n_tries]` lists, in order, the cars that drew below
    `lane_change_chance` and are held up while in a single lane at the start of the step (leader
    data describe those lanes); the caller runs `lane_changes.try_lane_change` for each, with its
    `acc`. `leaves` says whether a car left [window_lo, window_hi] (`recycling.recycle`). The
    numpy reference is tests/reference_traffic.py.
    """
    n = s.size
    refresh_buffers(s, speed, desired_speed, length, lane, from_lane, buf_s, buf_v, buf_v0, buf_hl, buf_bits)
    gap, v_lead, _ = leader_search(buf_s, buf_hl, buf_v, buf_bits, n, min_gap)
    acc[:] = idm_all(speed, desired_speed, gap, v_lead, time_headway, inv_2sqrt_ab, min_gap, max_accel)
    steady = lane == from_lane
    leaves = False
    for i in range(n):
        v = speed[i]
        v_new = v + acc[i] * dt
        if v_new < 0.0:
            dist = v * v / (-2.0 * min(acc[i], -1e-9))
            v_new = 0.0
        else:
            dist = 0.5 * (v + v_new) * dt
        s[i] += dist
        speed[i] = v_new
        leaves = leaves or s[i] < window_lo or s[i] > window_hi
    advance_lane_changes(d, lane, from_lane, d_from, lc_elapsed, lat_vel, centres, dt, lane_change_time)
    refresh_buffers(s, speed, desired_speed, length, lane, from_lane, buf_s, buf_v, buf_v0, buf_hl, buf_bits)
    n_tries = 0
    for i in range(n):
        if not draws[i] < lane_change_chance or not steady[i]:
            continue
        v, v0 = speed[i], desired_speed[i]
        look = 2.0 * (min_gap + v * time_headway) + 10.0
        if v < v0 - BLOCKED_MARGIN and v_lead[i] < v0 - BLOCKED_MARGIN and gap[i] < look:
            tries[n_tries] = i
            n_tries += 1
    return n_tries, leaves


@numba.njit(cache=True, nogil=True)
def refresh_buffers(
    s: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
) -> None:
    """The traffic cars' slots of the all-vehicle buffers (`Traffic._refresh`): centre s, speed,
    desired speed, half length, and the bits of the lanes each car is in or moving into."""
    for i in range(s.size):
        buf_s[i] = s[i]
        buf_v[i] = speed[i]
        buf_v0[i] = desired_speed[i]
        buf_hl[i] = length[i] * 0.5
        buf_bits[i] = (1 << from_lane[i]) | (1 << lane[i])


@numba.njit(cache=True, nogil=True)
def set_ego_slot(
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    centres: np.ndarray,
    s: float,
    d: float,
    speed: float,
    length: float,
    width: float,
    lane_width: float,
) -> None:
    """The ego's slot, the last, of the all-vehicle buffers: its centre s, speed, half length, and
    the bits of the lanes its body (centred at `d`, `width` wide) overlaps. `Traffic._set_ego` and
    `sim.world_step.world_step` both store the ego through it."""
    n = buf_s.size - 1
    buf_s[n], buf_v[n], buf_hl[n] = s, speed, 0.5 * length
    buf_bits[n] = lane_bits(centres, d, 0.5 * lane_width + 0.5 * width)


@numba.njit(cache=True, nogil=True)
def lane_bits(centres: np.ndarray, d: float, reach: float) -> int:
    """Bit j set for every lane j whose centre is closer than `reach` to `d` (`set_ego_slot`)."""
    bits = 0
    for j in range(centres.size):
        if abs(d - centres[j]) < reach:
            bits |= 1 << j
    return bits
