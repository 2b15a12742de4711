"""Plain Python/numpy versions of the world's per-step queries: the oracles their compiled
versions (`sim.road._project`, `sim.world._strongest_brake`, ...) are held to, bit for bit."""

from __future__ import annotations

import numpy as np

from sim.road import SAMPLE_SPACING_M, Road, _nearest_sample


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
