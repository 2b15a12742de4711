"""The oracle: a privileged planner that estimates the best DeepTraffic score the traffic allows.

The learned drivers' scores mean little on their own: is 57 mph good when the traffic would allow 60,
or 75? The oracle answers that by search. The simulator is deterministic given the actions (the
traffic's lane changes and respawns draw from the world's own seeded generator), so a copy of the
env is an exact model of the future. Every `replan_s` the oracle copies the env (not its renderer),
drives each candidate plan in the copy for `horizon_s`, and keeps the plan that covered the most
road without a collision or leaving the road; it then drives that plan in the real env, where it
unfolds exactly as in the copy.

A plan is a target lane (the current one or a neighbour) and a time gap to keep to the car ahead
(`HEADWAYS_S`, from tailgating to the expert's comfortable gap), driven by the expert's own lane and
speed controllers (`agent.expert.Expert`), so it speaks every action space the expert speaks.
Replanning every half second makes plans that chain lane changes and gap choices. It is a search
over a small family of plans, not an exact optimum: the score it reaches is a lower bound on the
best possible one and, in practice, a ceiling the other drivers can be measured against
(`camdrive eval` reports every traffic score as % of the oracle's).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym

from agent.expert import Expert
from sim.envs.base import CamDriveEnv, unwrap

HEADWAYS_S = (0.3, 0.8, 1.6)
"""Time gaps a plan may keep to the car ahead, s (on top of the safety margin and 2 m)."""
ESCAPE_HEADWAY_S = 1.6
"""After its horizon a plan must be able to settle into its lane at this gap without a crash."""


class _PlanFollower(Expert):
    """The expert's controllers with a fixed target lane and time gap: one plan, driven."""

    def _plan_lane(self) -> None:
        """The plan chose the lane; nothing to decide here."""


class Oracle:
    """Privileged planner for Traffic-v0 (and LaneKeep-v0): see the module docstring."""

    name = "oracle"

    def __init__(
        self,
        horizon_s: float = 4.0,
        replan_s: float = 0.5,
        escape_s: float = 2.0,
        sigma_delta: bool = True,
        speed_band: float | None = None,
    ) -> None:
        """`sigma_delta` and `speed_band` are the plan follower's (`agent.expert.Expert`'s): a teacher
        for a network takes False and a band, and answers each state on its own."""
        if not horizon_s >= replan_s > 0 or escape_s < 0:
            raise ValueError(
                f"need horizon_s >= replan_s > 0 and escape_s >= 0, got {horizon_s}, {replan_s}, {escape_s}"
            )
        self.horizon_s = horizon_s
        self.replan_s = replan_s
        self.escape_s = escape_s
        self._env: CamDriveEnv[Any] | None = None
        self._driver = _PlanFollower(sigma_delta=sigma_delta, speed_band=speed_band)
        self._steps_to_replan = 0
        self.plans_searched = 0
        """Plans driven in copies of the env since the last reset (how much searching it took)."""

    @property
    def env(self) -> CamDriveEnv[Any]:
        """The camdrive env the oracle drives (set by `reset`)."""
        assert self._env is not None, "call reset(env) first"
        return self._env

    def reset(self, env: gym.Env) -> None:
        self._env = unwrap(env)
        self._driver.reset(env)
        self._steps_to_replan = 0
        self.plans_searched = 0

    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> Any:
        if self._steps_to_replan <= 0:
            self._driver.target_lane, self._driver.headway_s = self._best_plan()
            self._steps_to_replan = max(1, round(self.replan_s / self.env.dt))
        self._steps_to_replan -= 1
        return self._driver.act()

    # ------------------------------------------------------------------------------------ search
    def _candidate_plans(self) -> list[tuple[int, float]]:
        world = self.env.world
        lane, lanes = world.state().lane, world.road_config.lanes
        targets = [t for t in (lane, lane - 1, lane + 1) if 0 <= t < lanes]
        if self._driver.target_lane not in targets:  # finishing a lane change
            targets.insert(0, self._driver.target_lane)
        return [(target, headway) for target in targets for headway in HEADWAYS_S]

    def _best_plan(self) -> tuple[int, float]:
        """The candidate plan with the best rollout (ties: the first, which keeps the lane)."""
        best_plan, best_value = None, -math.inf
        for plan in self._candidate_plans():
            value = self._rollout(*plan)
            if value > best_value:
                best_plan, best_value = plan, value
        assert best_plan is not None
        return best_plan

    def _rollout(self, target_lane: int, headway_s: float) -> float:
        """Metres covered by the plan within the horizon. A plan that crashes or leaves the road, in
        the horizon or in the `escape_s` after it (driven at the comfortable ESCAPE_HEADWAY_S), scores
        how long it lasted less a penalty larger than any safe plan's distance: a plan that ends
        tailgating where no braking can save it is no plan."""
        env = self.env.planning_copy()
        driver = copy.copy(self._driver)
        driver.drive(env)
        driver.target_lane, driver.headway_s = target_lane, headway_s
        self.plans_searched += 1
        start = env.world.s
        horizon = max(1, round(self.horizon_s / env.dt))
        escape = round(self.escape_s / env.dt)
        covered = 0.0
        for step in range(horizon + escape):
            if step == horizon:
                driver.headway_s = ESCAPE_HEADWAY_S
            _, terminated, _ = env.advance(driver.act())
            if terminated:
                return -1e9 + step
            if step == horizon - 1:
                covered = env.world.s - start
        return covered
