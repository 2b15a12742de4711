"""An imperfect driver, as a `Driver` named "imperfect": a person with keys, late and sometimes absent.

Why it exists: behaviour cloning from demonstrations must work without the privileged expert's
labels (`camdrive train bc --view-labels geometric`), and the expert's own driving is too good a
test: smooth, immediate, never distracted. This driver has the three faults of a person at a
keyboard and stores nothing but its own actions (`camdrive record --driver imperfect` keeps no
labels for a driver that is not the expert and has no noise).

- Late reactions: it sees the steering that aims at the lane centre `lookahead_s` ahead (the
  expert's controller, `sim.lane_control.steer_to_offset`, looking further ahead than the expert's
  0.9 s, as a person does: with the expert's own look-ahead, the delay and the keys make the car
  weave by up to 1.8 m) only after a reaction delay drawn per episode in `delay_s` (0.3-0.5 s).
- On/off steering: it steers with keys through `agent.human.HumanInput`, the keyboard model of
  `camdrive play` (a held key moves the wheel toward full lock at 2.0/s, a released one lets it
  return to the centre at 3.0/s). It presses the key toward the steering it wants when the wheel is
  more than `press_band` away from it, and lets go once the wheel has got there; holding a curve
  is therefore a train of taps, as at a real keyboard.
- Inattention: lapses start at random (on average every `lapse_every_s` seconds) and last 1-2 s,
  during which it does not touch the keys. A lapse starts only when no key is held: a person who
  looks away takes the finger off the key; a key held for 2 s would be full lock, a crash, which
  no usable demonstration contains. During a lapse the wheel returns to the centre and the car
  drifts out of a curve.

Seeded from the episode's seed (`sim.seeding.IMPERFECT_DRIVER`), so a recording repeats. It drives
LaneKeep-v0; the keyboard model also speaks Traffic-v0's discrete actions, but this driver never touches
the speed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import pygame

from agent.expert import Expert
from agent.human import HumanInput
from sim import seeding
from sim.envs.base import unwrap
from sim.lane_control import steer_to_offset

KEYS = {-1: pygame.K_LEFT, 1: pygame.K_RIGHT}


class ImperfectDriver:
    """A late, keyboard-steering, now and then inattentive driver (module docstring)."""

    name = "imperfect"

    def __init__(
        self,
        delay_s: tuple[float, float] = (0.3, 0.5),
        press_band: float = 0.1,
        lapse_every_s: float = 10.0,
        lapse_s: tuple[float, float] = (1.0, 2.0),
        lookahead_s: float = 1.5,
    ) -> None:
        self.delay_s, self.press_band, self.lookahead_s = delay_s, press_band, lookahead_s
        self.lapse_every_s, self.lapse_s = lapse_every_s, lapse_s
        self._expert = Expert(change_lanes=False)
        self.keyboard = HumanInput()
        self._seen: deque[float] = deque()
        self._key = 0
        """Steering key held: -1 left, 0 none, +1 right."""
        self._lapse_left = 0.0
        """Seconds of the current lapse still to go (0: attentive)."""
        self._lapse_due = False
        self._dt = 0.1
        self._rng = np.random.default_rng(0)

    def reset(self, env: gym.Env) -> None:
        u = unwrap(env)
        self._expert.reset(env)
        self.keyboard.reset(env)
        self.keyboard.release_all()
        self._dt = float(u.dt)
        self._rng = seeding.stream(u.episode_seed, seeding.IMPERFECT_DRIVER)
        steps = max(1, round(float(self._rng.uniform(*self.delay_s)) / self._dt))
        self._seen = deque([0.0] * steps, maxlen=steps)
        self._key, self._lapse_left, self._lapse_due = 0, 0.0, False

    @property
    def in_lapse(self) -> bool:
        return self._lapse_left > 0

    def act(self, observation: Any = None, info: dict[str, Any] | None = None) -> Any:
        """Perceive (late), decide on the keys (unless inattentive), move the wheel, return the input."""
        wanted = self._seen[0]  # what it sees now happened `delay` ago
        self._seen.append(self._wanted_now())
        self._attention()
        if not self.in_lapse:
            self._press(self._choose_key(wanted))
        self.keyboard.update(self._dt)
        return self.keyboard.act()

    def _wanted_now(self) -> float:
        """The steering toward the centre of the lane it started in, `lookahead_s` ahead."""
        w = self._expert.world
        assert w.road is not None
        st = w.state()
        centre = float(w.road.lane_centre(self._expert.target_lane))
        return steer_to_offset(
            w.road, w.ego.params, st.s, st.d, st.yaw, st.speed, centre, lookahead_time=self.lookahead_s
        )

    def _attention(self) -> None:
        """Count down a lapse; start a due one as soon as no key is held (module docstring)."""
        if self.in_lapse:
            self._lapse_left = max(0.0, self._lapse_left - self._dt)
            return
        if not self._lapse_due and self._rng.random() < self._dt / self.lapse_every_s:
            self._lapse_due = True
        if self._lapse_due and self._key == 0:
            self._lapse_due = False
            self._lapse_left = float(self._rng.uniform(*self.lapse_s))

    def _choose_key(self, wanted: float) -> int:
        """Press toward `wanted` when the wheel is `press_band` away; let go once it got there."""
        error = wanted - self.keyboard.steer
        if self._key != 0 and error * self._key > 0:
            return self._key  # not there yet: keep holding
        if abs(error) > self.press_band:
            return 1 if error > 0 else -1
        return 0

    def _press(self, key: int) -> None:
        """Send the key events of a change of held key to the keyboard model, as a person's hand would."""
        if key == self._key:
            return
        if self._key != 0:
            self.keyboard.handle_event(pygame.event.Event(pygame.KEYUP, key=KEYS[self._key]))
        if key != 0:
            self.keyboard.handle_event(pygame.event.Event(pygame.KEYDOWN, key=KEYS[key]))
        self._key = key
