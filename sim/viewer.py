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

How fast it draws, measured: docs/viewer.md.

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
from typing import Any

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from sim.envs.base import CamDriveEnv, unwrap  # noqa: E402
from sim.hud import RED, WHITE, Hud  # noqa: E402
from sim.render.palette import Palette  # noqa: E402
from sim.view import EnvView  # noqa: E402
from sim.viewer_api import DisplayUnavailableError, EpisodeSink, Overlay, ViewerDriver, ViewerStats  # noqa: E402

DEFAULT_SIZE = (960, 600)
"""Window (width, height)."""
DEFAULT_FPS = 60.0
MAX_FRAME_DT = 0.1
"""Longest wall time one frame may advance the sim clock, s."""
END_HOLD_SECONDS = 1.5
"""How long the CRASHED / OFF ROAD / TIME UP banner shows before the next episode starts."""


class Viewer:
    """A window onto one env, driven by one driver. See the module docstring for pacing and input."""

    def __init__(
        self,
        env: gym.Env,
        driver: ViewerDriver,
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

        `driver` is any `ViewerDriver` (every `agent.driver.Driver`); if it has `handle_event(event)` and
        `update(dt)` (a `HumanInput`), it gets the drive keys and a smoothing tick per frame.
        `at_episode_end` is "reset" (show why it ended, then start the next episode) or "hold" (keep the
        last picture until R or quit: replays). `script` is a list of (frame index, event) posted before
        that frame's events are read. `video_fps`: the frames become a video played at this rate, so the
        HUD shows how fast simulated time runs in it instead of the rate the frames were rendered at.
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
        self.braking = False
        """Whether the safety system's brake overrode the driver in the last step."""
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
        self.hud = Hud(self)
        """What is drawn over the picture: the HUD panel, the badge, help and banners."""

    @property
    def window(self) -> pygame.Surface:
        """The open window (`open` first)."""
        assert self._window is not None, "the window is not open"
        return self._window

    def measured_fps(self) -> float:
        """Frames per second the window has been drawn at lately (0 before it opens)."""
        return self._clock.get_fps() if self._clock is not None else 0.0

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
        self.braking = False
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
        self.braking, self._brakes_before = brakes > self._brakes_before, brakes
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
        self.hud.draw_panel()
        for overlay in self.overlays:
            overlay.draw(win, s)
        badge = self.hud.draw_badge()
        if not self.show_help:
            self.hud.draw_help_key(badge)
        if self.show_help:
            self.hud.draw_help()
        elif self.paused:
            self.hud.banner("PAUSED", WHITE, "P or Space to continue")
        elif self._ended:
            hint = "R to replay again, Esc to quit" if self.at_episode_end == "hold" else "next episode..."
            self.hud.banner(self._end_reason, RED if self._end_reason != "TIME UP" else WHITE, hint)

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
