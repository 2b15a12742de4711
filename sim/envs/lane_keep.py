"""camdrive/LaneKeep-v0: keep a car in its lane from a single front camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.actions import ActionType, SteeringAction, SteeringThrottleAction
from sim.envs.base import CamDriveEnv, CommonOptions, parse_options
from sim.observations import CameraObservation, ObservationType
from sim.rewards import LaneKeepReward
from sim.road import RoadConfig
from sim.validation import check_choice, check_range


@dataclass(frozen=True)
class LaneKeepOptions(CommonOptions):
    cruise_speed: float = 20.0
    """m/s the cruise controller holds (steering-only actions)."""
    action_type: str = "steer"
    """"steer": Box(-1, 1, (1,)); "steer_throttle": Box(-1, 1, (2,))."""
    road_design_speed: float = 25.0
    """Curves are bounded so they can be driven at this speed with 2 m/s^2 lateral acceleration."""

    def validate(self) -> None:
        self.check_common()
        check_range("cruise_speed", self.cruise_speed, 1.0, 40.0)
        check_choice("action_type", self.action_type, ("steer", "steer_throttle"))
        check_range("road_design_speed", self.road_design_speed, 5.0, 60.0)
        self.road().validate()

    def road(self) -> RoadConfig:
        return RoadConfig(
            lanes=self.lanes,
            lane_width=self.lane_width,
            curviness=self.curviness,
            design_speed=self.road_design_speed,
            max_lateral_accel=2.0,
        )


class LaneKeepEnv(CamDriveEnv[LaneKeepOptions]):
    """Lane keeping from a front camera, PilotNet-style.

    ## Description
    A car drives an endless, seeded, curving multi-lane road with light traffic. The agent sees
    what a windscreen camera sees and steers; a cruise controller holds the speed, and the safety
    system (on by default) brakes for a slower car ahead.

    ## Action Space
    `Box(-1, 1, (1,), float32)`: steering, -1 full left, +1 full right (as in CarRacing). Steering is
    speed-sensitive (see `sim.vehicle`) and rate-limited. With `action_type="steer_throttle"`,
    `Box(-1, 1, (2,))`: [steering, throttle], throttle < 0 brakes.

    Accepted: a list or tuple of 1 (2) numbers, Python's or numpy's ints and floats; a numpy array of
    shape (1,) ((2,)) with an integer or floating dtype; another array-like (a torch tensor) that
    `np.asarray` makes such an array. Each value is taken as a float64 and clipped to [-1, 1]. Refused
    with a ValueError naming the env and the space, before the car moves (the env steps on as if it had
    not been passed): NaN, +-inf and ints too large for a float64; bools (True is no steering); strings,
    bytes, None, dicts; complex, datetime, object or string dtypes; any other shape, a bare number
    included (write `[steer]`). The rule, one for both spaces, is written out in `sim.actions`.

    ## Observation Space
    `Box(0, 255, (66, 200, 3), uint8)`: the camera frame at PilotNet's input size (configurable,
    `grayscale=True` gives one channel; `speedometer=True` draws the car's speed as a bar along the
    bottom edge, `sim.render.gauge`).

    ## Rewards
    Per step: progress along the road / (cruise_speed * dt) - 0.5 * (lane offset / half lane)^2
    - |heading error|; centred driving at the cruise speed earns 1. Leaving the road or colliding:
    -10 (see `sim.rewards`).

    ## Starting State
    Centred in a lane drawn from the seed, at the cruise speed, 50 m down the road.

    ## Episode End
    Terminated when the car's centre leaves the paved surface (past the shoulder), it turns more
    than 90 degrees from the road, or it collides. Truncated after `episode_seconds` (60 s).

    ## Arguments
    `gymnasium.make("camdrive/LaneKeep-v0", **options)`; every field of `LaneKeepOptions` and
    `CommonOptions` (camera size and pose, lanes, curviness, traffic, speeds, control rate,
    domain randomisation), validated: a bad value raises ValueError naming the option and range.
    numpy scalars count as their Python values (`lanes=np.int64(3)`, `curviness=np.float32(0.5)`); a
    bool is no number and a float no integer (see `sim.validation`). `render_mode`: None, "human" or
    "rgb_array"; anything else is a ValueError listing them.

    ## Info
    Privileged state: x, y, yaw, speed (m/s), steer, s, d, lane, lateral_offset (m),
    heading_error (rad), distance (m), collision, off_road, safety_brakes, safety_refusals, seed.

    ## Version History
    - v0: initial release. Unreleased change within v0 (camdrive 0.1.0): the road is drawn from
      box-filtered layers (solid far edge lines, shade bands that change between dashes), so
      frames differ from earlier builds; dynamics, rewards and infos are unchanged. Option
      `speedometer` added (off by default, frames unchanged).
    """

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        options = parse_options(LaneKeepOptions, kwargs)
        self.reward_fn = LaneKeepReward(options.cruise_speed, options.lane_width)
        super().__init__(options, options.road(), render_mode)

    def _make_observation(self) -> ObservationType:
        o = self.options
        return CameraObservation(o.camera(), o.road(), o.grayscale, o.speedometer)

    def _make_action(self) -> ActionType:
        if self.options.action_type == "steer":
            return SteeringAction(self.options.cruise_speed)
        return SteeringThrottleAction()

    def _start(self) -> tuple[int, float]:
        return int(self.np_random.integers(0, self.options.lanes)), self.options.cruise_speed

    def _reward(self, progress: float, terminated: bool) -> float:
        world = self._world
        offset = world.lateral_offset(world.ego_lane())
        return self.reward_fn(progress, self.dt, offset, world.heading_error(), terminated)
