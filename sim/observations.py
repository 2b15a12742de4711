"""Observation types: what an agent sees. Chosen by name (`obs_type`) in each env."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from gymnasium import spaces

from sim.camera import CameraConfig
from sim.render.frontcam import FrameJob, FrontCameraRenderer
from sim.render.gauge import paint_speedometer
from sim.render.palette import Palette
from sim.road import RoadConfig
from sim.world import World


class ObservationType(ABC):
    """What every observation type gives the env: its space, a look for the episode, the observation."""

    name: str
    """The `obs_type` option's value that chooses it."""
    space: spaces.Box

    @abstractmethod
    def set_palette(self, palette: Palette | None, seed: int) -> None:
        """Look the next episode in `palette` (domain randomisation, wear drawn from `seed`), or with
        None in the default look."""

    @abstractmethod
    def observe(self, world: World, out: np.ndarray | None = None) -> np.ndarray:
        """The observation of `world`'s current state, written into `out` (of the space's shape) if given."""

    def prepare(self, world: World, out: np.ndarray) -> FrameJob | None:
        """`observe(world, out)` in parts, for a vector env that draws many frames from several threads:
        a camera frame's job, whose `draw` and `finish` complete it; None if the observation is
        already in `out` (one with no compiled frame to draw)."""
        self.observe(world, out)
        return None


class CameraObservation(ObservationType):
    """uint8 frames from the front camera: (height, width, 3) RGB or (height, width, 1) grayscale, with
    the speed bar of `sim.render.gauge` along the bottom edge if `speedometer`."""

    name = "camera"

    def __init__(
        self, camera: CameraConfig, road: RoadConfig, grayscale: bool, speedometer: bool = False
    ) -> None:
        self.camera, self.road, self.grayscale = camera, road, grayscale
        self.speedometer = speedometer
        channels = 1 if grayscale else 3
        self.space = spaces.Box(0, 255, (camera.height, camera.width, channels), dtype=np.uint8)
        self.renderer = FrontCameraRenderer(camera, road, Palette(), grayscale)

    def set_palette(self, palette: Palette | None, seed: int) -> None:
        """Use `palette` (domain randomisation), its paint wear drawn from `seed`, or with None the
        default look (a few milliseconds either way: `FrontCameraRenderer.set_look`)."""
        if palette is None:
            self.renderer.set_look(Palette())
        else:
            self.renderer.set_look(palette, wear_seed=seed)

    def observe(self, world: World, out: np.ndarray | None = None) -> np.ndarray:
        """The frame of `world`'s camera, drawn into `out` (of the space's shape) if given."""
        job = self.prepare(world, out)
        job.draw()
        return job.finish()

    def prepare(self, world: World, out: np.ndarray | None) -> FrameJob:
        """The frame of `world`'s camera as a job that draws it into `out` (a new array if None)."""
        assert world.road is not None
        e = world.ego
        job = self.renderer.prepare(world.road, e.x, e.y, e.yaw, world.s, world.cars(), out)
        if self.speedometer:
            speed = e.speed
            job.then(lambda frame: paint_speedometer(frame, speed))
        return job


class GridObservation(ObservationType):
    """DeepTraffic's occupancy grid, float32 (patches_ahead + patches_behind, 2 * lanes_side + 1).

    Row 0 is the farthest patch ahead; columns run left to right with the ego lane in the middle.
    A cell holds the speed / speed_limit of a car covering it, 1.0 if it is free road, 0.0 beyond
    the road's edge.
    """

    name = "grid"

    def __init__(
        self,
        lanes_side: int,
        patches_ahead: int,
        patches_behind: int,
        patch_length: float,
        speed_limit: float,
    ) -> None:
        self.lanes_side, self.ahead, self.behind = lanes_side, patches_ahead, patches_behind
        self.patch_length, self.speed_limit = patch_length, speed_limit
        shape = (patches_ahead + patches_behind, 2 * lanes_side + 1)
        self.space = spaces.Box(0.0, 1.0, shape, dtype=np.float32)

    def set_palette(self, palette: Palette | None, seed: int) -> None:
        """The grid has no look."""

    def observe(self, world: World, out: np.ndarray | None = None) -> np.ndarray:
        """The grid around the ego car, copied into `out` too if given."""
        assert world.traffic is not None
        grid = world.traffic.occupancy_grid(
            world.s,
            world.ego_lane(),
            self.lanes_side,
            self.ahead,
            self.behind,
            self.patch_length,
            self.speed_limit,
        )
        if out is None:
            return grid
        out[:] = grid
        return out
