"""A model driving with a person ready to take over: the safety driver of `camdrive watch`.

The model drives until the person touches the controls. Any drive key, a gamepad button for
throttle/brake, or the stick or a trigger out of rest hands the car to the person at once, and that
moment counts as one intervention (NVIDIA's autonomy metric counts a safety driver taking over the same
way). Control goes back to the model after `quiet_seconds` without any input, or at once with Enter /
Tab.

The model is asked for an action on every step, even while the person drives, so that

- the HUD can show what the model *would* do (its steering or its Q-values), and
- a model with memory (the DQN's frame window) keeps seeing every frame and is ready when handed back.

Whose action was executed on the last step is `human_drove_last_step`; a recorder uses it to keep the
person's corrections as demonstrations.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from agent.driver import Driver  # noqa: E402
from agent.human import BUTTON_BRAKE, BUTTON_THROTTLE, DRIVE_KEYS, HumanInput  # noqa: E402

HAND_BACK_KEYS = frozenset({pygame.K_RETURN, pygame.K_KP_ENTER, pygame.K_TAB})
"""Keys that give the car back to the model at once."""
DEFAULT_QUIET_SECONDS = 2.0
"""Input-free time after which the model drives again."""


class TakeoverDriver:
    """`model` drives; `human` (a `HumanInput`) takes over on any input. See the module docstring."""

    name = "takeover"

    def __init__(
        self, model: Driver, human: HumanInput, quiet_seconds: float = DEFAULT_QUIET_SECONDS
    ) -> None:
        if not quiet_seconds > 0:
            raise ValueError(f"quiet_seconds must be > 0, got {quiet_seconds}")
        self.model, self.human, self.quiet_seconds = model, human, float(quiet_seconds)
        self.human_driving = False
        """The person has the car now."""
        self.human_drove_last_step = False
        """The action executed on the last `act` was the person's."""
        self.interventions = 0
        """Takeovers since this driver was made (over all episodes)."""
        self.steps = 0
        """Steps driven since this driver was made (by either)."""
        self.model_action: Any = None
        """What the model asked for on the last step, executed or not."""
        self._quiet = 0.0

    @property
    def label(self) -> str:
        """Who drives, for the viewer's badge."""
        return "HUMAN" if self.human_driving else "AUTOPILOT"

    # ------------------------------------------------------------------------------------ Driver API
    def reset(self, env: gym.Env) -> None:
        """A new episode starts with the model at the wheel (counts carry on across episodes)."""
        self.model.reset(env)
        self.human.reset(env)
        self.human_driving = False
        self._quiet = 0.0

    def act(self, observation: Any, info: dict[str, Any]) -> Any:
        self.model_action = self.model.act(observation, info)
        human_action = self.human.act(observation, info)
        self.steps += 1
        self.human_drove_last_step = self.human_driving
        return human_action if self.human_driving else self.model_action

    # ---------------------------------------------------------------------------------------- input
    def handle_event(self, event: pygame.event.Event) -> bool:
        """Drive input takes over (and goes on to the person's input); Enter / Tab hands back."""
        if event.type == pygame.KEYDOWN and event.key in HAND_BACK_KEYS:
            self.hand_back()
            return True
        used = self.human.handle_event(event)
        pressed_key = event.type == pygame.KEYDOWN and event.key in DRIVE_KEYS
        pressed_button = event.type == pygame.JOYBUTTONDOWN and event.button in (
            BUTTON_THROTTLE,
            BUTTON_BRAKE,
        )
        if pressed_key or pressed_button:
            self.take_over()
        return used

    def update(self, dt: float) -> None:
        """Once per displayed frame: smooth the person's input, watch the stick, time the quiet period."""
        active = self.human.is_active()
        self.human.update(dt)
        if active:
            self.take_over()
            self._quiet = 0.0
        elif self.human_driving:
            self._quiet += dt
            if self._quiet >= self.quiet_seconds:
                self.hand_back()

    def take_over(self) -> None:
        """The person has the car from the next step on; counted once per takeover."""
        if not self.human_driving:
            self.human_driving = True
            self.interventions += 1
        self._quiet = 0.0

    def hand_back(self) -> None:
        """The model drives from the next step on."""
        self.human_driving = False
        self._quiet = 0.0
        self.human.release_all()
