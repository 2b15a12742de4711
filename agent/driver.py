"""The one interface every driver shares: the expert, a person at the keyboard, the learned policies.

A driver is told when a new episode starts (`reset`, after `env.reset`) and then asked for an action
for each observation (`act`). Privileged drivers (the expert) read the true world state through the
env they are reset with; learned drivers use only the observation.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym


@runtime_checkable
class Driver(Protocol):
    name: str
    """Short name stored with recorded demonstrations ("expert", "human", "pilotnet", ...)."""

    def reset(self, env: gym.Env) -> None:
        """A new episode of `env` has just started."""

    def act(self, observation: Any, info: dict[str, Any]) -> Any:
        """The action to take, in `env.action_space`."""
