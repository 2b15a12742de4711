"""The cars as boxes in world coordinates: what the world hands to the renderers each frame.

The world (`World.cars`, `World.ego_box`) builds them from the traffic's and the ego's state; the
front camera and the top-down view draw them. A type of its own so that the world does not import
the renderer to describe its cars.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


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

    def subset(self, index: np.ndarray) -> CarBoxes:
        """The cars selected by `index` (an index array or boolean mask), in their original order."""
        return CarBoxes(*(getattr(self, f.name)[index] for f in fields(self)))
