"""The pygame viewer: drive a camdrive env yourself, watch a driver drive, or replay a recording.

What it shows: the front camera rendered at *window* resolution by the same renderer as the
observation (`FrontCameraRenderer`, not an upscaled 66x200 frame), a top-down minimap with the traffic
(`TopDownRenderer`, the ego car white in a red border), and a HUD: speed (km/h and mph), steering and
pedal bars, lane, reward, distance, frame rate, who drives (HUMAN / AUTOPILOT / REPLAY), a red
recording light, PAUSED, and a help overlay (its key, H, in a box beside the driver badge, where no
panel covers it).

The pedal bar says who works the pedal. Steering-only and discrete actions leave the speed to a cruise
control (the person or model only sets the speed it holds, shown as "cruise 90 km/h"), so its row reads
"cruise throttle 0.20"; when the safety system overrides whoever drives, the row reads "safety brake
0.45" in amber and shows the brake it applied (`World.applied_accel`), not what was asked for. Only
with steering-and-throttle actions is it the driver's own pedal ("throttle 0.20").

Frame pacing. The env steps at its control rate (`control_hz`: 10 Hz by default, `camdrive play` asks
for 30 Hz so the picture moves smoothly) while the window redraws at up to `fps` (60) frames per
second. Each displayed frame: events -> input smoothing (`driver.update(dt)`) -> as many env steps as
the sim clock owes (usually 0 or 1) -> draw. Nothing is interpolated or extrapolated: every picture
is a real simulator state, the one the recorded observation was rendered from. The camera and minimap
are re-rendered only when that state changed (a step or a reset), since re-rendering an unchanged state
gives the same picture; the HUD, help, pause and recording light are redrawn every frame so they answer
at the display rate even at 10 Hz control. The sim clock advances by the measured wall time of each
frame, capped at `MAX_FRAME_DT` so a stall (window drag, GC) does not fire a burst of steps; a machine
that cannot keep up therefore runs the sim slower than real time instead of skipping pictures.

With `fps=0` the viewer is unpaced and deterministic: exactly one env step per frame, and the input
smoothing advances 1/control_hz per frame. Tests use it (scripted events land on known steps) and so
does the frame-rate measurement (`camdrive play --fps 0 --frames N`), which is then the worst case: a
step plus a full camera render at window size every frame.

Measured at 960x600 on the development machine (2 shared CPU cores, Python 3.11, numpy; the expert
driving so no episode ends), per frame: env step ~1.5 ms, camera + minimap render 5-7 ms, HUD ~1 ms,
`display.flip` ~5 ms under X11 (Xvfb), ~0 with SDL_VIDEODRIVER=dummy. Unpaced (`fps=0`, a step and
a full render every frame): 70-84 fps under Xvfb, 110-180 fps with the dummy driver, for LaneKeep-v0
and Traffic-v0 with 24 cars alike. Paced at the default 60 fps with 30 Hz control, both hold 61 fps with
30.0 steps/s. Under heavy load from other processes (load average 5-7 on the 2 cores) the unpaced
figure fell to 25-45 fps.

Input. Events are read with `pygame.event.get` only, and drive keys are forwarded to the driver's
`handle_event` (see `agent.human.HumanInput`), so events posted by a script (`script=[(frame, event)]`,
or `pygame.event.post`) drive it exactly like a keyboard. The viewer runs headless with
`SDL_VIDEODRIVER=dummy`.

Recording is not the viewer's business: an optional `EpisodeSink` is told when episodes begin, step and
end (`camdrive play --record` plugs `training.apps.recorders.Recorder` in there), and lights the REC lamp.

Extensions without subclassing, used by `camdrive watch`: a driver with a `label` property names who
drives in the badge (a takeover switches it between AUTOPILOT and HUMAN); `hud_extra()` adds HUD lines;
`overlays` (see `Overlay`) paint on the camera picture when it is rendered and on the window every
frame, and get first pick of key presses; `run(after_frame=...)` sees every finished window (a video
writer grabs `frame_rgb()` there).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from sim.envs.base import CamDriveEnv, unwrap  # noqa: E402
from sim.render.palette import Palette  # noqa: E402
from sim.text import HudFont, hud_font  # noqa: E402
from sim.view import EnvView  # noqa: E402

DEFAULT_SIZE = (960, 600)
"""Window (width, height)."""
DEFAULT_FPS = 60.0
MAX_FRAME_DT = 0.1
"""Longest wall time one frame may advance the sim clock, s."""
END_HOLD_SECONDS = 1.5
"""How long the CRASHED / OFF ROAD / TIME UP banner shows before the next episode starts."""

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


class Viewer:
    """A window onto one env, driven by one driver. See the module docstring for pacing and input."""

    def __init__(
        self,
        env: gym.Env,
        driver: Any,
        *,
        size: tuple[int, int] = DEFAULT_SIZE,
        fps: float = DEFAULT_FPS,
        seed: int = 0,
        same_seed: bool = False,
        label: str | None = None,
        sink: EpisodeSink | None = None,
        at_episode_end: str = "reset",
        script: Iterable[tuple[int, pygame.event.Event]] = (),
        title: str = "camdrive",
        hud_extra: Callable[[], list[str]] | None = None,
        overlays: Sequence[Overlay] = (),
        help_rows: Sequence[tuple[str, str]] = (),
        video_fps: float | None = None,
    ) -> None:
        """Episodes are reset with `seed`, `seed + 1`, ... (or always `seed` with `same_seed`, for replays).

        `driver` is any `agent.driver.Driver`; if it has `handle_event(event)` and `update(dt)` (a
        `HumanInput`), it gets the drive keys and a smoothing tick per frame. `at_episode_end` is
        "reset" (show why it ended, then start the next episode) or "hold" (keep the last picture until
        R or quit: replays). `script` is a list of (frame index, event) posted before that frame's
        events are read. `video_fps`: the frames become a video played at this rate, so the HUD shows how
        fast simulated time runs in it instead of the rate the frames were rendered at.
        """
        if at_episode_end not in ("reset", "hold"):
            raise ValueError(f"at_episode_end must be 'reset' or 'hold', got {at_episode_end!r}")
        if fps < 0:
            raise ValueError(f"fps must be >= 0 (0 = unpaced), got {fps}")
        self.env, self.driver, self.sink = env, driver, sink
        self.size, self.fps, self.title = (int(size[0]), int(size[1])), float(fps), title
        self.seed, self.same_seed = int(seed), same_seed
        self._label = label or ("HUMAN" if getattr(driver, "name", "") == "human" else "AUTOPILOT")
        self.hud_extra, self.overlays = hud_extra, list(overlays)
        self.help_rows = list(help_rows)
        """Extra (keys, what they do) rows for the help overlay."""
        self.video_fps = video_fps
        self.at_episode_end = at_episode_end
        self._script: dict[int, list[pygame.event.Event]] = {}
        for frame, event in script:
            self._script.setdefault(int(frame), []).append(event)

        u = unwrap(env)
        self.camdrive: CamDriveEnv[Any] = u
        """The camdrive env under `env`'s wrappers: its world, options and controls are what is shown."""
        self.world = u.world
        self.control_hz = float(u.options.control_hz)
        self.period = 1.0 / self.control_hz
        self.discrete = isinstance(env.action_space, gym.spaces.Discrete)
        w, h = self.size
        s = h / 600
        mini_h, mini_w = int(250 * s), int(150 * s)
        self.view = EnvView(
            self.world.road_config,
            u.options.camera(),
            size=(h, w),
            minimap_size=(mini_h, mini_w),
            minimap_metres_per_pixel=0.5,
        )
        self.scale = s

        # Episode state.
        self.observation: Any = None
        self.info: dict[str, Any] = {}
        self.episode_seed = self.seed
        self.episodes = 0
        self.episode_steps = 0
        self.episode_return = 0.0
        self.last_reward = 0.0
        self._episode_open = False
        self._ended = False
        self._end_reason = ""
        self._end_timer = 0.0
        self._brakes_before = 0
        self._braking = False
        # Viewer state.
        self.paused = False
        self.show_help = False
        self.frames = 0
        self.total_steps = 0
        self._quit = False
        self._sim_debt = 0.0
        self._window: pygame.Surface | None = None
        self._clock: pygame.time.Clock | None = None
        self._scene: pygame.Surface | None = None
        self._minimap: pygame.Surface | None = None
        self._scene_arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._scene_dirty = True

    @property
    def label(self) -> str:
        """Who drives now: the driver's own `label` if it has one (a takeover changes hands), else fixed."""
        return str(getattr(self.driver, "label", self._label))

    # ------------------------------------------------------------------------------------- window
    def open(self) -> None:
        """Open the window (idempotent). Raises DisplayUnavailableError when SDL cannot open one."""
        if self._window is not None:
            return
        try:
            pygame.display.init()
            pygame.joystick.init()
            pygame.font.init()
            self._window = pygame.display.set_mode(self.size)
        except pygame.error as e:
            pygame.display.quit()
            raise DisplayUnavailableError(f"cannot open a {self.size[0]}x{self.size[1]} window: {e}") from e
        pygame.display.set_caption(self.title)
        self._clock = pygame.time.Clock()

    def close(self) -> None:
        """End an open episode (the sink is told) and close the window. The env stays open."""
        self._close_episode(False, False)
        if self._window is not None:
            pygame.display.quit()
            self._window = None

    def save_screenshot(self, path: str | os.PathLike[str]) -> None:
        """Save what the window shows (PNG by extension)."""
        if self._window is None:
            raise RuntimeError("the window is not open")
        pygame.image.save(self._window, os.fspath(path))

    # --------------------------------------------------------------------------------------- loop
    def frame_rgb(self) -> np.ndarray:
        """What the window shows now, (height, width, 3) uint8 RGB."""
        if self._window is None:
            raise RuntimeError("the window is not open")
        w, h = self._window.get_size()
        return np.frombuffer(pygame.image.tobytes(self._window, "RGB"), np.uint8).reshape(h, w, 3)

    def run(
        self,
        max_frames: int | None = None,
        max_seconds: float | None = None,
        after_frame: Callable[[Viewer], None] | None = None,
    ) -> ViewerStats:
        """Show frames until quit (Esc, Q, window close), `max_frames` or `max_seconds` of wall time.

        `after_frame(viewer)` is called with each finished window picture, before it is shown.
        """
        self.open()
        assert self._clock is not None
        start = time.perf_counter()
        frames0, steps0, episodes0 = self.frames, self.total_steps, self.episodes
        if self.observation is None:
            self.reset()
        dt = self.period if self.fps == 0 else 1.0 / self.fps
        while not self._quit:
            if max_frames is not None and self.frames - frames0 >= max_frames:
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
            for event in self._script.pop(self.frames, ()):
                pygame.event.post(event)
            for event in pygame.event.get():
                self.handle_event(event)
            if self._quit:
                break
            self._advance(dt)
            self.draw()
            if after_frame is not None:
                after_frame(self)
            pygame.display.flip()
            self.frames += 1
            if self.fps == 0:
                self._clock.tick()
            else:
                dt = min(self._clock.tick(self.fps) / 1000.0, MAX_FRAME_DT)
        return ViewerStats(
            frames=self.frames - frames0,
            steps=self.total_steps - steps0,
            episodes=self.episodes - episodes0,
            seconds=time.perf_counter() - start,
        )

    def handle_event(self, event: pygame.event.Event) -> None:
        """Viewer keys here; drive keys and gamepad events go to the driver."""
        if event.type == pygame.QUIT:
            self._quit = True
            return
        if event.type == pygame.KEYDOWN:
            if event.key in (pygame.K_ESCAPE, pygame.K_q):
                self._quit = True
                return
            if event.key in (pygame.K_p, pygame.K_SPACE):
                self.paused = not self.paused
                return
            if event.key == pygame.K_r:
                self.reset()
                return
            if event.key in (pygame.K_h, pygame.K_F1):
                self.show_help = not self.show_help
                return
            if any(overlay.handle_key(event.key) for overlay in self.overlays):
                self._scene_dirty = True
                return
        handler = getattr(self.driver, "handle_event", None)
        if handler is not None:
            handler(event)

    def _advance(self, dt: float) -> None:
        """One frame's worth of simulation: input smoothing, then the steps the sim clock owes.

        Nothing moves while paused or while the help is shown (whoever reads it is not driving).
        """
        if self.paused or self.show_help:
            return
        update = getattr(self.driver, "update", None)
        if update is not None:
            update(dt)
        if self._ended:
            self._end_timer -= dt
            if self._end_timer <= 0 and self.at_episode_end == "reset":
                self.reset()
            return
        if self.fps == 0:
            self.step()
            return
        self._sim_debt += dt
        while self._sim_debt >= self.period and not self._ended:
            self._sim_debt -= self.period
            self.step()

    # ------------------------------------------------------------------------------------ episodes
    def reset(self) -> None:
        """Start a new episode (an open one is closed as cut short)."""
        self._close_episode(False, False)
        self.episode_seed = self.seed if self.same_seed else self.seed + self.episodes
        self.observation, self.info = self.env.reset(seed=self.episode_seed)
        self.driver.reset(self.env)
        if self.sink is not None:
            self.sink.begin(self.env, self.episode_seed, self.observation, self.info)
        self._episode_open = True
        self.episodes += 1
        self.episode_steps = 0
        self.episode_return = 0.0
        self.last_reward = 0.0
        self._ended = False
        self._sim_debt = 0.0
        self._brakes_before = 0
        self._braking = False
        palette = self._palette()
        if palette != self.view.palette:  # rebuilding the window-size renderer costs about a second
            self.view.set_palette(palette)
        self._scene_dirty = True

    def step(self) -> None:
        """One env step with the driver's action (or the end of a replay that has run out)."""
        if getattr(self.driver, "finished", False):
            self._finish(False, False, "END OF REPLAY")
            return
        action = self.driver.act(self.observation, self.info)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.observation, self.info = observation, info
        self.episode_steps += 1
        self.total_steps += 1
        self.last_reward = float(reward)
        self.episode_return += float(reward)
        brakes = int(info.get("safety_brakes", 0))
        self._braking, self._brakes_before = brakes > self._brakes_before, brakes
        if self.sink is not None:
            self.sink.step(action, observation, float(reward), bool(terminated), bool(truncated), info)
        self._scene_dirty = True
        if terminated or truncated:
            if info.get("collision"):
                reason = "CRASHED"
            elif info.get("off_road"):
                reason = "OFF ROAD"
            else:
                reason = "TIME UP" if truncated else "EPISODE OVER"
            self._finish(bool(terminated), bool(truncated), reason)

    def _finish(self, terminated: bool, truncated: bool, reason: str) -> None:
        self._close_episode(terminated, truncated)
        self._ended = True
        self._end_reason = reason
        self._end_timer = END_HOLD_SECONDS

    def _close_episode(self, terminated: bool, truncated: bool) -> None:
        if self._episode_open and self.sink is not None:
            self.sink.end(terminated, truncated)
        self._episode_open = False

    def _palette(self) -> Palette:
        """The look the observation uses this episode, so the window matches what the driver sees."""
        return self.camdrive.look

    # ---------------------------------------------------------------------------------------- drawing
    def draw(self) -> None:
        """Compose the window: camera, minimap, HUD, overlays."""
        assert self._window is not None
        if self._scene_dirty:
            self._render_scene()
        assert self._scene is not None and self._minimap is not None
        win, s = self._window, self.scale
        win.blit(self._scene, (0, 0))
        mw, mh = self._minimap.get_size()
        mx, my = self.size[0] - mw - int(10 * s), int(10 * s)
        pygame.draw.rect(win, (20, 20, 20), (mx - 2, my - 2, mw + 4, mh + 4))
        win.blit(self._minimap, (mx, my))
        self._draw_hud()
        for overlay in self.overlays:
            overlay.draw(win, s)
        badge = self._draw_badge()
        if not self.show_help:
            self._draw_help_key(badge)
        if self.show_help:
            self._draw_help()
        elif self.paused:
            self._banner("PAUSED", WHITE, "P or Space to continue")
        elif self._ended:
            hint = "R to replay again, Esc to quit" if self.at_episode_end == "hold" else "next episode..."
            self._banner(self._end_reason, RED if self._end_reason != "TIME UP" else WHITE, hint)

    def _render_scene(self) -> None:
        world = self.world
        assert world.road is not None
        e = world.ego
        cars = world.cars()
        frame = np.ascontiguousarray(world.camera_view(self.view.camera))
        for overlay in self.overlays:
            overlay.on_scene(frame)
        mini = self.view.minimap.render(world.road, e.x, e.y, e.yaw, world.s, cars, world.ego_box())
        mini = np.ascontiguousarray(mini)
        # frombuffer shares the arrays' memory: keep them alive as long as the surfaces.
        self._scene_arrays = (frame, mini)
        self._scene = pygame.image.frombuffer(frame.data, (frame.shape[1], frame.shape[0]), "RGB")
        self._minimap = pygame.image.frombuffer(mini.data, (mini.shape[1], mini.shape[0]), "RGB")
        self._scene_dirty = False

    def _font(self, size: int) -> HudFont:
        return hud_font(size)

    def _text(
        self, text: str, size: int, color: tuple[int, int, int], at: tuple[int, int], anchor: str = "topleft"
    ) -> pygame.Rect:
        assert self._window is not None
        surf = self._font(size).render(text, color)
        rect = surf.get_rect(**{anchor: at})
        self._window.blit(surf, rect)
        return rect

    def _panel(self, rect: pygame.Rect | tuple[int, int, int, int], alpha: int = 150) -> None:
        assert self._window is not None
        rect = pygame.Rect(rect)
        shade = pygame.Surface(rect.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, alpha))
        self._window.blit(shade, rect.topleft)

    def _bar(self, x: int, y: int, w: int, h: int, value: float, pos: tuple, neg: tuple) -> None:
        """A centred bar for a value in [-1, 1]: filled right of the middle when positive."""
        assert self._window is not None
        pygame.draw.rect(self._window, (60, 60, 60), (x, y, w, h))
        mid = x + w // 2
        v = float(np.clip(value, -1.0, 1.0))
        fill = int(round(abs(v) * (w // 2)))
        if fill:
            left = mid if v > 0 else mid - fill
            pygame.draw.rect(self._window, pos if v > 0 else neg, (left, y, fill, h))
        pygame.draw.line(self._window, WHITE, (mid, y - 2), (mid, y + h + 1))

    def _has_human_controls(self) -> bool:
        """A person's analogue inputs drive (they show as they move, before the next env step)."""
        return hasattr(self.driver, "steer") and hasattr(self.driver, "throttle") and not self.discrete

    def steering(self) -> float:
        """Steering to show, -1..1: the person's input, else what the car was last commanded."""
        if self._has_human_controls():
            return float(self.driver.steer)
        return float(self.camdrive.last_controls[0])

    def cruise_speed(self) -> float | None:
        """The speed (m/s) a cruise control holds for the driver, None when the driver works the pedals.

        Steering-only actions cruise at a fixed speed; discrete actions move the speed it holds up and
        down (accelerate / decelerate).
        """
        action_type = self.camdrive.action_type
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
        if self._braking:
            return "safety", self._pedal_of(self.world.applied_accel)
        if self.cruise_speed() is not None:
            return "cruise", self._pedal_of(self.world.applied_accel)
        if self._has_human_controls():
            return "", float(self.driver.throttle)
        return "", self._pedal_of(self.world.applied_accel)

    def _pedal_of(self, accel: float) -> float:
        """An acceleration (m/s^2) as a pedal position: a share of full throttle or of full braking."""
        p = self.world.ego.params
        return float(np.clip(accel / p.max_accel if accel >= 0 else accel / p.max_brake, -1.0, 1.0))

    def hud_lines(self) -> list[str]:
        """The HUD's text lines below the speed (also handy for tests and logs)."""
        st = self.world.state()
        lanes = self.world.road_config.lanes
        return [
            f"lane {st.lane + 1}/{lanes}   offset {st.lateral_offset:+.2f} m",
            f"reward {self.last_reward:+.2f}   return {self.episode_return:.1f}",
            f"distance {st.distance / 1000:.2f} km   time {self.episode_steps * self.period:.1f} s",
            f"{self._rate()}   sim {self.control_hz:g} Hz   seed {self.episode_seed}",
        ]

    def _rate(self) -> str:
        """Frames per second in a window. In a video the render rate says nothing (the frames are
        played at `video_fps`, one env step each), so: how fast simulated time runs when it plays."""
        if self.video_fps is not None:
            return f"{self.video_fps * self.period:.1f}x real time"
        fps = self._clock.get_fps() if self._clock is not None else 0.0
        return f"{fps:.0f} fps"

    def _draw_hud(self) -> None:
        s = self.scale
        pad, x0, y0 = int(10 * s), int(10 * s), int(10 * s)
        width, line = int(330 * s), int(24 * s)
        lines = self.hud_lines() + (self.hud_extra() if self.hud_extra is not None else [])
        height = int(58 * s) + 2 * line + len(lines) * line + pad
        self._panel((x0, y0, width, height))
        x, y = x0 + pad, y0 + int(6 * s)
        speed = self.world.ego.speed
        r = self._text(f"{speed * 3.6:3.0f}", int(56 * s), WHITE, (x, y))
        r = self._text("km/h", int(24 * s), WHITE, (r.right + int(6 * s), r.bottom - int(30 * s)))
        self._text(f"{speed * 2.23694:3.0f} mph", int(24 * s), GREY, (r.right + int(16 * s), r.top))
        cruise = self.cruise_speed()
        if cruise is not None:
            at = (x0 + width - pad, y + int(4 * s))
            self._text(f"cruise {cruise * 3.6:.0f} km/h", int(20 * s), GREY, at, "topright")
        y += int(56 * s)
        steer = self.steering()
        bar_x, bar_w, bar_h = x + int(165 * s), width - int(185 * s), int(12 * s)
        self._text(f"steer {steer:+.2f}", int(20 * s), WHITE, (x, y))
        self._bar(bar_x, y + int(2 * s), bar_w, bar_h, steer, BLUE, BLUE)
        y += line
        who, pedal = self.pedal()
        name = " ".join(filter(None, (who, "throttle" if pedal >= 0 else "brake")))
        self._text(f"{name} {abs(pedal):.2f}", int(20 * s), AMBER if who == "safety" else WHITE, (x, y))
        self._bar(bar_x, y + int(2 * s), bar_w, bar_h, pedal, GREEN, RED)
        y += line
        for text in lines:
            self._text(text, int(20 * s), WHITE, (x, y))
            y += line

    def _draw_badge(self) -> pygame.Rect:
        """Who drives, top centre, and the recording light next to it; returns the badge's box."""
        s = self.scale
        recording = bool(self.sink is not None and getattr(self.sink, "recording", False))
        font = self._font(int(28 * s))
        tw, th = font.size(self.label)
        rec_w = int(70 * s) if recording else 0
        w, h = tw + int(24 * s) + rec_w, th + int(12 * s)
        x, y = (self.size[0] - w) // 2, int(10 * s)
        self._panel((x, y, w, h))
        color = WHITE if self.label == "HUMAN" else (AMBER if self.label == "REPLAY" else BLUE)
        self._text(self.label, int(28 * s), color, (x + int(12 * s), y + int(7 * s)))
        if recording:
            assert self._window is not None
            cx, cy = x + tw + int(32 * s), y + h // 2
            pygame.draw.circle(self._window, RED, (cx, cy), int(8 * s))
            self._text("REC", int(24 * s), RED, (cx + int(12 * s), cy), "midleft")
        return pygame.Rect(x, y, w, h)

    def _draw_help_key(self, badge: pygame.Rect) -> None:
        """The help key on its own dark box right of the badge: the top row between the HUD and the
        minimap is the one place no panel of play or watch covers, and a box keeps it readable over
        the sky, the road's yellow edge line or a saliency highlight."""
        s = self.scale
        size = int(20 * s)
        key_w = self._font(size).size("H")[0]
        w, h = key_w + self._font(size).size("  help")[0] + int(16 * s), badge.height
        x = badge.right + int(8 * s)
        self._panel((x, badge.y, w, h))
        y = badge.centery
        self._text("H", size, AMBER, (x + int(8 * s), y), "midleft")
        self._text("  help", size, WHITE, (x + int(8 * s) + key_w, y), "midleft")

    def _banner(self, title: str, color: tuple[int, int, int], hint: str) -> None:
        s = self.scale
        cx, cy = self.size[0] // 2, self.size[1] // 2
        self._panel((0, cy - int(50 * s), self.size[0], int(100 * s)), alpha=140)
        self._text(title, int(64 * s), color, (cx, cy - int(8 * s)), "center")
        self._text(hint, int(22 * s), GREY, (cx, cy + int(32 * s)), "center")

    def _draw_help(self) -> None:
        s = self.scale
        rows = (
            (HELP_KEYS_DISCRETE if self.discrete else HELP_KEYS_CONTINUOUS)
            + self.help_rows
            + HELP_KEYS_COMMON
        )
        line = int(28 * s)
        w, h = int(620 * s), int(70 * s) + line * len(rows)
        x, y = (self.size[0] - w) // 2, (self.size[1] - h) // 2
        self._panel((x, y, w, h), alpha=200)
        self._text(
            "Keys  (paused while this help shows)", int(34 * s), WHITE, (x + int(20 * s), y + int(14 * s))
        )
        y += int(56 * s)
        for key, what in rows:
            self._text(key, int(22 * s), AMBER, (x + int(20 * s), y))
            self._text(what, int(22 * s), WHITE, (x + int(220 * s), y))
            y += line
