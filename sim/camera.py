"""The front camera: a pinhole camera mounted on the car, looking forward and slightly down.

Camera frame used throughout the renderer: `forward` is horizontal along the car's heading, `right` is
horizontal to the right, and heights are measured up from the ground. The image has square pixels;
row 0 is the top. `pitch` tilts the optical axis down, which moves the horizon up the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.validation import check_range


@dataclass(frozen=True)
class CameraConfig:
    """Where the camera sits and what it sees."""

    width: int = 200
    """Image width in pixels (PilotNet uses 200)."""
    height: int = 66
    """Image height in pixels (PilotNet uses 66)."""
    hfov_deg: float = 80.0
    """Horizontal field of view, degrees."""
    mount_height: float = 1.3
    """Height of the lens above the ground, metres (below the roofs of other cars by default)."""
    pitch_deg: float = 6.0
    """Downward tilt of the optical axis, degrees."""
    forward_offset: float = 0.8
    """Distance of the lens ahead of the car's centre, metres (a windscreen camera)."""
    max_distance: float = 300.0
    """Ground further than this is drawn as haze."""

    def validate(self) -> CameraConfig:
        check_range("camera_width", self.width, 16, 4096, integer=True)
        check_range("camera_height", self.height, 16, 4096, integer=True)
        check_range("camera_hfov_deg", self.hfov_deg, 20.0, 150.0)
        check_range("camera_mount_height", self.mount_height, 0.5, 5.0)
        check_range("camera_pitch_deg", self.pitch_deg, -10.0, 45.0)
        check_range("camera_forward_offset", self.forward_offset, -5.0, 5.0)
        check_range("camera_max_distance", self.max_distance, 20.0, 2000.0)
        return self


class PinholeCamera:
    """Projection maths for one `CameraConfig`; everything per-row and per-column is precomputed."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config.validate()
        self.focal = (config.width / 2) / math.tan(math.radians(config.hfov_deg) / 2)
        self.cx = config.width / 2
        self.cy = config.height / 2
        self.pitch = math.radians(config.pitch_deg)
        self._cos_p, self._sin_p = math.cos(self.pitch), math.sin(self.pitch)
        # Normalised image coordinates of pixel centres.
        self.col_x = ((np.arange(config.width) + 0.5 - self.cx) / self.focal).astype(np.float32)
        self.row_y = (np.arange(config.height) + 0.5 - self.cy) / self.focal

    @property
    def horizon_row(self) -> float:
        """Image row (fractional) of the horizon."""
        return self.cy - self.focal * math.tan(self.pitch)

    def ground_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every image row that sees the ground: (row indices, ray scale t, forward distance).

        A pixel ray hits the ground at t times its (forward-normalised) direction; its forward
        distance is `forward` and its right offset is t * col_x. Rows at or above the horizon and rows
        whose ground lies beyond `max_distance` are left out (they are sky or haze).
        """
        down = self._sin_p + self.row_y * self._cos_p
        fwd = self._cos_p - self.row_y * self._sin_p
        with np.errstate(divide="ignore"):
            t = np.where(down > 1e-6, self.config.mount_height / np.maximum(down, 1e-6), np.inf)
        forward = t * fwd
        rows = np.nonzero(np.isfinite(t) & (forward <= self.config.max_distance))[0]
        return rows, t[rows], forward[rows]

    def row_of(self, forward: np.ndarray, height: np.ndarray | float) -> np.ndarray:
        """Image row (fractional) of points at horizontal `forward` distance and `height` above ground."""
        drop = self.config.mount_height - np.asarray(height)
        fwd = forward * self._cos_p + drop * self._sin_p
        down = -forward * self._sin_p + drop * self._cos_p
        return self.cy + self.focal * down / np.maximum(fwd, 1e-3)

    def column_ray_slope(self) -> np.ndarray:
        """right/forward slope of the horizontal ray through each column (taken at the optical centre row).

        Pitch makes vertical edges converge slightly; at the default 6 degrees the slope changes by
        under 1 % across the image, which the car renderer ignores.
        """
        return (self.col_x / self._cos_p).astype(np.float64)
