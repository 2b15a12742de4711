"""The world one episode takes place in: a road, the ego car, traffic, and DeepTraffic's safety system.

`World.step` advances one control period: the ego car's physics in fixed sub-steps, then the
traffic, then collision and off-road checks. Environments wrap it with observations, actions and
rewards; drivers read its privileged state through `World.state()`.

The safety system (`SafetyConfig`, on by default in both environments: option `safety`) is what
makes DeepTraffic's lane mode crash-free: a longitudinal brake that looks at every car ahead in the
lateral band the ego occupies, is about to sweep or is changing lanes into, and a lane-change check
repeated until the ego arrives.
In steer mode a lane-keeping assist takes the wheel when that band reaches an unsafe lane.
Its guarantee, and where it stops, are in `SafetyConfig`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sim import seeding
from sim.boxes import CarBoxes
from sim.collision import any_overlap, frenet_neighbours
from sim.road import Road, RoadConfig, wrap_angle
from sim.traffic import Traffic, TrafficConfig
from sim.validation import check_range
from sim.vehicle import Vehicle, VehicleParams
from sim.world_kernels import lane_has_room, strongest_brake

PHYSICS_DT = 0.02
"""Fixed physics step of the ego car (50 Hz); control periods are whole multiples of it."""
EGO_COLOR = 1
SAFE_HEADWAY_S = 1.0
"""Safety system: brake when the car ahead is closer than this many seconds (plus a margin) and slower."""
SAFE_MARGIN_M = 4.0
EGO_LOOKAHEAD_S = 1.0
"""The ego's lateral motion is extrapolated this far (at its current heading relative to the road):
the safety brake and the traffic treat the band it will sweep as occupied."""
SAFE_LATERAL_MARGIN_M = 0.3
"""Safety brake: cars within this lateral distance of the ego's band count as ahead of it (a car
whose body only grazes the band, say while the ego straddles a lane line, is still braked for)."""
COMFORT_BRAKE = 2.5
"""Safety system: start braking early once matching the leader's speed would need more than this, m/s^2."""
LANE_CHANGE_CLOSING_S = 1.5
"""Lane-change check: room for this many seconds of closing speed to the new leader and follower."""


@dataclass(frozen=True)
class EgoState:
    """Privileged state of the ego car, as reported in every env's `info`."""

    x: float
    y: float
    yaw: float
    speed: float
    """m/s"""
    steer: float
    """Current normalised steering, -1 left .. +1 right."""
    s: float
    """Arc length along the road, m."""
    d: float
    """Lateral offset from the road's centreline, m, positive left."""
    lane: int
    """Lane the car's centre is in, 0 = leftmost."""
    lateral_offset: float
    """Offset from the centre of that lane, m, positive left."""
    heading_error: float
    """Car heading minus road heading, rad, positive = pointing left of the road."""
    distance: float
    """Metres driven along the road since reset."""


class Camera(Protocol):
    """What draws a view of the world (`sim.render.frontcam.FrontCameraRenderer` is one): a frame seen
    from a car at (x, y) facing `yaw`, at arc length `s` of `road`, with `cars` in it."""

    def render(
        self,
        road: Road,
        x: float,
        y: float,
        yaw: float,
        s: float,
        cars: CarBoxes | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class SafetyConfig:
    """DeepTraffic's safety system: never rear-end, never change lanes into a car.

    What it does (see `World`): the longitudinal brake (`World._safety_brake`) overrides the driver
    whenever any traffic car ahead in the lateral band the ego occupies, will sweep in the next
    `EGO_LOOKAHEAD_S`, or is changing lanes into (`World.target_d`) needs it; lane changes are
    accepted only into a gap that passes `World.lane_is_safe`, one lane at a time, and re-checked every
    step until the ego's body reaches the target lane (`sim.actions.DiscreteLaneAction`).

    The guarantee and its limits: in `action_mode="lane"` no action sequence makes the ego collide
    with a traffic car or leave the road. This is tested with random and adversarial action sequences
    (tests/test_envs.py, tests/test_traffic.py), not proved: it relies on the traffic driving by IDM
    as in `sim.traffic`, and scripted cars or traffic options far from the defaults can defeat it.
    In `action_mode="steer"` the driver steers itself; the brake covers the band the car is about to
    sweep, and a lane-keeping assist takes the wheel whenever that band, stretched over the time the
    car needs to turn back parallel to the road, reaches a lane other than its own that fails
    `lane_is_safe`, or the road's edge (`World.sweeps_unsafe_lane`). In both modes the brake sizes
    its request as if the car ahead held its speed. With `enabled=False` nothing is guaranteed.
    docs/safety.md has the measurements and the known ways to still crash.
    """

    enabled: bool = False
    headway_s: float = SAFE_HEADWAY_S
    margin_m: float = SAFE_MARGIN_M

    def validate(self) -> SafetyConfig:
        check_range("safety_headway_s", self.headway_s, 0.1, 5.0)
        check_range("safety_margin_m", self.margin_m, 0.0, 30.0)
        return self


class World:
    """Road + ego + traffic for one episode; rebuilt from the seed by `reset`.

    The privileged state: the true positions and speeds a camera-driven policy never sees. Experts,
    planners, evaluation and view augmentation read it (`state`, `ego`, `road`, `traffic`, `cars`) and
    may move the ego (`place_ego`, `put_back_on_lane_centre`) or draw it from other poses
    (`camera_view`); only `step` and `reset` advance it.
    """

    def __init__(
        self, road: RoadConfig, traffic: TrafficConfig, vehicle: VehicleParams, safety: SafetyConfig
    ) -> None:
        self.road_config = road.validate()
        self.traffic_config = traffic.validate()
        self.safety = safety.validate()
        self.ego = Vehicle(vehicle)
        self.road: Road | None = None
        self.traffic: Traffic | None = None
        self.s = 0.0
        self.d = 0.0
        self.collided = False
        self.safety_brakes = 0
        self.safety_refusals = 0
        self.applied_accel = 0.0
        """Acceleration (m/s^2) the last step gave the car: the driver's, or the safety brake's when it
        overrode it. Displays read it; what the driver asked for can differ."""
        self.target_d: float | None = None
        """Lateral offset (m) the lane-change controller is steering to, or None (steer mode)."""
        self._start_s = 0.0
        self._state: EgoState | None = None
        """Per-step cache of `state()`."""
        self._he_pose: tuple[float, float, np.ndarray | None] = (math.nan, math.nan, None)
        self._he = 0.0
        """`heading_error` cache: the (yaw, s, road heading array) it was computed for, and its value."""
        self._cars: CarBoxes | None = None
        self._cars_key: tuple[Traffic | None, int] = (None, -1)
        """`cars()` cache: the traffic object and its `revision` the boxes were built for."""
        self._near = np.zeros(0, dtype=bool)
        """`_hits_traffic` scratch: which cars are near the ego."""

    # ---------------------------------------------------------------------------------------- reset
    def reset(self, seed: int, lane: int, speed: float, start_s: float = 50.0) -> None:
        """New road and traffic from `seed`; the ego starts centred in `lane` at `speed`."""
        self.road = Road(self.road_config, seed)
        rng = seeding.stream(seed, seeding.TRAFFIC)
        d = float(self.road.lane_centre(lane))
        x, y, heading = (float(v) for v in self.road.pose(start_s, d))
        self.ego.reset(x, y, heading, speed)
        self.s, self.d, self._start_s = start_s, d, start_s
        self.collided = False
        self.safety_brakes = 0
        self.safety_refusals = 0
        self.applied_accel = 0.0
        self.target_d = None
        self.traffic = Traffic(self.road, self.traffic_config, rng)
        self._near = np.zeros(self.traffic.n, dtype=bool)
        self.traffic.reset(self.s, self.d, speed)
        self._state = None
        self._he_pose = (math.nan, math.nan, None)
        self._cars = None

    # ----------------------------------------------------------------------------------------- step
    def step(self, steer: float, accel: float, dt: float) -> None:
        """Advance `dt` seconds with steering input `steer` (-1..1) and acceleration `accel` (m/s^2)."""
        assert self.road is not None and self.traffic is not None, "call reset() first"
        p = self.ego.params
        if self.safety.enabled:
            accel = self._safety_brake(accel)
        self.applied_accel = accel
        n_sub = max(1, round(dt / PHYSICS_DT))
        self.ego.step(steer, accel, dt / n_sub, substeps=n_sub)
        self.s, self.d = self.road.frenet(self.ego.x, self.ego.y, self.s)
        # Traffic sees the ego over the band it will sweep in the next second and, during a lane
        # change, over its target lane too: nobody starts a lane change into the lane the ego is
        # moving into, and the cars of that lane follow the ego from the moment it decides to come.
        lo, hi = self.ego_band()
        self.traffic.step(dt, self.s, 0.5 * (lo + hi), self.ego.speed, p.length, hi - lo)
        self._state = None
        self.collided = self.collided or self._hits_traffic()

    def set_target_lane(self, lane: int | None) -> None:
        """Tell the safety system and the traffic which lane the ego is steering to (None: no lane)."""
        assert self.road is not None
        self.target_d = None if lane is None else self.lane_centre(lane)

    def lane_centre(self, lane: int) -> float:
        """`float(road.lane_centre(lane))`, looked up for the road's lanes (it runs several times a step)."""
        assert self.road is not None
        if 0 <= lane < len(self.road.lane_centres):
            return self.road.lane_centres[lane]
        return float(self.road.lane_centre(lane))

    def ego_band(self, lookahead_s: float = EGO_LOOKAHEAD_S) -> tuple[float, float]:
        """Lateral interval (d_lo, d_hi) the ego's body occupies now, will sweep within `lookahead_s`
        at its current heading relative to the road, or is heading for (`target_d`)."""
        assert self.road is not None
        half_w = 0.5 * self.ego.params.width
        swept = self.d + self.ego.speed * math.sin(self.heading_error()) * lookahead_s
        lo, hi = min(self.d, swept), max(self.d, swept)
        if self.target_d is not None:
            lo, hi = min(lo, self.target_d), max(hi, self.target_d)
        return lo - half_w, hi + half_w

    def body_in_lane(self, lane: int) -> bool:
        """Whether the ego's body overlaps `lane` (the traffic then counts the ego as in that lane)."""
        assert self.road is not None
        reach = 0.5 * (self.road_config.lane_width + self.ego.params.width)
        return abs(self.d - self.lane_centre(lane)) < reach

    def _safety_brake(self, accel: float) -> float:
        """Brake for every slower car close ahead in the ego's band; count how often that overrode
        the driver.

        The band (`ego_band`, widened by SAFE_LATERAL_MARGIN_M) is where the ego is, where its
        current heading takes it within EGO_LOOKAHEAD_S and, during a lane change, its target
        lane: a car in the lane being entered is braked for from the moment the change is decided,
        not once the bodies overlap sideways (when even full braking can be too late). Each car
        asks for the deceleration that matches its speed just as the gap shrinks to the margin; the
        strongest request wins (`sim.world_kernels.strongest_brake`, compiled: it runs every step).
        """
        t = self.traffic
        assert t is not None
        lo, hi = self.ego_band()
        lo, hi = lo - SAFE_LATERAL_MARGIN_M, hi + SAFE_LATERAL_MARGIN_M
        speed, margin = self.ego.speed, self.safety.margin_m
        strongest = strongest_brake(
            t.s, t.d, t.width, t.length, t.speed, t.lane_centres, t.lane, self.s, 0.5 * (lo + hi),
            0.5 * (hi - lo), 0.5 * self.ego.params.length, speed, margin,
            margin + self.safety.headway_s * speed, COMFORT_BRAKE,
        )  # fmt: skip
        if strongest == strongest:  # not nan: some car asked
            needed = -(strongest + 0.5)
            if needed < accel:
                self.safety_brakes += 1
                return max(needed, -self.ego.params.max_brake)
        return accel

    def lane_is_safe(self, lane: int) -> bool:
        """Whether `lane` has room beside the ego car to move into it (DeepTraffic's safety check).

        Room means a bumper gap of at least the safety margin plus LANE_CHANGE_CLOSING_S seconds of
        closing speed to the nearest car ahead and behind in that lane (a car changing lanes counts
        in its target lane too). This is a snapshot: `DiscreteLaneAction` repeats it every step
        until the ego's body reaches the lane, and the safety brake covers the lane from the
        moment the change is accepted. Compiled (`sim.world_kernels.lane_has_room`): the steer
        mode's lane-keeping assist asks it every step.
        """
        t = self.traffic
        assert self.road is not None and t is not None
        if not 0 <= lane < self.road_config.lanes:
            return False
        p = self.ego.params
        return lane_has_room(
            t.s, t.d, t.width, t.length, t.speed, t.lane_centres, t.lane, self.s,
            self.lane_centre(lane), 0.5 * p.width, 0.5 * p.length, self.ego.speed, self.safety.margin_m,
            LANE_CHANGE_CLOSING_S,
        )  # fmt: skip

    def sweeps_unsafe_lane(self) -> bool:
        """Whether the band the ego occupies or will sweep before it could turn back (`ego_band`
        over `_recovery_s`, at least EGO_LOOKAHEAD_S) reaches a lane, other than the one its centre
        is in, that fails `lane_is_safe`, or past an edge line of the road.

        Steer mode's counterpart of refusing a lane change (`DiscreteSteerAction`): there the
        heading, not a request, decides where the car goes, and a car holding a few degrees of
        heading with the wheel centred drifts over the line into a car alongside (or off the road)
        as surely as one turning. Lanes past the edges (-1 and `lanes`) are never safe.
        """
        cfg = self.road_config
        lo, hi = self.ego_band(max(EGO_LOOKAHEAD_S, self._recovery_s()))
        own = self.state().lane
        leftmost = max(math.floor((cfg.half_width - hi) / cfg.lane_width), -1)
        rightmost = min(math.floor((cfg.half_width - lo) / cfg.lane_width), cfg.lanes)
        return any(j != own and not self.lane_is_safe(j) for j in range(leftmost, rightmost + 1))

    def _recovery_s(self) -> float:
        """Seconds the ego needs to come back parallel to the road: a full reversal of the steering
        input, then the heading error turned away at the tightest turn its speed allows.

        `sweeps_unsafe_lane` extrapolates the lateral speed over this time; the car really slows
        its drift while turning back, so the band is wider than the sweep (on the safe side). A
        fixed second is too short at a large heading: with the wheel at full lock a car crosses
        safe lanes at 25-30 degrees and still crosses the next, unsafe, line while turning back.
        """
        p, speed = self.ego.params, self.ego.speed
        turn_rate = speed * math.tan(p.max_wheel_angle(speed)) / p.wheelbase
        return 2.0 / p.steer_rate + abs(self.heading_error()) / max(turn_rate, 1e-6)

    def put_back_on_lane_centre(self) -> None:
        """A safety driver's intervention: the car is placed on the centre of its lane, facing along
        the road, at the same arc length and speed (NVIDIA's autonomy test does this)."""
        assert self.road is not None
        lane = self.state().lane
        self.d = self.lane_centre(lane)
        x, y, heading = (float(v) for v in self.road.pose(self.s, self.d))
        speed = self.ego.speed
        self.ego.reset(x, y, heading, speed)
        self._state = None

    def place_ego(self, x: float, y: float, yaw: float) -> None:
        """Move the ego car to the world pose (x, y, yaw), keeping its speed and steering; its arc length
        and offset follow from the road. For code that asks what the car would see or do from another
        pose (view augmentation, tests); the traffic is not told until the next `step`."""
        assert self.road is not None
        self.ego.x, self.ego.y, self.ego.yaw = x, y, yaw
        self.s, self.d = self.road.frenet(x, y, self.s)
        self._state = None

    def camera_view(
        self,
        camera: Camera,
        pose: tuple[float, float, float] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The frame `camera` draws of this world from the ego's pose, or from the world pose `pose`
        (x, y, yaw) at the ego's arc length, the traffic as it is now. `out` as in the camera's `render`.

        One camera (the env's) draws the observations; others (another look) or other poses (a car
        displaced from the ego's path) draw the extra views behaviour cloning learns from.
        """
        assert self.road is not None
        e = self.ego
        x, y, yaw = (e.x, e.y, e.yaw) if pose is None else pose
        return camera.render(self.road, x, y, yaw, self.s, self.cars(), out)

    def refuse_lane_change(self) -> None:
        """Record that the safety system refused a lane change."""
        self.safety_refusals += 1

    def _hits_traffic(self) -> bool:
        assert self.traffic is not None
        t, p = self.traffic, self.ego.params
        if t.s.size == 0:
            return False
        # Cheap Frenet pre-filter (with a generous margin for yaw); exact oriented-box test after.
        near = self._near
        if not frenet_neighbours(t.s, t.d, t.length, t.width, self.s, self.d, p.length, p.width, 1.5, near):
            return False
        c = self.cars()  # built once per traffic state, and reused by the renderer
        e = self.ego
        return any_overlap(e.x, e.y, e.yaw, p.length, p.width, c.x, c.y, c.yaw, c.length, c.width, near)

    # -------------------------------------------------------------------------------------- queries
    @property
    def off_road(self) -> bool:
        """The car's centre has left the paved surface (past the shoulder) or it faces sideways."""
        assert self.road is not None
        edge = self.road_config.half_width + self.road_config.shoulder_width
        return abs(self.d) > edge or abs(self.heading_error()) > math.pi / 2

    def heading_error(self) -> float:
        """Ego heading minus road heading at `s`, rad, wrapped to [-pi, pi): computed once per pose.

        `ego_band` (twice per step), `off_road` (up to three times) and `state()` all need it. The
        cache is keyed on the pose itself (yaw, s) and the road's heading array (a new road, or the
        road extended), so code that moves the ego directly (interventions, tests) is always seen.
        """
        road = self.road
        assert road is not None
        yaw, s = self.ego.yaw, self.s
        c_yaw, c_s, c_heading = self._he_pose
        if yaw == c_yaw and s == c_s and road.heading is c_heading:
            return self._he
        self._he = float(wrap_angle(yaw - road.heading_at(s)))
        self._he_pose = (yaw, s, road.heading)
        return self._he

    def state(self) -> EgoState:
        """The ego's privileged state (what every env's `info` reports), computed once per step."""
        assert self.road is not None
        if self._state is not None:
            return self._state
        cfg = self.road_config
        lane = min(max(int(math.floor((cfg.half_width - self.d) / cfg.lane_width)), 0), cfg.lanes - 1)
        self._state = EgoState(
            x=self.ego.x,
            y=self.ego.y,
            yaw=self.ego.yaw,
            speed=self.ego.speed,
            steer=self.ego.steer,
            s=self.s,
            d=self.d,
            lane=lane,
            lateral_offset=self.d - (0.5 * (cfg.lanes - 1) - lane) * cfg.lane_width,
            heading_error=self.heading_error(),
            distance=self.s - self._start_s,
        )
        return self._state

    def cars(self) -> CarBoxes:
        """Traffic as boxes for the renderers and the collision test (`Traffic.world_pose`).

        Built once per traffic state: the boxes are reused until the traffic moves or a car is
        placed (`Traffic.revision`), so rendering the same state again costs nothing here. x, y,
        yaw, length and width are this state's own arrays (they do not change when the traffic
        moves on); height and color are the traffic's live arrays, as before.
        """
        t = self.traffic
        assert t is not None
        key_traffic, key_revision = self._cars_key
        if self._cars is not None and key_traffic is t and key_revision == t.revision:
            return self._cars
        x, y, yaw = t.world_pose()
        cars = CarBoxes(x, y, yaw, t.length.copy(), t.width.copy(), t.height, t.color)
        self._cars, self._cars_key = cars, (t, t.revision)
        return cars

    def ego_box(self) -> CarBoxes:
        """The ego car as a box (for the top-down view)."""
        p = self.ego.params
        one = np.ones(1)
        return CarBoxes(
            one * self.ego.x,
            one * self.ego.y,
            one * self.ego.yaw,
            one * p.length,
            one * p.width,
            one * p.height,
            np.array([EGO_COLOR]),
        )
