"""Colours and lighting of the world, and their domain randomisation.

A `Palette` is everything about how the world *looks* (not where things are). The default palette is
a clear day; `Palette.randomised(rng, strength)` draws a new look from a seed so that a policy trained
on one look can be tested on others (colours, lighting, marking wear, sensor noise, haze).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

Color = tuple[int, int, int]


def _default_car_colors() -> tuple[Color, ...]:
    return (
        (200, 40, 40),
        (40, 80, 190),
        (230, 230, 225),
        (35, 35, 40),
        (150, 150, 155),
        (220, 180, 40),
        (40, 140, 70),
        (120, 60, 140),
    )


@dataclass(frozen=True)
class Palette:
    """How the world looks. Colours are sRGB 0..255."""

    sky_top: Color = (70, 120, 200)
    sky_horizon: Color = (175, 200, 225)
    grass: Color = (70, 130, 50)
    grass_alt: Color = (80, 145, 58)
    """Grass alternates with this colour every `band_length` metres: a distance and speed cue."""
    shoulder: Color = (120, 115, 105)
    asphalt: Color = (82, 82, 88)
    asphalt_alt: Color = (88, 88, 94)
    edge_line: Color = (235, 235, 230)
    centre_edge_line: Color = (230, 190, 40)
    """The left edge line is yellow (as on divided highways), so left and right edges differ."""
    lane_line: Color = (235, 235, 230)
    car_colors: tuple[Color, ...] = field(default_factory=_default_car_colors)
    glass: Color = (40, 50, 60)
    tail_light: Color = (200, 20, 20)
    light: float = 1.0
    """Overall brightness multiplier (dusk < 1 < glare)."""
    visibility_m: float = 600.0
    """Haze: contrast halves every visibility_m * ln 2 metres."""
    marking_wear: float = 0.0
    """Fraction of lane-line dashes (and of edge line length) worn away, 0..1."""
    noise_std: float = 0.0
    """Standard deviation of per-pixel sensor noise, in 0..255 units."""
    band_length: float = 12.0
    """Length of the alternating grass/asphalt bands, metres."""

    @classmethod
    def randomised(cls, rng: np.random.Generator, strength: float = 1.0) -> Palette:
        """A new look drawn from `rng`; strength 0 returns the default, 1 a wide variety."""
        base = cls()
        if strength <= 0:
            return base

        def jitter(c: Color, amount: float) -> Color:
            shift = rng.normal(0.0, amount * strength, 3) + rng.normal(0.0, amount * strength)
            return tuple(int(v) for v in np.clip(np.asarray(c) + shift, 0, 255))  # type: ignore[return-value]

        grass = jitter(base.grass, 25)
        asphalt = jitter(base.asphalt, 18)
        return replace(
            base,
            sky_top=jitter(base.sky_top, 30),
            sky_horizon=jitter(base.sky_horizon, 25),
            grass=grass,
            grass_alt=tuple(int(min(255, v * 1.1 + 4)) for v in grass),  # type: ignore[arg-type]
            shoulder=jitter(base.shoulder, 20),
            asphalt=asphalt,
            asphalt_alt=tuple(int(min(255, v + 6)) for v in asphalt),  # type: ignore[arg-type]
            edge_line=jitter(base.edge_line, 15),
            lane_line=jitter(base.lane_line, 15),
            light=float(np.clip(rng.normal(1.0, 0.2 * strength), 0.55, 1.35)),
            visibility_m=float(rng.uniform(600.0 - 450.0 * strength, 600.0)),
            marking_wear=float(rng.uniform(0.0, 0.5 * strength)),
            noise_std=float(rng.uniform(0.0, 6.0 * strength)),
        )

    def array(self, color: Color) -> np.ndarray:
        """`color` with the lighting applied, as float32 RGB."""
        return np.clip(np.asarray(color, dtype=np.float32) * self.light, 0, 255)
