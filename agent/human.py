"""A person at the keyboard or a gamepad, as a `Driver` named "human".

Keys are on/off switches, but a car wants analogue inputs: flicking the wheel from centre to full lock
in one 33 ms step makes highway driving impossible and records demonstrations full of +-1 spikes.
So key presses set *targets* and `update(dt)`, called once per displayed frame, moves the inputs
toward them at a fixed rate (steering reaches full lock in about half a second, and self-centres a
little faster when released, like a real wheel). A tap gives a small correction, a hold a full turn.

A gamepad's left stick is already analogue and is used as it is (outside a small dead zone); its
triggers (or buttons A/B) give throttle/brake. Keyboard input wins while a key is held.

For Traffic-v0's `Discrete(5)` the same intents become actions: left/right (steering has priority),
else up = accelerate, down = decelerate, else noop. A key tapped and released between two env steps
still counts once, so quick taps are not lost at a 10 Hz control rate.

Events come in through `handle_event` (the viewer forwards them), never from `pygame.key.get_pressed`,
so events posted by a script drive it exactly as real ones do (tests, headless runs).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from sim.actions import ACCELERATE, DECELERATE, LEFT, NOOP, RIGHT  # noqa: E402

STEER_KEYS = {pygame.K_LEFT: -1, pygame.K_a: -1, pygame.K_RIGHT: 1, pygame.K_d: 1}
THROTTLE_KEYS = {pygame.K_UP: 1, pygame.K_w: 1, pygame.K_DOWN: -1, pygame.K_s: -1}
DRIVE_KEYS = frozenset(STEER_KEYS) | frozenset(THROTTLE_KEYS)

STICK_AXIS = 0
"""Left stick, horizontal."""
STICK_DEAD_ZONE = 0.08
TRIGGER_AXES = (2, 5) if sys.platform.startswith("linux") else (4, 5)
"""(brake = left trigger, throttle = right trigger) axes of an Xbox-style pad through pygame.joystick:
Linux's xpad driver numbers LT as axis 2, SDL on Windows/macOS as axis 4; RT is axis 5 on both."""
BUTTON_THROTTLE, BUTTON_BRAKE = 0, 1
"""A and B on an Xbox-style pad."""
DISCRETE_THRESHOLD = 0.5
"""How far an analogue input must go to count as a discrete left/right/accelerate/decelerate."""


def _approach(value: float, target: float, rate: float, dt: float) -> float:
    """Move `value` toward `target` by at most `rate * dt`."""
    step = rate * dt
    if abs(target - value) <= step + 1e-9:  # the tolerance avoids a 1e-16 residue before snapping
        return target
    return value + step if target > value else value - step


def _key_axis(keys: set[int], axis: dict[int, int]) -> int:
    """-1, 0 or +1 from the pressed keys of one axis (opposite keys cancel, A and Left do not add)."""
    return int(np.sign(sum({axis[k] for k in keys if k in axis})))


class HumanInput:
    """Keyboard (arrows or WASD) and gamepad input with analogue smoothing. See the module docstring."""

    name = "human"

    def __init__(
        self,
        action_space: gym.Space | None = None,
        steer_rate: float = 2.0,
        steer_return_rate: float = 3.0,
        throttle_rate: float = 3.0,
        throttle_return_rate: float = 5.0,
    ) -> None:
        """Rates are in input units per second: `steer_rate` 2.0 reaches full lock in 0.5 s."""
        self.action_space = action_space
        self.steer_rate, self.steer_return_rate = steer_rate, steer_return_rate
        self.throttle_rate, self.throttle_return_rate = throttle_rate, throttle_return_rate
        self.steer = 0.0
        """Smoothed steering input, -1 full left .. +1 full right."""
        self.throttle = 0.0
        """Smoothed throttle, > 0 accelerates, < 0 brakes."""
        self._held: set[int] = set()
        self._pressed_this_frame: set[int] = set()
        """Drive keys pressed since the last `update`: a press and release within one frame still moves."""
        self._tapped: set[int] = set()
        """Drive keys pressed since the last `act`, so a short tap still yields a discrete action."""
        self._pads: dict[int, Any] = {}
        """Connected joysticks by instance id."""
        self._live_triggers: set[tuple[int, int]] = set()
        """(pad, axis) pairs seen resting near -1: a trigger that reads -1..1 (SDL reports 0 until the
        first motion, which must not be taken for a half-pressed throttle)."""

    # ------------------------------------------------------------------------------------ Driver API
    def reset(self, env: gym.Env) -> None:
        """New episode: remember the action space, centre the inputs (held keys stay held)."""
        self.action_space = env.action_space
        self.steer = 0.0
        self.throttle = 0.0
        self._tapped.clear()

    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> Any:
        """The current input as an action of the env's action space."""
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return self._discrete()
        steer, throttle = float(np.clip(self.steer, -1, 1)), float(np.clip(self.throttle, -1, 1))
        self._tapped.clear()
        if isinstance(space, gym.spaces.Box) and space.shape == (1,):
            return np.array([steer], dtype=np.float32)
        return np.array([steer, throttle], dtype=np.float32)

    # ----------------------------------------------------------------------------------------- input
    def handle_event(self, event: pygame.event.Event) -> bool:
        """Take a key or gamepad event; True if it was one of ours."""
        if event.type == pygame.KEYDOWN and event.key in DRIVE_KEYS:
            self._held.add(event.key)
            self._pressed_this_frame.add(event.key)
            self._tapped.add(event.key)
            return True
        if event.type == pygame.KEYUP and event.key in DRIVE_KEYS:
            self._held.discard(event.key)
            return True
        if event.type == pygame.WINDOWFOCUSLOST:
            # Key-up events go to whichever window has focus: without this a key would stay stuck.
            self._held.clear()
            return False
        if event.type == pygame.JOYDEVICEADDED:
            pad = pygame.joystick.Joystick(event.device_index)
            self._pads[pad.get_instance_id()] = pad
            return True
        if event.type == pygame.JOYDEVICEREMOVED:
            self._pads.pop(event.instance_id, None)
            self._live_triggers = {t for t in self._live_triggers if t[0] != event.instance_id}
            return True
        return event.type in (pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP)

    def release_all(self) -> None:
        """Forget held keys (the window lost focus, the episode was reset from a menu...)."""
        self._held.clear()
        self._pressed_this_frame.clear()
        self._tapped.clear()

    def is_active(self) -> bool:
        """Is the person touching the controls now: a drive key held or pressed this frame, or the
        gamepad's stick or triggers out of rest? (What a takeover watches for.)"""
        if self._held or self._pressed_this_frame or self._tapped:
            return True
        pad_steer, pad_throttle = self._pad_inputs()
        return pad_steer is not None or pad_throttle is not None

    def update(self, dt: float) -> None:
        """Advance the smoothing by `dt` seconds (call once per displayed frame)."""
        keys = self._held | self._pressed_this_frame
        self._pressed_this_frame = set()
        key_steer = _key_axis(keys, STEER_KEYS)
        key_throttle = _key_axis(keys, THROTTLE_KEYS)
        pad_steer, pad_throttle = self._pad_inputs()
        if key_steer != 0 or pad_steer is None:
            moving_out = key_steer != 0 and self.steer * key_steer >= 0
            rate = self.steer_rate if moving_out else self.steer_return_rate
            self.steer = _approach(self.steer, float(key_steer), rate, dt)
        else:
            self.steer = pad_steer
        if key_throttle != 0 or pad_throttle is None:
            moving_out = key_throttle != 0 and self.throttle * key_throttle >= 0
            rate = self.throttle_rate if moving_out else self.throttle_return_rate
            self.throttle = _approach(self.throttle, float(key_throttle), rate, dt)
        else:
            self.throttle = pad_throttle

    # ----------------------------------------------------------------------------------- internals
    def _pad_inputs(self) -> tuple[float | None, float | None]:
        """(steer, throttle) from the first gamepad that is being used, None where it is idle."""
        steer: float | None = None
        throttle: float | None = None
        for iid, pad in self._pads.items():
            if pad.get_numaxes() > STICK_AXIS:
                x = float(pad.get_axis(STICK_AXIS))
                if abs(x) > STICK_DEAD_ZONE and steer is None:
                    steer = float(np.sign(x) * (abs(x) - STICK_DEAD_ZONE) / (1 - STICK_DEAD_ZONE))
            amounts = []
            for axis in TRIGGER_AXES:
                if pad.get_numaxes() <= axis:
                    amounts.append(0.0)
                    continue
                v = float(pad.get_axis(axis))
                if v < -0.5:
                    self._live_triggers.add((iid, axis))
                amounts.append((v + 1) / 2 if (iid, axis) in self._live_triggers else 0.0)
            brake, gas = amounts
            if pad.get_numbuttons() > max(BUTTON_THROTTLE, BUTTON_BRAKE):
                gas = max(gas, float(pad.get_button(BUTTON_THROTTLE)))
                brake = max(brake, float(pad.get_button(BUTTON_BRAKE)))
            if (gas > 0.05 or brake > 0.05) and throttle is None:
                throttle = gas - brake
        return steer, throttle

    def _discrete(self) -> int:
        """Traffic-v0's Discrete(5): steering first, then speed, from held keys, taps and the pad."""
        keys = self._held | self._tapped
        steer = _key_axis(keys, STEER_KEYS)
        speed = _key_axis(keys, THROTTLE_KEYS)
        pad_steer, pad_throttle = self._pad_inputs()
        if steer == 0 and pad_steer is not None and abs(pad_steer) >= DISCRETE_THRESHOLD:
            steer = int(np.sign(pad_steer))
        if speed == 0 and pad_throttle is not None and abs(pad_throttle) >= DISCRETE_THRESHOLD:
            speed = int(np.sign(pad_throttle))
        self._tapped.clear()
        if steer:
            return LEFT if steer < 0 else RIGHT
        if speed:
            return ACCELERATE if speed > 0 else DECELERATE
        return NOOP
