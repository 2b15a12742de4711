"""How a camera frame is drawn: sky, ground, cars, sensor effects, in that order.

1. A precomputed background holds the sky gradient and the haze band below the horizon.
2. Every ground pixel is mapped to road coordinates (s, d) and coloured by one lookup in the
   prefiltered road texture (`ground.RoadTexture`), both in one pass with preallocated buffers
   (`ground.GroundPainter`).
3. Cars are drawn per image column (`cars.CarPainter`).
4. Optional sensor noise, then optional conversion to grayscale.

All of it is whole-array numpy; the cost per frame is a few dozen array operations.
"""

from __future__ import annotations

import numpy as np

from sim.camera import CameraConfig, PinholeCamera
from sim.render.cars import CarBoxes, CarPainter
from sim.render.ground import BlurLevel, GroundPainter, RoadTexture
from sim.render.palette import Palette
from sim.road import Road, RoadConfig

MAX_BLUR_LEVELS = 12
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class FrontCameraRenderer:
    """Renders what a `CameraConfig` camera on the car sees, for one road layout and one palette."""

    def __init__(
        self,
        camera: CameraConfig,
        road: RoadConfig,
        palette: Palette,
        grayscale: bool = False,
        wear_seed: int = 0,
    ) -> None:
        self.camera = PinholeCamera(camera)
        self.palette = palette
        self.grayscale = grayscale
        self.rows, t, self.forward = self.camera.ground_rows()
        self.right = (t[:, None] * self.camera.col_x[None, :]).astype(np.float32)
        levels, level_of_row = self._blur_levels(t, self.forward, palette)
        self.texture = RoadTexture.shared(road, palette, levels, wear_seed=wear_seed)
        self.row_offsets = self.texture.level_offsets(level_of_row)
        self.ground = GroundPainter(self.texture, self.forward, self.right, self.row_offsets)
        self.background = self._background(palette)
        self.cars = CarPainter(self.camera, palette)
        self._noise_rng = np.random.default_rng(wear_seed)
        self._noise = None
        if palette.noise_std > 0:
            h, w = camera.height, camera.width
            self._noise = np.random.default_rng(wear_seed + 1).normal(
                0.0, palette.noise_std, (2 * h, 2 * w, 1)
            )
            self._noise = self._noise.astype(np.float32)

    def _blur_levels(
        self, t: np.ndarray, forward: np.ndarray, pal: Palette
    ) -> tuple[list[BlurLevel], np.ndarray]:
        """Group ground rows by distance; each group gets a texture filtered to its pixel footprint."""
        if forward.size == 0:
            return [BlurLevel(0.0, 0.0, 0.0)], np.zeros(0, dtype=int)
        lateral = t / self.camera.focal
        along = np.abs(np.gradient(forward)) if forward.size > 1 else np.array([lateral[0]])
        log_f = np.log(forward)
        n = min(MAX_BLUR_LEVELS, forward.size)
        edges = np.linspace(log_f.min(), log_f.max() + 1e-9, n + 1)
        level_of_row = np.clip(np.searchsorted(edges, log_f, side="right") - 1, 0, n - 1)
        levels: list[BlurLevel] = []
        used = np.unique(level_of_row)
        remap = np.zeros(n, dtype=int)
        for k, lvl in enumerate(used):
            members = level_of_row == lvl
            z = float(np.exp(np.mean(log_f[members])))
            haze = 1.0 - float(np.exp(-z / pal.visibility_m))
            levels.append(
                BlurLevel(float(np.median(along[members])), float(np.median(lateral[members])), haze)
            )
            remap[lvl] = k
        return levels, remap[level_of_row]

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
            frame = np.clip(frame + self._noise[i : i + h, j : j + w], 0, 255).astype(np.uint8)
        if self.grayscale:
            return (frame @ _GRAY_WEIGHTS + 0.5).astype(np.uint8)[..., None]
        return frame
