"""The privileged expert: drives from the true world state, never from pixels.

It is the reference line in every evaluation table, the demonstrator for behaviour cloning and the
labeller for DAgger. Lateral control is pure pursuit with curvature feed-forward
(`sim.lane_control.steer_to_offset`). In traffic it picks the fastest lane it can safely reach (gap
acceptance on both neighbours) and follows the car ahead with a safe time gap.

It speaks every action space camdrive has: continuous steering (LaneKeep-v0), steering + throttle,
and Traffic-v0's Discrete(5) in both modes. In the discrete `steer` mode the wheel can only be held
at a fixed angle or released for a step, so the continuous command is turned into a pulse train by
sigma-delta modulation: the running sum of what was asked minus what was done stays bounded, so
the average steering equals the requested steering. As a teacher for another driver (`sigma_delta`
False) it answers each state on its own instead: a pulse when the requested steering is more than half
a pulse, because a running sum of what it asked makes no sense once someone else takes the actions.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from sim.actions import ACCELERATE, DECELERATE, LEFT, NOOP, RIGHT, DiscreteLaneAction, DiscreteSteerAction
from sim.envs.base import CamDriveEnv, unwrap
from sim.lane_control import steer_to_offset
from sim.world import World

LANE_CHANGE_COOLDOWN_S = 3.0
LANE_GAIN_MPS = 1.5
"""Change lane only if the neighbour lane is expected to be this much faster."""
LOOK_AHEAD_M = 70.0
"""Cars further ahead than this do not limit a lane's expected speed."""
HEADWAY_S = 1.6
"""Time gap the expert keeps to the car ahead, on top of the safety margin and 2 m."""


def clip(value: float, low: float, high: float) -> float:
    """`value` limited to [low, high], as `np.clip` gives it for one number (the same value, NaN kept),
    at a tenth of its cost: the controllers run every step, and a planner's rollouts many times more."""
    return float(min(max(value, low), high))


BAND_MARGIN_M = 0.2
"""A car ahead counts when it overlaps the ego's body widened by this much on each side."""


def band_half_width(world: World) -> float:
    """Half the width of the band a car ahead (or behind) must overlap to count: the ego's body plus
    BAND_MARGIN_M each side."""
    return 0.5 * world.ego.params.width + BAND_MARGIN_M


def gap_ahead(world: World, d: float) -> tuple[float, float]:
    """(gap m, speed) from the ego's front bumper to the rear of the nearest car ahead that overlaps
    the band (`band_half_width`) centred at lateral position `d`; a car changing lanes into it counts
    (`Traffic.leader`'s anticipate). (inf, inf) when there is none.

    What the expert keeps its time gap to, and what the DQN's auxiliary targets read
    (`training.dqn.affordances`)."""
    assert world.traffic is not None
    gap, speed = world.traffic.leader(world.s, d, band_half_width(world), anticipate=True)
    return gap - 0.5 * world.ego.params.length, speed


class Expert:
    """Privileged driver for every camdrive env. See the module docstring."""

    name = "expert"

    def __init__(
        self,
        change_lanes: bool = True,
        headway_s: float = HEADWAY_S,
        sigma_delta: bool = True,
        speed_band: float | None = None,
    ) -> None:
        self.change_lanes = change_lanes
        self.headway_s = headway_s
        self.sigma_delta = sigma_delta
        self.speed_band = speed_band
        """None: discrete speed actions steer the cruise target the actions have set. A number: they
        answer the car's actual speed with this dead band in m/s (see `_speed_action`)."""
        self._env: CamDriveEnv[Any] | None = None
        self.target_lane = 0
        self._residual = 0.0
        self._cooldown = 0.0

    @property
    def env(self) -> CamDriveEnv[Any]:
        """The camdrive env the expert drives (set by `reset` or `drive`)."""
        assert self._env is not None, "call reset(env) first"
        return self._env

    @property
    def world(self) -> World:
        """The privileged state it drives from: its env's world."""
        return self.env.world

    def reset(self, env: gym.Env) -> None:
        self._env = unwrap(env)
        self.target_lane = self.world.state().lane
        self._residual = 0.0
        self._cooldown = LANE_CHANGE_COOLDOWN_S

    def drive(self, env: CamDriveEnv[Any]) -> None:
        """Drive `env` from now on, keeping the plan (target lane, time gap) and the steering residual:
        the oracle hands a copy of its plan follower a copy of the env to try the plan in."""
        self._env = env

    # ------------------------------------------------------------------------------------ acting
    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> Any:
        """The expert's action for the env's current state (observation and info are not needed)."""
        env = self.env
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            self._plan_lane()
            action_type = env.action_type
            if isinstance(action_type, DiscreteLaneAction):
                return self._lane_mode_action(action_type)
            assert isinstance(action_type, DiscreteSteerAction)
            return self._steer_mode_action(action_type)
        steer = self.steering()
        if space.shape == (2,):
            return np.array([steer, self.throttle()], dtype=np.float32)
        return np.array([steer], dtype=np.float32)

    def steering(self) -> float:
        """Continuous steering (-1 left .. +1 right) toward the centre of the target lane."""
        w = self.world
        assert w.road is not None
        st = w.state()
        d_target = float(w.road.lane_centre(self.target_lane))
        return steer_to_offset(w.road, w.ego.params, st.s, st.d, st.yaw, st.speed, d_target)

    def desired_speed(self) -> float:
        """Speed limit or cruise speed, reduced to keep a safe time gap to the car ahead."""
        w = self.world
        options = self.env.options
        limit = getattr(options, "speed_limit", None) or options.cruise_speed
        gap, lead_speed = gap_ahead(w, w.d)
        if gap == np.inf:
            return limit
        desired_gap = w.safety.margin_m + 2.0 + self.headway_s * w.ego.speed
        # Proportional on the gap error around the leader's speed: closes or opens the gap in ~2 s.
        return clip(lead_speed + 0.5 * (gap - desired_gap), 0.0, limit)

    def throttle(self) -> float:
        """Throttle (-1 brake .. +1 accelerate) for the steering + throttle action space."""
        p = self.world.ego.params
        accel = 1.0 * (self.desired_speed() - self.world.ego.speed)
        return clip(accel / (p.max_accel if accel >= 0 else p.max_brake), -1.0, 1.0)

    # --------------------------------------------------------------------------- discrete actions
    def _speed_action(self, action_type: DiscreteSteerAction) -> int:
        target = self.desired_speed()
        speed = self.world.ego.speed
        if self.speed_band is not None:
            # As a teacher for a network that sees frames: the car's speed shows in the road's motion,
            # the cruise target set by earlier pulses does not; so brake in every step the car is too
            # fast (a sustained signal), rather than in one pulse that lowers an unseen target.
            if target < speed - self.speed_band:
                return DECELERATE
            return ACCELERATE if target > speed + self.speed_band else NOOP
        planned = action_type.target_speed
        if target < speed - 0.5 or planned > target + 0.5:
            return DECELERATE
        if target > planned + 0.5:
            return ACCELERATE
        return NOOP

    def _steer_mode_action(self, action_type: DiscreteSteerAction) -> int:
        amount = action_type.steer_amount
        if not self.sigma_delta:
            self._residual = 0.0
        self._residual += self.steering()
        pulse = int(clip(round(self._residual / amount), -1, 1))
        self._residual -= pulse * amount
        self._residual = clip(self._residual, -2 * amount, 2 * amount)
        if pulse < 0:
            return LEFT
        if pulse > 0:
            return RIGHT
        return self._speed_action(action_type)

    def _lane_mode_action(self, action_type: DiscreteLaneAction) -> int:
        current = action_type.target_lane
        if self.target_lane < current:
            return LEFT
        if self.target_lane > current:
            return RIGHT
        return self._speed_action(action_type)

    # ------------------------------------------------------------------------------ lane choice
    def _lane_speed(self, lane: int) -> float:
        """Speed the ego could expect in `lane`: the limit, unless a slower car is near ahead."""
        w = self.world
        assert w.road is not None
        gap, lead_speed = gap_ahead(w, float(w.road.lane_centre(lane)))
        limit = getattr(self.env.options, "speed_limit", w.ego.params.max_speed)
        return float(limit if gap > LOOK_AHEAD_M else min(limit, lead_speed))

    def _plan_lane(self) -> None:
        """Gap acceptance: move to a faster neighbouring lane when the move is safe."""
        w = self.world
        self._cooldown -= self.env.dt
        st = w.state()
        if st.lane != self.target_lane and not self._room_to_change(
            self.target_lane - st.lane, from_lane=st.lane
        ):
            self.target_lane = st.lane  # the gap closed mid-change: go back
            return
        settled = st.lane == self.target_lane and abs(st.lateral_offset) < 0.4
        if not self.change_lanes or self._cooldown > 0 or not settled:
            return
        here = self._lane_speed(self.target_lane)
        best, best_speed = self.target_lane, here + LANE_GAIN_MPS
        for direction in (-1, 1):
            lane = self.target_lane + direction
            faster = 0 <= lane < w.road_config.lanes and self._lane_speed(lane) > best_speed
            if faster and self._room_to_change(direction):
                best, best_speed = lane, self._lane_speed(lane)
        if best != self.target_lane:
            self.target_lane = best
            self._cooldown = LANE_CHANGE_COOLDOWN_S

    def _room_to_change(self, direction: int, from_lane: int | None = None) -> bool:
        """Stricter than the safety system: room ahead and behind with a time margin."""
        w = self.world
        assert w.road is not None and w.traffic is not None
        lane = (self.target_lane if from_lane is None else from_lane) + direction
        d = float(w.road.lane_centre(lane))
        half_l, half_w = 0.5 * w.ego.params.length, 0.5 * w.ego.params.width + 0.3
        speed = w.ego.speed
        # From the ego's centre, so a car alongside (or cutting in) shows as a negative gap.
        gap_ahead, speed_ahead = w.traffic.leader(w.s, d, half_w, anticipate=True)
        gap_behind, speed_behind = w.traffic.follower(w.s, d, half_w, anticipate=True)
        gap_ahead -= half_l
        gap_behind -= half_l
        need_ahead = 8.0 + 1.0 * speed + max(speed - speed_ahead, 0.0) * 2.0
        closing_behind = max(speed_behind - speed, 0.0) if gap_behind < math.inf else 0.0
        need_behind = 8.0 + closing_behind * 3.0
        return gap_ahead > need_ahead and gap_behind > need_behind
