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

from collections.abc import Callable
from typing import Any

import numpy as np

from sim.boxes import CarBoxes
from sim.camera import CameraConfig, PinholeCamera
from sim.render import kernels
from sim.render.cars import GRID, GRID_OFFSET, GRID_SIZE, NEAR_M, TAIL_LIGHT_INSET_M, CarPainter
from sim.render.ground import TEXEL_D_M, TEXEL_S_M, GroundPainter, road_window
from sim.render.palette import Palette
from sim.render.shared_arrays import shared
from sim.road import Road, RoadConfig

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_NO_CARS = CarBoxes.empty()
_NO_NOISE = np.zeros((0, 0, 1), dtype=np.float32)
NOISE_OFFSETS_AHEAD = 64
"""Frames whose sensor-noise offsets `FrontCameraRenderer.noise_offset` draws in one generator call."""


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
        self._first_row = int(self.rows[0]) if self.rows.size else 0
        self.right = shared((t[:, None] * self.camera.col_x[None, :]).astype(np.float32))
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
        """Draw from now on with `palette`, paint worn and sensor noise drawn from `wear_seed`.

        The look already in use (every reset of an env with the default look) only restarts the
        sensor noise's generator: its tables stay, which saves rebuilding them at every reset.
        """
        look = (palette, wear_seed)
        if look == (self.palette, self._wear_seed) and look == self.ground.look_key:
            self._restart_noise(wear_seed)
            return
        self.ground.set_look(palette, wear_seed)
        self._set_sky_cars_and_noise(palette, wear_seed)

    def _set_sky_cars_and_noise(self, palette: Palette, wear_seed: int) -> None:
        """The parts of a look other than the ground's: sky, cars' colours, sensor noise."""
        self.palette, self._wear_seed = palette, wear_seed
        self.background = shared(self._background(palette))
        self.cars = CarPainter(self.camera, palette)
        self._restart_noise(wear_seed)
        self._noise = None
        if palette.noise_std > 0:
            h, w = self.camera.config.height, self.camera.config.width
            noise = np.random.default_rng(wear_seed + 1).normal(0.0, palette.noise_std, (2 * h, 2 * w, 1))
            # One value per pixel, stored once per channel: `kernels.add_noise` then reads each row
            # of it as it is, instead of spreading it over the channels in every frame.
            self._noise = np.repeat(noise.astype(np.float32), 3, axis=2)

    def _restart_noise(self, wear_seed: int) -> None:
        """Start the sensor noise's offsets over: from now on they are drawn from a generator seeded
        with `wear_seed`."""
        self._noise_rng = np.random.default_rng(wear_seed)
        self._noise_offsets: list[list[int]] = []
        """Offsets drawn ahead, the next one last (`noise_offset`)."""

    def noise_offset(self) -> tuple[int, int]:
        """Where the next frame's sensor noise starts in the stored noise: (row, column), uniform over
        the frame's height and width.

        They are the numbers two `integers` calls per frame (row, then column) would give, drawn
        NOISE_OFFSETS_AHEAD frames at a time: the two calls took 2.2 us a frame, this takes 0.27. An
        array of bounds (height, width) draws each value as its own call does, in order, leaving the
        generator in the same state (tests/test_camera.py).
        """
        if not self._noise_offsets:
            h, w = self.background.shape[:2]
            ahead = self._noise_rng.integers(0, (h, w), size=(NOISE_OFFSETS_AHEAD, 2))
            self._noise_offsets = ahead.tolist()[::-1]
        i, j = self._noise_offsets.pop()
        return i, j

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
        self,
        road: Road,
        x: float,
        y: float,
        yaw: float,
        s: float,
        cars: CarBoxes | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Frame seen by a camera on a car whose centre is at (x, y) facing `yaw`, at road arc length s.

        Returns uint8 (height, width, 3), or (height, width, 1) in grayscale: drawn into `out` if it is
        given (an array of that shape, which is then returned), else into a new array. It is
        `prepare`, then the job's `draw` and `finish`.
        """
        job = self.prepare(road, x, y, yaw, s, cars, out)
        job.draw()
        return job.finish()

    def prepare(
        self,
        road: Road,
        x: float,
        y: float,
        yaw: float,
        s: float,
        cars: CarBoxes | None = None,
        out: np.ndarray | None = None,
    ) -> FrameJob:
        """The Python part of `render` (same arguments): the frame's compiled call with its arguments,
        as a job to `draw` and then `finish`. A renderer has one set of scratch arrays: finish a job
        before preparing its next one."""
        off = self.camera.config.forward_offset
        cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
        cx, cy = x + off * cos_yaw, y + off * sin_yaw
        h, w = self.background.shape[:2]
        frame = np.empty((h, w, 3), np.uint8) if self.grayscale or out is None else out
        ground, painter = self.ground, self.cars
        i0 = i1 = 0
        if self.rows.size:
            i0, i1 = road_window(road, s + off, ground.forward)
        cars = _NO_CARS if cars is None else cars
        painter.reserve(len(cars))
        noise, noise_i, noise_j = _NO_NOISE, 0, 0
        if self._noise is not None:
            noise = self._noise
            noise_i, noise_j = self.noise_offset()
        args = (
            frame, self.background, self._first_row, road.x, road.y, road.heading, road.s, i0, i1, cx, cy,
            yaw, cos_yaw, sin_yaw, ground.forward, ground.right, ground.layers.d_min, 1.0 / TEXEL_D_M,
            1.0 / TEXEL_S_M, ground.across_level, ground.across.first, ground.across.entry_layer,
            ground.across.entry_weight,
            ground.along_level, ground.look.table, ground.keep, ground.add, cars.x, cars.y, cars.yaw,
            cars.length, cars.width, cars.height, cars.color, len(painter.body),
            self.camera.config.max_distance, painter.max_slope, NEAR_M, painter.visible,
            painter.visible_colour, painter.slope, painter.row_slope, self.camera.config.mount_height,
            painter.face_lut, painter.drawn_lut, TAIL_LIGHT_INSET_M, GRID, GRID_OFFSET, GRID_SIZE,
            painter.hit_car, painter.hit_in, painter.hit_out, noise, noise_i, noise_j,
        )  # fmt: skip
        return FrameJob(self, frame, out, args, (noise, noise_i, noise_j))


class FrameJob:
    """One camera frame, its Python part done (`FrontCameraRenderer.prepare`): `draw` is one compiled
    call that releases the interpreter (`kernels.draw_camera_frame`), `finish` the rest.

    The split lets a vector env prepare all its frames in one thread and then draw them from several:
    the drawing threads then take turns on the interpreter only between whole frames, not in the
    middle of each (`sim.envs.blocks.EnvBlock`). `finish` paints the roofs seen from above (the
    noise, which goes on last, after them), converts to grayscale and applies what `then` added (an
    overlay such as the speedometer); it returns the frame.
    """

    __slots__ = ("_renderer", "_frame", "_out", "_args", "_noise", "_cars_in_view", "_roofs", "_then")

    def __init__(self, renderer: FrontCameraRenderer, frame: np.ndarray, out: np.ndarray | None,
                 args: tuple[Any, ...], noise: tuple[np.ndarray, int, int]) -> None:  # fmt: skip
        self._renderer, self._frame, self._out, self._args = renderer, frame, out, args
        self._noise = noise
        """The sensor noise and where it starts (empty: none), for `finish` when a roof deferred it."""
        self._cars_in_view, self._roofs = 0, False
        self._then: Callable[[np.ndarray], object] | None = None

    def then(self, overlay: Callable[[np.ndarray], object]) -> None:
        """Have `finish` call `overlay(frame)` on the finished frame (the observation's last touch, after
        grayscale; its return value is ignored). One overlay per job."""
        assert self._then is None, "a FrameJob takes one overlay"
        self._then = overlay

    def draw(self) -> None:
        """Draw the frame: sky, ground, cars and noise, unless a roof is seen from above."""
        self._cars_in_view, self._roofs = kernels.draw_camera_frame(*self._args)

    def finish(self) -> np.ndarray:
        """What `draw` left (roofs, then the noise; grayscale; the overlay); the frame, in `out` if it
        was given."""
        renderer, frame, out = self._renderer, self._frame, self._out
        if self._roofs:
            renderer.cars.paint_roofs(frame, self._cars_in_view)
            noise, noise_i, noise_j = self._noise
            if noise.size:
                kernels.add_noise(frame, noise, noise_i, noise_j)
        result = frame
        if renderer.grayscale:
            result = (frame @ _GRAY_WEIGHTS + 0.5).astype(np.uint8)[..., None]
        if out is not None and result is not out:
            out[:] = result
            result = out
        if self._then is not None:
            self._then(result)
        return result
