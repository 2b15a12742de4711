"""The band queries of the traffic and of the safety system, compiled by numba.

Which traffic cars overlap a lateral band of the road, the nearest of them ahead or behind, and the
two safety checks built on that (the brake's strongest request, a lane's room for a lane change):
`sim.traffic.Traffic` and `sim.world.World` ask them several times per step. They live in one file
because numba's on-disk cache is invalidated only when the file of the cached function changes, not
when a function it calls in another file does. Their numpy references are in tests/reference_world.py.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def car_in_band(
    d: float, width: float, target: float, band_lo: float, band_hi: float, anticipate: bool
) -> bool:
    """Whether a car centred at `d` overlaps [band_lo, band_hi]; with `anticipate`, a car changing
    lanes spans from where it is to its target lane's centre `target`."""
    half = 0.5 * width
    lo, hi = d, d
    if anticipate:
        lo, hi = min(lo, target), max(hi, target)
    return lo - half < band_hi and hi + half > band_lo


@numba.njit(cache=True, nogil=True)
def band_overlap(
    d: np.ndarray,
    width: np.ndarray,
    centres: np.ndarray,
    lane: np.ndarray,
    band_d: float,
    half_width: float,
    anticipate: bool,
) -> np.ndarray:
    """Which cars (centre d, `width`) overlap the band [band_d - half_width, band_d + half_width];
    with `anticipate`, a car changing lanes spans from where it is to its target lane's centre."""
    band_lo, band_hi = band_d - half_width, band_d + half_width
    out = np.empty(d.size, dtype=np.bool_)
    for i in range(d.size):
        out[i] = car_in_band(d[i], width[i], centres[lane[i]], band_lo, band_hi, anticipate)
    return out


@numba.njit(cache=True, nogil=True)
def nearest_in_band(
    s: np.ndarray,
    d: np.ndarray,
    width: np.ndarray,
    length: np.ndarray,
    speed: np.ndarray,
    centres: np.ndarray,
    lane: np.ndarray,
    at_s: float,
    band_d: float,
    half_width: float,
    anticipate: bool,
    ahead: bool,
) -> tuple[float, float]:
    """(gap, speed) of the nearest car overlapping the band (`band_overlap`) whose centre is at or
    beyond `at_s` (`ahead`, gap to its rear bumper) or before it (gap to its front bumper), the
    first of equals; (inf, inf) if none. `sim.traffic.Traffic.leader` and `follower`."""
    band_lo, band_hi = band_d - half_width, band_d + half_width
    best, best_speed = np.inf, np.inf
    found = False
    for i in range(s.size):
        if not (s[i] >= at_s if ahead else s[i] < at_s):
            continue
        if not car_in_band(d[i], width[i], centres[lane[i]], band_lo, band_hi, anticipate):
            continue
        gap = s[i] - 0.5 * length[i] - at_s if ahead else at_s - s[i] - 0.5 * length[i]
        if not found or gap < best:
            best, best_speed, found = gap, speed[i], True
    return best, best_speed


@numba.njit(cache=True, nogil=True)
def strongest_brake(
    s: np.ndarray,
    d: np.ndarray,
    width: np.ndarray,
    length: np.ndarray,
    speed: np.ndarray,
    centres: np.ndarray,
    lane: np.ndarray,
    ego_s: float,
    band_d: float,
    half_width: float,
    half_length: float,
    ego_speed: float,
    margin: float,
    headway_gap: float,
    comfort_brake: float,
) -> float:
    """The strongest braking (m/s^2, positive) asked for by the cars ahead of `ego_s` in the band
    (counting a car changing lanes in its target lane too), or nan if none asks
    (`sim.safety.brake_request`).

    A car asks for the deceleration that matches its speed just as the bumper gap shrinks to the
    margin, when it is closer than `headway_gap` and not faster, or when that deceleration exceeds
    `comfort_brake`; the first of equals wins. tests/reference_world.py has it in numpy.
    """
    band_lo, band_hi = band_d - half_width, band_d + half_width
    strongest = np.nan
    for i in range(s.size):
        if not s[i] >= ego_s or not car_in_band(d[i], width[i], centres[lane[i]], band_lo, band_hi, True):
            continue
        gap = s[i] - 0.5 * length[i] - ego_s - half_length
        lead_speed = speed[i]
        closing = max(ego_speed - lead_speed, 0.0)
        room = max(gap - margin, 0.5)
        matching = closing * closing / (2.0 * room)
        too_close = gap < headway_gap and lead_speed < ego_speed + 0.5
        if (too_close or matching > comfort_brake) and not matching <= strongest:
            strongest = matching
    return strongest


@numba.njit(cache=True, nogil=True)
def lane_has_room(
    s: np.ndarray,
    d: np.ndarray,
    width: np.ndarray,
    length: np.ndarray,
    speed: np.ndarray,
    centres: np.ndarray,
    lane: np.ndarray,
    ego_s: float,
    lane_d: float,
    half_width: float,
    half_length: float,
    ego_speed: float,
    margin: float,
    closing_s: float,
) -> bool:
    """`sim.safety.lane_is_safe` for the lane centred at `lane_d`: a bumper gap of at least the margin
    plus `closing_s` seconds of closing speed to the nearest car ahead and behind (a car changing
    lanes counts in its target lane too), measured from the ego's centre so that a car alongside
    counts (as a negative gap)."""
    gap_ahead, speed_ahead = nearest_in_band(
        s, d, width, length, speed, centres, lane, ego_s, lane_d, half_width, True, True
    )
    gap_behind, speed_behind = nearest_in_band(
        s, d, width, length, speed, centres, lane, ego_s, lane_d, half_width, True, False
    )
    gap_ahead -= half_length
    gap_behind -= half_length
    # (inf, inf) means nobody there: the closing speed term must then be 0, not inf - speed.
    closing_ahead = max(ego_speed - speed_ahead, 0.0) if gap_ahead < np.inf else 0.0
    closing_behind = max(speed_behind - ego_speed, 0.0) if gap_behind < np.inf else 0.0
    need_ahead = margin + closing_ahead * closing_s
    need_behind = margin + closing_behind * closing_s
    return gap_ahead > need_ahead and gap_behind > need_behind
