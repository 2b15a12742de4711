"""How a camera frame is drawn: sky, ground, cars, sensor effects, in that order.

1. A precomputed background holds the sky gradient and the haze band below the horizon.
2. Every ground pixel is mapped to road coordinates (s, d) and coloured from the road's layers,
   box-filtered to the pixel's footprint on the road (`ground.GroundPainter`, one compiled pass).
3. Cars are drawn per image column (`cars.CarPainter`).
4. Optional sensor noise, then optional conversion to grayscale.

The look (a `Palette` and the paint wear drawn from a seed) can be changed with `set_look` in a few
milliseconds: domain randomisation draws a new one at every reset.
"""

from __future__ import annotations

import numpy as np

from sim.camera import CameraConfig, PinholeCamera
from sim.render import kernels
from sim.render.cars import CarBoxes, CarPainter
from sim.render.ground import GroundPainter
from sim.render.palette import Palette
from sim.road import Road, RoadConfig

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class FrontCameraRenderer:
    """Renders what a `CameraConfig` camera on the car sees, for one road layout, in one look."""

    def __init__(
        self,
        camera: CameraConfig,
        road: RoadConfig,
        palette: Palette,
        grayscale: bool = False,
        wear_seed: int = 0,
    ) -> None:
        self.camera = PinholeCamera(camera)
        self.grayscale = grayscale
        self.rows, t, self.forward = self.camera.ground_rows()
        self.right = (t[:, None] * self.camera.col_x[None, :]).astype(np.float32)
        # A pixel's footprint on the road: `along` lengthwise; crosswise its own width, plus, off
        # centre, how far its lengthwise extent reaches sideways (a far pixel is a long wedge).
        along = np.abs(np.gradient(self.forward)) if self.forward.size > 1 else t / self.camera.focal
        lengthwise = np.abs(self.right) * (along / self.forward)[:, None]
        across = (t / self.camera.focal)[:, None] + lengthwise
        self.ground = GroundPainter(
            road, self.forward, self.right, along, across, self.forward, palette, wear_seed
        )
        self._set_sky_cars_and_noise(palette, wear_seed)

    def set_look(self, palette: Palette, wear_seed: int = 0) -> None:
        """Draw from now on with `palette`, paint worn and sensor noise drawn from `wear_seed`."""
        self.ground.set_look(palette, wear_seed)
        self._set_sky_cars_and_noise(palette, wear_seed)

    def _set_sky_cars_and_noise(self, palette: Palette, wear_seed: int) -> None:
        """The parts of a look other than the ground's: sky, cars' colours, sensor noise."""
        self.palette = palette
        self.background = self._background(palette)
        self.cars = CarPainter(self.camera, palette)
        self._noise_rng = np.random.default_rng(wear_seed)
        self._noise = None
        if palette.noise_std > 0:
            h, w = self.camera.config.height, self.camera.config.width
            noise = np.random.default_rng(wear_seed + 1).normal(0.0, palette.noise_std, (2 * h, 2 * w, 1))
            self._noise = noise.astype(np.float32)

    def _background(self, pal: Palette) -> np.ndarray:
        """Sky gradient above the horizon and haze colour below it (where no ground row is drawn)."""
        h, w = self.camera.config.height, self.camera.config.width
        horizon = self.camera.horizon_row
        rows = np.arange(h) + 0.5
        frac = np.clip(rows / max(horizon, 1.0), 0.0, 1.0)[:, None] ** 0.6
        sky = pal.array(pal.sky_top) * (1 - frac) + pal.array(pal.sky_horizon) * frac
        img = np.repeat(sky[:, None, :], w, axis=1)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def render(
        self, road: Road, x: float, y: float, yaw: float, s: float, cars: CarBoxes | None = None
    ) -> np.ndarray:
        """Frame seen by a camera on a car whose centre is at (x, y) facing `yaw`, at road arc length s.

        Returns uint8 (height, width, 3), or (height, width, 1) in grayscale.
        """
        off = self.camera.config.forward_offset
        cx, cy = x + off * np.cos(yaw), y + off * np.sin(yaw)
        frame = self.background.copy()
        if self.rows.size:
            r0, r1 = self.rows[0], self.rows[-1] + 1
            self.ground.draw(road, cx, cy, yaw, s + off, frame[r0:r1])
        if cars is not None:
            self.cars.draw(frame, cx, cy, yaw, cars)
        if self._noise is not None:
            h, w = frame.shape[:2]
            i, j = self._noise_rng.integers(0, h), self._noise_rng.integers(0, w)
            kernels.add_noise(frame, self._noise, int(i), int(j))
        if self.grayscale:
            return (frame @ _GRAY_WEIGHTS + 0.5).astype(np.uint8)[..., None]
        return frame
