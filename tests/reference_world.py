"""Plain Python/numpy versions of the world's per-step queries: the oracles their compiled
versions (`sim.road._project`, `sim.world_kernels.strongest_brake`, ...) are held to, bit for bit."""

from __future__ import annotations

import math

import numpy as np

from sim import safety as sim_safety
from sim.road import SAMPLE_SPACING_M, Road, _nearest_sample
from sim.safety import COMFORT_BRAKE, EGO_LOOKAHEAD_S, LANE_CHANGE_CLOSING_S, SAFE_LATERAL_MARGIN_M
from sim.traffic import Traffic
from sim.world import PHYSICS_DT, World


def frenet(road: Road, x: float, y: float, s_hint: float | None = None) -> tuple[float, float]:
    """`Road.frenet`: the nearest sample, then the orthogonal projection on the segment before or
    after it, whichever is nearer."""
    if s_hint is None:
        lo, hi = 0, road.s.size
    else:
        road.ensure_length(s_hint + 150.0)
        i = int(s_hint / SAMPLE_SPACING_M)
        lo, hi = max(i - 60, 0), min(i + 120, road.s.size)
    i = _nearest_sample(road.x, road.y, lo, hi, x, y)
    i = min(max(i, 0), road.s.size - 2)
    best = None
    for j in (i - 1, i):
        if j < 0:
            continue
        ax, ay = float(road.x[j]), float(road.y[j])
        bx, by = float(road.x[j + 1]) - ax, float(road.y[j + 1]) - ay
        t = ((x - ax) * bx + (y - ay) * by) / (bx * bx + by * by)
        t = min(max(t, 0.0), 1.0)
        px, py = ax + t * bx, ay + t * by
        dist2 = (x - px) ** 2 + (y - py) ** 2
        if best is None or dist2 < best[0]:
            h0 = float(road.heading[j])
            h = h0 + t * (float(road.heading[j + 1]) - h0)
            d = -np.sin(h) * (x - px) + np.cos(h) * (y - py)
            best = (dist2, float(road.s[j]) + t * SAMPLE_SPACING_M, float(d))
    assert best is not None
    return best[1], best[2]


def leader(t: Traffic, s: float, d: float, half_width: float, anticipate: bool) -> tuple[float, float]:
    """`Traffic.leader`: the nearest car ahead (centre at or beyond s) in the band, gap to its rear bumper."""
    hit = np.flatnonzero(t.in_band(d, half_width, anticipate) & (t.s >= s))
    if hit.size == 0:
        return math.inf, math.inf
    gaps = t.s[hit] - 0.5 * t.length[hit] - s
    k = int(gaps.argmin())
    return float(gaps[k]), float(t.speed[hit[k]])


def follower(t: Traffic, s: float, d: float, half_width: float, anticipate: bool) -> tuple[float, float]:
    """`Traffic.follower`: the nearest car behind (centre before s) in the band, gap to its front bumper."""
    hit = np.flatnonzero(t.in_band(d, half_width, anticipate) & (t.s < s))
    if hit.size == 0:
        return math.inf, math.inf
    gaps = s - t.s[hit] - 0.5 * t.length[hit]
    k = int(gaps.argmin())
    return float(gaps[k]), float(t.speed[hit[k]])


def ego_band(w: World, lookahead_s: float = EGO_LOOKAHEAD_S) -> tuple[float, float]:
    """`World.ego_band` in Python: the lateral interval the ego's body occupies, sweeps within
    `lookahead_s` at its heading relative to the road, or is heading for (`target_d`)."""
    half_w = 0.5 * w.ego.params.width
    swept = w.d + w.ego.speed * math.sin(w.heading_error()) * lookahead_s
    lo, hi = min(w.d, swept), max(w.d, swept)
    if w.target_d is not None:
        lo, hi = min(lo, w.target_d), max(hi, w.target_d)
    return lo - half_w, hi + half_w


def safety_brake(w: World, accel: float) -> tuple[float, bool]:
    """The safety brake at the start of `World.step` (`sim.safety.brake_request`'s request plus 0.5, at
    most max_brake): (the acceleration it lets through, whether it overrode the driver)."""
    assert w.traffic is not None
    lo, hi = ego_band(w)
    lo, hi = lo - SAFE_LATERAL_MARGIN_M, hi + SAFE_LATERAL_MARGIN_M
    gaps, lead_speeds = w.traffic.cars_ahead(w.s, lo, hi, anticipate=True)
    half_l = 0.5 * w.ego.params.length
    speed = w.ego.speed
    margin = w.safety.margin_m
    headway_gap = margin + w.safety.headway_s * speed
    strongest: float | None = None
    for gap, lead_speed in zip(gaps.tolist(), lead_speeds.tolist(), strict=True):
        gap = gap - half_l
        closing = max(speed - lead_speed, 0.0)
        room = max(gap - margin, 0.5)
        matching = closing * closing / (2 * room)
        too_close = gap < headway_gap and lead_speed < speed + 0.5
        if (too_close or matching > COMFORT_BRAKE) and (strongest is None or matching > strongest):
            strongest = matching
    if strongest is not None:
        needed = -(strongest + 0.5)
        if needed < accel:
            return max(needed, -w.ego.params.max_brake), True
    return accel, False


def lane_is_safe(w: World, lane: int) -> bool:
    """`World.lane_is_safe`: room ahead and behind in `lane` for the margin plus the closing speed."""
    assert w.road is not None and w.traffic is not None
    if not 0 <= lane < w.road_config.lanes:
        return False
    d = w.lane_centre(lane)
    half_w = 0.5 * w.ego.params.width
    half_l = 0.5 * w.ego.params.length
    speed = w.ego.speed
    gap_ahead, speed_ahead = leader(w.traffic, w.s, d, half_w, True)
    gap_behind, speed_behind = follower(w.traffic, w.s, d, half_w, True)
    gap_ahead -= half_l
    gap_behind -= half_l
    closing_ahead = max(speed - speed_ahead, 0.0) if gap_ahead < math.inf else 0.0
    closing_behind = max(speed_behind - speed, 0.0) if gap_behind < math.inf else 0.0
    need_ahead = w.safety.margin_m + closing_ahead * LANE_CHANGE_CLOSING_S
    need_behind = w.safety.margin_m + closing_behind * LANE_CHANGE_CLOSING_S
    return gap_ahead > need_ahead and gap_behind > need_behind


def step(w: World, steer: float, accel: float, dt: float) -> None:
    """`World.step` composed from its parts in Python, as it was before `sim.world_step` ran its
    common path in one compiled call: the safety brake, the ego's physics, its projection and
    heading error, the traffic's own `step`, the collision test."""
    assert w.road is not None and w.traffic is not None
    p = w.ego.params
    if w.safety.enabled:
        accel, braked = safety_brake(w, accel)
        w.safety_brakes += braked
    w.applied_accel = accel
    n_sub = max(1, round(dt / PHYSICS_DT))
    w.ego.step(steer, accel, dt / n_sub, substeps=n_sub)
    w.s, w.d = w.road.frenet(w.ego.x, w.ego.y, w.s)
    road_heading = w.road.heading_at(w.s)
    w._remember_heading_error(road_heading)
    lo, hi = ego_band(w)
    w.traffic.step(dt, w.s, 0.5 * (lo + hi), w.ego.speed, p.length, hi - lo)
    w._state = None
    w.collided = w.collided or w._hits_traffic()


def sweeps_unsafe_lane(w: World) -> bool:
    """`World.sweeps_unsafe_lane` composed from Python, as it was before it was compiled: the band
    over the recovery time (a full reversal of the steering input, then the heading error turned
    away at the tightest turn), every lane it reaches but the ego's own checked by `lane_is_safe`."""
    cfg, p, speed = w.road_config, w.ego.params, w.ego.speed
    turn_rate = speed * math.tan(p.max_wheel_angle(speed)) / p.wheelbase
    recovery_s = 2.0 / p.steer_rate + abs(w.heading_error()) / max(turn_rate, 1e-6)
    lo, hi = ego_band(w, max(EGO_LOOKAHEAD_S, recovery_s))
    own = w.ego_lane()
    leftmost = max(math.floor((cfg.half_width - hi) / cfg.lane_width), -1)
    rightmost = min(math.floor((cfg.half_width - lo) / cfg.lane_width), cfg.lanes)
    return any(j != own and not sim_safety.lane_is_safe(w, j) for j in range(leftmost, rightmost + 1))
