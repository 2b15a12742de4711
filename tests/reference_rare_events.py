"""The traffic's rare events in plain Python: the oracle the compiled `sim.traffic.recycling.recycle` and
`sim.traffic.lane_changes.try_lane_change` are held to (tests/test_rare_events.py).

As the simulator ran them before they were compiled: a car trying a lane change (MOBIL), a car that
left the window respawned at its other end, with the random generator drawn in the same order and
IDM in Python floats (`**`, libm's pow). The compiled kernels must leave the same state, bit for bit,
and the generator in the same state.
"""

from __future__ import annotations

import math

import numpy as np

from sim import seeding
from sim.traffic import Traffic
from sim.traffic.config import (
    EGO_CLEARANCE_M,
    HEIGHT_RANGE,
    LENGTH_RANGE,
    MAX_IDM_BRAKE,
    N_COLORS,
    WIDTH_RANGE,
    TrafficConfig,
)
from sim.traffic.idm import MIN_IDM_GAP
from sim.traffic.lane_changes import LANE_CHANGE_GAIN
from sim.traffic.recycling import SPAWN_BAND_M, SPAWN_MARGIN_M


def rare_events(t: Traffic, n_tries: int, leaves: bool) -> None:
    """`Traffic.rare_events`: the lane changes tried by the cars `common_step` listed, then recycling."""
    for i in t._tries[:n_tries].tolist():
        try_lane_change(t, i, float(t._acc[i]))
    if leaves:
        recycle(t)


def idm1(cfg: TrafficConfig, v: float, v0: float, gap: float, v_lead: float) -> float:
    """`sim.traffic.idm.idm1` in Python floats."""
    inv_2sqrt_ab = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    s_star = cfg.min_gap + max(0.0, v * (cfg.time_headway + (v - v_lead) * inv_2sqrt_ab))
    interaction = (s_star / max(gap, MIN_IDM_GAP)) ** 2
    return max(cfg.max_accel * (1.0 - (v / v0) ** 4 - interaction), -MAX_IDM_BRAKE)


def safe_speed(cfg: TrafficConfig, gap: float, v_lead: float) -> float:
    """`sim.traffic.idm.safe_speed` in Python floats."""
    room = gap - cfg.min_gap
    if room <= 0.0:
        return 0.0
    c = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    lin = cfg.time_headway - c * v_lead
    return (-lin + math.sqrt(lin * lin + 4.0 * c * room)) / (2.0 * c)


def try_lane_change(t: Traffic, i: int, acc_now: float) -> None:
    """`sim.traffic.lane_changes.try_lane_change`."""
    best_lane, best_acc = -1, acc_now + LANE_CHANGE_GAIN
    for target in (t.lane[i] - 1, t.lane[i] + 1):
        if 0 <= target < t.road.config.lanes:
            new_acc = _lane_change_acc(t, i, int(target))
            if new_acc is not None and new_acc > best_acc:
                best_lane, best_acc = int(target), new_acc
    if best_lane >= 0:
        t.start_lane_change(i, best_lane)


def _lane_change_acc(t: Traffic, i: int, target: int) -> float | None:
    """Car i's IDM acceleration in `target`, or None if the gap there is unsafe (`try_lane_change`)."""
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


def recycle(t: Traffic) -> None:
    """`sim.traffic.recycling.recycle`."""
    lo, hi = t.window()
    out = np.flatnonzero((t.s < lo) | (t.s > hi))
    if out.size == 0:
        return
    t._refresh()
    for i in out:
        _respawn(t, int(i), to_front=bool(t.s[i] < lo), lo=lo, hi=hi)


def _respawn(t: Traffic, i: int, to_front: bool, lo: float, hi: float) -> bool:
    """`sim.traffic.recycling._respawn`."""
    cfg = t.config
    length = seeding.uniform(t.rng, *LENGTH_RANGE)
    half, roomy = 0.5 * length, cfg.min_gap + length
    desired = _entering_speed(t, to_front)
    spot = _find_spot(t, i, _bands(t, to_front, lo, hi), half, desired, roomy, to_front, True)
    if spot is None or spot[3] % 2 == 0:  # no spot, or the car would drift straight back out
        other_desired = _entering_speed(t, not to_front)
        bands = _bands(t, not to_front, lo, hi)
        other = _find_spot(t, i, bands, half, other_desired, roomy, not to_front, True)
        if other is not None and other[3] == 5:
            spot, desired = other, other_desired
    if spot is None:
        bands = (_bands(t, to_front, lo, hi)[1], (lo, hi))
        spot = _find_spot(t, i, bands, half, desired, cfg.min_gap, to_front, False)
    if spot is None:
        return False
    _place(t, i, spot[0], spot[1], spot[2], desired, length)
    return True


def _bands(t: Traffic, to_front: bool, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """`sim.traffic.recycling._bands`."""
    ego_s = t._ego_s
    if to_front:
        edge = hi - SPAWN_MARGIN_M
        return (max(edge - SPAWN_BAND_M, ego_s), edge), (ego_s, edge)
    edge = lo + SPAWN_MARGIN_M
    return (edge, min(edge + SPAWN_BAND_M, ego_s)), (edge, ego_s)


def _entering_speed(t: Traffic, to_front: bool) -> float:
    """`sim.traffic.recycling._entering_speed`."""
    cfg, ego_v = t.config, float(t._V[t.n])
    low, high = cfg.speed_min, cfg.speed_max
    if to_front and low < ego_v:
        high = min(high, ego_v)
    elif not to_front and ego_v < high:
        low = max(low, ego_v)
    return seeding.uniform(t.rng, low, high)


def _find_spot(
    t: Traffic,
    i: int,
    bands: tuple[tuple[float, float], ...],
    half: float,
    desired: float,
    clearance: float,
    to_front: bool,
    check_follower: bool,
) -> tuple[float, int, float, int] | None:
    """`sim.traffic.recycling._find_spot`; None for no spot."""
    lo = min(b[0] for b in bands)
    hi = max(b[1] for b in bands)
    if hi <= lo:
        return None
    n = t.n
    intervals = free_intervals(t, i, half, clearance, lo, hi)
    rng, ego_s, ego_v = t.rng, t._ego_s, float(t._V[n])
    # A car entering from the front cannot be faster than the ego (it would never have been
    # caught up with); it may still want to be, and then accelerates away at IDM's pace.
    # `top` bounds the speed for the follower test; each spot is capped by its own side.
    top = min(desired, ego_v) if to_front else desired
    best: dict[int, tuple[float, int, float, int]] = {}
    for band_lo, band_hi in bands:
        for k in rng.permutation(len(intervals)).tolist():
            ln, a, b, behind, ahead = intervals[k]
            a, b = max(a, band_lo), min(b, band_hi)
            if a >= b:
                continue
            # Skip the part of the gap where the follower could not be comfortable at any speed.
            comfy = a if behind < 0 else max(a, _comfort_front(t, behind, top) + half)
            tries: tuple[float, ...]
            if comfy < b:
                tries = (comfy + (b - comfy) * rng.random(), 0.5 * (comfy + b))
            else:
                tries = () if 3 in best else (b,)  # roomiest spot, for a cut-in
            for pos in tries:
                in_front = pos > ego_s
                cap = min(desired, ego_v) if in_front else desired
                speed, grade = _spawn_speed(t, pos, half, cap, behind, ahead)
                rank = 2 * grade + ((speed <= ego_v) if in_front else (speed >= ego_v))
                if rank == 5:
                    return pos, ln, speed, rank
                best.setdefault(rank, (pos, ln, speed, rank))
    usable = [r for r in best if r >= 2 or not check_follower]
    return best[max(usable)] if usable else None


def _comfort_front(t: Traffic, f: int, v_max: float) -> float:
    """`sim.traffic.recycling._comfort_front`."""
    cfg = t.config
    v_f, v0_f = float(t._V[f]), float(t._V0[f])
    s_star = cfg.min_gap + max(0.0, v_f * (cfg.time_headway + (v_f - v_max) * t._inv_2sqrt_ab))
    room = 1.0 + cfg.comfort_brake / cfg.max_accel - (v_f / v0_f) ** 4
    front = float(t._S[f] + t._HL[f])
    return front + s_star / math.sqrt(room) if room > 0.0 else math.inf


def _spawn_speed(
    t: Traffic, pos: float, half: float, top: float, behind: int, ahead: int
) -> tuple[float, int]:
    """`sim.traffic.recycling._spawn_speed`."""
    cfg = t.config
    speed = top
    if ahead >= 0:
        gap = float(t._S[ahead] - t._HL[ahead]) - half - pos
        speed = min(speed, safe_speed(cfg, gap, float(t._V[ahead])))
    if behind < 0:
        return speed, 2
    gap = pos - half - float(t._S[behind] + t._HL[behind])
    v_f = float(t._V[behind])
    if idm1(cfg, v_f, float(t._V0[behind]), gap, speed) >= -cfg.comfort_brake:
        return speed, 2
    closing = max(v_f - speed, 0.0)
    return speed, int(closing * closing <= 2.0 * cfg.comfort_brake * (gap - cfg.min_gap))


def _place(t: Traffic, i: int, s: float, lane: int, speed: float, desired: float, length: float) -> None:
    """`sim.traffic.recycling._respawn`'s last part: the new identity, and the buffers in step."""
    rng = t.rng
    t.set_car(i, s, lane, speed, desired)
    t.length[i] = length
    t.width[i] = seeding.uniform(rng, *WIDTH_RANGE)
    t.height[i] = seeding.uniform(rng, *HEIGHT_RANGE)
    t.color[i] = rng.integers(0, N_COLORS)
    t._S[i], t._V[i], t._V0[i], t._HL[i] = s, speed, desired, 0.5 * length
    t._bits[i] = 1 << lane


def neighbours(
    t: Traffic, i: int, lane: int, s: float, half_length: float
) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """`sim.traffic.lane_changes.neighbours_in_lane` in numpy: ((gap, speed, index) ahead, behind)."""
    in_lane = (t._bits >> lane) & 1 == 1
    if 0 <= i < t.n:
        in_lane[i] = False
    ds = t._S - s
    clear = np.abs(ds) - t._HL - half_length
    out = []
    for side in (ds > 0.0, ds <= 0.0):
        cand = np.flatnonzero(in_lane & side)
        if cand.size == 0:
            out.append((math.inf, math.inf, -1))
        else:
            k = cand[np.argmin(clear[cand])]
            out.append((float(clear[k]), float(t._V[k]), int(k)))
    return out[0], out[1]


def free_intervals(
    t: Traffic, i: int, half: float, clearance: float, lo: float, hi: float
) -> list[tuple[int, float, float, int, int]]:
    """`sim.traffic.recycling.free_interval_sweep` as a list (lane, a, b, follower, leader): the
    (vehicle, lane) memberships sorted by lane, then by s, then one sweep per lane."""
    n = t.n
    reach_arr = t._HL + (half + clearance)
    reach_arr[n] = t._HL[n] + half + max(clearance, EGO_CLEARANCE_M)
    member = ((t._bits[:, None] >> t._lane_ids[None, :]) & 1) == 1
    member[i] = False
    veh_arr, lane_arr = np.nonzero(member)
    order = np.lexsort((t._S[veh_arr], lane_arr))
    veh, lane, reach = veh_arr[order].tolist(), lane_arr[order].tolist(), reach_arr.tolist()
    s = t._S.tolist()
    out: list[tuple[int, float, float, int, int]] = []
    first = 0
    for ln in range(t._lane_ids.size):
        last = first
        while last < len(veh) and lane[last] == ln:
            last += 1
        members = veh[first:last]
        first = last
        ends_before = [s[j] - reach[j] for j in members] + [hi]
        for k in range(len(members) - 1, -1, -1):  # suffix minimum
            ends_before[k] = min(ends_before[k], ends_before[k + 1])
        covered, behind = lo, -1
        for k, j in enumerate(members + [-1]):
            end = min(ends_before[k], hi)
            if covered < end:
                out.append((ln, covered, end, behind, j))
            if j >= 0:
                covered = max(covered, s[j] + reach[j])
                behind = j
    return out
