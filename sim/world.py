"""The world one episode takes place in: a road, the ego car and traffic, protected by a safety system.

`World.step` advances one control period: the safety system's brake (`sim.safety`, when enabled),
the ego car's physics in fixed sub-steps, then the traffic, then collision and off-road checks.
Environments wrap it with observations, actions and rewards; drivers read its privileged state
through `World.state()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sim import safety as safety_system
from sim import seeding
from sim.boxes import CarBoxes
from sim.collision import any_overlap, frenet_neighbours
from sim.road import Road, RoadConfig, wrap_angle
from sim.safety import EGO_LOOKAHEAD_S, SafetyConfig
from sim.traffic import Traffic, TrafficConfig
from sim.vehicle import Vehicle, VehicleParams
from sim.world_step import COLLISION_MARGIN_M, ego_band, sweeps_unsafe_lane, world_step

PHYSICS_DT = 0.02
"""Fixed physics step of the ego car (50 Hz); control periods are whole multiples of it."""
EGO_COLOR = 1


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
        self._half_width = self.road_config.half_width
        self._off_road_edge = self._half_width + self.road_config.shoulder_width
        """|d| past which the car's centre is off the paved surface (`off_road`)."""
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
        p = self.ego.params
        self._vehicle = np.array(
            [p.wheelbase, p.max_steer_angle, p.max_lateral_accel, p.steer_rate, p.max_accel, p.max_brake,
             p.max_speed, p.length, p.width]
        )  # fmt: skip
        """The ego's `VehicleParams` as `world_step` takes them."""
        self._ego_state = np.zeros(7)
        """`world_step`'s in/out ego state: x, y, yaw, speed, steer, s, d."""

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
        """Advance `dt` seconds with steering input `steer` (-1..1) and acceleration `accel` (m/s^2).

        In order: the safety brake (`sim.safety.brake_request`, when enabled), the ego's physics in
        fixed sub-steps, its arc length, offset and heading error, then the traffic, which sees the
        ego over the band it will sweep in the next second and, during a lane change, over its
        target lane too (nobody starts a lane change into the lane the ego is moving into, and the
        cars of that lane follow the ego from the moment it decides to come), then the collision
        test. The common path is one compiled call (`sim.world_step.world_step`); the rare events
        (a traffic car trying a lane change or recycled, a car close enough for the exact collision
        test) are called from here when they happen.
        """
        assert self.road is not None and self.traffic is not None, "call reset() first"
        if not 0.0 < dt <= 1.0:
            raise ValueError(f"dt must be a number in (0, 1], got {dt!r}")
        road, traffic, ego = self.road, self.traffic, self.ego
        n_sub = max(1, round(dt / PHYSICS_DT))
        search_lo, search_hi = road.search_window(self.s)  # extends the road if need be
        traffic.draw_for_step()
        state = self._ego_state
        state[:] = ego.x, ego.y, ego.yaw, ego.speed, ego.steer, self.s, self.d
        target_d = math.nan if self.target_d is None else self.target_d
        safety = self.safety
        accel, braked, heading_error, n_tries, leaves, near_car = world_step(
            state, float(steer), float(accel), self.heading_error(), target_d, dt / n_sub, n_sub,
            self._vehicle, safety.enabled, safety.margin_m, safety.headway_s, road.s, road.x, road.y,
            road.heading, search_lo, search_hi, self.road_config.lane_width, *traffic.kernel_arrays,
            self._near, traffic.kernel_params, traffic.config.lane_change_rate * dt, dt,
        )  # fmt: skip
        ego.x, ego.y, ego.yaw, ego.speed, ego.steer, self.s, self.d = state.tolist()
        self.applied_accel = accel
        self.safety_brakes += braked
        self._he, self._he_pose = heading_error, (ego.yaw, self.s, road.heading)
        traffic.stepped(self.s, n_tries, leaves)
        self._state = None
        if self.collided:
            return
        if n_tries or leaves:  # the rare events moved cars: the whole test
            self.collided = self._hits_traffic()
        elif near_car:  # the pre-filter has marked the cars near the ego
            self.collided = self._overlaps_near()

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
        at its current heading relative to the road, or is heading for (`target_d`): the formula
        `world_step` uses, `sim.world_step.ego_band`."""
        assert self.road is not None
        target_d = math.nan if self.target_d is None else self.target_d
        half_w = 0.5 * self.ego.params.width
        return ego_band(self.d, self.ego.speed, self.heading_error(), target_d, half_w, lookahead_s)

    def body_in_lane(self, lane: int) -> bool:
        """Whether the ego's body overlaps `lane` (the traffic then counts the ego as in that lane)."""
        assert self.road is not None
        reach = 0.5 * (self.road_config.lane_width + self.ego.params.width)
        return abs(self.d - self.lane_centre(lane)) < reach

    def lane_is_safe(self, lane: int) -> bool:
        """Whether `lane` has room beside the ego car to move into it (`sim.safety.lane_is_safe`)."""
        return safety_system.lane_is_safe(self, lane)

    def sweeps_unsafe_lane(self) -> bool:
        """Whether the band the ego occupies or will sweep before it could turn back (`ego_band` over
        the seconds it needs to come back parallel to the road, at least EGO_LOOKAHEAD_S) reaches a
        lane, other than the one its centre is in, that fails `lane_is_safe`, or past an edge line of
        the road: steer mode's lane-keeping assist.

        Steer mode's counterpart of refusing a lane change (`DiscreteSteerAction`): there the
        heading, not a request, decides where the car goes, and a car holding a few degrees of
        heading with the wheel centred drifts over the line into a car alongside (or off the road)
        as surely as one turning. One compiled call (`sim.world_step.sweeps_unsafe_lane`): the
        assist asks at every step.
        """
        t = self.traffic
        assert self.road is not None and t is not None
        target_d = math.nan if self.target_d is None else self.target_d
        return sweeps_unsafe_lane(
            t.s, t.d, t.width, t.length, t.speed, t.lane_centres, t.lane, self.s, self.d, self.ego.speed,
            self.heading_error(), target_d, self._vehicle, self._half_width, self.road_config.lane_width,
            self.safety.margin_m,
        )  # fmt: skip

    def put_back_on_lane_centre(self) -> None:
        """A safety driver's intervention: the car is placed on the centre of its lane, facing along
        the road, at the same arc length and speed (NVIDIA's autonomy test does this)."""
        assert self.road is not None
        self.d = self.lane_centre(self.ego_lane())
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
        near, margin = self._near, COLLISION_MARGIN_M
        e_s, e_d = self.s, self.d
        if not frenet_neighbours(t.s, t.d, t.length, t.width, e_s, e_d, p.length, p.width, margin, near):
            return False
        return self._overlaps_near()

    def _overlaps_near(self) -> bool:
        """The exact oriented-box test against the cars the pre-filter marked in `_near`."""
        c = self.cars()  # built once per traffic state, and reused by the renderer
        e, p = self.ego, self.ego.params
        return any_overlap(e.x, e.y, e.yaw, p.length, p.width, c.x, c.y, c.yaw, c.length, c.width, self._near)

    # -------------------------------------------------------------------------------------- queries
    @property
    def off_road(self) -> bool:
        """The car's centre has left the paved surface (past the shoulder) or it faces sideways."""
        return abs(self.d) > self._off_road_edge or abs(self.heading_error()) > math.pi / 2

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
        return self._remember_heading_error(road.heading_at(s))

    def _remember_heading_error(self, road_heading: float) -> float:
        """Cache and return the heading error of the ego's pose given the road's heading at `s`
        (`step` has it from the projection that found `s`)."""
        assert self.road is not None
        self._he = float(wrap_angle(self.ego.yaw - road_heading))
        self._he_pose = (self.ego.yaw, self.s, self.road.heading)
        return self._he

    def state(self) -> EgoState:
        """The ego's privileged state (what every env's `info` reports), built once per step."""
        if self._state is None:
            self._state = EgoState(**self.state_fields())
        return self._state

    def state_fields(self) -> dict[str, Any]:
        """`state()`'s fields by name, in its order, in a new dict (the env's `info` starts from it).

        The env's step reads the few numbers it needs (`ego_lane`, `heading_error`, the ego) and its
        info this dict: building the frozen `EgoState` costs several times as much, so only code that
        asks for `state()` pays for it.
        """
        assert self.road is not None
        e, lane = self.ego, self.ego_lane()
        return {
            "x": e.x,
            "y": e.y,
            "yaw": e.yaw,
            "speed": e.speed,
            "steer": e.steer,
            "s": self.s,
            "d": self.d,
            "lane": lane,
            "lateral_offset": self.lateral_offset(lane),
            "heading_error": self.heading_error(),
            "distance": self.s - self._start_s,
        }

    def ego_lane(self) -> int:
        """The lane the ego's centre is in (`EgoState.lane`): 0 = leftmost, clipped to the road's lanes."""
        cfg = self.road_config
        return min(max(int(math.floor((self._half_width - self.d) / cfg.lane_width)), 0), cfg.lanes - 1)

    def lateral_offset(self, lane: int) -> float:
        """The ego's offset from the centre of `lane` (its own: `ego_lane`), m, positive left
        (`EgoState.lateral_offset`)."""
        return self.d - self.lane_centre(lane)

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
