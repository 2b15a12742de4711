"""What configures the traffic (`TrafficConfig`, validated) and the sizes of its cars.

Kept apart from the simulation so that the envs, the command line and the tests can name and check
the options without the traffic's kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.validation import check_range

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
