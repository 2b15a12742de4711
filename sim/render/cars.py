"""Drawing other cars into a camera frame by casting one ray per image column.

Cars are boxes standing on flat ground. Each image column is a vertical plane; the nearest box that
its ray enters decides what that column shows between the box's bottom and top rows. Because the
camera sits below every roof (the default), a nearer box always covers a farther one in a column
entirely, so "nearest per column" *is* correct depth order, and the whole pass is a handful of
array operations over (columns x cars) with no polygon rasteriser. When the camera is mounted above
a roof, the roof is drawn too, but a taller car behind a lower one is hidden (documented limitation).

Faces are shaded by orientation (rear or front brighter than sides); each face shows a lower body
band, tail lights on rear faces, a glass band, and a contact shadow on the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.camera import PinholeCamera
from sim.render.palette import Palette

NEAR_M = 0.3
_SHADOW_FRACTION = 0.08
"""Contact shadow: the ground just below a car's bottom edge, as a fraction of its height on screen."""
# Band edges as fractions of the car's height: shadow | lower body | body | tail lights | glass | roof edge.
_BAND_EDGES = (-_SHADOW_FRACTION, 0.0, 0.28, 0.45, 0.6, 0.92, 1.0)


@dataclass(frozen=True)
class CarBoxes:
    """Cars to draw, in world coordinates: one array entry per car."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    length: np.ndarray
    width: np.ndarray
    height: np.ndarray
    color: np.ndarray
    """Index into `Palette.car_colors`."""

    @classmethod
    def empty(cls) -> CarBoxes:
        z = np.zeros(0)
        return cls(z, z, z, z, z, z, np.zeros(0, dtype=int))

    def __len__(self) -> int:
        return int(self.x.size)


class CarPainter:
    """Draws `CarBoxes` into frames of one camera with one palette."""

    def __init__(self, camera: PinholeCamera, palette: Palette) -> None:
        self.camera = camera
        self.slope = camera.column_ray_slope()
        self.row_centres = (np.arange(camera.config.height) + 0.5)[:, None]
        # Per row: how far below the lens a point on a vertical plane 1 m ahead appears (see _paint_columns).
        y = camera.row_y
        cp, sp = np.cos(camera.pitch), np.sin(camera.pitch)
        self.row_slope = ((sp + y * cp) / (cp - y * sp))[:, None]
        self.band_edges = np.asarray(_BAND_EDGES)
        colors = np.array([palette.array(c) for c in palette.car_colors], dtype=np.float32)
        self.body = colors
        self.glass = palette.array(palette.glass)
        self.tail = palette.array(palette.tail_light)
        self.shadow = palette.array(palette.asphalt) * 0.55
        """Contact shadows are drawn as darkened asphalt (cars drive on the road)."""

    def draw(self, frame: np.ndarray, cam_x: float, cam_y: float, cam_yaw: float, cars: CarBoxes) -> None:
        """Paint `cars` into `frame` (height, width, 3) uint8, seen from the camera pose."""
        if len(cars) == 0:
            return
        cfg = self.camera.config
        cos_y, sin_y = np.cos(cam_yaw), np.sin(cam_yaw)
        dx, dy = cars.x - cam_x, cars.y - cam_y
        fwd = dx * cos_y + dy * sin_y
        left = -dx * sin_y + dy * cos_y
        reach = 0.5 * np.hypot(cars.length, cars.width)
        visible = (fwd + reach > NEAR_M) & (fwd - reach < cfg.max_distance)
        visible &= np.abs(left) - reach < (fwd + reach) * np.max(np.abs(self.slope)) + 1.0
        if not visible.any():
            return
        idx = np.nonzero(visible)[0]
        hit = self._cast(fwd[idx], left[idx], cars.yaw[idx] - cam_yaw, cars.length[idx], cars.width[idx])
        t_in, t_out, end_face, rear, lateral, car = hit
        cols = np.nonzero(np.isfinite(t_in))[0]
        if cols.size == 0:
            return
        car = car[cols]
        t_in, t_out = t_in[cols], t_out[cols]
        height = cars.height[idx][car]
        self._paint_columns(
            frame,
            cols,
            t_in,
            t_out,
            height,
            end_face[cols],
            rear[cols],
            lateral[cols],
            cars.width[idx][car],
            cars.color[idx][car],
        )

    def _cast(self, fwd, left, yaw_rel, length, width):
        """Nearest box entered by each column's ray (slab method in each box's own frame).

        Returns per column: entry and exit forward distance (inf if no hit), whether the ray entered
        through an end face, whether that end is the rear, the lateral entry point on the face (box
        coordinates), and the index of the car.
        """
        cos_r, sin_r = np.cos(yaw_rel), np.sin(yaw_rel)
        # Camera (ray origin) in box coordinates, and the ray direction (1, -slope) rotated likewise.
        ox = -fwd * cos_r - left * sin_r
        oy = fwd * sin_r - left * cos_r
        slope = self.slope[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_rx = 1.0 / (cos_r - slope * sin_r)
            inv_ry = 1.0 / (-sin_r - slope * cos_r)
            tx1, tx2 = (-0.5 * length - ox) * inv_rx, (0.5 * length - ox) * inv_rx
            ty1, ty2 = (-0.5 * width - oy) * inv_ry, (0.5 * width - oy) * inv_ry
        tx_near, ty_near = np.minimum(tx1, tx2), np.minimum(ty1, ty2)
        t_in = np.maximum(tx_near, ty_near)
        t_out = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
        t_in[(t_in >= t_out) | (t_out <= NEAR_M)] = np.inf
        np.maximum(t_in, NEAR_M, out=t_in)
        car = np.argmin(t_in, axis=1)
        cols = np.arange(t_in.shape[0])
        end_face = (tx_near >= ty_near)[cols, car]
        rear = end_face & (inv_rx[cols, car] > 0)
        t_hit = t_in[cols, car]
        lateral = oy[car] + t_hit / inv_ry[cols, car]
        return t_hit, t_out[cols, car], end_face, rear, lateral, car

    def _paint_columns(self, frame, cols, t_in, t_out, height, end_face, rear, lateral, width, color) -> None:
        """Fill the hit columns: shadow, lower body, body, tail lights, glass, roof edge (and roof).

        A pixel in column j and row r looks at the point of the box's entry plane at forward
        distance t_in[j]; its height there is mount - t_in[j] * g[r] (g precomputed per row), so
        the band it shows is one `searchsorted` of that height, as a fraction of the car's height,
        in the band edges. One gather from a per-column colour table then writes the region
        (pixels outside the car gather themselves, so ground and earlier drawing stay).
        """
        cam = self.camera
        mount = cam.config.mount_height
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        depth = np.full(c1 - c0, np.inf)
        depth[cols - c0] = t_in
        car_h = np.ones(c1 - c0)
        car_h[cols - c0] = height
        top = cam.row_of(t_in, height)
        bottom = cam.row_of(t_in, -_SHADOW_FRACTION * height)
        r0 = int(max(np.floor(np.min(top)), 0))
        r1 = int(min(np.ceil(np.max(bottom)), frame.shape[0]))
        if r1 <= r0:
            return
        with np.errstate(invalid="ignore"):
            frac = (mount - depth[None, :] * self.row_slope[r0:r1]) / car_h[None, :]
        band = np.searchsorted(self.band_edges, frac).astype(np.int32)
        region = frame[r0:r1, c0:c1]
        # Colours per column and band. 0: ground; 1: shadow; 2..6: car; 7: above the car.
        body = self.body[color % len(self.body)]
        lit = body * np.where(end_face, 0.9, 0.68)[:, None]
        tail_here = rear & (np.abs(lateral) > 0.5 * width - 0.45)
        table = np.zeros((c1 - c0, 8, 3), dtype=np.float32)
        table[cols - c0, 1] = self.shadow
        table[cols - c0, 2] = lit * 0.55
        table[cols - c0, 3] = lit
        table[cols - c0, 4] = np.where(tail_here[:, None], self.tail, lit)
        table[cols - c0, 5] = self.glass * 0.8
        table[cols - c0, 6] = lit * 1.05
        n_table = table.shape[0] * 8
        src = np.concatenate((table.astype(np.uint8).reshape(-1, 3), region.reshape(-1, 3)))
        own = n_table + np.arange(band.size, dtype=np.int32).reshape(band.shape)
        band += (np.arange(c1 - c0, dtype=np.int32) * 8)[None, :]
        inside = (frac >= -_SHADOW_FRACTION) & (frac < 1.0)
        region[...] = np.take(src, np.where(inside, band, own), axis=0)
        if mount > np.min(height):
            self._paint_roofs(frame, cols, t_in, t_out, height, body)

    def _paint_roofs(self, frame, cols, t_in, t_out, height, body) -> None:
        """Camera above a roof: fill the roof between the entry and exit planes' top edges."""
        cam = self.camera
        seen = cam.config.mount_height > height
        top_far = cam.row_of(t_out, height)
        top_near = cam.row_of(t_in, height)
        rows = self.row_centres
        for j in np.nonzero(seen)[0]:
            r0, r1 = (
                int(max(np.ceil(top_far[j] - 0.5), 0)),
                int(min(np.ceil(top_near[j] - 0.5), frame.shape[0])),
            )
            if r1 > r0 and rows.size:
                frame[r0:r1, cols[j]] = body[j].astype(np.uint8)
