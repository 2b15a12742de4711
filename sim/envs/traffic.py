"""camdrive/Traffic-v0: DeepTraffic's game, seen through the front camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.actions import ActionType, DiscreteLaneAction, DiscreteSteerAction
from sim.envs.base import CamDriveEnv, CommonOptions, parse_options
from sim.observations import CameraObservation, GridObservation, ObservationType
from sim.rewards import traffic_reward
from sim.road import RoadConfig
from sim.validation import check_choice, check_range

MPH = 0.44704


@dataclass(frozen=True)
class TrafficOptions(CommonOptions):
    lanes: int = 7
    curviness: float = 0.5
    traffic_cars: int = 20
    traffic_speed_min: float = 15.0
    traffic_speed_max: float = 33.0
    """Desired speeds of the other cars vary widely (34-74 mph), so choosing a lane matters."""
    safety: bool = True
    speed_limit: float = 80 * MPH
    """DeepTraffic's 80 mph, in m/s. Reward 1 per step at this speed."""
    action_mode: str = "steer"
    """"steer": left/right turn the wheel; "lane": left/right ask for a lane change (DeepTraffic)."""
    steer_amount: float = 0.3
    """Steering input held while a left/right action is taken in "steer" mode."""
    accel_step: float = 1.0
    """m/s added to / taken from the target speed by accelerate / decelerate."""
    obs_type: str = "camera"
    """"camera": front-camera frames; "grid": DeepTraffic's occupancy grid."""
    grid_lanes_side: int = 1
    grid_patches_ahead: int = 10
    grid_patches_behind: int = 0
    grid_patch_length: float = 5.0

    def validate(self) -> None:
        self.check_common()
        check_range("speed_limit", self.speed_limit, 5.0, 60.0)
        check_choice("action_mode", self.action_mode, ("steer", "lane"))
        check_range("steer_amount", self.steer_amount, 0.05, 1.0)
        check_range("accel_step", self.accel_step, 0.1, 10.0)
        check_choice("obs_type", self.obs_type, ("camera", "grid"))
        check_range("grid_lanes_side", self.grid_lanes_side, 0, 6, integer=True)
        check_range("grid_patches_ahead", self.grid_patches_ahead, 0, 100, integer=True)
        check_range("grid_patches_behind", self.grid_patches_behind, 0, 100, integer=True)
        if self.grid_patches_ahead + self.grid_patches_behind == 0:
            raise ValueError("grid_patches_ahead + grid_patches_behind must be at least 1, got 0")
        check_range("grid_patch_length", self.grid_patch_length, 0.5, 50.0)
        self.road().validate()

    def road(self) -> RoadConfig:
        return RoadConfig(
            lanes=self.lanes,
            lane_width=self.lane_width,
            curviness=self.curviness,
            design_speed=max(self.speed_limit, 5.0),
            max_lateral_accel=1.2,
        )


class TrafficEnv(CamDriveEnv[TrafficOptions]):
    """DeepTraffic from pixels: go as fast as possible through dense multi-lane traffic.

    ## Description
    A 7-lane highway with 20 cars around the ego, recycled as it moves (IDM car following, lane
    changes only into safe gaps, varied desired speeds). As in MIT's DeepTraffic the score is
    speed; the safety system (on by default) brakes for a slower car close ahead and refuses lane
    changes into an unsafe gap, and `info` counts how often it acted.

    ## Action Space
    `Discrete(5)`: 0 noop, 1 accelerate, 2 decelerate, 3 left, 4 right. With `action_mode="steer"`
    (default) left/right hold the wheel at `steer_amount` for the step (it self-centres otherwise),
    so the policy learns lane keeping and lane changes from frames. With `action_mode="lane"`, they
    ask a built-in controller to change lane (DeepTraffic's meaning). Accelerate/decelerate move
    the target speed by `accel_step` m/s (capped at the speed limit).

    Accepted: an integer in [0, 4], as a Python int (an IntEnum member is one), a numpy integer
    scalar or a 0-d integer array (what `action_space.sample()` and SB3's `predict` return; an
    array-like that `np.asarray` makes one too). Refused with a ValueError naming the env and the
    space, before the car moves (the env steps on as if it had not been passed): integers out of
    range, bools (True is not action 1), floats even when whole (1.0), strings, None, and lists or
    arrays such as [1] (pass `1`: a batch of one is not an action). The rule is written out in
    `sim.actions`.

    ## Observation Space
    `Box(0, 255, (66, 200, 3), uint8)` camera frames (configurable), or with `obs_type="grid"`
    DeepTraffic's occupancy grid `Box(0, 1, (ahead + behind, 2 * lanes_side + 1), float32)`.
    `speedometer=True` draws the car's speed as a bar along the frames' bottom edge (`sim.render.gauge`).
    The temporal window of past frames is the agent's business (see the DQN's replay buffer).

    ## Rewards
    speed / speed_limit per step (1.0 at 80 mph); 0 on the step that collides (see `sim.rewards`).

    ## Starting State
    Centre lane, at 70 % of the speed limit, traffic placed around the car.

    ## Episode End
    Terminated on a collision, on leaving the paved surface, or on turning more than 90 degrees
    from the road. Truncated after `episode_seconds` (60 s).

    ## Arguments
    `gymnasium.make("camdrive/Traffic-v0", **options)`: every field of `TrafficOptions` and
    `CommonOptions`, validated (ValueError naming the option and its range). numpy scalars count as
    their Python values (`lanes=np.int64(5)`); a bool is no number and a float no integer (see
    `sim.validation`). `render_mode`: None, "human" or "rgb_array"; anything else is a ValueError
    listing them.

    ## Info
    As LaneKeep-v0: the privileged state plus collision, off_road, safety_brakes, safety_refusals.

    ## Version History
    - v0: initial release. Unreleased change within v0 (camdrive 0.1.0): the road is drawn from
      box-filtered layers (solid far edge lines, shade bands that change between dashes), so
      frames differ from earlier builds; dynamics, rewards and infos are unchanged. Option
      `speedometer` added (off by default, frames unchanged).
    """

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        options = parse_options(TrafficOptions, kwargs)
        super().__init__(options, options.road(), render_mode)

    def _make_observation(self) -> ObservationType:
        o = self.options
        if o.obs_type == "grid":
            return GridObservation(
                o.grid_lanes_side,
                o.grid_patches_ahead,
                o.grid_patches_behind,
                o.grid_patch_length,
                o.speed_limit,
            )
        return CameraObservation(o.camera(), o.road(), o.grayscale, o.speedometer)

    def _make_action(self) -> ActionType:
        o = self.options
        if o.action_mode == "lane":
            return DiscreteLaneAction(o.accel_step, o.speed_limit)
        return DiscreteSteerAction(o.steer_amount, o.accel_step, o.speed_limit)

    def _start(self) -> tuple[int, float]:
        return self.options.lanes // 2, 0.7 * self.options.speed_limit

    def _reward(self, progress: float, terminated: bool) -> float:
        return traffic_reward(self._world.ego.speed, self.options.speed_limit, self._world.collided)
