"""The traffic's state and its public interface: `Traffic`.

Per car arrays in Frenet coordinates, plus all-vehicle buffers (the ego last) that car following,
lane changes and recycling read. Lane occupancy is tracked with one bit per lane. A car that is
changing lanes sets the bits of both its source and target lanes, so cars in either lane follow it
and it follows the nearer leader of the two; the ego sets the bits of every lane its body overlaps.
Leaders are found by a search over all (N, N+1) pairs, which for N <= 80 is cheaper than sorting per
lane.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from sim.road import Road
from sim.traffic.config import (
    EGO_CLEARANCE_M,
    HEIGHT_RANGE,
    LENGTH_RANGE,
    N_COLORS,
    WIDTH_RANGE,
    TrafficConfig,
    TrafficDoesNotFitError,
)
from sim.traffic.idm import leader_search, safe_speed
from sim.traffic.lane_changes import try_lane_change
from sim.traffic.recycling import recycle
from sim.traffic.step_kernel import common_step, refresh_buffers, set_ego_slot
from sim.validation import check_range
from sim.vehicle import VehicleParams
from sim.world_kernels import band_overlap, nearest_in_band

_SLOT_JITTER = (5.0, 2.5, 0.0)
"""Random longitudinal play per reset slot, tried in order until the cars fit in the window."""

_DEFAULT_EGO = VehicleParams()


_RARE_EVENTS_COMPILED = False
"""Set once both rare-event kernels have a compiled version in this process (`_rare_events_compiled`)."""


def _rare_events_compiled() -> bool:
    """Whether the rare events' kernels are compiled (or loaded) in this process yet.

    Asked at every `Traffic()`, that is at every reset; numba's own answer (`signatures`) cost about
    50 us per reset, so a True answer is remembered."""
    global _RARE_EVENTS_COMPILED
    if not _RARE_EVENTS_COMPILED:
        _RARE_EVENTS_COMPILED = bool(recycle.signatures and try_lane_change.signatures)
    return _RARE_EVENTS_COMPILED


class Traffic:
    """N traffic cars around the ego. All public arrays have length N and are updated in place.

    Public arrays: `s`, `d` (Frenet centre, m), `speed`, `desired_speed` (m/s), `length`, `width`,
    `height` (m), `lane` (the lane the car is in, or moving into during a lane change) and `color`
    (palette index 0..7). Arrays keep their identity across `reset` and `step`, so a renderer may hold
    references. To script a scenario, use `set_car` rather than writing `lane`/`d` directly: it also
    clears the lane-change state (and bumps `revision`).
    """

    def __init__(self, road: Road, config: TrafficConfig, rng: np.random.Generator) -> None:
        self.road = road
        self.config = config.validate()
        self.rng = rng
        n = self.config.cars
        self.n = n
        self.s = np.zeros(n)
        self.d = np.zeros(n)
        self.speed = np.zeros(n)
        self.desired_speed = np.full(n, self.config.speed_min)
        self.length = np.full(n, LENGTH_RANGE[0])
        self.width = np.full(n, WIDTH_RANGE[0])
        self.height = np.full(n, HEIGHT_RANGE[0])
        self.lane = np.zeros(n, dtype=np.int64)
        self.color = np.zeros(n, dtype=np.int64)
        # Lane-change state: source lane (== lane when not changing), d at the start, time elapsed.
        self._from_lane = np.zeros(n, dtype=np.int64)
        self._d_from = np.zeros(n)
        self._lc_elapsed = np.zeros(n)
        self._lat_vel = np.zeros(n)
        # Buffers of every vehicle, the ego last (index n), refreshed at the start of each step.
        self._S = np.zeros(n + 1)
        self._V = np.zeros(n + 1)
        self._V0 = np.full(n + 1, np.inf)
        self._HL = np.zeros(n + 1)
        self._bits = np.zeros(n + 1, dtype=np.int64)
        # Per-step scratch of `step`: the lane-change draws, IDM accelerations, cars trying a change.
        self._draws = np.zeros(n)
        self._acc = np.zeros(n)
        self._tries = np.zeros(n, dtype=np.int64)
        self._ego_s = 0.0
        self._lane_ids = np.arange(road.config.lanes)
        self._centres = np.array(road.lane_centres)
        self.revision = 0
        """Incremented by `reset`, `step` and `set_car`: whenever cars may have moved or been placed
        (caches of derived data, such as `World.cars`, compare it)."""
        cfg = self.config
        self._inv_2sqrt_ab = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
        self.kernel_arrays = (
            self.s, self.d, self.speed, self.desired_speed, self.length, self.width, self.lane,
            self._from_lane, self._d_from, self._lc_elapsed, self._lat_vel, self._S, self._V, self._V0,
            self._HL, self._bits, self._centres, self._draws, self._acc, self._tries,
        )  # fmt: skip
        """The arrays `sim.world_step.world_step` steps the traffic in, in its order (they keep their
        identity, so the tuple is built once)."""
        self.kernel_params = np.array(
            [cfg.time_headway, self._inv_2sqrt_ab, cfg.min_gap, cfg.max_accel, cfg.lane_change_time,
             cfg.behind_m, cfg.ahead_m, cfg.comfort_brake, cfg.speed_min, cfg.speed_max]
        )  # fmt: skip
        """The car-following, window and respawn parameters the compiled code takes, in this order
        (`sim.world_step.world_step`, `lane_changes.try_lane_change`, `recycling.recycle`)."""
        if n and not _rare_events_compiled():
            self._compile_rare_events()

    def _compile_rare_events(self) -> None:
        """Call the rare events' kernels once where nothing happens, so that numba compiles them now:
        after an install that takes about 9 s, which otherwise fell in the middle of the first episode,
        at its first recycled car; later processes load them from the cache in milliseconds. Made by
        the first traffic of a process only (a world makes a new traffic at every reset). Nothing
        changes and the generator is not drawn from: every car is at s = 0, inside the window of an ego
        still at 0, and car 0 asks for a lane change only if it gains more than infinitely."""
        self._tries[0] = 0
        self._acc[0] = math.inf  # a change must beat acc + LANE_CHANGE_GAIN
        self.rare_events(1, True)

    # ------------------------------------------------------------------------------------- setup
    def reset(
        self,
        ego_s: float,
        ego_d: float,
        ego_speed: float,
        ego_length: float = _DEFAULT_EGO.length,
        ego_width: float = _DEFAULT_EGO.width,
    ) -> None:
        """Scatter the cars over the window in random non-overlapping slots on every lane.

        Slots keep each car at least `min_gap` from its neighbours and `EGO_CLEARANCE_M` from the
        ego in any lane the ego overlaps. Initial speeds are near the desired speed but capped, front
        to back, at the speed for which IDM's desired gap equals the actual gap, so no car starts
        the episode with an emergency stop. Raises ValueError (naming `cars`) when the window cannot
        hold the cars.
        """
        self.revision += 1
        self._set_ego(ego_s, ego_d, ego_speed, ego_length, ego_width)
        n, rng, cfg = self.n, self.rng, self.config
        self.length[:] = rng.uniform(*LENGTH_RANGE, n)
        self.width[:] = rng.uniform(*WIDTH_RANGE, n)
        self.height[:] = rng.uniform(*HEIGHT_RANGE, n)
        self.desired_speed[:] = rng.uniform(cfg.speed_min, cfg.speed_max, n)
        self.color[:] = rng.integers(0, N_COLORS, n)
        lanes, starts, jitter = self._reset_slots()
        pick = rng.choice(starts.size, size=n, replace=False)
        self.lane[:] = lanes[pick]
        self.s[:] = starts[pick] + 0.5 * LENGTH_RANGE[1] + rng.uniform(0.0, jitter, n)
        self.d[:] = self._centres[self.lane]
        self._from_lane[:] = self.lane
        self._d_from[:] = self.d
        self._lc_elapsed[:] = 0.0
        self._lat_vel[:] = 0.0
        self.speed[:] = self.desired_speed * rng.uniform(0.9, 1.0, n)
        self._cap_initial_speeds()

    def _reset_slots(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(lane, start s) of every free reset slot, and the jitter that makes enough of them."""
        cfg, rc = self.config, self.road.config
        lo, hi = self.window()
        window = hi - lo
        ego_lo = self._ego_s - self._HL[-1] - EGO_CLEARANCE_M
        ego_hi = self._ego_s + self._HL[-1] + EGO_CLEARANCE_M
        ego_bits = int(self._bits[-1])
        for jitter in _SLOT_JITTER:
            span = LENGTH_RANGE[1] + jitter  # a car's body lies within [start, start + span]
            slot = span + cfg.min_gap
            starts = lo + slot * np.arange(int(window // slot))
            # Every (lane, start) pair, lane by lane (np.meshgrid's "ij" grids, without its overhead).
            lane_grid = np.repeat(np.arange(rc.lanes)[:, None], starts.size, axis=1)
            start_grid = np.broadcast_to(starts, lane_grid.shape)
            in_ego_lane = (ego_bits >> lane_grid) & 1 == 1
            near_ego = (start_grid < ego_hi) & (start_grid + span > ego_lo)
            free = ~(in_ego_lane & near_ego)
            if free.sum() >= self.n:
                return lane_grid[free], start_grid[free], jitter
        raise TrafficDoesNotFitError(
            f"cars={self.n} do not fit in a {window:.0f} m window on {rc.lanes} lane(s) at min_gap="
            f"{cfg.min_gap}; lower cars or raise ahead_m/behind_m"
        )

    def _cap_initial_speeds(self) -> None:
        """Cap speeds front to back so each car is no faster than is safe behind its leader."""
        if self.n == 0:
            return
        cfg = self.config
        self._refresh()
        gap, _, j = self._leaders()
        for i in np.argsort(-self.s, kind="stable"):
            if np.isfinite(gap[i]):
                v_lead = self._V[j[i]] if j[i] == self.n else self.speed[j[i]]
                safe = safe_speed(
                    float(gap[i]), float(v_lead), cfg.min_gap, cfg.time_headway, self._inv_2sqrt_ab
                )
                self.speed[i] = min(self.speed[i], safe)

    def set_car(
        self, index: int, s: float, lane: int, speed: float, desired_speed: float | None = None
    ) -> None:
        """Put car `index` at the centre of `lane` at `s`, driving straight (for scripted scenarios)."""
        lane = operator.index(lane)
        check_range("lane", lane, 0, self.road.config.lanes - 1, integer=True)
        self.revision += 1
        self.s[index] = s
        self.lane[index] = lane
        self._from_lane[index] = lane
        self.d[index] = self._centres[lane]
        self._d_from[index] = self.d[index]
        self._lc_elapsed[index] = 0.0
        self._lat_vel[index] = 0.0
        self.speed[index] = speed
        if desired_speed is not None:
            self.desired_speed[index] = desired_speed

    def start_lane_change(self, index: int, lane: int) -> None:
        """Car `index` starts changing to `lane` (a neighbour of its own): from the next `step` it moves
        over, and meanwhile it counts in both lanes (`changing_lane`, `anticipate`). The cars decide
        this themselves in `step`; scripted scenarios call it to make one change lanes now."""
        self.revision += 1
        self._from_lane[index] = self.lane[index]
        self.lane[index] = lane
        self._d_from[index] = self.d[index]
        self._lc_elapsed[index] = 0.0
        self._bits[index] |= 1 << lane

    @property
    def lane_centres(self) -> np.ndarray:
        """The road's lane centres, d (m) of lane 0 (leftmost) .. lanes - 1, as the compiled queries
        take them (read-only: an array the traffic keeps)."""
        return self._centres

    def window(self) -> tuple[float, float]:
        """The s interval cars live in: [ego_s - behind_m, ego_s + ahead_m], cut at the road's start.

        The road has no s < 0 (`Road.pose` would clamp such cars onto its first point), so near the
        start of an episode the window is shorter behind the ego.
        """
        cfg = self.config
        return max(self._ego_s - cfg.behind_m, 0.0), self._ego_s + cfg.ahead_m

    @property
    def changing_lane(self) -> np.ndarray:
        """Boolean (N,): which cars are in the middle of a lane change."""
        return self.lane != self._from_lane

    # -------------------------------------------------------------------------------------- step
    def step(
        self,
        dt: float,
        ego_s: float,
        ego_d: float,
        ego_speed: float,
        ego_length: float = _DEFAULT_EGO.length,
        ego_width: float = _DEFAULT_EGO.width,
    ) -> None:
        """Advance every car by `dt` seconds: IDM, lane changes in progress, new lane changes, recycling."""
        if not 0.0 < dt <= 1.0:
            raise ValueError(f"dt must be a number in (0, 1], got {dt!r}")
        self.revision += 1
        self._set_ego(ego_s, ego_d, ego_speed, ego_length, ego_width)
        if self.n == 0:
            return
        cfg = self.config
        # One uniform draw per car per step, whatever the traffic does, keeps the random stream
        # independent of the traffic state; nothing before the lane-change decisions draws.
        draws, acc, tries = self._draws, self._acc, self._tries
        self.rng.random(out=draws)
        lo, hi = self.window()
        n_tries, leaves = common_step(
            self.s, self.d, self.speed, self.desired_speed, self.length, self.lane, self._from_lane,
            self._d_from, self._lc_elapsed, self._lat_vel, self._S, self._V, self._V0, self._HL,
            self._bits, self._centres, draws, dt, cfg.time_headway, self._inv_2sqrt_ab, cfg.min_gap,
            cfg.max_accel, cfg.lane_change_time, cfg.lane_change_rate * dt, lo, hi, acc, tries,
        )  # fmt: skip
        self.rare_events(n_tries, leaves)

    def draw_for_step(self) -> None:
        """This step's lane-change draws (one uniform per car), for a step compiled elsewhere
        (`sim.world_step`); `step` makes them itself."""
        if self.n:
            self.rng.random(out=self._draws)

    def stepped(self, ego_s: float, n_tries: int, leaves: bool) -> None:
        """The end of a step whose common path ran compiled (`sim.world_step.world_step`, the ego at
        arc length `ego_s`): the new revision, then the rare events it reported."""
        self.revision += 1
        self._ego_s = ego_s
        if n_tries or leaves:
            self.rare_events(n_tries, leaves)

    def rare_events(self, n_tries: int, leaves: bool) -> None:
        """Lane changes tried by the cars `common_step` listed, in order, then recycling if a car
        left the window: each a compiled call (`lane_changes.try_lane_change`, `recycling.recycle`),
        made only when it happens; `revision` counts each car that starts a change or is placed."""
        params, lanes = self.kernel_params, self._centres.size
        for i in self._tries[:n_tries].tolist():
            self.revision += try_lane_change(
                i, float(self._acc[i]), self.d, self.speed, self.desired_speed, self.length, self.lane,
                self._from_lane, self._d_from, self._lc_elapsed, self._S, self._V, self._V0, self._HL,
                self._bits, lanes, params,
            )  # fmt: skip
        if leaves:
            self.revision += recycle(
                self.rng, self._ego_s, self.s, self.d, self.speed, self.desired_speed, self.length,
                self.width, self.height, self.lane, self.color, self._from_lane, self._d_from,
                self._lc_elapsed, self._lat_vel, self._S, self._V, self._V0, self._HL, self._bits,
                self._centres, params,
            )  # fmt: skip

    def _set_ego(self, s: float, d: float, speed: float, length: float, width: float) -> None:
        """Store the ego in the last slot of the all-vehicle buffers, with the lanes its body overlaps."""
        self._ego_s = float(s)
        set_ego_slot(
            self._S, self._V, self._HL, self._bits, self._centres, self._ego_s, float(d), float(speed),
            float(length), float(width), self.road.config.lane_width,
        )  # fmt: skip

    def _refresh(self) -> None:
        """Copy the traffic state into the all-vehicle buffers (the ego slot is set by `_set_ego`):
        `refresh_buffers`, the copy `common_step` makes, so the buffers' layout is written once."""
        refresh_buffers(
            self.s, self.speed, self.desired_speed, self.length, self.lane, self._from_lane,
            self._S, self._V, self._V0, self._HL, self._bits,
        )  # fmt: skip

    def _leaders(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gap, leader speed, leader index) per car; gap = inf when there is no leader.

        The leader is the nearest vehicle (ego = index N) ahead by centre that shares a lane bit.
        The ego is ignored by a car whose body it overlaps (a crash, which the environment deals
        with) and, until the gap reaches min_gap, by a car it is pulling away from after driving
        through or cutting in close: plain IDM would brake at 9 m/s^2 for a gap below min_gap even
        as it opens, and spread the ego's crash back through the traffic. Without a leader the
        returned speed is that of vehicle 0, which IDM ignores when the gap is infinite. Compiled
        (`leader_search`): it runs every step over every pair of vehicles.
        """
        return leader_search(self._S, self._HL, self._V, self._bits, self.n, self.config.min_gap)

    # ----------------------------------------------------------------------------------- queries
    def yaw_relative(self) -> np.ndarray:
        """Heading of each car relative to the road (rad, positive = pointing left), from d-dot / s-dot."""
        return np.arctan2(self._lat_vel, np.maximum(self.speed, 0.1))

    def world_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x, y and yaw of every car (a car changing lanes is turned toward its target lane)."""
        if self.n == 0:
            z = np.zeros(0)
            return z, z, z
        x, y, yaw = self.road.poses(self.s, self.d)
        yaw += self.yaw_relative()  # the road's heading, turned
        return x, y, yaw

    def leader(
        self, s: float, d: float, half_width: float, *, anticipate: bool = False
    ) -> tuple[float, float]:
        """(gap_m, speed) of the nearest traffic car ahead overlapping the band [d - hw, d + hw].

        "Ahead" means the car's centre is at or beyond `s`, and gap_m is measured from the point `s`
        to that car's REAR bumper: the caller has no length here, so a car should pass its own front
        bumper (s + length / 2). A negative gap means the bodies already overlap. With `anticipate`,
        a car changing lanes also counts as occupying its whole target lane, so a cut-in is seen
        before it arrives. Returns (inf, inf) if there is none. The ego is never included.
        """
        return self.nearest_in_band(s, d, half_width, anticipate, ahead=True)

    def cars_ahead(
        self, s: float, d_lo: float, d_hi: float, *, anticipate: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, speeds) of EVERY traffic car ahead (centre at or beyond `s`) overlapping [d_lo, d_hi].

        Gaps as in `leader` (from `s` to the car's rear bumper), unsorted; empty arrays if none.
        """
        band = self.in_band(0.5 * (d_lo + d_hi), 0.5 * (d_hi - d_lo), anticipate)
        hit = np.flatnonzero(band & (self.s >= s))
        return self.s[hit] - 0.5 * self.length[hit] - s, self.speed[hit]

    def follower(
        self, s: float, d: float, half_width: float, *, anticipate: bool = False
    ) -> tuple[float, float]:
        """(gap_m, speed) of the nearest traffic car behind (centre before `s`) overlapping the band.

        gap_m runs from the point `s` back to that car's FRONT bumper, so pass your rear bumper
        (s - length / 2). Otherwise as `leader`.
        """
        return self.nearest_in_band(s, d, half_width, anticipate, ahead=False)

    def nearest_in_band(
        self, s: float, d: float, half_width: float, anticipate: bool, ahead: bool
    ) -> tuple[float, float]:
        """`leader` (ahead) or `follower`, compiled (`sim.world_kernels.nearest_in_band`: the safety
        system asks every step). tests/reference_world.py has both in numpy."""
        return nearest_in_band(
            self.s, self.d, self.width, self.length, self.speed, self._centres, self.lane,
            float(s), float(d), float(half_width), anticipate, ahead,
        )  # fmt: skip

    def in_band(self, d: float, half_width: float, anticipate: bool) -> np.ndarray:
        """Boolean (N,): which cars' lateral extent overlaps [d - half_width, d + half_width]; with
        `anticipate` a car changing lanes covers its target lane too (`band_overlap`)."""
        return band_overlap(self.d, self.width, self._centres, self.lane, d, half_width, anticipate)

    def occupancy_grid(
        self,
        ego_s: float,
        ego_lane: int,
        lanes_side: int,
        patches_ahead: int,
        patches_behind: int,
        patch_length: float,
        speed_limit: float,
    ) -> np.ndarray:
        """DeepTraffic-style grid (patches_ahead + patches_behind, 2 * lanes_side + 1), float32.

        Row 0 is the patch farthest ahead; row patches_ahead - 1 ends at ego_s and row patches_ahead
        starts there. Column c is lane ego_lane - lanes_side + c, so columns run left to right. A
        cell covered by a car's body holds that car's speed / speed_limit (the slowest car if
        several), free road holds 1.0, and columns beyond the road edge hold 0.0; everything is
        clipped to [0, 1]. The ego is not drawn: the network knows where it is.
        """
        ego_lane = operator.index(ego_lane)
        check_range("ego_lane", ego_lane, 0, self.road.config.lanes - 1, integer=True)
        check_range("lanes_side", lanes_side, 0, 10, integer=True)
        check_range("patches_ahead", patches_ahead, 0, 1000, integer=True)
        check_range("patches_behind", patches_behind, 0, 1000, integer=True)
        check_range("patch_length", patch_length, 0.1, 100.0)
        check_range("speed_limit", speed_limit, 0.1, 100.0)
        lanes = ego_lane - lanes_side + np.arange(2 * lanes_side + 1)
        on_road = (lanes >= 0) & (lanes < self.road.config.lanes)
        rows = patches_ahead + patches_behind
        grid = np.where(on_road[None, :], 1.0, 0.0) * np.ones((rows, 1))
        if self.n and rows:
            top = ego_s + (patches_ahead - np.arange(rows)) * patch_length
            half = 0.5 * self.length
            in_row = (self.s[:, None] - half[:, None] < top[None, :]) & (
                self.s[:, None] + half[:, None] > top[None, :] - patch_length
            )
            centres = np.asarray(self.road.lane_centre(lanes), dtype=float)
            reach = 0.5 * (self.width + self.road.config.lane_width)
            in_col = (np.abs(self.d[:, None] - centres[None, :]) < reach[:, None]) & on_road[None, :]
            covered = in_row[:, :, None] & in_col[:, None, :]
            ratio = (self.speed / speed_limit)[:, None, None]
            slowest = np.where(covered, ratio, np.inf).min(axis=0)
            grid = np.where(np.isfinite(slowest), slowest, grid)
        return np.clip(grid, 0.0, 1.0).astype(np.float32)
