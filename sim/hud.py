"""What the viewer draws over the camera picture: the HUD panel, who drives, the help and the banners.

The readouts (steering, pedal and who works it, the cruise speed, the text lines) are computed here from
the viewer's env and driver, so that the window loop (`sim.viewer.Viewer`) only decides when to draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pygame

from sim.text import HudFont, hud_font

if TYPE_CHECKING:
    from sim.viewer import Viewer

WHITE = (255, 255, 255)
GREY = (170, 170, 170)
RED = (230, 40, 40)
GREEN = (60, 200, 90)
AMBER = (255, 180, 40)
BLUE = (90, 160, 255)

HELP_KEYS_CONTINUOUS = [
    ("Left / Right, A / D", "steer (hold for more lock)"),
    ("Up / W", "throttle"),
    ("Down / S", "brake"),
    ("Gamepad", "left stick steers, RT or A throttle, LT or B brake"),
]
HELP_KEYS_DISCRETE = [
    ("Left / Right, A / D", "turn the wheel / change lane"),
    ("Up / W", "accelerate (target speed +)"),
    ("Down / S", "decelerate (target speed -)"),
    ("Gamepad", "left stick turns, RT or A accelerates, LT or B slows"),
]
HELP_KEYS_COMMON = [
    ("P / Space", "pause"),
    ("R", "reset the episode"),
    ("H / F1", "show or hide this help"),
    ("Esc / Q", "quit"),
]


class Hud:
    """Draws onto the viewer's window at its scale; one per `Viewer`."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    @property
    def window(self) -> pygame.Surface:
        return self.viewer.window

    def font(self, size: int) -> HudFont:
        return hud_font(size)

    def text(
        self, text: str, size: int, color: tuple[int, int, int], at: tuple[int, int], anchor: str = "topleft"
    ) -> pygame.Rect:
        surf = self.font(size).render(text, color)
        rect = surf.get_rect(**{anchor: at})
        self.window.blit(surf, rect)
        return rect

    def panel(self, rect: pygame.Rect | tuple[int, int, int, int], alpha: int = 150) -> None:
        rect = pygame.Rect(rect)
        shade = pygame.Surface(rect.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, alpha))
        self.window.blit(shade, rect.topleft)

    def bar(self, x: int, y: int, w: int, h: int, value: float, pos: tuple, neg: tuple) -> None:
        """A centred bar for a value in [-1, 1]: filled right of the middle when positive."""
        pygame.draw.rect(self.window, (60, 60, 60), (x, y, w, h))
        mid = x + w // 2
        v = float(np.clip(value, -1.0, 1.0))
        fill = int(round(abs(v) * (w // 2)))
        if fill:
            left = mid if v > 0 else mid - fill
            pygame.draw.rect(self.window, pos if v > 0 else neg, (left, y, fill, h))
        pygame.draw.line(self.window, WHITE, (mid, y - 2), (mid, y + h + 1))

    def _has_human_controls(self) -> bool:
        """A person's analogue inputs drive (they show as they move, before the next env step)."""
        driver = self.viewer.driver
        return hasattr(driver, "steer") and hasattr(driver, "throttle") and not self.viewer.discrete

    def steering(self) -> float:
        """Steering to show, -1..1: the person's input, else what the car was last commanded."""
        if self._has_human_controls():
            person: Any = self.viewer.driver  # has steer and throttle: checked above
            return float(person.steer)
        return float(self.viewer.camdrive.last_controls[0])

    def cruise_speed(self) -> float | None:
        """The speed (m/s) a cruise control holds for the driver, None when the driver works the pedals.

        Steering-only actions cruise at a fixed speed; discrete actions move the speed it holds up and
        down (accelerate / decelerate).
        """
        action_type = self.viewer.camdrive.action_type
        for name in ("target_speed", "cruise_speed"):
            value = getattr(action_type, name, None)
            if value is not None:
                return float(value)
        return None

    def pedal(self) -> tuple[str, float]:
        """(who, pedal -1..1, > 0 throttle): who worked the pedal in the last step and how hard.

        "safety" when the safety system's brake overrode the driver, "cruise" when a cruise control
        turned the driver's chosen speed into throttle or brake, else "" (the driver's own pedal).
        The safety system's and the cruise control's pedal is what the car got (`applied_accel`).
        """
        if self.viewer.braking:
            return "safety", self._pedal_of(self.viewer.world.applied_accel)
        if self.cruise_speed() is not None:
            return "cruise", self._pedal_of(self.viewer.world.applied_accel)
        if self._has_human_controls():
            person: Any = self.viewer.driver
            return "", float(person.throttle)
        return "", self._pedal_of(self.viewer.world.applied_accel)

    def _pedal_of(self, accel: float) -> float:
        """An acceleration (m/s^2) as a pedal position: a share of full throttle or of full braking."""
        p = self.viewer.world.ego.params
        return float(np.clip(accel / p.max_accel if accel >= 0 else accel / p.max_brake, -1.0, 1.0))

    def lines(self) -> list[str]:
        """The HUD's text lines below the speed (also handy for tests and logs)."""
        v = self.viewer
        st = v.world.state()
        lanes = v.world.road_config.lanes
        return [
            f"lane {st.lane + 1}/{lanes}   offset {st.lateral_offset:+.2f} m",
            f"reward {v.last_reward:+.2f}   return {v.episode_return:.1f}",
            f"distance {st.distance / 1000:.2f} km   time {v.episode_steps * v.period:.1f} s",
            f"{self._rate()}   sim {v.control_hz:g} Hz   seed {v.episode_seed}",
        ]

    def _rate(self) -> str:
        """Frames per second in a window. In a video the render rate says nothing (the frames are
        played at `video_fps`, one env step each), so: how fast simulated time runs when it plays."""
        if self.viewer.video_fps is not None:
            return f"{self.viewer.video_fps * self.viewer.period:.1f}x real time"
        fps = self.viewer.measured_fps()
        return f"{fps:.0f} fps"

    def draw_panel(self) -> None:
        s = self.viewer.scale
        pad, x0, y0 = int(10 * s), int(10 * s), int(10 * s)
        width, line = int(330 * s), int(24 * s)
        lines = self.lines() + (self.viewer.hud_extra() if self.viewer.hud_extra is not None else [])
        height = int(58 * s) + 2 * line + len(lines) * line + pad
        self.panel((x0, y0, width, height))
        x, y = x0 + pad, y0 + int(6 * s)
        speed = self.viewer.world.ego.speed
        r = self.text(f"{speed * 3.6:3.0f}", int(56 * s), WHITE, (x, y))
        r = self.text("km/h", int(24 * s), WHITE, (r.right + int(6 * s), r.bottom - int(30 * s)))
        self.text(f"{speed * 2.23694:3.0f} mph", int(24 * s), GREY, (r.right + int(16 * s), r.top))
        cruise = self.cruise_speed()
        if cruise is not None:
            at = (x0 + width - pad, y + int(4 * s))
            self.text(f"cruise {cruise * 3.6:.0f} km/h", int(20 * s), GREY, at, "topright")
        y += int(56 * s)
        steer = self.steering()
        bar_x, bar_w, bar_h = x + int(165 * s), width - int(185 * s), int(12 * s)
        self.text(f"steer {steer:+.2f}", int(20 * s), WHITE, (x, y))
        self.bar(bar_x, y + int(2 * s), bar_w, bar_h, steer, BLUE, BLUE)
        y += line
        who, pedal = self.pedal()
        name = " ".join(filter(None, (who, "throttle" if pedal >= 0 else "brake")))
        self.text(f"{name} {abs(pedal):.2f}", int(20 * s), AMBER if who == "safety" else WHITE, (x, y))
        self.bar(bar_x, y + int(2 * s), bar_w, bar_h, pedal, GREEN, RED)
        y += line
        for text in lines:
            self.text(text, int(20 * s), WHITE, (x, y))
            y += line

    def draw_badge(self) -> pygame.Rect:
        """Who drives, top centre, and the recording light next to it; returns the badge's box."""
        s = self.viewer.scale
        recording = bool(self.viewer.sink is not None and getattr(self.viewer.sink, "recording", False))
        font = self.font(int(28 * s))
        tw, th = font.size(self.viewer.label)
        rec_w = int(70 * s) if recording else 0
        w, h = tw + int(24 * s) + rec_w, th + int(12 * s)
        x, y = (self.viewer.size[0] - w) // 2, int(10 * s)
        self.panel((x, y, w, h))
        color = WHITE if self.viewer.label == "HUMAN" else (AMBER if self.viewer.label == "REPLAY" else BLUE)
        self.text(self.viewer.label, int(28 * s), color, (x + int(12 * s), y + int(7 * s)))
        if recording:
            cx, cy = x + tw + int(32 * s), y + h // 2
            pygame.draw.circle(self.window, RED, (cx, cy), int(8 * s))
            self.text("REC", int(24 * s), RED, (cx + int(12 * s), cy), "midleft")
        return pygame.Rect(x, y, w, h)

    def draw_help_key(self, badge: pygame.Rect) -> None:
        """The help key on its own dark box right of the badge: the top row between the HUD and the
        minimap is the one place no panel of play or watch covers, and a box keeps it readable over
        the sky, the road's yellow edge line or a saliency highlight."""
        s = self.viewer.scale
        size = int(20 * s)
        key_w = self.font(size).size("H")[0]
        w, h = key_w + self.font(size).size("  help")[0] + int(16 * s), badge.height
        x = badge.right + int(8 * s)
        self.panel((x, badge.y, w, h))
        y = badge.centery
        self.text("H", size, AMBER, (x + int(8 * s), y), "midleft")
        self.text("  help", size, WHITE, (x + int(8 * s) + key_w, y), "midleft")

    def banner(self, title: str, color: tuple[int, int, int], hint: str) -> None:
        s = self.viewer.scale
        cx, cy = self.viewer.size[0] // 2, self.viewer.size[1] // 2
        self.panel((0, cy - int(50 * s), self.viewer.size[0], int(100 * s)), alpha=140)
        self.text(title, int(64 * s), color, (cx, cy - int(8 * s)), "center")
        self.text(hint, int(22 * s), GREY, (cx, cy + int(32 * s)), "center")

    def draw_help(self) -> None:
        s = self.viewer.scale
        rows = (
            (HELP_KEYS_DISCRETE if self.viewer.discrete else HELP_KEYS_CONTINUOUS)
            + self.viewer.help_rows
            + HELP_KEYS_COMMON
        )
        line = int(28 * s)
        w, h = int(620 * s), int(70 * s) + line * len(rows)
        x, y = (self.viewer.size[0] - w) // 2, (self.viewer.size[1] - h) // 2
        self.panel((x, y, w, h), alpha=200)
        self.text(
            "Keys  (paused while this help shows)", int(34 * s), WHITE, (x + int(20 * s), y + int(14 * s))
        )
        y += int(56 * s)
        for key, what in rows:
            self.text(key, int(22 * s), AMBER, (x + int(20 * s), y))
            self.text(what, int(22 * s), WHITE, (x + int(220 * s), y))
            y += line
