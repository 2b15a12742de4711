"""The car pass in plain numpy: the oracle `sim.render.kernels.paint_cars` is held to.

The same maths as the kernel, written as whole-array operations over (columns x cars): the length
and width slabs of all k cars side by side in (columns, 2k) arrays, the nearest entry per column by
argmin, then every pixel's height on the car floored to the band grid. Roofs are not drawn here.
"""

from __future__ import annotations

import numpy as np

from sim.boxes import CarBoxes
from sim.render.cars import GRID, GRID_OFFSET, GRID_SIZE, NEAR_M, TAIL_LIGHT_INSET_M, CarPainter


def paint_cars_reference(
    painter: CarPainter,
    frame: np.ndarray,
    fwd: np.ndarray,
    left: np.ndarray,
    yaw_rel: np.ndarray,
    cars: CarBoxes,
) -> None:
    """Paint the (already culled) `cars`, seen at `fwd`/`left` and relative yaw `yaw_rel`, into `frame`."""
    k = fwd.size
    cos_r, sin_r = np.cos(yaw_rel), np.sin(yaw_rel)
    ox = -fwd * cos_r - left * sin_r
    oy = fwd * sin_r - left * cos_r
    origin = np.concatenate((ox, oy))
    half = np.concatenate((0.5 * cars.length, 0.5 * cars.width))
    slope = painter.slope[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / (np.concatenate((cos_r, -sin_r)) - slope * np.concatenate((sin_r, cos_r)))
        t1, t2 = (-half - origin) * inv, (half - origin) * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in = np.maximum(near[:, :k], near[:, k:])
    t_out = np.minimum(far[:, :k], far[:, k:])
    t_in[(t_in >= t_out) | (t_out <= NEAR_M)] = np.inf
    np.maximum(t_in, NEAR_M, out=t_in)
    car = np.argmin(t_in, axis=1)
    columns = np.arange(slope.shape[0])
    depth = t_in[columns, car]
    hit = np.flatnonzero(np.isfinite(depth))
    car, depth = car[hit], depth[hit]
    end_face = near[hit, car] >= near[hit, car + k]
    rear = end_face & (inv[hit, car] > 0)
    lateral = oy[car] + depth / inv[hit, car + k]
    tail = rear & (np.abs(lateral) > 0.5 * cars.width[car] - TAIL_LIGHT_INSET_M)
    key = ((cars.color[car] % len(painter.body)) * 2 + end_face) * 2 + tail
    mount = painter.camera.config.mount_height
    grid = (mount * GRID - painter.row_slope[:, None] * (depth * GRID)) / cars.height[car] + GRID_OFFSET
    index = np.clip(grid, 0, GRID_SIZE - 1).astype(np.intp) + key * GRID_SIZE
    drawn = painter.drawn_lut[index]
    rows, cols = np.nonzero(drawn)
    frame[rows, hit[cols]] = painter.face_lut[index[rows, cols]]
