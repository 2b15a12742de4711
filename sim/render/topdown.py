"""Bird's-eye view of the same world, centred on the ego car and rotated so it points up.

Used as the minimap of the viewer and of the env's `render()`. The ground uses the same road layers
and Frenet mapping as the front camera (each image row is a line across the road at one forward
distance); cars are filled as rotated rectangles. The ego car is white inside a red border, one
marker for every picture that shows the minimap: the traffic has white and grey cars too.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.boxes import CarBoxes
from sim.collision import box_corners
from sim.render.ground import GroundPainter
from sim.render.palette import Palette
from sim.road import Road, RoadConfig

EGO_RGB = (250, 250, 250)
EGO_BORDER_RGB = (230, 40, 40)
EGO_BORDER_PX = 2
"""Width of the ego's red border, px (whatever the scale, so it stays visible on a small map)."""


class TopDownRenderer:
    """A top-down map at `metres_per_pixel`; the car sits `behind_fraction` up from the bottom."""

    def __init__(
        self,
        road: RoadConfig,
        palette: Palette,
        height: int = 240,
        width: int = 160,
        metres_per_pixel: float = 0.5,
        behind_fraction: float = 0.25,
    ) -> None:
        self.height, self.width, self.mpp = height, width, metres_per_pixel
        self.palette = palette
        car_row = height * (1.0 - behind_fraction)
        self.forward = (car_row - (np.arange(height) + 0.5)) * metres_per_pixel
        cols = (np.arange(width) + 0.5 - width / 2) * metres_per_pixel
        self.right = np.repeat(cols[None, :], height, axis=0).astype(np.float32)
        self.car_row, self.car_col = car_row, width / 2
        along, across = np.full(height, metres_per_pixel), np.full((height, width), metres_per_pixel)
        self.ground = GroundPainter(road, self.forward, self.right, along, across, None, palette)
        self.colors = np.array(palette.car_colors, dtype=np.uint8)

    def render(
        self,
        road: Road,
        x: float,
        y: float,
        yaw: float,
        s: float,
        cars: CarBoxes,
        ego: CarBoxes | None = None,
    ) -> np.ndarray:
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self.ground.draw(road, x, y, yaw, s, frame)
        self._fill_boxes(frame, x, y, yaw, cars, None)
        if ego is not None:
            self._mark_ego(frame, x, y, yaw, ego)
        return frame

    def _mark_ego(self, frame: np.ndarray, x: float, y: float, yaw: float, ego: CarBoxes) -> None:
        """The ego car: a red box EGO_BORDER_PX larger on every side, the white car inside it."""
        grow = 2 * EGO_BORDER_PX * self.mpp
        border = dataclasses.replace(ego, length=ego.length + grow, width=ego.width + grow)
        self._fill_boxes(frame, x, y, yaw, border, np.array(EGO_BORDER_RGB, dtype=np.uint8))
        self._fill_boxes(frame, x, y, yaw, ego, np.array(EGO_RGB, dtype=np.uint8))

    def _fill_boxes(
        self, frame: np.ndarray, x: float, y: float, yaw: float, cars: CarBoxes, color: np.ndarray | None
    ) -> None:
        if len(cars) == 0:
            return
        corners = box_corners(np.stack((cars.x, cars.y, cars.yaw, cars.length, cars.width), axis=1))
        dx, dy = corners[..., 0] - x, corners[..., 1] - y
        fwd = dx * np.cos(yaw) + dy * np.sin(yaw)
        right = dx * np.sin(yaw) - dy * np.cos(yaw)
        rows = self.car_row - fwd / self.mpp
        cols = self.car_col + right / self.mpp
        for k in range(len(cars)):
            r, c = rows[k], cols[k]
            r0, r1 = max(int(r.min()), 0), min(int(np.ceil(r.max())) + 1, self.height)
            c0, c1 = max(int(c.min()), 0), min(int(np.ceil(c.max())) + 1, self.width)
            if r0 >= r1 or c0 >= c1:
                continue
            pr = (np.arange(r0, r1) + 0.5)[:, None]
            pc = (np.arange(c0, c1) + 0.5)[None, :]
            inside = np.ones((r1 - r0, c1 - c0), dtype=bool)
            # Convex polygon: the pixel is on the same side of all four edges.
            sign = np.sign((c[1] - c[0]) * (r[2] - r[1]) - (r[1] - r[0]) * (c[2] - c[1]))
            for i in range(4):
                j = (i + 1) % 4
                edge = (c[j] - c[i]) * (pr - r[i]) - (r[j] - r[i]) * (pc - c[i])
                inside &= edge * sign >= 0
            fill = color if color is not None else self.colors[int(cars.color[k]) % len(self.colors)]
            frame[r0:r1, c0:c1][inside] = fill
