"""DeepTraffic's safety system: never rear-end, never change lanes into a car.

`World` is the world it protects and calls it every step when `SafetyConfig.enabled` (option
`safety`, on by default in both environments): a longitudinal brake (`brake_request`, applied at the
start of every step by `sim.world_step.world_step`) that looks at every car ahead in the lateral band
the ego occupies, is about to sweep or is changing lanes into,
and a lane-change check (`lane_is_safe`) repeated until the ego arrives. In steer mode a
lane-keeping assist takes the wheel when that band reaches an unsafe lane (`World.sweeps_unsafe_lane`).
What it guarantees, and where that stops, is `SafetyConfig`'s docstring; docs/safety.md has the
measurements. The per-car loops are compiled in `sim.world_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.validation import check_range
from sim.world_kernels import lane_has_room, strongest_brake

if TYPE_CHECKING:
    from sim.world import World

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
class SafetyConfig:
    """DeepTraffic's safety system: never rear-end, never change lanes into a car.

    What it does (see `World`): the longitudinal brake (`brake_request`) overrides the driver
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


def brake_request(world: World) -> float:
    """The strongest deceleration (m/s^2, before the brake's 0.5 of headroom) that a slower car close
    ahead in the ego's band asks for; nan if none asks. `World.step` brakes at that plus 0.5 (at most
    the car's `max_brake`) whenever the driver asks for less, and counts it (`World.safety_brakes`).

    The band (`World.ego_band`, widened by SAFE_LATERAL_MARGIN_M) is where the ego is, where its
    current heading takes it within EGO_LOOKAHEAD_S and, during a lane change, its target
    lane: a car in the lane being entered is braked for from the moment the change is decided,
    not once the bodies overlap sideways (when even full braking can be too late). Each car
    asks for the deceleration that matches its speed just as the gap shrinks to the margin; the
    strongest request wins (`sim.world_kernels.strongest_brake`, compiled: it runs every step).
    """
    t = world.traffic
    assert t is not None
    lo, hi = world.ego_band()
    lo, hi = lo - SAFE_LATERAL_MARGIN_M, hi + SAFE_LATERAL_MARGIN_M
    speed, margin = world.ego.speed, world.safety.margin_m
    request = strongest_brake(
        t.s, t.d, t.width, t.length, t.speed, t.lane_centres, t.lane, world.s, 0.5 * (lo + hi),
        0.5 * (hi - lo), 0.5 * world.ego.params.length, speed, margin,
        margin + world.safety.headway_s * speed, COMFORT_BRAKE,
    )  # fmt: skip
    return float(request)


def in_danger(world: World, steer_assist: bool) -> bool:
    """Whether the safety system, were it on, would be called on in this state: a slower car close
    ahead in the ego's band asks the brake to act (`brake_request`; the brake then overrides a driver
    who is not already braking as hard), or, with `steer_assist` (steer mode), the ego's sweep reaches
    an unsafe lane or the road's edge (`World.sweeps_unsafe_lane`, when the assist takes the wheel).

    It reads the state only, whether the system is on or off, so a trainer can charge for coming this
    close (`DQNConfig.danger_penalty`) in runs where nothing stops the crash that may follow.
    """
    request = brake_request(world)
    return request == request or (steer_assist and world.sweeps_unsafe_lane())


def lane_is_safe(world: World, lane: int) -> bool:
    """Whether `lane` has room beside the ego car to move into it (DeepTraffic's safety check).

    Room means a bumper gap of at least the safety margin plus LANE_CHANGE_CLOSING_S seconds of
    closing speed to the nearest car ahead and behind in that lane (a car changing lanes counts
    in its target lane too). This is a snapshot: `DiscreteLaneAction` repeats it every step
    until the ego's body reaches the lane, and the safety brake covers the lane from the
    moment the change is accepted. Compiled (`sim.world_kernels.lane_has_room`): the steer
    mode's lane-keeping assist asks it every step.
    """
    t = world.traffic
    assert world.road is not None and t is not None
    if not 0 <= lane < world.road_config.lanes:
        return False
    p = world.ego.params
    return lane_has_room(
        t.s, t.d, t.width, t.length, t.speed, t.lane_centres, t.lane, world.s,
        world.lane_centre(lane), 0.5 * p.width, 0.5 * p.length, world.ego.speed, world.safety.margin_m,
        LANE_CHANGE_CLOSING_S,
    )  # fmt: skip
