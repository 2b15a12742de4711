"""Road geometry: a seeded, endless, smoothly curving multi-lane road.

The road is described by its curvature as a function of arc length, kappa(s), which is piecewise
linear: straights (kappa = 0), constant-radius arcs, and clothoid transitions between them. A piecewise
linear curvature gives a continuous heading and continuous curvature, which is how real highways are
laid out and what keeps steering smooth. The centreline is integrated from kappa(s) on a fixed grid
and extended lazily as the car drives, so the road never ends.

Coordinates: world x east, y north, heading counter-clockwise from +x, in metres and radians.
Frenet coordinates (s, d): s is the arc length along the centreline (the middle of the carriageway),
d is the signed lateral distance, positive to the LEFT of the direction of travel. Lanes are numbered
0 .. lanes-1 from left to right, as they appear in the camera image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numba
import numpy as np

from sim import seeding
from sim.validation import check_range

SAMPLE_SPACING_M = 0.5
"""Grid step of the sampled centreline: fine enough that linear interpolation error is < 1 mm."""

_Triple = tuple[float, float, float]
"""Three floats: a stretch's start (heading, x, y), or its running sums (`_integrate_centreline`)."""

_EXTEND_CHUNK_M = 1000.0
"""How far past the farthest point asked for a new stretch of road is planned (`Road.ensure_length`)."""

_SAMPLE_AHEAD_M = 300.0
"""How far past the farthest point asked for the planned stretch is sampled at once (`Road._sample_to`).

Why not the whole stretch: a road is built at every reset, and sampling its first 3 km (6,000 samples:
their curvature, heading and position) took most of a new road's 0.17 ms, where an episode that ends
early (a learner's first episodes, random actions) reads a few hundred metres of it."""


@dataclass(frozen=True)
class RoadConfig:
    """Shape of the road. Every field is validated; see `validate`."""

    lanes: int = 3
    """Number of lanes, 1 to 7."""
    lane_width: float = 3.6
    """Lane width in metres, 3.0 to 4.5 (highways use 3.5 to 3.75)."""
    shoulder_width: float = 2.0
    """Paved shoulder outside each edge line, metres."""
    design_speed: float = 30.0
    """Speed (m/s) at which every curve can be driven within `max_lateral_accel`."""
    max_lateral_accel: float = 1.5
    """Lateral acceleration (m/s^2) of the sharpest curve at `design_speed`; bounds the curvature."""
    curviness: float = 0.7
    """0 gives a straight road; 1 gives frequent curves up to the curvature bound."""

    def validate(self) -> RoadConfig:
        check_range("lanes", self.lanes, 1, 7, integer=True)
        check_range("lane_width", self.lane_width, 3.0, 4.5)
        check_range("shoulder_width", self.shoulder_width, 0.0, 5.0)
        check_range("design_speed", self.design_speed, 5.0, 60.0)
        check_range("max_lateral_accel", self.max_lateral_accel, 0.1, 5.0)
        check_range("curviness", self.curviness, 0.0, 1.0)
        return self

    @property
    def max_curvature(self) -> float:
        """Largest |kappa| (1/m) the generator will produce."""
        return self.max_lateral_accel / self.design_speed**2

    @property
    def half_width(self) -> float:
        """Distance from the centreline to the outer edge line, metres."""
        return 0.5 * self.lanes * self.lane_width


class Road:
    """An endless road generated from a seed; the same seed always gives the same road."""

    def __init__(self, config: RoadConfig, seed: int) -> None:
        self.config = config.validate()
        self._rng = np.random.default_rng(seed)
        # Curvature knots (s, kappa); kappa is linear between knots.
        self._knot_s: list[float] = [0.0, 80.0]
        self._knot_k: list[float] = [0.0, 0.0]
        self.s = np.zeros(1)
        self.x = np.zeros(1)
        self.y = np.zeros(1)
        self.heading = np.zeros(1)
        self.kappa = np.zeros(1)
        self._planned_samples = 1
        """Samples the road has once its planned stretch is all sampled (`ensure_length`)."""
        self._stretch_start: _Triple = (0.0, 0.0, 0.0)
        """Heading, x and y of the sample before the planned stretch: its running sums start there."""
        self._sums: _Triple = (0.0, 0.0, 0.0)
        """The stretch's running sums (heading turned, metres east, metres north) at its last sample."""
        self._plan(2 * _EXTEND_CHUNK_M)
        self._sample_to(self._samples_for(_SAMPLE_AHEAD_M))
        self.lane_centres: list[float] = [float(d) for d in self.lane_centre(np.arange(self.config.lanes))]
        """`lane_centre` of every lane as plain floats, for code that looks them up several times a step."""

    # ----------------------------------------------------------------------------------- generation
    @property
    def length(self) -> float:
        """Arc length generated so far; `ensure_length` extends it."""
        return float(self.s[-1])

    def ensure_length(self, s_needed: float) -> None:
        """Extend the road so that it reaches at least `s_needed` metres.

        The road is planned in stretches and sampled lazily within them. A point past the planned
        stretch plans a new one, to `_EXTEND_CHUNK_M` past that point (the first reaches 3 km); a
        point inside it has the stretch sampled to `_SAMPLE_AHEAD_M` past it. Each stretch integrates
        its headings and positions as running sums from the sample before it (`_integrate_centreline`),
        continued, not restarted, from piece to piece: the samples do not depend on how a stretch was
        sampled, only on where the stretches start, which is where they started when every stretch
        was sampled whole at once.
        """
        if s_needed <= self.length:
            return
        if s_needed > (self._planned_samples - 1) * SAMPLE_SPACING_M:
            self._sample_to(self._planned_samples)
            self._plan(s_needed)
        self._sample_to(min(self._samples_for(s_needed + _SAMPLE_AHEAD_M), self._planned_samples))

    @staticmethod
    def _samples_for(s: float) -> int:
        """How many samples (from s = 0) reach `s`."""
        return int(np.ceil(s / SAMPLE_SPACING_M)) + 1

    def _plan(self, s_needed: float) -> None:
        """Plan a new stretch, from the last sample to `_EXTEND_CHUNK_M` past `s_needed`."""
        self._planned_samples = self._samples_for(s_needed + _EXTEND_CHUNK_M)
        self._stretch_start = (float(self.heading[-1]), float(self.x[-1]), float(self.y[-1]))
        self._sums = (0.0, 0.0, 0.0)

    def _sample_to(self, count: int) -> None:
        """Sample the planned stretch up to `count` samples in all; the curves are drawn as far as
        needed (the generator draws them in the same order however far at a time)."""
        n_old = self.s.size
        if count <= n_old:
            return
        s_new = np.arange(n_old, count) * SAMPLE_SPACING_M
        while self._knot_s[-1] < s_new[-1] + 10.0:
            self._add_curve()
        k_new = np.interp(s_new, self._knot_s, self._knot_k)
        heading, x, y, self._sums = _integrate_centreline(
            k_new, float(self.kappa[-1]), self._stretch_start, self._sums
        )
        self.s = np.concatenate((self.s, s_new))
        self.kappa = np.concatenate((self.kappa, k_new))
        self.heading = np.concatenate((self.heading, heading))
        self.x = np.concatenate((self.x, x))
        self.y = np.concatenate((self.y, y))

    def _add_curve(self) -> None:
        """Append one element: a transition (clothoid) to a new curvature, then a constant stretch."""
        cfg, rng = self.config, self._rng
        k_max = cfg.max_curvature
        if rng.random() < 0.35 + 0.6 * (1.0 - cfg.curviness):
            k_target = 0.0
        else:
            magnitude = k_max * seeding.uniform(rng, 0.35, 1.0) * cfg.curviness
            # The draw of rng.choice((-1.0, 1.0)) (numpy's choice takes integers(0, 2) itself), at a
            # fifth of its cost: roads are built at every reset.
            k_target = magnitude * (-1.0, 1.0)[rng.integers(0, 2)]
        k_now = self._knot_k[-1]
        # Transition length: curvature changes at most k_max per 60 m, so steering ramps gently.
        ramp = max(40.0, 60.0 * abs(k_target - k_now) / max(k_max, 1e-9)) * seeding.uniform(rng, 1.0, 1.6)
        hold = seeding.uniform(rng, 60.0, 250.0)
        s0 = self._knot_s[-1]
        self._knot_s += [s0 + ramp, s0 + ramp + hold]
        self._knot_k += [k_target, k_target]

    # -------------------------------------------------------------------------------------- queries
    @overload
    def lane_centre(self, lane: int) -> float: ...
    @overload
    def lane_centre(self, lane: np.ndarray) -> np.ndarray: ...
    def lane_centre(self, lane: int | np.ndarray) -> np.ndarray | float:
        """Lateral offset d of the centre of `lane` (0 = leftmost): a float (numpy's float64) for a
        lane, an array for an array of lanes."""
        w = self.config.lane_width
        return (0.5 * (self.config.lanes - 1) - np.asarray(lane)) * w

    def lane_index(self, d: float | np.ndarray) -> np.ndarray | int:
        """Lane that lateral offset `d` lies in, clipped to the road's lanes."""
        cfg = self.config
        idx = np.floor((cfg.half_width - np.asarray(d)) / cfg.lane_width)
        out = np.clip(idx, 0, cfg.lanes - 1).astype(int)
        return int(out) if out.ndim == 0 else out

    def pose(self, s: float | np.ndarray, d: float | np.ndarray = 0.0):
        """World (x, y, heading) of Frenet point (s, d); heading is the road's direction there."""
        s = np.asarray(s, dtype=float)
        self.ensure_length(float(s.max()) + 1.0)
        heading = np.interp(s, self.s, self.heading)
        x = np.interp(s, self.s, self.x) - np.sin(heading) * d
        y = np.interp(s, self.s, self.y) + np.cos(heading) * d
        return x, y, heading

    def curvature(self, s: float | np.ndarray) -> np.ndarray:
        """Curvature kappa (1/m, positive = turning left) at arc length(s) `s`."""
        s = np.asarray(s, dtype=float)
        self.ensure_length(float(s.max()) + 1.0)
        return np.interp(s, self.s, self.kappa)

    def curvature_at(self, s: float) -> float:
        """`curvature` at one arc length, as a float: `np.interp` on the sample grid bit for bit
        (`_interp_grid`, compiled), without numpy's per-call overhead: the lane controller
        (`sim.lane_control`) asks every step."""
        s = float(s)
        self.ensure_length(s + 1.0)
        return _interp_grid(s, self.s, self.kappa)

    def curvature_ahead(self, s: float, distances: np.ndarray) -> np.ndarray:
        """Curvature at `distances` metres ahead of `s` (what a driver sees coming)."""
        return self.curvature(s + np.asarray(distances, dtype=float))

    def poses(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`pose` of many points at once (1-D float arrays), compiled (`_poses`): the traffic's
        boxes are placed every step. The same numbers as `pose`, bit for bit."""
        out = np.empty((3, s.size))
        s_max = _poses(s, d, self.s, self.x, self.y, self.heading, out)
        if s_max + 1.0 > self.length:
            self.ensure_length(s_max + 1.0)
            _poses(s, d, self.s, self.x, self.y, self.heading, out)
        return out[0], out[1], out[2]

    def frenet(self, x: float, y: float, s_hint: float | None = None) -> tuple[float, float]:
        """Project world point (x, y) onto the road: returns (s, d).

        With `s_hint` (the previous s of a moving car) only a window around it is searched, which
        keeps this O(1) per call; without it the whole generated road is searched. The nearest
        sample, then the orthogonal projection on the segment before or after it, whichever is
        nearer (`_project`, compiled: this runs every step).
        """
        lo, hi = self.search_window(s_hint)
        return _project(self.s, self.x, self.y, self.heading, lo, hi, float(x), float(y), 2.0)

    def search_window(self, s_hint: float | None) -> tuple[int, int]:
        """The samples `frenet` searches: the whole road, or a window around `s_hint` (the road
        extended past it)."""
        if s_hint is None:
            self._sample_to(self._planned_samples)  # the whole road planned so far, as it always was
            return 0, self.s.size
        self.ensure_length(s_hint + 150.0)
        i = int(s_hint / SAMPLE_SPACING_M)
        return max(i - 60, 0), min(i + 120, self.s.size)

    def heading_at(self, s: float) -> float:
        """Road direction (rad) at arc length `s`: `np.interp` on the sample grid, bit for bit
        (`_interp_grid`, compiled: it runs several times per step)."""
        return _interp_grid(float(s), self.s, self.heading)


@numba.njit(cache=True, nogil=True)
def _integrate_centreline(
    kappa: np.ndarray, kappa_before: float, start: _Triple, sums: _Triple
) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Triple]:
    """Heading, x and y of the samples of curvature `kappa` that follow a sample of curvature
    `kappa_before`, SAMPLE_SPACING_M apart, in a stretch that starts after a sample at `start`
    (heading, x, y) and has so far turned, run east and run north `sums` (radians, metres, metres);
    then those three running sums at the last sample, for the stretch's next piece.

    Exact integration of a piecewise linear curvature on each step: trapezoid for heading, midpoint
    heading for position (second-order accurate, error << 1 mm at 0.5 m steps). Each running sum is
    added to the stretch's start, as numpy's `before + np.cumsum(steps)` does over the whole stretch,
    with libm's sin and cos (numpy's here): the same numbers as those formulas in numpy
    (tests/test_road.py), in about a third of the time (roads are built at every reset).
    """
    n = kappa.size
    heading, x, y = np.empty(n), np.empty(n), np.empty(n)
    heading_before, x_before, y_before = start
    turned, east, north = sums
    previous = kappa_before
    for i in range(n):
        step = 0.5 * (previous + kappa[i]) * SAMPLE_SPACING_M
        turned += step
        heading[i] = heading_before + turned
        mid = heading[i] - 0.5 * step
        east += math.cos(mid) * SAMPLE_SPACING_M
        north += math.sin(mid) * SAMPLE_SPACING_M
        x[i], y[i] = x_before + east, y_before + north
        previous = kappa[i]
    return heading, x, y, (turned, east, north)


@numba.njit(cache=True, nogil=True)
def _interp_grid(s: float, grid: np.ndarray, values: np.ndarray) -> float:
    """`np.interp(s, grid, values)` for the road's sample grid, bit for bit.

    The interval is found by arithmetic instead of numpy's binary search (the grid is uniform and
    its points are exact multiples of SAMPLE_SPACING_M, so s / SAMPLE_SPACING_M is exact); the
    interpolation formula, its non-finite fallbacks and the end cases are numpy's (compiled_base.c).
    """
    last = grid.size - 1
    if s != s:
        return s
    if s < grid[0]:
        return values[0]
    if s >= grid[last]:
        return values[last]
    j = min(int(math.floor(s / SAMPLE_SPACING_M)), last - 1)
    return interp_between(s, grid[j], grid[j + 1], values[j], values[j + 1])


@numba.njit(inline="always", cache=True, nogil=True)
def interp_between(at: float, x_j: float, x_next: float, f_j: float, f_next: float) -> float:
    """np.interp's value at `at` inside the interval [x_j, x_next) its search found, of samples f_j and
    f_next: the sample itself when `at` is on it, else its formula and its fallbacks for non-finite
    results, in its order (numpy's compiled_base.c). Shared by `_interp_grid` and the renderer's
    `ground_kernels.row_frames`, which find the interval each their own way."""
    if x_j == at:
        return f_j
    slope = (f_next - f_j) / (x_next - x_j)
    out = slope * (at - x_j) + f_j
    if out != out:
        out = slope * (at - x_next) + f_next
        if out != out and f_j == f_next:
            out = f_j
    return out


@numba.njit(cache=True, nogil=True)
def _poses(
    s: np.ndarray,
    d: np.ndarray,
    grid: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    heading: np.ndarray,
    out: np.ndarray,
) -> float:
    """`Road.pose` of each (s[i], d[i]) on the road as sampled so far into out[:, i] (x, y, heading);
    returns the largest s (the caller extends the road past it and repeats, if needed). libm's sin
    and cos, as numpy's here."""
    s_max = -np.inf
    for i in range(s.size):
        h = _interp_grid(s[i], grid, heading)
        out[0, i] = _interp_grid(s[i], grid, xs) - math.sin(h) * d[i]
        out[1, i] = _interp_grid(s[i], grid, ys) + math.cos(h) * d[i]
        out[2, i] = h
        s_max = max(s_max, s[i])
    return s_max


@numba.njit(cache=True, nogil=True)
def _project(
    grid: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    heading: np.ndarray,
    lo: int,
    hi: int,
    x: float,
    y: float,
    two: float,
) -> tuple[float, float]:
    """(s, d) of (x, y) projected on the centreline near its nearest sample in [lo, hi) (`Road.frenet`).

    `two` is 2.0, passed in so that squares go through libm's pow as Python's `** 2` did (pow is
    not always x * x to the last bit, and a constant exponent would be turned into a product).
    """
    i = _nearest_sample(xs, ys, lo, hi, x, y)
    i = min(max(i, 0), xs.size - 2)
    best, best_s, best_d = np.inf, 0.0, 0.0
    for j in range(max(i - 1, 0), i + 1):
        ax, ay = xs[j], ys[j]
        bx, by = xs[j + 1] - ax, ys[j + 1] - ay
        t = ((x - ax) * bx + (y - ay) * by) / (bx * bx + by * by)
        t = min(max(t, 0.0), 1.0)
        px, py = ax + t * bx, ay + t * by
        dist2 = (x - px) ** two + (y - py) ** two
        if j == max(i - 1, 0) or dist2 < best:
            h = heading[j] + t * (heading[j + 1] - heading[j])
            best, best_s, best_d = (
                dist2,
                grid[j] + t * SAMPLE_SPACING_M,
                -math.sin(h) * (x - px) + math.cos(h) * (y - py),
            )
    return best_s, best_d


@numba.njit(cache=True, nogil=True)
def _project_and_heading(
    grid: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    heading: np.ndarray,
    lo: int,
    hi: int,
    x: float,
    y: float,
    two: float,
) -> tuple[float, float, float]:
    """`_project`'s (s, d) and `_interp_grid`'s road heading at that s (the ego's projection in
    `sim.world_step.world_step`)."""
    s, d = _project(grid, xs, ys, heading, lo, hi, x, y, two)
    return s, d, _interp_grid(s, grid, heading)


@numba.njit(cache=True, nogil=True)
def _nearest_sample(xs: np.ndarray, ys: np.ndarray, lo: int, hi: int, x: float, y: float) -> int:
    """Index in [lo, hi) of the centreline sample nearest to (x, y) (the first of equals), compiled:
    `Road.frenet` runs every step for every car that is projected."""
    best, best_i = np.inf, lo
    for i in range(lo, hi):
        dx, dy = xs[i] - x, ys[i] - y
        dist2 = dx * dx + dy * dy
        if dist2 < best:
            best, best_i = dist2, i
    return best_i


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wrap an angle to [-pi, pi). A Python float for a float (numpy's remainder and Python's % agree
    exactly), else an array."""
    if isinstance(a, float | int):
        return (a + math.pi) % (2 * math.pi) - math.pi
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
