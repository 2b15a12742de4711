"""Car following by the Intelligent Driver Model (Treiber, Hennecke and Helbing, 2000).

IDM is collision-free in its continuous form, smooth, and parameterised by quantities with a
physical meaning (desired speed, time headway, jam gap, comfortable braking). Every car follows its
leader: the nearest vehicle ahead that shares one of its lanes (`leader_search`). `idm_all` runs
over every car each step; the one-car versions (`idm1`, `safe_speed`) serve the rare events (lane
changes, respawns) and the reset. All are compiled.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.py_semantics import libm_pow, py_max
from sim.traffic.config import MAX_IDM_BRAKE

MIN_IDM_GAP = 0.01
"""Gap floor (m) inside IDM so that touching or overlapping cars give maximal, finite braking."""

CALLEE_SOURCES_SHA256 = "ec52eeb0618fc6670862e2a69e6305c1684f7486842c3d50e43d4a23f43ddd86"
"""sha256 of sim/py_semantics.py, whose compiled functions `idm1` calls: numba's cache keys it
by this file's text alone (`sim.render.kernels` says more)."""


@numba.njit(cache=True, nogil=True)
def idm1(
    v: float,
    v0: float,
    gap: float,
    v_lead: float,
    time_headway: float,
    inv_2sqrt_ab: float,
    min_gap: float,
    max_accel: float,
) -> float:
    """IDM acceleration of one car (`idm_all` for all), for the rare events: their Python formula,
    libm's pow and Python's max (`sim.py_semantics`), so the numbers are the ones it gave."""
    s_star = min_gap + py_max(0.0, v * (time_headway + (v - v_lead) * inv_2sqrt_ab))
    interaction = libm_pow(s_star / py_max(gap, MIN_IDM_GAP), 2.0)
    return py_max(max_accel * (1.0 - libm_pow(v / v0, 4.0) - interaction), -MAX_IDM_BRAKE)


@numba.njit(cache=True, nogil=True, inline="always")
def one_car_params(params: np.ndarray) -> tuple[float, float, float, float, float]:
    """(time_headway, inv_2sqrt_ab, min_gap, max_accel, comfort_brake) from `Traffic.kernel_params`:
    what the rare events' one-car IDM (`idm1`, `safe_speed`, the comfort test) reads of it."""
    return params[0], params[1], params[2], params[3], params[7]


@numba.njit(cache=True, nogil=True)
def safe_speed(gap: float, v_lead: float, min_gap: float, time_headway: float, inv_2sqrt_ab: float) -> float:
    """Largest speed whose IDM desired gap s* does not exceed `gap` behind a car at `v_lead`.

    Solves s0 + v*T + v*(v - v_lead)/(2 sqrt(ab)) = gap for v >= 0 (a quadratic in v); 0 when
    gap <= s0. At that speed IDM brakes by no more than about max_accel, so a car placed there
    needs no emergency stop.
    """
    room = gap - min_gap
    if room <= 0.0:
        return 0.0
    c = inv_2sqrt_ab
    lin = time_headway - c * v_lead
    return (-lin + math.sqrt(lin * lin + 4.0 * c * room)) / (2.0 * c)


@numba.njit(cache=True, nogil=True)
def leader_search(
    s: np.ndarray, half_length: np.ndarray, speed: np.ndarray, bits: np.ndarray, n: int, min_gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`Traffic._leaders` over the all-vehicle buffers (n cars, the ego at index n)."""
    gap = np.empty(n)
    lead_speed = np.empty(n)
    lead = np.empty(n, dtype=np.int64)
    for i in range(n):
        best, best_j = np.inf, 0
        for j in range(n + 1):
            ds = s[j] - s[i]
            if bits[j] & bits[i] == 0 or not ds > 0.0:
                continue
            g = ds - half_length[j] - half_length[i]
            if j == n and (g <= 0.0 or (g < min_gap and speed[n] > speed[i])):
                continue  # the ego overlapping this car, or pulling away from it
            if g < best:
                best, best_j = g, j
        gap[i], lead_speed[i], lead[i] = best, speed[best_j], best_j
    return gap, lead_speed, lead


@numba.njit(cache=True, nogil=True)
def idm_all(
    v: np.ndarray,
    v0: np.ndarray,
    gap: np.ndarray,
    v_lead: np.ndarray,
    time_headway: float,
    inv_2sqrt_ab: float,
    min_gap: float,
    max_accel: float,
) -> np.ndarray:
    """IDM acceleration of every car, braking capped at MAX_IDM_BRAKE (`idm1` for one car).

    With gap = inf the interaction term vanishes whatever v_lead is (as long as it is finite).
    """
    acc = np.empty(v.size)
    for i in range(v.size):
        s_star = max(v[i] * (time_headway + (v[i] - v_lead[i]) * inv_2sqrt_ab), 0.0) + min_gap
        ratio = s_star / max(gap[i], MIN_IDM_GAP)
        free = v[i] / v0[i]
        free *= free
        acc[i] = max((1.0 - free * free - ratio * ratio) * max_accel, -MAX_IDM_BRAKE)
    return acc
