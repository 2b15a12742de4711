"""Reference drivers and the one function that turns a `--model` argument into a driver.

`noop` keeps its lane and lets the safety system brake (DeepTraffic's do-nothing baseline; in
camdrive's `steer` mode "keeping the lane" needs steering, so it uses the expert's lane keeping and
never touches the speed);
`random` samples the action space; `expert` is the privileged expert; `oracle` the privileged planner
that searches ahead in copies of the env (`agent.oracle`); `imperfect` a late, keyboard-steering,
sometimes inattentive person (`agent.imperfect`, the demonstrator of geometric view labels); anything
else is a path to a saved model, dispatched on the architecture recorded in its metadata.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agent.driver import Driver
from agent.expert import Expert
from sim.actions import LEFT, NOOP, RIGHT
from sim.envs.base import unwrap

BUILTIN = ("expert", "noop", "random", "oracle", "imperfect")


class NoopDriver:
    """Keeps its lane at its starting speed and never changes lane or speed itself."""

    name = "noop"

    def __init__(self) -> None:
        self._keeper = Expert(change_lanes=False)
        self._space: gym.Space | None = None

    def reset(self, env: gym.Env) -> None:
        self._space = env.action_space
        self._keeper.reset(env)

    def act(self, observation: Any, info: dict[str, Any]) -> Any:
        action = self._keeper.act(observation, info)
        if isinstance(self._space, gym.spaces.Discrete):
            return action if action in (LEFT, RIGHT) else NOOP
        assert isinstance(self._space, gym.spaces.Box)
        out = np.zeros(self._space.shape, dtype=np.float32)
        out[0] = action[0]
        return out


class RandomDriver:
    """Uniformly random actions, seeded from the episode so evaluations repeat."""

    name = "random"

    def __init__(self) -> None:
        self._space: gym.Space | None = None

    def reset(self, env: gym.Env) -> None:
        self._space = env.action_space
        self._space.seed(unwrap(env).episode_seed)

    def act(self, observation: Any, info: dict[str, Any]) -> Any:
        assert self._space is not None
        return self._space.sample()


def load_driver(spec: str) -> Driver:
    """`expert`, `noop`, `random`, `oracle`, `imperfect`, or a model file (PilotNet or DQN, told apart by
    its metadata)."""
    if spec == "expert":
        return Expert()
    if spec == "oracle":
        from agent.oracle import Oracle

        return Oracle()
    if spec == "noop":
        return NoopDriver()
    if spec == "random":
        return RandomDriver()
    if spec == "imperfect":
        from agent.imperfect import ImperfectDriver

        return ImperfectDriver()
    from agent.policies import load_policy_driver

    return load_policy_driver(spec)


def model_env_options(spec: str) -> dict[str, Any]:
    """The env options a saved model needs (observation size, action mode); none for built-ins."""
    if spec in BUILTIN:
        return {}
    from agent.policies import policy_env_options

    return policy_env_options(spec)
