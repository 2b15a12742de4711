"""The env's `render()` picture: a large camera view, a top-down minimap and a text HUD.

The camera view is rendered at full size by the same renderer as the observation (not an upscaled
66x200 frame). Text is `sim.text`'s (pygame.freetype, which works without a display); a window is
opened only for render_mode="human". The minimap marks the ego car as the viewer's does (white in a
red border, `TopDownRenderer`).
"""

from __future__ import annotations

import os

import numpy as np

from sim.camera import CameraConfig
from sim.render.frontcam import FrontCameraRenderer
from sim.render.palette import Palette
from sim.render.topdown import TopDownRenderer
from sim.road import RoadConfig
from sim.text import hud_font
from sim.world import World

VIEW_SIZE = (400, 640)
MINIMAP_SIZE = (200, 110)


def _pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


class EnvView:
    """Draws the render frame for a world; owns the pygame window in human mode."""

    def __init__(
        self,
        road: RoadConfig,
        camera: CameraConfig,
        size: tuple[int, int] = VIEW_SIZE,
        minimap_size: tuple[int, int] = MINIMAP_SIZE,
        minimap_metres_per_pixel: float = 0.6,
    ) -> None:
        """`size` and `minimap_size` are (height, width); the camera keeps its field of view and pose."""
        self.road, self.size = road, size
        self.minimap_size, self.minimap_mpp = minimap_size, minimap_metres_per_pixel
        h, w = size
        self.camera_config = CameraConfig(
            width=w,
            height=h,
            hfov_deg=camera.hfov_deg,
            mount_height=camera.mount_height,
            pitch_deg=camera.pitch_deg,
            forward_offset=camera.forward_offset,
        )
        self.set_palette(Palette())
        self._window = None
        self._clock = None

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.camera = FrontCameraRenderer(self.camera_config, self.road, palette)
        self.minimap = TopDownRenderer(
            self.road, palette, *self.minimap_size, metres_per_pixel=self.minimap_mpp
        )

    def draw(self, world: World, lines: list[str]) -> np.ndarray:
        """The composed RGB frame (height, width, 3) uint8."""
        assert world.road is not None
        e = world.ego
        frame = self.camera.render(world.road, e.x, e.y, e.yaw, world.s, world.cars())
        mini = self.minimap.render(world.road, e.x, e.y, e.yaw, world.s, world.cars(), world.ego_box())
        mh, mw = mini.shape[:2]
        frame[8 : 8 + mh, -8 - mw : -8] = mini
        frame[6 : 10 + mh, -10 - mw : -8 - mw] = 20
        self.draw_text(frame, lines, (10, 8))
        return frame

    def draw_text(self, frame: np.ndarray, lines: list[str], at: tuple[int, int], size: int = 18) -> None:
        """Write `lines` onto `frame` in place, white on a translucent dark box."""
        pygame = _pygame()
        font = hud_font(size)
        x, y = at
        for line in lines:
            surf = font.render(line, (255, 255, 255))
            text = pygame.surfarray.pixels3d(surf).swapaxes(0, 1)
            alpha = pygame.surfarray.pixels_alpha(surf).swapaxes(0, 1)[..., None] / 255.0
            h, w = text.shape[:2]
            h, w = min(h, frame.shape[0] - y), min(w, frame.shape[1] - x)
            if h <= 0 or w <= 0:
                break
            region = frame[y : y + h, x : x + w].astype(np.float32) * 0.45
            frame[y : y + h, x : x + w] = (
                region * (1 - alpha[:h, :w]) + text[:h, :w] * alpha[:h, :w]
            ).astype(np.uint8)
            y += h + 2

    def show(self, frame: np.ndarray, fps: float) -> None:
        """Blit `frame` to the window (opened on first use) and keep the window responsive."""
        pygame = _pygame()
        if self._window is None:
            pygame.display.init()
            self._window = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            pygame.display.set_caption("camdrive")
            self._clock = pygame.time.Clock()
        pygame.event.pump()
        pygame.surfarray.blit_array(self._window, frame.swapaxes(0, 1))
        pygame.display.flip()
        assert self._clock is not None
        self._clock.tick(fps)

    def close(self) -> None:
        if self._window is not None:
            _pygame().display.quit()
            self._window = None
