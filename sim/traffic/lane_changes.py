"""Lane changes in the spirit of MOBIL (Kesting, Treiber and Helbing, 2007).

A car that is held up considers changing lanes (`sim.traffic.step_kernel.common_step` picks them):
it changes when the adjacent lane lets it accelerate more, and only if the new follower would not
have to brake harder than `comfort_brake` (`try_lane_change`). During the change it moves over
along a cosine lateral profile (`advance_lane_changes`) and counts in both lanes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

from sim.traffic.idm import idm1

if TYPE_CHECKING:
    from sim.traffic.traffic import Traffic

LANE_CHANGE_GAIN = 0.2
"""MOBIL threshold: a lane change must improve the car's IDM acceleration by this much, m/s^2."""
BLOCKED_MARGIN = 1.0
"""A car counts as held up when it and its leader are this much (m/s) below its desired speed."""


def try_lane_change(t: Traffic, i: int, acc_now: float) -> None:
    """Start a change to the adjacent lane that is safe and improves acceleration most, if any."""
    best_lane, best_acc = -1, acc_now + LANE_CHANGE_GAIN
    for target in (t.lane[i] - 1, t.lane[i] + 1):
        if 0 <= target < t.road.config.lanes:
            new_acc = _lane_change_acc(t, i, int(target))
            if new_acc is not None and new_acc > best_acc:
                best_lane, best_acc = int(target), new_acc
    if best_lane >= 0:
        t.start_lane_change(i, best_lane)


def _lane_change_acc(t: Traffic, i: int, target: int) -> float | None:
    """Car i's IDM acceleration in `target`, or None if the gap there is unsafe.

    Safe means: at least min_gap + the car's length to the new leader and to the new follower,
    and neither the car nor its new follower (ego included) must brake harder than comfort_brake.
    """
    cfg = t.config
    need = cfg.min_gap + t.length[i]
    lead, follow = neighbours(t, i, target, float(t._S[i]), float(t._HL[i]))
    if lead[0] < need or follow[0] < need:
        return None
    v = t.speed[i]
    lead_v = lead[1] if np.isfinite(lead[0]) else v
    new_acc = idm1(cfg, float(v), float(t.desired_speed[i]), lead[0], float(lead_v))
    if new_acc < -cfg.comfort_brake:
        return None
    if np.isfinite(follow[0]):
        f = follow[2]
        follower_acc = idm1(cfg, float(t._V[f]), float(t._V0[f]), follow[0], float(v))
        if follower_acc < -cfg.comfort_brake:
            return None
    return new_acc


def neighbours(
    t: Traffic, i: int, lane: int, s: float, half_length: float
) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """Nearest vehicles in `lane` ahead of and behind a body centred at `s`, other than car i.

    Returns ((gap, speed, index), (gap, speed, index)) for the leader and the follower, with
    gap = inf and index = -1 when there is none. Uses the all-vehicle buffers; compiled
    (`neighbours_in_lane`), as every lane-change test asks twice.
    """
    gap_ahead, v_ahead, ahead, gap_behind, v_behind, behind = neighbours_in_lane(
        t._S, t._HL, t._V, t._bits, i, lane, s, half_length
    )
    return (gap_ahead, v_ahead, ahead), (gap_behind, v_behind, behind)


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
    """`neighbours` flattened: (gap, speed, index) of the nearest vehicle in `lane` ahead
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
