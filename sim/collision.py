"""Collision tests between oriented rectangles (car footprints seen from above).

A box is a row (x, y, yaw, length, width): centre in world metres, yaw in radians counter-clockwise
from +x, length along the yaw direction. Two convex shapes are disjoint exactly when some axis
separates their projections (separating axis theorem); for two rectangles only the four edge normals
need testing. Rectangles that merely touch (share an edge or a corner, zero-area intersection) do
NOT overlap: a collision needs the bodies to interpenetrate, and treating contact as a crash would
make exactly-aligned test fixtures flaky with floating point.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners (N, 4, 2) of `boxes` (N, 5), counter-clockwise from front-left.

    Order: front-left, rear-left, rear-right, front-right, where "front" is along +yaw and "left" is
    90 degrees counter-clockwise from it. The renderer draws polygons from this order, so keep it.
    """
    b = np.atleast_2d(np.asarray(boxes, dtype=float))
    c, s = np.cos(b[:, 2]), np.sin(b[:, 2])
    hl, hw = 0.5 * b[:, 3], 0.5 * b[:, 4]
    local_x = np.array([1.0, -1.0, -1.0, 1.0])[None, :] * hl[:, None]
    local_y = np.array([1.0, 1.0, -1.0, -1.0])[None, :] * hw[:, None]
    x = b[:, 0:1] + c[:, None] * local_x - s[:, None] * local_y
    y = b[:, 1:2] + s[:, None] * local_x + c[:, None] * local_y
    return np.stack((x, y), axis=-1)


def boxes_overlap(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boolean (N,): does `box` (5,) overlap each row of `boxes` (N, 5)? Touching is not overlap.

    All four candidate axes are written in closed form. With dyaw the yaw difference, the projection
    radius of a rectangle on the other's length axis is hl*|cos dyaw| + hw*|sin dyaw| (and the
    width axis swaps cos and sin), so no corners are formed and the cost is a dozen array ops.
    """
    a = np.asarray(box, dtype=float)
    b = np.atleast_2d(np.asarray(boxes, dtype=float))
    hl1, hw1 = 0.5 * a[3], 0.5 * a[4]
    hl2, hw2 = 0.5 * b[:, 3], 0.5 * b[:, 4]
    dx, dy = b[:, 0] - a[0], b[:, 1] - a[1]
    c1, s1 = np.cos(a[2]), np.sin(a[2])
    c2, s2 = np.cos(b[:, 2]), np.sin(b[:, 2])
    dyaw = b[:, 2] - a[2]
    cos_d, sin_d = np.abs(np.cos(dyaw)), np.abs(np.sin(dyaw))
    # Axes of `box`: u1 = (c1, s1) along its length, v1 = (-s1, c1) across it; likewise u2, v2.
    sep_u1 = np.abs(dx * c1 + dy * s1) >= hl1 + hl2 * cos_d + hw2 * sin_d
    sep_v1 = np.abs(-dx * s1 + dy * c1) >= hw1 + hl2 * sin_d + hw2 * cos_d
    sep_u2 = np.abs(dx * c2 + dy * s2) >= hl2 + hl1 * cos_d + hw1 * sin_d
    sep_v2 = np.abs(-dx * s2 + dy * c2) >= hw2 + hl1 * sin_d + hw1 * cos_d
    return ~(sep_u1 | sep_v1 | sep_u2 | sep_v2)


@numba.njit(cache=True, nogil=True)
def frenet_neighbours(
    s: np.ndarray,
    d: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    ego_s: float,
    ego_d: float,
    ego_length: float,
    ego_width: float,
    margin: float,
    near: np.ndarray,
) -> bool:
    """Mark in `near` which cars' Frenet boxes come within `margin` of the ego's, and say whether
    any does: a cheap pre-filter (compiled: it runs every step) before the exact oriented-box
    test, with a margin for the cars' yaw."""
    found = False
    for i in range(s.size):
        near[i] = (abs(s[i] - ego_s) < 0.5 * (length[i] + ego_length) + margin) and (
            abs(d[i] - ego_d) < 0.5 * (width[i] + ego_width) + margin
        )
        found = found or near[i]
    return found


@numba.njit(cache=True, nogil=True)
def any_overlap(
    box_x: float,
    box_y: float,
    box_yaw: float,
    box_length: float,
    box_width: float,
    x: np.ndarray,
    y: np.ndarray,
    yaw: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    which: np.ndarray,
) -> bool:
    """Whether the box (box_x, ..., box_width) overlaps any of the boxes i with which[i]:
    `boxes_overlap`'s test, with the same arithmetic in the same order (and libm's sin and cos, as
    numpy's here), compiled for the world's collision check, which runs every step."""
    hl1, hw1 = 0.5 * box_length, 0.5 * box_width
    c1, s1 = math.cos(box_yaw), math.sin(box_yaw)
    for i in range(x.size):
        if not which[i]:
            continue
        hl2, hw2 = 0.5 * length[i], 0.5 * width[i]
        dx, dy = x[i] - box_x, y[i] - box_y
        c2, s2 = math.cos(yaw[i]), math.sin(yaw[i])
        dyaw = yaw[i] - box_yaw
        cos_d, sin_d = abs(math.cos(dyaw)), abs(math.sin(dyaw))
        if abs(dx * c1 + dy * s1) >= hl1 + hl2 * cos_d + hw2 * sin_d:
            continue
        if abs(-dx * s1 + dy * c1) >= hw1 + hl2 * sin_d + hw2 * cos_d:
            continue
        if abs(dx * c2 + dy * s2) >= hl2 + hl1 * cos_d + hw1 * sin_d:
            continue
        if abs(-dx * s2 + dy * c2) >= hw2 + hl1 * sin_d + hw1 * cos_d:
            continue
        return True
    return False
