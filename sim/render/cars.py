"""Drawing other cars into a camera frame by casting one ray per image column.

Cars are boxes standing on flat ground. Each image column is a vertical plane; the nearest box that
its ray enters decides what that column shows between the box's bottom and top rows. Because the
camera sits below every roof (the default), a nearer box always covers a farther one in a column
entirely, so "nearest per column" *is* correct depth order, with no polygon rasteriser. When the
camera is mounted above a roof, the roof is drawn too, but a taller car behind a lower one is
hidden (documented limitation).

Faces are shaded by orientation (rear or front brighter than sides); each face shows a lower body
band, tail lights on rear faces, a glass band, and a contact shadow on the ground.

The cast and the painting run in one compiled loop over columns (`kernels.paint_cars`); the plain
numpy version of the same maths (tests/reference_cars.py) is the oracle it is tested against, bit
for bit. Every colour a face can show is precomputed per palette (`_face_tables`), so painting a
pixel is a floor of its height on the face (in hundredths of the car's height) and two lookups.
"""

from __future__ import annotations

import numpy as np

from sim.boxes import CarBoxes
from sim.camera import PinholeCamera
from sim.render import kernels
from sim.render.palette import Palette
from sim.render.shared_arrays import shared

NEAR_M = 0.3
_SHADOW_FRACTION = 0.08
"""Contact shadow: the ground just below a car's bottom edge, as a fraction of its height on screen."""
# Band edges as fractions of the car's height: shadow | lower body | body | tail lights | glass | roof edge.
_BAND_EDGES = (-_SHADOW_FRACTION, 0.0, 0.28, 0.45, 0.6, 0.92, 1.0)
_END_FACE_SHADE = 0.9
_SIDE_FACE_SHADE = 0.68
TAIL_LIGHT_INSET_M = 0.45
"""Tail lights cover the outer 0.45 m of each side of a rear face."""
GRID = 100
"""Pixels are classified by their height on the car in steps of 1/100 of its height; every band edge
lies on that grid, so flooring a scaled height picks the band with one conversion (no search)."""
GRID_OFFSET = round(-_BAND_EDGES[0] * GRID) + 1
"""Grid index 0 collects everything below the shadow; index 1 starts at the shadow's lower edge."""
GRID_SIZE = round(_BAND_EDGES[-1] * GRID) + GRID_OFFSET + 1
"""Indices 1 .. GRID_SIZE - 2 are on the car; the last collects the roof edge's top and above."""


def _band_of_grid() -> np.ndarray:
    """Band (0 = shadow .. 5 = roof edge) of each grid index, -1 where the pixel is not on the car."""
    edges = np.asarray(_BAND_EDGES)
    assert np.allclose(edges * GRID, np.round(edges * GRID)), "band edges must lie on the grid"
    middle = (np.arange(GRID_SIZE) - GRID_OFFSET + 0.5) / GRID
    band = np.searchsorted(edges, middle, side="right") - 1
    band[(middle < edges[0]) | (middle > edges[-1])] = -1
    return band


class CarPainter:
    """Draws `CarBoxes` into frames of one camera with one palette."""

    def __init__(self, camera: PinholeCamera, palette: Palette) -> None:
        self.camera = camera
        self.slope = shared(camera.column_ray_slope())
        self.max_slope = float(np.max(np.abs(self.slope)))
        # Per row: how far below the lens a point on a vertical plane 1 m ahead appears: a pixel of
        # row r on a face `depth` ahead is at height mount - depth * row_slope[r].
        y = camera.row_y
        cp, sp = np.cos(camera.pitch), np.sin(camera.pitch)
        self.row_slope = shared((sp + y * cp) / (cp - y * sp))
        n = self.slope.size
        self.hit_car, self.hit_in, self.hit_out = np.empty(n, np.int64), np.empty(n), np.empty(n)
        """Per column: the car the kernel painted (-1: none), its entry and exit distances."""
        self.visible, self.visible_colour = np.empty((6, 0)), np.empty(0, dtype=np.int64)
        """The cars in view (`kernels.cull_cars`): forward, left, relative yaw, length, width, height;
        and palette colour. Grown to the number of cars on first use."""
        colors = np.array([palette.array(c) for c in palette.car_colors], dtype=np.float32)
        self.body = colors
        self.glass = palette.array(palette.glass)
        self.tail = palette.array(palette.tail_light)
        self.shadow = palette.array(palette.asphalt) * 0.55
        """Contact shadows are drawn as darkened asphalt (cars drive on the road)."""
        face_lut, drawn_lut = self._face_tables()
        self.face_lut, self.drawn_lut = shared(face_lut), shared(drawn_lut)

    def _face_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """What every grid index looks like on every kind of face, and whether it is drawn at all.

        Row (((colour * 2 + end_face) * 2 + tail) * GRID_SIZE + grid index) of the uint8 colour
        table (.., 3) and of the bool "drawn" table. Colours: float64 shading of the float32 body
        colour, stored as float32, truncated to uint8.
        """
        shade = np.array([_SIDE_FACE_SHADE, _END_FACE_SHADE])[None, :, None, None]
        lit = self.body[:, None, None, :] * shade  # float64 (colours, face, 1, 3)
        tail = np.array([False, True])[None, None, :, None]
        by_band = np.zeros((len(self.body), 2, 2, 6, 3), dtype=np.float32)
        by_band[..., 0, :] = self.shadow
        by_band[..., 1, :] = lit * 0.55
        by_band[..., 2, :] = lit
        by_band[..., 3, :] = np.where(tail, self.tail, lit)
        by_band[..., 4, :] = self.glass * 0.8
        by_band[..., 5, :] = lit * 1.05
        band = _band_of_grid()
        on_car = band >= 0
        colours = np.zeros((len(self.body) * 4, GRID_SIZE, 3), dtype=np.uint8)
        colours[:, on_car] = by_band.reshape(-1, 6, 3)[:, band[on_car]].astype(np.uint8)
        drawn = np.zeros((len(self.body) * 4, GRID_SIZE), dtype=bool)
        drawn[:] = on_car
        return colours.reshape(-1, 3), drawn.reshape(-1)

    def reserve(self, n: int) -> None:
        """Make room in `visible` for `n` cars (the buffers grow to the most cars seen so far)."""
        if self.visible.shape[1] < n:
            self.visible = np.empty((6, n))
            self.visible_colour = np.empty(n, dtype=np.int64)

    def draw(self, frame: np.ndarray, cam_x: float, cam_y: float, cam_yaw: float, cars: CarBoxes) -> None:
        """Paint `cars` into `frame` (height, width, 3) uint8, seen from the camera pose."""
        n = len(cars)
        if n == 0:
            return
        self.reserve(n)
        seen, colour = self.visible, self.visible_colour
        k = kernels.cull_cars(
            cars.x, cars.y, cars.yaw, cars.length, cars.width, cars.height, cars.color, len(self.body),
            cam_x, cam_y, cam_yaw, np.cos(cam_yaw), np.sin(cam_yaw), self.camera.config.max_distance,
            self.max_slope, NEAR_M, seen, colour,
        )  # fmt: skip
        if k == 0:
            return
        fwd, left, yaw_rel, length, width, height = seen[:, :k]
        kernels.paint_cars(
            frame, self.slope, self.row_slope, self.camera.config.mount_height, fwd, left, yaw_rel,
            length, width, height, colour[:k], self.face_lut, self.drawn_lut, NEAR_M, TAIL_LIGHT_INSET_M,
            GRID, GRID_OFFSET, GRID_SIZE, self.hit_car, self.hit_in, self.hit_out,
        )  # fmt: skip
        hit = np.flatnonzero(self.hit_car >= 0)
        if hit.size and self.camera.config.mount_height > height[self.hit_car[hit]].min():
            self.paint_roofs(frame, k)

    def paint_roofs(self, frame: np.ndarray, k: int) -> None:
        """Camera above a roof: fill the roof between the entry and exit planes' top edges, for the
        columns the last car pass hit (`hit_car`, `hit_in`, `hit_out` over the k cars in `visible`)."""
        cam = self.camera
        cols = np.flatnonzero(self.hit_car >= 0)
        car = self.hit_car[cols]
        height = self.visible[5, :k][car]
        body = self.body[self.visible_colour[:k][car]]
        t_in, t_out = self.hit_in[cols], self.hit_out[cols]
        seen = cam.config.mount_height > height
        top_far = cam.row_of(t_out, height)
        top_near = cam.row_of(t_in, height)
        for j in np.nonzero(seen)[0]:
            r0, r1 = (
                int(max(np.ceil(top_far[j] - 0.5), 0)),
                int(min(np.ceil(top_near[j] - 0.5), frame.shape[0])),
            )
            if r1 > r0:
                frame[r0:r1, cols[j]] = body[j].astype(np.uint8)
