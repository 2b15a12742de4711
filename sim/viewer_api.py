"""What the viewer talks to and reports: the driver, overlays and episode sinks it accepts (protocols,
so that `sim` needs no import of `agent` or `training` to be extended by them) and its statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import pygame


class ViewerDriver(Protocol):
    """Whoever drives in the viewer: `agent.driver.Driver` fits it (a protocol here, because `sim` does not
    import `agent`). Optional members, looked up by name: `handle_event(event)` and `update(dt)` (a
    person's input: drive keys and a smoothing tick per frame), `steer` and `throttle` (their analogue
    positions, shown as they move), `label` (who drives now, for a takeover) and `finished` (a replay that
    has run out)."""

    name: str

    def reset(self, env: gym.Env) -> None: ...

    def act(self, observation: Any, info: dict[str, Any]) -> Any: ...


class DisplayUnavailableError(RuntimeError):
    """No window can be opened (no display server, or SDL refused the video mode)."""


class Overlay(Protocol):
    """Something drawn over the viewer: saliency on the camera picture, feature-map tiles, Q-value bars."""

    def on_scene(self, picture: np.ndarray) -> None:
        """The camera picture (H, W, 3) uint8 of a new sim state, before the HUD; paint in place."""

    def draw(self, window: pygame.Surface, scale: float) -> None:
        """Paint on the window after the HUD, every displayed frame; `scale` = window height / 600."""

    def handle_key(self, key: int) -> bool:
        """A key press; True if the overlay used it (the viewer and driver then ignore it)."""


class EpisodeSink(Protocol):
    """Told about every episode the viewer runs; `camdrive play --record` records through one."""

    recording: bool
    """Lights the REC lamp."""

    def begin(self, env: gym.Env, seed: int, observation: Any, info: dict[str, Any]) -> None:
        """`env.reset(seed=seed)` has just returned `observation`, `info`."""

    def step(
        self,
        action: Any,
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """`env.step(action)` has just returned the rest."""

    def end(self, terminated: bool, truncated: bool) -> None:
        """The episode is over: ended by the env, or cut short by a reset or quit (both False)."""


@dataclass
class ViewerStats:
    """What one `Viewer.run` did; `fps` is displayed frames per wall-clock second."""

    frames: int
    steps: int
    episodes: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
