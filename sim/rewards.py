"""Where the reward is: every camdrive reward function, in one place.

Rewards are computed from the world's privileged state after a step, never inside the physics.
"""

from __future__ import annotations

from dataclasses import dataclass

TERMINAL_PENALTY = 10.0
"""LaneKeep: reward on the step that leaves the road or collides (the episode then ends)."""


@dataclass(frozen=True)
class LaneKeepReward:
    """progress / (cruise_speed dt) - offset_weight (offset / half lane)^2 - heading_weight |heading error|.

    Driving perfectly centred at the cruise speed earns 1 per step; leaving the road or colliding
    earns -TERMINAL_PENALTY and ends the episode.
    """

    cruise_speed: float
    lane_width: float
    offset_weight: float = 0.5
    heading_weight: float = 1.0

    def __call__(
        self, progress_m: float, dt: float, lateral_offset: float, heading_error: float, failed: bool
    ) -> float:
        """The reward of a step that drove `progress_m` metres in `dt` seconds and ended `lateral_offset`
        m from its lane's centre at `heading_error` rad (`EgoState`'s fields), or `failed`."""
        if failed:
            return -TERMINAL_PENALTY
        progress = progress_m / (self.cruise_speed * dt)
        offset = lateral_offset / (0.5 * self.lane_width)
        return progress - self.offset_weight * offset * offset - self.heading_weight * abs(heading_error)


def traffic_reward(speed: float, speed_limit: float, collided: bool) -> float:
    """DeepTraffic: reward = `speed` (m/s), normalised so driving at the limit earns 1 per step; 0 on
    a crash."""
    if collided:
        return 0.0
    return min(speed / speed_limit, 1.0)
