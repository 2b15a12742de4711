"""`Traffic.step` in plain numpy: the oracle the compiled `sim.traffic.step_kernel.common_step` is held to.

The per-car formulas of one traffic step (leaders, IDM, integration, the cosine lane-change
profile, which cars try a lane change) as they read in numpy; the compiled kernel must give the
same state, bit for bit, and the same random stream.
"""

from __future__ import annotations

import numpy as np

from sim.traffic import Traffic
from sim.traffic.config import MAX_IDM_BRAKE
from sim.traffic.idm import MIN_IDM_GAP
from sim.traffic.lane_changes import BLOCKED_MARGIN
from tests.reference_rare_events import recycle, try_lane_change


def reference_step(
    t: Traffic, dt: float, ego_s: float, ego_d: float, ego_speed: float, ego_length: float, ego_width: float
) -> None:
    """`Traffic.step` for n > 0, written with numpy arrays and the rare events in Python."""
    t.revision += 1
    set_ego(t, ego_s, ego_d, ego_speed, ego_length, ego_width)
    refresh(t)
    gap, v_lead, _ = t._leaders()
    acc = idm(t, gap, v_lead)
    # Leader data describe the lanes held at the start of the step: only cars that were then in a
    # single lane may decide on a change from them.
    steady = t.lane == t._from_lane
    integrate(t, acc, dt)
    advance_lane_changes(t, dt)
    consider_lane_changes(t, dt, steady, acc, gap, v_lead)
    recycle(t)


def idm(t: Traffic, gap: np.ndarray, v_lead: np.ndarray) -> np.ndarray:
    """IDM acceleration of every car, braking capped at MAX_IDM_BRAKE; the gap floored at
    MIN_IDM_GAP so that touching cars brake hard but finitely."""
    cfg, v = t.config, t.speed
    s_star = np.maximum(v * (cfg.time_headway + (v - v_lead) * t._inv_2sqrt_ab), 0.0) + cfg.min_gap
    ratio = s_star / np.maximum(gap, MIN_IDM_GAP)
    free = v / t.desired_speed
    free = free * free
    return np.maximum((1.0 - free * free - ratio * ratio) * cfg.max_accel, -MAX_IDM_BRAKE)


def refresh(t: Traffic) -> None:
    """Copy the traffic state into the all-vehicle buffers (the ego slot is set by `set_ego`)."""
    n = t.n
    t._S[:n] = t.s
    t._V[:n] = t.speed
    t._V0[:n] = t.desired_speed
    np.multiply(t.length, 0.5, out=t._HL[:n])
    t._bits[:n] = np.left_shift(1, t._from_lane) | np.left_shift(1, t.lane)


def set_ego(t: Traffic, s: float, d: float, speed: float, length: float, width: float) -> None:
    """Store the ego in the last slot of the all-vehicle buffers, with the lanes its body overlaps."""
    n = t.n
    t._ego_s = float(s)
    t._S[n] = s
    t._V[n] = speed
    t._HL[n] = 0.5 * length
    reach = 0.5 * t.road.config.lane_width + 0.5 * width
    bits = 0
    for j, c in enumerate(t.road.lane_centres):
        if abs(d - c) < reach:
            bits |= 1 << j
    t._bits[n] = bits


def integrate(t: Traffic, acc: np.ndarray, dt: float) -> None:
    """Move the cars; a car that would reverse stops where it reaches zero speed instead."""
    v = t.speed
    v_new = v + acc * dt
    stops = v_new < 0.0
    dist = 0.5 * (v + v_new) * dt
    if stops.any():
        dist[stops] = v[stops] ** 2 / (-2.0 * np.minimum(acc[stops], -1e-9))
        v_new[stops] = 0.0
    t.s += dist
    t.speed[:] = v_new


def advance_lane_changes(t: Traffic, dt: float) -> None:
    """Move changing cars along a cosine lateral profile (zero lateral speed at both ends)."""
    idx = np.flatnonzero(t.lane != t._from_lane)
    if idx.size == 0:
        return
    duration = t.config.lane_change_time
    elapsed = t._lc_elapsed[idx] + dt
    p = np.minimum(elapsed / duration, 1.0)
    delta = t._centres[t.lane[idx]] - t._d_from[idx]
    t.d[idx] = t._d_from[idx] + delta * 0.5 * (1.0 - np.cos(np.pi * p))
    t._lat_vel[idx] = delta * (0.5 * np.pi / duration) * np.sin(np.pi * p)
    done = idx[p >= 1.0]
    t._lc_elapsed[idx] = elapsed
    t._from_lane[done] = t.lane[done]
    t._lc_elapsed[done] = 0.0
    t._lat_vel[done] = 0.0


def consider_lane_changes(
    t: Traffic, dt: float, steady: np.ndarray, acc: np.ndarray, gap: np.ndarray, v_lead: np.ndarray
) -> None:
    """Let each held-up `steady` car, with probability lane_change_rate * dt, try an adjacent lane."""
    draws = t.rng.random(t.n)
    cand = np.flatnonzero(draws < t.config.lane_change_rate * dt)
    if cand.size == 0:
        return
    refresh(t)
    cfg = t.config
    for i in cand:
        v, v0 = t.speed[i], t.desired_speed[i]
        look = 2.0 * (cfg.min_gap + v * cfg.time_headway) + 10.0
        held_up = v < v0 - BLOCKED_MARGIN and v_lead[i] < v0 - BLOCKED_MARGIN and gap[i] < look
        if held_up and steady[i]:
            try_lane_change(t, int(i), float(acc[i]))
