"""The speedometer: a bar along a frame's bottom edge whose length shows the car's speed.

A camera shows its car's speed only through how fast the road moves between frames, and a network
that sees a few frames seconds apart can hardly read it; a driver reads it off the dashboard. With
the env option `speedometer`, every camera observation carries one (as CarRacing-v3's frames carry
its speed bar): the bottom `GAUGE_ROWS` rows are white from the left edge for speed / `FULL_SCALE_MS`
of the width and black after it, painted last, so noise, the look and grayscale never blur it.
"""

from __future__ import annotations

import numpy as np

FULL_SCALE_MS = 40.0
"""The speed (m/s, 89.5 mph) that fills the whole bar: above every speed limit the envs allow by
default, so that the bar never saturates in normal driving (at 100 pixels, 0.4 m/s per pixel)."""
GAUGE_ROWS = 2
"""Height of the bar in pixels: two rows, so that a halved (33-row) frame still shows it as a stripe
that an 8x8 stride-4 convolution reads."""


def paint_speedometer(frame: np.ndarray, speed: float) -> np.ndarray:
    """Paint the speed bar (speed in m/s) over the bottom rows of `frame` (height, width, channels)
    uint8, in place; returns `frame`. The bar's length is rounded to the nearest pixel."""
    width = frame.shape[1]
    filled = int(round(min(max(speed / FULL_SCALE_MS, 0.0), 1.0) * width))
    bottom = frame[-GAUGE_ROWS:]
    bottom[:, :filled] = 255
    bottom[:, filled:] = 0
    return frame
