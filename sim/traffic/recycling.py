"""Recycling: a car that leaves the window around the ego reappears at its other end.

So a fixed number of cars describes an endless highway. A new car needs a free spot where its
follower need not brake hard and from which it drifts into the window rather than straight back out
(`recycle`); the free spots come from one sweep over every lane (`free_interval_sweep`, compiled).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.np.random.random_methods import random_interval

from sim.py_semantics import libm_pow, py_max, py_min
from sim.traffic.config import EGO_CLEARANCE_M, HEIGHT_RANGE, LENGTH_RANGE, N_COLORS, WIDTH_RANGE
from sim.traffic.idm import idm1, one_car_params, safe_speed
from sim.traffic.step_kernel import refresh_buffers

SPAWN_BAND_M = 30.0
"""Recycled cars first try to appear within this distance of the window's edge (after the margin)."""
SPAWN_MARGIN_M = 5.0
"""Recycled cars appear at least this far inside the window."""

CALLEE_SOURCES_SHA256 = "247e16de5bbb2f71c8f4527971dee12ca7332687064e89c77573a3e97c368994"
"""sha256 of idm.py, step_kernel.py and sim/py_semantics.py, whose compiled functions `recycle`
calls: numba's cache keys it by this file's text alone (`sim.render.kernels` says more)."""


@numba.njit(cache=True, nogil=True)
def recycle(
    rng: np.random.Generator,
    ego_s: float,
    s: np.ndarray,
    d: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    lane: np.ndarray,
    color: np.ndarray,
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
    params: np.ndarray,
) -> int:
    """Respawn the cars that left the window around the ego (at arc length `ego_s`) at its opposite
    end (behind -> ahead, ahead -> behind); returns how many were placed.

    The arrays are the traffic's (`Traffic.kernel_arrays`, plus `height` and `color`), `params` its
    `kernel_params`; `rng` its generator, drawn from in the order the Python version
    (tests/reference_rare_events.py) draws.
    """
    lo, hi = py_max(ego_s - params[5], 0.0), ego_s + params[6]  # `Traffic.window`
    refreshed, placed = False, 0
    for i in range(s.size):
        if not (s[i] < lo or s[i] > hi):
            continue
        if not refreshed:
            refresh_buffers(
                s, speed, desired_speed, length, lane, from_lane, buf_s, buf_v, buf_v0, buf_hl, buf_bits
            )
            refreshed = True
        placed += _respawn(
            rng, i, s[i] < lo, lo, hi, ego_s, s, d, speed, desired_speed, length, width, height, lane, color,
            from_lane, d_from, lc_elapsed, lat_vel, buf_s, buf_v, buf_v0, buf_hl, buf_bits, centres, params,
        )  # fmt: skip
    return placed


@numba.njit(cache=True, nogil=True)
def _respawn(
    rng: np.random.Generator,
    i: int,
    to_front: bool,
    lo: float,
    hi: float,
    ego_s: float,
    s: np.ndarray,
    d: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    lane: np.ndarray,
    color: np.ndarray,
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
    params: np.ndarray,
) -> bool:
    """Give car i a new identity and a free spot, normally at the far end of the window.

    First choice: within SPAWN_BAND_M of the window's far edge (where a car coming from beyond
    the window would appear), else anywhere in the window half on that side of the ego, with
    min_gap + a car length of clearance, a new follower that need not brake harder than
    comfort_brake, and a speed that carries the car into the window (see `_find_spot`). In a
    jam that last condition can fail (say every spot behind the ego is in a queue slower than
    the ego, so a car placed there leaves again within a few steps, over and over); then a car
    entering from the other end is tried, as on a real road, and taken if it meets all three.
    Otherwise the best spot of the first search (possibly a cut-in, see `_spawn_speed`); last
    resort, any spot with min_gap of clearance, on the intended side if possible. If even that
    fails (an overfull window) the car stays where it is and is retried next step. Returns
    whether it was placed.
    """
    min_gap, n_lanes = params[2], centres.size
    car_length = _uniform(rng, LENGTH_RANGE[0], LENGTH_RANGE[1])
    half, roomy = 0.5 * car_length, min_gap + car_length
    desired = _entering_speed(rng, to_front, buf_v, params)
    bands = _bands(to_front, lo, hi, ego_s)
    found, pos, ln, v, rank = _find_spot(
        rng, i, bands, half, desired, roomy, to_front, True, ego_s, buf_s, buf_v, buf_v0, buf_hl, buf_bits,
        n_lanes, params,
    )  # fmt: skip
    if not found or rank % 2 == 0:  # no spot, or the car would drift straight back out
        other_desired = _entering_speed(rng, not to_front, buf_v, params)
        other_bands = _bands(not to_front, lo, hi, ego_s)
        other = _find_spot(
            rng, i, other_bands, half, other_desired, roomy, not to_front, True, ego_s, buf_s, buf_v, buf_v0,
            buf_hl, buf_bits, n_lanes, params,
        )  # fmt: skip
        if other[0] and other[4] == 5:
            found, pos, ln, v, rank = other
            desired = other_desired
    if not found:
        last_resort = np.array([[bands[1, 0], bands[1, 1]], [lo, hi]])
        found, pos, ln, v, rank = _find_spot(
            rng, i, last_resort, half, desired, min_gap, to_front, False, ego_s, buf_s, buf_v, buf_v0, buf_hl,
            buf_bits, n_lanes, params,
        )  # fmt: skip
    if not found:
        return False
    # The new identity (as `Traffic.set_car`, then the body), and the all-vehicle buffers in step.
    s[i], lane[i], from_lane[i], d[i] = pos, ln, ln, centres[ln]
    d_from[i], lc_elapsed[i], lat_vel[i] = d[i], 0.0, 0.0
    speed[i], desired_speed[i] = v, desired
    length[i] = car_length
    width[i] = _uniform(rng, WIDTH_RANGE[0], WIDTH_RANGE[1])
    height[i] = _uniform(rng, HEIGHT_RANGE[0], HEIGHT_RANGE[1])
    color[i] = rng.integers(0, N_COLORS)
    buf_s[i], buf_v[i], buf_v0[i], buf_hl[i] = pos, v, desired, 0.5 * car_length
    buf_bits[i] = 1 << ln
    return True


@numba.njit(cache=True, nogil=True)
def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """`sim.seeding.uniform`: one draw, low + (high - low) * U[0, 1)."""
    return low + (high - low) * rng.random()


@numba.njit(cache=True, nogil=True)
def _bands(to_front: bool, lo: float, hi: float, ego_s: float) -> np.ndarray:
    """Where to put a car entering the window [lo, hi]: the edge band, then that half (rows lo, hi).

    Both stop SPAWN_MARGIN_M short of the edge: a car placed on it at the ego's speed would
    leave again on the next step with the slightest acceleration.
    """
    if to_front:
        edge = hi - SPAWN_MARGIN_M
        return np.array([[py_max(edge - SPAWN_BAND_M, ego_s), edge], [ego_s, edge]])
    edge = lo + SPAWN_MARGIN_M
    return np.array([[edge, py_min(edge + SPAWN_BAND_M, ego_s)], [edge, ego_s]])


@numba.njit(cache=True, nogil=True)
def _entering_speed(rng: np.random.Generator, to_front: bool, buf_v: np.ndarray, params: np.ndarray) -> float:
    """Desired speed of a car entering the window: slower than the ego ahead, faster behind.

    Only such cars can enter a window that moves with the ego, and a car that could not (say a
    slow car placed at the rear edge) would leave again on the next step and be recycled
    back and forth. When the ego is outside [speed_min, speed_max] the full range is used.
    """
    ego_v = buf_v[buf_v.size - 1]
    low, high = params[8], params[9]
    if to_front and low < ego_v:
        high = py_min(high, ego_v)
    elif not to_front and ego_v < high:
        low = py_max(low, ego_v)
    return _uniform(rng, low, high)


@numba.njit(cache=True, nogil=True)
def _find_spot(
    rng: np.random.Generator,
    i: int,
    bands: np.ndarray,
    half: float,
    desired: float,
    clearance: float,
    to_front: bool,
    check_follower: bool,
    ego_s: float,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    n_lanes: int,
    params: np.ndarray,
) -> tuple[bool, float, int, float, int]:
    """(found, s, lane, speed, rank) for a new car of half length `half` centred in `bands`.

    Exhaustive: every vehicle (car i excluded, the ego included with at least EGO_CLEARANCE_M)
    forbids the centre positions within its half length + `half` + `clearance`; one sort by
    (lane, s) and a sweep give every free interval of every lane, with the vehicles just behind
    and ahead of it (`free_interval_sweep`). Bands are tried in order of preference; within a band,
    the free intervals in random order, at a random point and then at the midpoint. The speed is
    `desired` capped to be safe behind the leader and, ahead of the ego, at the ego's speed. Spots
    are ranked by the new follower's comfort (grade 2, 1, 0 in `_spawn_speed`), then by whether
    the car will drift into the window rather than straight back out (ahead of the ego no
    faster than it, behind no slower: a car placed behind in a queue slower than the ego would
    be recycled again within a few steps). The first spot of the top rank (5) wins, else the
    first seen of the best rank; grade 0 only without `check_follower`.
    """
    lo, hi = py_min(bands[0, 0], bands[1, 0]), py_max(bands[0, 1], bands[1, 1])
    if hi <= lo:
        return False, 0.0, 0, 0.0, 0
    ints, ends = free_interval_sweep(buf_s, buf_hl, buf_bits, i, n_lanes, half, clearance, lo, hi)
    ego_v = buf_v[buf_v.size - 1]
    # A car entering from the front cannot be faster than the ego (it would never have been
    # caught up with); it may still want to be, and then accelerates away at IDM's pace.
    # `top` bounds the speed for the follower test; each spot is capped by its own side.
    top = py_min(desired, ego_v) if to_front else desired
    seen = np.zeros(6, np.bool_)  # the first spot of each rank 0..5
    seen_pos, seen_lane, seen_speed = np.zeros(6), np.zeros(6, np.int64), np.zeros(6)
    tries = np.empty(2)
    for band in range(2):
        band_lo, band_hi = bands[band, 0], bands[band, 1]
        for k in _permutation(rng, ints.shape[0]):
            ln, behind, ahead = ints[k, 0], ints[k, 1], ints[k, 2]
            a, b = py_max(ends[k, 0], band_lo), py_min(ends[k, 1], band_hi)
            if a >= b:
                continue
            # Skip the part of the gap where the follower could not be comfortable at any speed.
            comfy = (
                a
                if behind < 0
                else py_max(a, _comfort_front(behind, top, buf_s, buf_v, buf_v0, buf_hl, params) + half)
            )
            n_tries = 0
            if comfy < b:
                tries[0] = comfy + (b - comfy) * rng.random()
                tries[1] = 0.5 * (comfy + b)
                n_tries = 2
            elif not seen[3]:
                tries[0] = b  # roomiest spot, for a cut-in
                n_tries = 1
            for q in range(n_tries):
                pos = tries[q]
                in_front = pos > ego_s
                cap = py_min(desired, ego_v) if in_front else desired
                v, grade = _spawn_speed(pos, half, cap, behind, ahead, buf_s, buf_v, buf_v0, buf_hl, params)
                rank = 2 * grade + ((v <= ego_v) if in_front else (v >= ego_v))
                if rank == 5:
                    return True, pos, ln, v, rank
                if not seen[rank]:
                    seen[rank] = True
                    seen_pos[rank], seen_lane[rank], seen_speed[rank] = pos, ln, v
    for rank in range(4, -1, -1):
        if seen[rank] and (rank >= 2 or not check_follower):
            return True, seen_pos[rank], seen_lane[rank], seen_speed[rank], rank
    return False, 0.0, 0, 0.0, 0


@numba.njit(cache=True, nogil=True)
def _permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """`rng.permutation(n)`: numpy's shuffle of arange(n) (Fisher-Yates from the last element, each swap
    partner drawn by numpy's `random_interval`, which numba implements as numpy does), the same numbers
    and the same generator state after. numba's own `Generator.permutation` handles any array and axis and
    took about 5 s to compile (this: under 1 s); recycling's kernels compile at a Traffic-v0 env's first
    recycling after an install."""
    out = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.intp(random_interval(rng.bit_generator, i))
        out[i], out[j] = out[j], out[i]
    return out


@numba.njit(cache=True, nogil=True)
def _comfort_front(
    f: int, v_max: float, buf_s: np.ndarray, buf_v: np.ndarray, buf_v0: np.ndarray, buf_hl: np.ndarray,
    params: np.ndarray,
) -> float:  # fmt: skip
    """Nearest rear-bumper s ahead of vehicle f at which a car driving at v_max or slower keeps
    f's IDM braking within comfort_brake (IDM solved for the gap; slower only needs more)."""
    time_headway, inv_2sqrt_ab, min_gap, max_accel, comfort_brake = one_car_params(params)
    v_f, v0_f = buf_v[f], buf_v0[f]
    s_star = min_gap + py_max(0.0, v_f * (time_headway + (v_f - v_max) * inv_2sqrt_ab))
    room = 1.0 + comfort_brake / max_accel - libm_pow(v_f / v0_f, 4.0)
    front = buf_s[f] + buf_hl[f]
    return front + s_star / math.sqrt(room) if room > 0.0 else math.inf


@numba.njit(cache=True, nogil=True)
def _spawn_speed(
    pos: float, half: float, top: float, behind: int, ahead: int, buf_s: np.ndarray, buf_v: np.ndarray,
    buf_v0: np.ndarray, buf_hl: np.ndarray, params: np.ndarray,
) -> tuple[float, int]:  # fmt: skip
    """Speed of a car appearing at `pos` between vehicles `behind` and `ahead` (-1 = none).

    The speed is `top`, capped to be safe behind the leader. The second value
    grades the new follower (the ego included): 2 if its IDM braking stays within comfort_brake;
    1 if not, but braking at comfort_brake would still match speeds before the gap shrinks to
    min_gap (a cut-in: IDM brakes harder than that for a moment because the time headway is
    short, but nobody collides); 0 otherwise.
    """
    time_headway, inv_2sqrt_ab, min_gap, max_accel, comfort_brake = one_car_params(params)
    v = top
    if ahead >= 0:
        gap = (buf_s[ahead] - buf_hl[ahead]) - half - pos
        v = py_min(v, safe_speed(gap, buf_v[ahead], min_gap, time_headway, inv_2sqrt_ab))
    if behind < 0:
        return v, 2
    gap = pos - half - (buf_s[behind] + buf_hl[behind])
    v_f = buf_v[behind]
    if idm1(v_f, buf_v0[behind], gap, v, time_headway, inv_2sqrt_ab, min_gap, max_accel) >= -comfort_brake:
        return v, 2
    closing = py_max(v_f - v, 0.0)
    return v, int(closing * closing <= 2.0 * comfort_brake * (gap - min_gap))


@numba.njit(cache=True, nogil=True)
def free_interval_sweep(
    buf_s: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    skip: int,
    n_lanes: int,
    half: float,
    clearance: float,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`free_intervals`: rows (lane, follower, leader) and (a, b) of every free interval.

    Every vehicle but `skip` (the ego at least EGO_CLEARANCE_M) forbids the centre positions within
    its half length + `half` + `clearance`. Per lane, the member vehicles are sorted by s (ties by
    index); reaches differ (the ego's is larger), so a vehicle later in s order can block from
    further back: each gap ends at the smallest blocked-from position of all the vehicles after it.
    Python's min and max (the first of equals) throughout. tests/reference_traffic.py has the
    numpy and Python version.
    """
    m = buf_s.size
    reach = buf_hl + (half + clearance)
    reach[m - 1] = buf_hl[m - 1] + half + py_max(clearance, EGO_CLEARANCE_M)
    ints = np.empty((m * n_lanes + n_lanes, 3), dtype=np.int64)
    ends = np.empty((m * n_lanes + n_lanes, 2))
    count = 0
    for ln in range(n_lanes):
        members = np.empty(m, dtype=np.int64)
        size = 0
        for j in range(m):
            if j != skip and (buf_bits[j] >> ln) & 1 == 1:
                members[size] = j
                size += 1
        members = members[:size][np.argsort(buf_s[members[:size]], kind="mergesort")]
        ends_before = np.empty(members.size + 1)
        ends_before[members.size] = hi
        for k in range(members.size - 1, -1, -1):  # suffix minimum
            j = members[k]
            ends_before[k] = py_min(buf_s[j] - reach[j], ends_before[k + 1])
        covered, behind = lo, -1
        for k in range(members.size + 1):
            j = members[k] if k < members.size else -1
            end = py_min(ends_before[k], hi)
            if covered < end:
                ints[count, 0], ints[count, 1], ints[count, 2] = ln, behind, j
                ends[count, 0], ends[count, 1] = covered, end
                count += 1
            if j >= 0:
                covered = py_max(covered, buf_s[j] + reach[j])
                behind = j
    return ints[:count], ends[:count]
