"""Traffic around the ego car: IDM car-following and MOBIL-style lane changes in Frenet coordinates.

Traffic cars live only in a window [ego_s - behind_m, ego_s + ahead_m] that moves with the ego (cut
at s = 0, where the road starts); a car that leaves it is recycled to the opposite end, so a fixed
number of arrays describes an endless highway. Everything is computed in Frenet coordinates (s
along the road, d positive to the left) because car-following and lane logic are one-dimensional
there; `world_pose` converts to the world only for rendering and collision tests.

Car-following is the Intelligent Driver Model (Treiber, Hennecke and Helbing, 2000): collision-free
in its continuous form, smooth, and parameterised by quantities with a physical meaning (desired
speed, time headway, jam gap, comfortable braking). Lane changes follow the spirit of MOBIL (Kesting,
Treiber and Helbing, 2007): change when the target lane lets the car accelerate more, and only if the
new follower would not have to brake harder than `comfort_brake`.

Lane occupancy is tracked with one bit per lane. A car that is changing lanes sets the bits of both
its source and target lanes, so cars in either lane follow it and it follows the nearer leader of the
two; the ego sets the bits of every lane its body overlaps. Leaders are found by a search over all
(N, N+1) pairs, which for N <= 80 is cheaper than sorting per lane. The common path of a step runs
in one compiled call (`_common_step`); the rare events (a lane change tried, recycling) and all
use of the random generator stay in Python.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numba
import numpy as np

from sim.road import Road
from sim.validation import check_range
from sim.vehicle import VehicleParams
from sim.world_kernels import band_overlap, nearest_in_band

LENGTH_RANGE = (4.2, 5.2)
"""Traffic car body lengths, metres (small hatchback to large saloon)."""
WIDTH_RANGE = (1.75, 2.0)
"""Traffic car body widths, metres."""
HEIGHT_RANGE = (1.45, 1.8)
"""Traffic car body heights, metres (saloon to small SUV); the renderer relies on >= 1.45."""
N_COLORS = 8
"""`color` holds an index into the renderer's palette of this many colours."""
MAX_IDM_BRAKE = 9.0
"""IDM asks for unbounded braking as the gap closes; real tyres give about 9 m/s^2 on dry asphalt."""
EGO_CLEARANCE_M = 12.0
"""No car is placed (at reset or by recycling) closer than this, bumper to bumper, to the ego."""
LANE_CHANGE_GAIN = 0.2
"""MOBIL threshold: a lane change must improve the car's IDM acceleration by this much, m/s^2."""
BLOCKED_MARGIN = 1.0
"""A car counts as held up when it and its leader are this much (m/s) below its desired speed."""
SPAWN_BAND_M = 30.0
"""Recycled cars first try to appear within this distance of the window's edge (after the margin)."""
SPAWN_MARGIN_M = 5.0
"""Recycled cars appear at least this far inside the window."""
_SLOT_JITTER = (5.0, 2.5, 0.0)
"""Random longitudinal play per reset slot, tried in order until the cars fit in the window."""
_MIN_IDM_GAP = 0.01
"""Gap floor (m) inside IDM so that touching or overlapping cars give maximal, finite braking."""

_DEFAULT_EGO = VehicleParams()


class TrafficDoesNotFitError(ValueError):
    """The window around the ego has too few free slots for the configured cars (`Traffic.reset`)."""


@dataclass(frozen=True)
class TrafficConfig:
    """How many traffic cars there are and how they drive. Every field is validated; see `validate`."""

    cars: int = 20
    """Number of traffic cars kept around the ego, 0 to 80."""
    ahead_m: float = 120.0
    """Cars live up to this far ahead of the ego (m, 20 to 1000); farther ones are recycled."""
    behind_m: float = 60.0
    """Cars live up to this far behind the ego (m, 20 to 1000); farther ones are recycled."""
    speed_min: float = 20.0
    """Lowest desired speed, m/s (1 to 70); desired speeds are uniform in [speed_min, speed_max]."""
    speed_max: float = 32.0
    """Highest desired speed, m/s (1 to 70, and at least speed_min)."""
    time_headway: float = 1.3
    """IDM safe time headway T, seconds (0.1 to 5)."""
    min_gap: float = 2.5
    """IDM jam distance s0, bumper to bumper, metres (0.5 to 20)."""
    max_accel: float = 2.0
    """IDM maximum acceleration a, m/s^2 (0.1 to 10)."""
    comfort_brake: float = 3.0
    """IDM comfortable deceleration b, m/s^2 (0.1 to 9); also the lane-change safety limit."""
    lane_change_rate: float = 0.15
    """Chance per car per second that it considers a lane change (0 to 10)."""
    lane_change_time: float = 3.0
    """Duration of one lane change, seconds (0.5 to 20)."""

    def validate(self, prefix: str = "") -> TrafficConfig:
        """Check every field; errors name it with `prefix` in front (the envs pass "traffic_", so a
        message names the `gymnasium.make` option, e.g. traffic_speed_min)."""
        check_range(f"{prefix}cars", self.cars, 0, 80, integer=True)
        check_range(f"{prefix}ahead_m", self.ahead_m, 20.0, 1000.0)
        check_range(f"{prefix}behind_m", self.behind_m, 20.0, 1000.0)
        check_range(f"{prefix}speed_min", self.speed_min, 1.0, 70.0)
        check_range(f"{prefix}speed_max", self.speed_max, 1.0, 70.0)
        if self.speed_min > self.speed_max:
            raise ValueError(
                f"{prefix}speed_min must be <= {prefix}speed_max, got {prefix}speed_min={self.speed_min!r} "
                f"> {prefix}speed_max={self.speed_max!r}"
            )
        check_range(f"{prefix}time_headway", self.time_headway, 0.1, 5.0)
        check_range(f"{prefix}min_gap", self.min_gap, 0.5, 20.0)
        check_range(f"{prefix}max_accel", self.max_accel, 0.1, 10.0)
        check_range(f"{prefix}comfort_brake", self.comfort_brake, 0.1, MAX_IDM_BRAKE)
        check_range(f"{prefix}lane_change_rate", self.lane_change_rate, 0.0, 10.0)
        check_range(f"{prefix}lane_change_time", self.lane_change_time, 0.5, 20.0)
        return self


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
            lane_grid, start_grid = np.meshgrid(np.arange(rc.lanes), starts, indexing="ij")
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
        self._refresh()
        gap, _, j = self._leaders()
        for i in np.argsort(-self.s, kind="stable"):
            if np.isfinite(gap[i]):
                v_lead = self._V[j[i]] if j[i] == self.n else self.speed[j[i]]
                self.speed[i] = min(self.speed[i], _safe_speed(self.config, float(gap[i]), float(v_lead)))

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
        n_tries, leaves = _common_step(
            self.s, self.d, self.speed, self.desired_speed, self.length, self.lane, self._from_lane,
            self._d_from, self._lc_elapsed, self._lat_vel, self._S, self._V, self._V0, self._HL,
            self._bits, self._centres, draws, dt, cfg.time_headway, self._inv_2sqrt_ab, cfg.min_gap,
            cfg.max_accel, cfg.lane_change_time, cfg.lane_change_rate * dt, lo, hi, acc, tries,
        )  # fmt: skip
        for i in tries[:n_tries].tolist():
            self._try_lane_change(i, float(acc[i]))
        if leaves:
            self._recycle()

    def _set_ego(self, s: float, d: float, speed: float, length: float, width: float) -> None:
        """Store the ego in the last slot of the all-vehicle buffers, with the lanes its body overlaps."""
        n = self.n
        self._ego_s = float(s)
        self._S[n] = s
        self._V[n] = speed
        self._HL[n] = 0.5 * length
        reach = 0.5 * self.road.config.lane_width + 0.5 * width
        self._bits[n] = _lane_bits(self._centres, float(d), reach)

    def _refresh(self) -> None:
        """Copy the traffic state into the all-vehicle buffers (the ego slot is set by `_set_ego`):
        `_refresh_buffers`, the copy `_common_step` makes, so the buffers' layout is written once."""
        _refresh_buffers(
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
        (`_leader_search`): it runs every step over every pair of vehicles.
        """
        return _leader_search(self._S, self._HL, self._V, self._bits, self.n, self.config.min_gap)

    # ------------------------------------------------------------------------------ lane changes
    def _try_lane_change(self, i: int, acc_now: float) -> None:
        """Start a change to the adjacent lane that is safe and improves acceleration most, if any."""
        best_lane, best_acc = -1, acc_now + LANE_CHANGE_GAIN
        for target in (self.lane[i] - 1, self.lane[i] + 1):
            if 0 <= target < self.road.config.lanes:
                new_acc = self._lane_change_acc(i, int(target))
                if new_acc is not None and new_acc > best_acc:
                    best_lane, best_acc = int(target), new_acc
        if best_lane >= 0:
            self.start_lane_change(i, best_lane)

    def _lane_change_acc(self, i: int, target: int) -> float | None:
        """Car i's IDM acceleration in `target`, or None if the gap there is unsafe.

        Safe means: at least min_gap + the car's length to the new leader and to the new follower,
        and neither the car nor its new follower (ego included) must brake harder than comfort_brake.
        """
        cfg = self.config
        need = cfg.min_gap + self.length[i]
        lead, follow = self._neighbours(i, target, float(self._S[i]), float(self._HL[i]))
        if lead[0] < need or follow[0] < need:
            return None
        v = self.speed[i]
        lead_v = lead[1] if np.isfinite(lead[0]) else v
        new_acc = _idm1(cfg, float(v), float(self.desired_speed[i]), lead[0], float(lead_v))
        if new_acc < -cfg.comfort_brake:
            return None
        if np.isfinite(follow[0]):
            f = follow[2]
            follower_acc = _idm1(cfg, float(self._V[f]), float(self._V0[f]), follow[0], float(v))
            if follower_acc < -cfg.comfort_brake:
                return None
        return new_acc

    def _neighbours(
        self, i: int, lane: int, s: float, half_length: float
    ) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
        """Nearest vehicles in `lane` ahead of and behind a body centred at `s`, other than car i.

        Returns ((gap, speed, index), (gap, speed, index)) for the leader and the follower, with
        gap = inf and index = -1 when there is none. Uses the all-vehicle buffers; compiled
        (`_neighbours_in_lane`), as every lane-change test asks twice.
        """
        gap_ahead, v_ahead, ahead, gap_behind, v_behind, behind = _neighbours_in_lane(
            self._S, self._HL, self._V, self._bits, i, lane, s, half_length
        )
        return (gap_ahead, v_ahead, ahead), (gap_behind, v_behind, behind)

    # --------------------------------------------------------------------------------- recycling
    def _recycle(self) -> None:
        """Respawn cars that left the window at its opposite end (behind -> ahead, ahead -> behind)."""
        lo, hi = self.window()
        out = np.flatnonzero((self.s < lo) | (self.s > hi))
        if out.size == 0:
            return
        self._refresh()
        for i in out:
            self._respawn(int(i), to_front=bool(self.s[i] < lo), lo=lo, hi=hi)

    def _respawn(self, i: int, to_front: bool, lo: float, hi: float) -> bool:
        """Give car i a new identity and a free spot, normally at the far end of the window.

        First choice: within SPAWN_BAND_M of the window's far edge (where a car coming from beyond
        the window would appear), else anywhere in the window half on that side of the ego, with
        min_gap + a car length of clearance, a new follower that need not brake harder than
        comfort_brake, and a speed that carries the car into the window (see `_find_spot`). In a
        jam that last condition can fail (say every spot behind the ego is in a queue slower than
        the ego, so a car placed there leaves again within a few steps, over and over); then a car
        entering from the other end is tried, as on a real road, and taken if it meets all three.
        Otherwise the best spot of the first search (possibly a cut-in, see `_spawn_speed`); last
        resort, any spot with min_gap of clearance, on the intended side if possible. If even that
        fails (an overfull window) the car stays where it is and is retried next step. Returns
        whether it was placed.
        """
        cfg = self.config
        length = float(self.rng.uniform(*LENGTH_RANGE))
        half, roomy = 0.5 * length, cfg.min_gap + length
        desired = self._entering_speed(to_front)
        spot = self._find_spot(i, self._bands(to_front, lo, hi), half, desired, roomy, to_front, True)
        if spot is None or spot[3] % 2 == 0:  # no spot, or the car would drift straight back out
            other_desired = self._entering_speed(not to_front)
            bands = self._bands(not to_front, lo, hi)
            other = self._find_spot(i, bands, half, other_desired, roomy, not to_front, True)
            if other is not None and other[3] == 5:
                spot, desired = other, other_desired
        if spot is None:
            bands = (self._bands(to_front, lo, hi)[1], (lo, hi))
            spot = self._find_spot(i, bands, half, desired, cfg.min_gap, to_front, False)
        if spot is None:
            return False
        self._place(i, spot[0], spot[1], spot[2], desired, length)
        return True

    def _bands(self, to_front: bool, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
        """Where to put a car entering the window [lo, hi]: the edge band, then that half.

        Both stop SPAWN_MARGIN_M short of the edge: a car placed on it at the ego's speed would
        leave again on the next step with the slightest acceleration.
        """
        ego_s = self._ego_s
        if to_front:
            edge = hi - SPAWN_MARGIN_M
            return (max(edge - SPAWN_BAND_M, ego_s), edge), (ego_s, edge)
        edge = lo + SPAWN_MARGIN_M
        return (edge, min(edge + SPAWN_BAND_M, ego_s)), (edge, ego_s)

    def _entering_speed(self, to_front: bool) -> float:
        """Desired speed of a car entering the window: slower than the ego ahead, faster behind.

        Only such cars can enter a window that moves with the ego, and a car that could not (say a
        slow car placed at the rear edge) would leave again on the next step and be recycled
        back and forth. When the ego is outside [speed_min, speed_max] the full range is used.
        """
        cfg, ego_v = self.config, float(self._V[self.n])
        low, high = cfg.speed_min, cfg.speed_max
        if to_front and low < ego_v:
            high = min(high, ego_v)
        elif not to_front and ego_v < high:
            low = max(low, ego_v)
        return float(self.rng.uniform(low, high))

    def _find_spot(
        self,
        i: int,
        bands: tuple[tuple[float, float], ...],
        half: float,
        desired: float,
        clearance: float,
        to_front: bool,
        check_follower: bool,
    ) -> tuple[float, int, float, int] | None:
        """(s, lane, speed, rank) for a new car of half length `half` centred in `bands`, or None.

        Exhaustive: every vehicle (car i excluded, the ego included with at least EGO_CLEARANCE_M)
        forbids the centre positions within its half length + `half` + `clearance`; one sort by
        (lane, s) and a sweep give every free interval of every lane, with the vehicles just behind
        and ahead of it. Bands are tried in order of preference; within a band, the free intervals
        in random order, at a random point and then at the midpoint. The speed is `desired` capped
        to be safe behind the leader and, ahead of the ego, at the ego's speed. Spots
        are ranked by the new follower's comfort (grade 2, 1, 0 in `_spawn_speed`), then by whether
        the car will drift into the window rather than straight back out (ahead of the ego no
        faster than it, behind no slower: a car placed behind in a queue slower than the ego would
        be recycled again within a few steps). The first spot of the top rank (5) wins, else the
        best seen; grade 0 only without `check_follower`.
        """
        lo = min(b[0] for b in bands)
        hi = max(b[1] for b in bands)
        if hi <= lo:
            return None
        n = self.n
        intervals = self._free_intervals(i, half, clearance, lo, hi)
        rng, ego_s, ego_v = self.rng, self._ego_s, float(self._V[n])
        # A car entering from the front cannot be faster than the ego (it would never have been
        # caught up with); it may still want to be, and then accelerates away at IDM's pace.
        # `top` bounds the speed for the follower test; each spot is capped by its own side.
        top = min(desired, ego_v) if to_front else desired
        best: dict[int, tuple[float, int, float, int]] = {}
        for band_lo, band_hi in bands:
            for k in rng.permutation(len(intervals)).tolist():
                ln, a, b, behind, ahead = intervals[k]
                a, b = max(a, band_lo), min(b, band_hi)
                if a >= b:
                    continue
                # Skip the part of the gap where the follower could not be comfortable at any speed.
                comfy = a if behind < 0 else max(a, self._comfort_front(behind, top) + half)
                tries: tuple[float, ...]
                if comfy < b:
                    tries = (comfy + (b - comfy) * rng.random(), 0.5 * (comfy + b))
                else:
                    tries = () if 3 in best else (b,)  # roomiest spot, for a cut-in
                for pos in tries:
                    in_front = pos > ego_s
                    cap = min(desired, ego_v) if in_front else desired
                    speed, grade = self._spawn_speed(pos, half, cap, behind, ahead)
                    rank = 2 * grade + ((speed <= ego_v) if in_front else (speed >= ego_v))
                    if rank == 5:
                        return pos, ln, speed, rank
                    best.setdefault(rank, (pos, ln, speed, rank))
        usable = [r for r in best if r >= 2 or not check_follower]
        return best[max(usable)] if usable else None

    def _comfort_front(self, f: int, v_max: float) -> float:
        """Nearest rear-bumper s ahead of vehicle f at which a car driving at v_max or slower keeps
        f's IDM braking within comfort_brake (IDM solved for the gap; slower only needs more)."""
        cfg = self.config
        v_f, v0_f = float(self._V[f]), float(self._V0[f])
        s_star = cfg.min_gap + max(0.0, v_f * (cfg.time_headway + (v_f - v_max) * self._inv_2sqrt_ab))
        room = 1.0 + cfg.comfort_brake / cfg.max_accel - (v_f / v0_f) ** 4
        front = float(self._S[f] + self._HL[f])
        return front + s_star / math.sqrt(room) if room > 0.0 else math.inf

    def _free_intervals(
        self, i: int, half: float, clearance: float, lo: float, hi: float
    ) -> list[tuple[int, float, float, int, int]]:
        """Free centre intervals (lane, a, b, follower, leader) within [lo, hi] for a car of half
        length `half` (-1 = no vehicle), lane by lane, in s order: where every vehicle but car i
        leaves `clearance` (the ego at least EGO_CLEARANCE_M) to its body (`_free_interval_sweep`,
        compiled: recycling runs it several times per respawn)."""
        ints, ends = _free_interval_sweep(
            self._S, self._HL, self._bits, i, self._lane_ids.size, half, clearance, lo, hi
        )
        return [(ln, a, b, f, j) for (ln, f, j), (a, b) in zip(ints.tolist(), ends.tolist(), strict=True)]

    def _spawn_speed(self, pos: float, half: float, top: float, behind: int, ahead: int) -> tuple[float, int]:
        """Speed of a car appearing at `pos` between vehicles `behind` and `ahead` (-1 = none).

        The speed is `top`, capped to be safe behind the leader. The second value
        grades the new follower (the ego included): 2 if its IDM braking stays within comfort_brake;
        1 if not, but braking at comfort_brake would still match speeds before the gap shrinks to
        min_gap (a cut-in: IDM brakes harder than that for a moment because the time headway is
        short, but nobody collides); 0 otherwise.
        """
        cfg = self.config
        speed = top
        if ahead >= 0:
            gap = float(self._S[ahead] - self._HL[ahead]) - half - pos
            speed = min(speed, _safe_speed(cfg, gap, float(self._V[ahead])))
        if behind < 0:
            return speed, 2
        gap = pos - half - float(self._S[behind] + self._HL[behind])
        v_f = float(self._V[behind])
        if _idm1(cfg, v_f, float(self._V0[behind]), gap, speed) >= -cfg.comfort_brake:
            return speed, 2
        closing = max(v_f - speed, 0.0)
        return speed, int(closing * closing <= 2.0 * cfg.comfort_brake * (gap - cfg.min_gap))

    def _place(self, i: int, s: float, lane: int, speed: float, desired: float, length: float) -> None:
        """Commit a respawned car's new identity and keep the all-vehicle buffers in step."""
        rng = self.rng
        self.set_car(i, s, lane, speed, desired)
        self.length[i] = length
        self.width[i] = rng.uniform(*WIDTH_RANGE)
        self.height[i] = rng.uniform(*HEIGHT_RANGE)
        self.color[i] = rng.integers(0, N_COLORS)
        self._S[i], self._V[i], self._V0[i], self._HL[i] = s, speed, desired, 0.5 * length
        self._bits[i] = 1 << lane

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


def _idm1(cfg: TrafficConfig, v: float, v0: float, gap: float, v_lead: float) -> float:
    """IDM acceleration of one car (`_idm_all` for all): plain floats, ~10x faster than numpy here."""
    inv_2sqrt_ab = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    s_star = cfg.min_gap + max(0.0, v * (cfg.time_headway + (v - v_lead) * inv_2sqrt_ab))
    interaction = (s_star / max(gap, _MIN_IDM_GAP)) ** 2
    return max(cfg.max_accel * (1.0 - (v / v0) ** 4 - interaction), -MAX_IDM_BRAKE)


def _safe_speed(cfg: TrafficConfig, gap: float, v_lead: float) -> float:
    """Largest speed whose IDM desired gap s* does not exceed `gap` behind a car at `v_lead`.

    Solves s0 + v*T + v*(v - v_lead)/(2 sqrt(ab)) = gap for v >= 0 (a quadratic in v); 0 when
    gap <= s0. At that speed IDM brakes by no more than about max_accel, so a car placed there
    needs no emergency stop.
    """
    room = gap - cfg.min_gap
    if room <= 0.0:
        return 0.0
    c = 1.0 / (2.0 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    lin = cfg.time_headway - c * v_lead
    return (-lin + math.sqrt(lin * lin + 4.0 * c * room)) / (2.0 * c)


@numba.njit(cache=True, nogil=True)
def _leader_search(
    s: np.ndarray, half_length: np.ndarray, speed: np.ndarray, bits: np.ndarray, n: int, min_gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`Traffic._leaders` over the all-vehicle buffers (n cars, the ego at index n)."""
    gap = np.empty(n)
    lead_speed = np.empty(n)
    lead = np.empty(n, dtype=np.int64)
    for i in range(n):
        best, best_j = np.inf, 0
        for j in range(n + 1):
            ds = s[j] - s[i]
            if bits[j] & bits[i] == 0 or not ds > 0.0:
                continue
            g = ds - half_length[j] - half_length[i]
            if j == n and (g <= 0.0 or (g < min_gap and speed[n] > speed[i])):
                continue  # the ego overlapping this car, or pulling away from it
            if g < best:
                best, best_j = g, j
        gap[i], lead_speed[i], lead[i] = best, speed[best_j], best_j
    return gap, lead_speed, lead


@numba.njit(cache=True, nogil=True)
def _idm_all(
    v: np.ndarray,
    v0: np.ndarray,
    gap: np.ndarray,
    v_lead: np.ndarray,
    time_headway: float,
    inv_2sqrt_ab: float,
    min_gap: float,
    max_accel: float,
) -> np.ndarray:
    """IDM acceleration of every car, braking capped at MAX_IDM_BRAKE (`_idm1` for one car).

    With gap = inf the interaction term vanishes whatever v_lead is (as long as it is finite).
    """
    acc = np.empty(v.size)
    for i in range(v.size):
        s_star = max(v[i] * (time_headway + (v[i] - v_lead[i]) * inv_2sqrt_ab), 0.0) + min_gap
        ratio = s_star / max(gap[i], _MIN_IDM_GAP)
        free = v[i] / v0[i]
        free *= free
        acc[i] = max((1.0 - free * free - ratio * ratio) * max_accel, -MAX_IDM_BRAKE)
    return acc


@numba.njit(cache=True, nogil=True)
def _common_step(
    s: np.ndarray,
    d: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    d_from: np.ndarray,
    lc_elapsed: np.ndarray,
    lat_vel: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    centres: np.ndarray,
    draws: np.ndarray,
    dt: float,
    time_headway: float,
    inv_2sqrt_ab: float,
    min_gap: float,
    max_accel: float,
    lane_change_time: float,
    lane_change_chance: float,
    window_lo: float,
    window_hi: float,
    acc: np.ndarray,
    tries: np.ndarray,
) -> tuple[int, bool]:
    """Everything of `Traffic.step` but the rare events, in place: (n_tries, leaves).

    Refreshes the all-vehicle buffers (the ego slot is already set), finds the leaders, applies IDM
    (into `acc`), moves the cars (one that would reverse stops where it reaches zero speed), moves
    the cars changing lanes along the cosine profile, and refreshes the buffers again for the
    lane-change tests. `tries[:n_tries]` lists, in order, the cars that drew below
    `lane_change_chance` and are held up while in a single lane at the start of the step (leader
    data describe those lanes); the caller runs `Traffic._try_lane_change` for each, with its
    `acc`. `leaves` says whether a car left [window_lo, window_hi] (`Traffic._recycle`). The
    numpy reference is tests/reference_traffic.py.
    """
    n = s.size
    _refresh_buffers(s, speed, desired_speed, length, lane, from_lane, buf_s, buf_v, buf_v0, buf_hl, buf_bits)
    gap, v_lead, _ = _leader_search(buf_s, buf_hl, buf_v, buf_bits, n, min_gap)
    acc[:] = _idm_all(speed, desired_speed, gap, v_lead, time_headway, inv_2sqrt_ab, min_gap, max_accel)
    steady = lane == from_lane
    leaves = False
    for i in range(n):
        v = speed[i]
        v_new = v + acc[i] * dt
        if v_new < 0.0:
            dist = v * v / (-2.0 * min(acc[i], -1e-9))
            v_new = 0.0
        else:
            dist = 0.5 * (v + v_new) * dt
        s[i] += dist
        speed[i] = v_new
        leaves = leaves or s[i] < window_lo or s[i] > window_hi
    _advance_lane_changes(d, lane, from_lane, d_from, lc_elapsed, lat_vel, centres, dt, lane_change_time)
    _refresh_buffers(s, speed, desired_speed, length, lane, from_lane, buf_s, buf_v, buf_v0, buf_hl, buf_bits)
    n_tries = 0
    for i in range(n):
        if not draws[i] < lane_change_chance or not steady[i]:
            continue
        v, v0 = speed[i], desired_speed[i]
        look = 2.0 * (min_gap + v * time_headway) + 10.0
        if v < v0 - BLOCKED_MARGIN and v_lead[i] < v0 - BLOCKED_MARGIN and gap[i] < look:
            tries[n_tries] = i
            n_tries += 1
    return n_tries, leaves


@numba.njit(cache=True, nogil=True)
def _refresh_buffers(
    s: np.ndarray,
    speed: np.ndarray,
    desired_speed: np.ndarray,
    length: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    buf_s: np.ndarray,
    buf_v: np.ndarray,
    buf_v0: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
) -> None:
    """The traffic cars' slots of the all-vehicle buffers (`Traffic._refresh`): centre s, speed,
    desired speed, half length, and the bits of the lanes each car is in or moving into."""
    for i in range(s.size):
        buf_s[i] = s[i]
        buf_v[i] = speed[i]
        buf_v0[i] = desired_speed[i]
        buf_hl[i] = length[i] * 0.5
        buf_bits[i] = (1 << from_lane[i]) | (1 << lane[i])


@numba.njit(cache=True, nogil=True)
def _advance_lane_changes(
    d: np.ndarray,
    lane: np.ndarray,
    from_lane: np.ndarray,
    d_from: np.ndarray,
    lc_elapsed: np.ndarray,
    lat_vel: np.ndarray,
    centres: np.ndarray,
    dt: float,
    duration: float,
) -> None:
    """Move the cars changing lanes along a cosine lateral profile (zero lateral speed at both
    ends); a car that arrives is back in a single lane. libm's sin and cos, as numpy's here."""
    for i in range(d.size):
        if lane[i] == from_lane[i]:
            continue
        t = lc_elapsed[i] + dt
        p = min(t / duration, 1.0)
        delta = centres[lane[i]] - d_from[i]
        d[i] = d_from[i] + delta * 0.5 * (1.0 - math.cos(math.pi * p))
        lat_vel[i] = delta * (0.5 * math.pi / duration) * math.sin(math.pi * p)
        if p >= 1.0:
            from_lane[i] = lane[i]
            lc_elapsed[i] = 0.0
            lat_vel[i] = 0.0
        else:
            lc_elapsed[i] = t


@numba.njit(cache=True, nogil=True)
def _neighbours_in_lane(
    buf_s: np.ndarray,
    buf_hl: np.ndarray,
    buf_v: np.ndarray,
    buf_bits: np.ndarray,
    i: int,
    lane: int,
    s: float,
    half_length: float,
) -> tuple[float, float, int, float, float, int]:
    """`Traffic._neighbours` flattened: (gap, speed, index) of the nearest vehicle in `lane` ahead
    of a body centred at `s` (centre strictly beyond it), then of the nearest behind; the first of
    equals, (inf, inf, -1) for none; vehicle i (if a traffic car) left out."""
    n = buf_s.size - 1
    gap_ahead, v_ahead, ahead = np.inf, np.inf, -1
    gap_behind, v_behind, behind = np.inf, np.inf, -1
    for j in range(n + 1):
        if (buf_bits[j] >> lane) & 1 != 1 or (j == i and 0 <= i < n):
            continue
        ds = buf_s[j] - s
        clear = abs(ds) - buf_hl[j] - half_length
        if ds > 0.0:
            if ahead < 0 or clear < gap_ahead:
                gap_ahead, v_ahead, ahead = clear, buf_v[j], j
        elif ds <= 0.0 and (behind < 0 or clear < gap_behind):
            gap_behind, v_behind, behind = clear, buf_v[j], j
    return gap_ahead, v_ahead, ahead, gap_behind, v_behind, behind


@numba.njit(cache=True, nogil=True)
def _free_interval_sweep(
    buf_s: np.ndarray,
    buf_hl: np.ndarray,
    buf_bits: np.ndarray,
    skip: int,
    n_lanes: int,
    half: float,
    clearance: float,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`Traffic._free_intervals`: rows (lane, follower, leader) and (a, b) of every free interval.

    Every vehicle but `skip` (the ego at least EGO_CLEARANCE_M) forbids the centre positions within
    its half length + `half` + `clearance`. Per lane, the member vehicles are sorted by s (ties by
    index); reaches differ (the ego's is larger), so a vehicle later in s order can block from
    further back: each gap ends at the smallest blocked-from position of all the vehicles after it.
    Python's min and max (the first of equals) throughout. tests/reference_traffic.py has the
    numpy and Python version.
    """
    m = buf_s.size
    reach = buf_hl + (half + clearance)
    reach[m - 1] = buf_hl[m - 1] + half + _py_max(clearance, EGO_CLEARANCE_M)
    ints = np.empty((m * n_lanes + n_lanes, 3), dtype=np.int64)
    ends = np.empty((m * n_lanes + n_lanes, 2))
    count = 0
    for ln in range(n_lanes):
        members = np.empty(m, dtype=np.int64)
        size = 0
        for j in range(m):
            if j != skip and (buf_bits[j] >> ln) & 1 == 1:
                members[size] = j
                size += 1
        members = members[:size][np.argsort(buf_s[members[:size]], kind="mergesort")]
        ends_before = np.empty(members.size + 1)
        ends_before[members.size] = hi
        for k in range(members.size - 1, -1, -1):  # suffix minimum
            j = members[k]
            ends_before[k] = _py_min(buf_s[j] - reach[j], ends_before[k + 1])
        covered, behind = lo, -1
        for k in range(members.size + 1):
            j = members[k] if k < members.size else -1
            end = _py_min(ends_before[k], hi)
            if covered < end:
                ints[count, 0], ints[count, 1], ints[count, 2] = ln, behind, j
                ends[count, 0], ends[count, 1] = covered, end
                count += 1
            if j >= 0:
                covered = _py_max(covered, buf_s[j] + reach[j])
                behind = j
    return ints[:count], ends[:count]


@numba.njit(cache=True, nogil=True)
def _py_min(a: float, b: float) -> float:
    """Python's min(a, b): a unless b is smaller (so min(0.0, -0.0) is 0.0)."""
    return b if b < a else a


@numba.njit(cache=True, nogil=True)
def _py_max(a: float, b: float) -> float:
    """Python's max(a, b): a unless b is larger."""
    return b if b > a else a


@numba.njit(cache=True, nogil=True)
def _lane_bits(centres: np.ndarray, d: float, reach: float) -> int:
    """Bit j set for every lane j whose centre is closer than `reach` to `d` (`Traffic._set_ego`)."""
    bits = 0
    for j in range(centres.size):
        if abs(d - centres[j]) < reach:
            bits |= 1 << j
    return bits
