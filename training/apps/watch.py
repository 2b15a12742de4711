"""`camdrive watch`: a trained car drives in the viewer, a person can take over, and you can see what
its CNN sees. Without a screen (or with `--video`) the same picture goes to an mp4 or GIF file.

Who drives. `--model bc` (the default) is the shipped PilotNet in LaneKeep-v0; `dqn` the shipped
DeepTraffic-style DQN in Traffic-v0; `expert` the privileged expert; anything else a model file. The
env is the one the model was trained in, with the model's camera and action options.

Control rate. A memoryless driver (PilotNet, the expert) runs at 30 steps per second so the picture
moves smoothly; a DQN runs at the rate it was trained at, since its window of past frames spans a fixed
stretch of time. `--hz` overrides both.

Takeover (`agent.takeover.TakeoverDriver`). Any drive key or gamepad input hands the car to the person
at once and counts an intervention; the car goes back to the model after two quiet seconds or Enter.
The HUD shows the interventions and NVIDIA's autonomy, (1 - interventions * 6 s / elapsed s) * 100,
with elapsed the simulated time watched. With `--record DIR` every stretch the person drove is saved as
a demonstration file (the frames the person saw and the person's actions; `camdrive train bc --data DIR`
learns from them).

What the CNN sees (`agent.explain`). V overlays guided-backprop saliency on the camera view, F shows
the feature maps of every convolution layer as tiles, both for the observation the car is about to act
on. The observation is a smaller picture from the same camera (same field of view and pose), so it
covers a centred horizontal band of the window's camera view, and the saliency is drawn exactly there:
the most salient 10 % of its pixels in red to yellow, the next 10 % fading out, the rest of the scene
untouched. For a DQN each action's Q-value minus the mean of all of them (its advantage: what the
choice depends on) is a bar on a fixed, round scale (+-1, one step's reward at 80 mph, or the next of
2, 5, 10, ... that holds every bar), with the scale and the values printed in the panel.

Video. `--video FILE` renders without a window (SDL's dummy driver) and writes every displayed frame,
overlays included: one env step per frame, so the video plays in real time at the control rate (the
HUD says "1.0x real time" where a window shows its frame rate). The
file appears only when complete (written beside it, then renamed); an existing one is replaced only
with `--force`, and without a screen and without `--video` the video gets a name no file has. Ctrl-C
or SIGTERM ends the video early: the frames so far are kept as FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim import ENV_IDS  # importing sim registers the camdrive environments
from training.apps.viewer_session import MIN_SIZE, display_problem
from training.common import exit_codes
from training.common.interrupts import interruption
from training.common.outputs import (
    OutputError,
    check_output_dir,
    check_output_file,
    remove_stale_temps,
    replacing,
    temp_path,
)
from training.evaluation.evaluate import autonomy_pct, env_option_problem

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED = {
    "bc": ASSETS / "pilotnet" / "pilotnet.safetensors",
    "dqn": ASSETS / "dqn" / "dqn_lane.safetensors",
}
"""The models `--model bc` and `--model dqn` name."""
SMOOTH_HZ = 30.0
"""Control rate for memoryless drivers: a picture that changes 10 times a second looks jerky."""
FRESH_SEEDS = (1_000_000, 2_000_000)
"""Default seeds are drawn from here: training uses seeds below 1,000,000, so the road is new to the model."""
DEFAULT_VIDEO = "camdrive-watch.mp4"
DEFAULT_VIDEO_SECONDS = 30.0
VIDEO_SUFFIXES = (".mp4", ".gif")
HUD_BOTTOM = 282
"""Where the viewer's HUD ends (at 600 px window height) with watch's two extra lines."""
TILE_ROW_BOX = (384.0, 52.0)
"""Space for one layer's tiles in the feature-map panel (at 600 px window height)."""
PANEL_TEXT = (230, 230, 230)
GREEDY_RGB = (60, 200, 90)
OTHER_RGB = (90, 160, 255)


class WatchError(Exception):
    """A bad argument or missing file, reported as `camdrive watch: error: ...`."""


# ------------------------------------------------------------------------------------------ set-up
def resolve_model(spec: str) -> str:
    """`bc` / `dqn` -> the shipped model file; `expert` stays; anything else must be a regular file."""
    if spec in SHIPPED:
        path = SHIPPED[spec]
        if not path.is_file():
            raise WatchError(
                f"the shipped model {path} is missing: the models live in the source tree's assets/ "
                "folder, so install camdrive from a clone (pip install -e .) or pass --model PATH"
            )
        return str(path)
    if spec == "expert":
        return spec
    from agent.checkpoint import CheckpointError, check_regular_file

    try:  # a directory or a named pipe is named as such, not as a missing file
        check_regular_file(Path(spec))
    except CheckpointError as e:
        hint = " (or use bc, dqn or expert)" if e.what == "no such file" else ""
        raise WatchError(f"--model {e}{hint}") from None
    return spec


def model_env(spec: str, env_name: str | None) -> tuple[str, dict[str, Any], bool]:
    """(env id, env options, has memory) for a resolved model spec; `env_name` must agree with a model."""
    if spec == "expert":
        return ENV_IDS[env_name or "lane"], {}, False
    from agent.checkpoint import CheckpointError, read_metadata
    from agent.policies import policy_env_options

    try:  # a corrupt or foreign file is the user's mistake, reported like any other bad --model
        meta = read_metadata(spec)
        options = policy_env_options(spec)
    except CheckpointError as e:
        raise WatchError(str(e)) from None
    env_id = str(meta.get("env_id", ENV_IDS["lane"]))
    if env_name is not None and ENV_IDS[env_name] != env_id:
        raise WatchError(f"{spec} drives {env_id}, not --env {env_name}")
    return env_id, options, meta.get("architecture") == "dqn"


# ------------------------------------------------------------------------------------------ overlays
class CnnView:
    """Saliency (V), feature maps (F) and, for a DQN, Q-value bars: a `sim.viewer.Overlay`.

    Everything is computed once per new sim state (in `on_scene`), from the observation the model is
    about to act on, and drawn from cache every displayed frame.
    """

    def __init__(self, viewer_obs: Any, model: Any, saliency: bool = False, features: bool = False) -> None:
        """`viewer_obs()` returns the current observation; `model` is the learned driver (or None)."""
        self.viewer_obs, self.model = viewer_obs, model
        self.saliency, self.features = saliency, features
        self._tiles: list[tuple[str, np.ndarray]] = []

    @property
    def available(self) -> bool:
        return self.model is not None

    def handle_key(self, key: int) -> bool:
        import pygame

        if key == pygame.K_v and self.available:
            self.saliency = not self.saliency
            return True
        if key == pygame.K_f and self.available:
            self.features = not self.features
            return True
        return False

    def on_scene(self, picture: np.ndarray) -> None:
        if not self.available or not (self.saliency or self.features):
            self._tiles = []
            return
        from agent.explain import explain, tile_maps

        seen = explain(self.model, self.viewer_obs())
        if self.saliency:
            blend_saliency(picture, seen.saliency)
        self._tiles = []
        if self.features:
            # A panel row is wide and low: lay each layer's channels out in the grid that fills it best.
            for layer in seen.layers:
                columns = best_columns(*layer.maps.shape, box=TILE_ROW_BOX)
                self._tiles.append((layer.name, tile_maps(layer.maps, columns=columns)))

    def draw(self, window: Any, scale: float) -> None:
        if self._tiles:
            self._draw_tiles(window, scale)
        q = getattr(self.model, "q_values", None)
        if q is not None:
            self._draw_q(window, scale, np.asarray(q, dtype=np.float64))

    def _draw_tiles(self, window: Any, scale: float) -> None:
        """Each conv layer's maps, one row per layer, in a panel down the left below the HUD."""
        import pygame

        from sim.text import hud_font

        h = window.get_size()[1]
        x0, y0 = int(10 * scale), int(HUD_BOTTOM * scale)
        width, height = int(440 * scale), h - y0 - int(30 * scale)
        row_h = height // max(len(self._tiles), 1)
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        window.blit(panel, (x0, y0))
        font = hud_font(int(18 * scale))
        label_w = int(50 * scale)
        box = (width - label_w - int(6 * scale), row_h - int(4 * scale))
        for i, (name, image) in enumerate(self._tiles):
            y = y0 + i * row_h
            window.blit(font.render(name, PANEL_TEXT), (x0 + int(6 * scale), y + int(6 * scale)))
            ih, iw = image.shape[:2]
            fit = min(box[0] / iw, box[1] / ih)
            surf = pygame.image.frombuffer(np.ascontiguousarray(image), (iw, ih), "RGB")
            size = (max(1, int(iw * fit)), max(1, int(ih * fit)))
            window.blit(pygame.transform.scale(surf, size), (x0 + label_w, y + int(2 * scale)))

    def _draw_q(self, window: Any, scale: float, q: np.ndarray) -> None:
        """Each action's advantage (Q - mean Q) as a bar from the middle, on `q_bars`' round scale,
        its value at the right; the greedy action in green. Bottom right, sized to its text."""
        import pygame

        from sim.actions import DISCRETE_ACTION_NAMES
        from sim.text import hud_font

        s = scale
        font, small = hud_font(int(20 * s)), hud_font(int(16 * s))
        advantage, end = q_bars(q)
        names = [
            DISCRETE_ACTION_NAMES[i] if i < len(DISCRETE_ACTION_NAMES) else str(i) for i in range(len(q))
        ]
        values = [f"{a:+.2f}" for a in advantage]
        title, mean = "Q - mean Q", f"mean {float(q.mean()):.2f}"
        pad, row, bar_w, bar_h = int(8 * s), int(20 * s), int(150 * s), int(12 * s)
        name_w = max(font.size(n)[0] for n in names)
        value_w = max(font.size(v)[0] for v in values)
        inner = max(name_w + bar_w + value_w + 2 * pad, font.size(title)[0] + font.size(mean)[0] + 2 * pad)
        width = inner + 2 * pad
        height = 2 * pad + font.height + int(6 * s) + row * len(q) + small.height
        w, h = window.get_size()
        x0, y0 = w - width - int(10 * s), h - height - int(10 * s)
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        window.blit(panel, (x0, y0))
        window.blit(font.render(title, PANEL_TEXT), (x0 + pad, y0 + pad))
        window.blit(font.render(mean, (170, 170, 170)), (x0 + width - pad - font.size(mean)[0], y0 + pad))
        bar_x = x0 + pad + name_w + pad
        mid = bar_x + bar_w // 2
        y = y0 + pad + font.height + int(6 * s)
        best = int(np.argmax(q))
        for i, (name, a, text) in enumerate(zip(names, advantage, values, strict=True)):
            color = GREEDY_RGB if i == best else OTHER_RGB
            window.blit(font.render(name, PANEL_TEXT), (x0 + pad, y))
            bar_y = y + (font.height - bar_h) // 2
            pygame.draw.rect(window, (60, 60, 60), (bar_x, bar_y, bar_w, bar_h))
            fill = int(round(min(abs(a) / end, 1.0) * (bar_w // 2)))
            if fill:
                pygame.draw.rect(window, color, (mid if a > 0 else mid - fill, bar_y, fill, bar_h))
            window.blit(font.render(text, PANEL_TEXT), (x0 + width - pad - font.size(text)[0], y))
            y += row
        pygame.draw.line(window, (255, 255, 255), (mid, y0 + pad + font.height), (mid, y))
        for label, x in ((f"-{end:g}", bar_x), ("0", mid - small.size("0")[0] // 2)):
            window.blit(small.render(label, (170, 170, 170)), (x, y))
        right = f"+{end:g}"
        window.blit(small.render(right, (170, 170, 170)), (bar_x + bar_w - small.size(right)[0], y))


def q_bars(q: np.ndarray) -> tuple[np.ndarray, float]:
    """(advantages Q - mean Q, the bar's half-length in the same units).

    Only differences between Q-values decide anything, so the bars show them from the middle. Scaled
    to their own range, a 0.6 spread would fill one bar and empty another, like a strong preference;
    on a fixed scale of 1 (one step's reward at 80 mph, the DQN's reward unit) it reads as 0.6 of a
    step, and the frame-to-frame jitter (0.02-0.06 for the shipped DQN) stays a sliver. A larger
    advantage picks the next round scale (2, 5, 10, ...), printed under the bars.
    """
    q = np.asarray(q, dtype=np.float64)
    advantage = q - q.mean()
    largest = float(np.max(np.abs(advantage))) if advantage.size else 0.0
    return advantage, round_scale(largest)


def round_scale(value: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value` (1 for anything not above 1)."""
    if not np.isfinite(value) or value <= 1.0:
        return 1.0
    decade = 10.0 ** np.floor(np.log10(value))
    return float(next(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade >= value))


def blend_saliency(picture: np.ndarray, saliency: np.ndarray) -> None:
    """Paint `saliency` (the observation's size) on the band of `picture` that the observation covers,
    in place: the colours and weights of `agent.explain.saliency_rgba` (the most salient tenth of the
    pixels, the rest of the scene untouched), scaled and blended by pygame in C (measured about 5 ms
    for a 960x600 window on the loaded development machine, against 17 ms for a numpy blend).
    """
    import pygame

    from agent.explain import saliency_rgba

    ph, pw = picture.shape[:2]
    top, height = observation_band(saliency.shape, (ph, pw))
    rgba = np.ascontiguousarray(np.clip(saliency_rgba(saliency) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    heat = pygame.image.frombuffer(rgba, (saliency.shape[1], saliency.shape[0]), "RGBA")
    target = pygame.image.frombuffer(picture, (pw, ph), "RGB")  # shares the picture's memory
    target.blit(pygame.transform.smoothscale(heat, (pw, height)), (0, top))


def best_columns(channels: int, height: int, width: int, box: tuple[float, float]) -> int:
    """How many columns make a grid of `channels` maps appear largest when fitted into `box` (w, h)."""

    def shown_scale(columns: int) -> float:
        rows = -(-channels // columns)
        grid_w, grid_h = columns * width + columns - 1, rows * height + rows - 1
        return min(box[0] / grid_w, box[1] / grid_h)

    return max(range(1, channels + 1), key=shown_scale)


def observation_band(obs_hw: tuple[int, ...], picture_hw: tuple[int, ...]) -> tuple[int, int]:
    """(first row, rows) of the window picture that the observation covers.

    Both pictures come from one pinhole camera with the same horizontal field of view, centred principal
    point and pose, so the observation is the window picture scaled by width ratio and centred.
    """
    oh, ow = int(obs_hw[0]), int(obs_hw[1])
    ph, pw = int(picture_hw[0]), int(picture_hw[1])
    height = min(ph, int(round(oh * pw / ow)))
    return (ph - height) // 2, height


# ------------------------------------------------------------------------------------------ recording
class TakeoverRecorder:
    """An `EpisodeSink` that saves each stretch a person drove as one demonstration file.

    A stretch starts with the frame the person saw when taking over and ends when the model has the car
    again or the episode ends. Its file has no reset seed (it does not start at a reset): the episode's
    seed and the step it started at are in `takeover` in its meta.
    """

    recording = True

    def __init__(
        self, directory: str | os.PathLike[str], driver: Any, model_name: str, control_hz: float
    ) -> None:
        self.directory, self.driver = Path(directory), driver
        self.model_name, self.control_hz = model_name, control_hz
        self.saved: list[Path] = []
        self._env_id, self._options, self._seed = "", {}, 0
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._step = 0
        self._writer: Any = None

    def begin(self, env: gym.Env, seed: int, observation: Any, info: dict[str, Any]) -> None:
        spec = env.unwrapped.spec
        self._env_id = spec.id if spec is not None else ""
        self._options = dict(spec.kwargs) if spec is not None else {}
        self._seed, self._step = int(seed), 0
        self._last = (np.array(observation), dict(info))

    def step(
        self,
        action: Any,
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        if self.driver.human_drove_last_step:
            if self._writer is None:
                self._open()
            self._writer.add(np.array(observation), np.array(action), None, reward, dict(info))
        elif self._writer is not None:
            self._close(False, False)
        self._last = (np.array(observation), dict(info))
        self._step += 1

    def end(self, terminated: bool, truncated: bool) -> None:
        if self._writer is not None:
            self._close(terminated, truncated)

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM: save the stretch being driven so far as a partial file."""
        if self._writer is not None:
            self._writer.checkpoint()

    def _open(self) -> None:
        from training.data.demo_writer import EpisodeWriter

        assert self._last is not None
        self._writer = EpisodeWriter(
            self.directory,
            self._env_id,
            self._options,
            None,
            "human",
            control_hz=self.control_hz,
            extra_meta={
                "takeover": {"model": self.model_name, "episode_seed": self._seed, "from_step": self._step}
            },
        )
        self._writer.start(*self._last)

    def _close(self, terminated: bool, truncated: bool) -> None:
        path = self._writer.close(terminated, truncated)
        self.saved.append(path)
        print(f"recorded takeover {path} ({self._writer.steps} steps)", flush=True)
        self._writer = None


# ------------------------------------------------------------------------------------------ video
class VideoWriter:
    """Frames to an mp4 (H.264 through imageio-ffmpeg's bundled ffmpeg) or a GIF, at a fixed rate.

    The frames go to a hidden file beside `path` that `close` renames to `path`: a video that is
    being written, or whose writing failed, never stands where a finished one is expected.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self._tmp = temp_path(self.path)  # keeps the suffix, from which imageio picks the format
        self.frames = 0
        if self.path.suffix.lower() == ".gif":
            self._writer = imageio.get_writer(self._tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            # macro_block_size 8: 960x600 (600 = 75 * 8) is encoded as it is, not padded to 16.
            self._writer = imageio.get_writer(
                self._tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8, pixelformat="yuv420p"
            )

    def add(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and put it at `path`."""
        try:
            self._writer.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        """Stop writing and leave no file."""
        try:
            with contextlib.suppress(Exception):  # an encoder already gone: the file is dropped anyway
                self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def keep_partial(self) -> str:
        """After Ctrl-C or SIGTERM: keep the frames written so far as the video; says what was kept."""
        if not self.frames:
            self.discard()
            return "no video written"
        try:
            self.close()
        except Exception as e:  # the encoder died with the signal (a whole process group was stopped)
            return f"the video could not be finished ({type(e).__name__}); none written"
        return f"kept the {self.frames} frames so far as {self.path}"


# ------------------------------------------------------------------------------------------ command
def check_args(args: argparse.Namespace) -> None:
    """Refuse arguments watch cannot use, before a model is loaded or a window opened.

    argparse only checks that they are numbers; left alone, a bad one ends in a traceback from deep
    inside the viewer, the env or the takeover driver, which names an internal parameter, not the flag.
    """
    if args.width < MIN_SIZE[0] or args.height < MIN_SIZE[1]:
        raise WatchError(
            f"the window must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, got {args.width}x{args.height}"
        )
    if args.video and Path(args.video).suffix.lower() not in VIDEO_SUFFIXES:
        raise WatchError(f"--video must end in {' or '.join(VIDEO_SUFFIXES)}, got {args.video!r}")
    if args.hz is not None and not args.hz > 0:
        raise WatchError(f"--hz must be > 0, got {args.hz}")
    if args.hz is not None:
        problem = env_option_problem("control_hz", args.hz)
        if problem:
            raise WatchError(f"--hz {args.hz:g}: {problem}")
    if not args.quiet > 0:  # also refuses NaN
        raise WatchError(
            f"--quiet must be > 0 seconds (the pause before the model drives again), got {args.quiet}"
        )
    if args.seed is not None and args.seed < 0:
        raise WatchError(f"--seed must be >= 0 (gymnasium seeds are non-negative), got {args.seed}")
    if args.seconds is not None and not args.seconds > 0:
        raise WatchError(f"--seconds must be > 0, got {args.seconds}")
    check_outputs(args)


def check_outputs(args: argparse.Namespace) -> None:
    """OutputError for a --video, --screenshot or --record that cannot be written, or for an existing
    video or screenshot without --force: found before a model is loaded, not after the drive."""
    force = getattr(args, "force", False)
    if args.video:
        check_output_file(args.video, "--video", force=force)
    if args.screenshot:
        check_output_file(args.screenshot, "--screenshot", force=force)
    if args.record:
        check_output_dir(args.record, "--record")


def default_video(force: bool) -> str:
    """The video to write when there is no screen and no --video: DEFAULT_VIDEO, or with a number
    added when that name is taken (replaced only with --force: the user never named that file)."""
    path = Path(DEFAULT_VIDEO)
    n = 1
    while not force and (path.exists() or path.is_symlink()):
        n += 1
        path = Path(f"{Path(DEFAULT_VIDEO).stem}-{n}{Path(DEFAULT_VIDEO).suffix}")
    check_output_file(path, "the video", force=force)
    return str(path)


def watch_main(args: argparse.Namespace, *, script: Any = ()) -> int:
    """`camdrive watch`. `script` ((frame, pygame event) pairs) drives it from code: tests, demos."""
    prog = "camdrive watch"
    try:
        check_args(args)
        spec = resolve_model(args.model)
        env_id, options, has_memory = model_env(spec, args.env)
        video = args.video
        if video is None:
            problem = display_problem("camdrive watch")
            if problem:
                video = default_video(getattr(args, "force", False))
                print(f"{prog}: {problem}\n{prog}: writing a video to {video} instead", file=sys.stderr)
    except (WatchError, OutputError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    if video is not None:
        os.environ["SDL_VIDEODRIVER"] = "dummy"  # render off screen; nothing is shown

    from agent.baselines import load_driver
    from agent.checkpoint import CheckpointError
    from agent.human import HumanInput
    from agent.takeover import TakeoverDriver
    from sim.viewer import DisplayUnavailableError, Viewer

    hz = (
        args.hz
        if args.hz is not None
        else (float(options.get("control_hz", 10.0)) if has_memory else SMOOTH_HZ)
    )
    try:
        model = load_driver(spec)
        safety = getattr(args, "safety", "on") == "on"
        env = gym.make(env_id, **{**options, "control_hz": hz, "safety": safety})
    except (CheckpointError, ValueError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    human = HumanInput(env.action_space)
    driver = TakeoverDriver(model, human, quiet_seconds=args.quiet)
    learned = model if hasattr(model, "model") else None
    model_name = Path(spec).name if spec != "expert" else "expert"
    period = 1.0 / hz

    viewer: Viewer | None = None
    cnn = CnnView(
        lambda: viewer.observation if viewer is not None else None, learned, args.saliency, args.features
    )

    def hud_extra() -> list[str]:
        seconds = driver.steps * period
        lines = [f"model {model_name}: {describe_action(driver.model_action)}"]
        lines.append(f"safety system {'on' if safety else 'OFF'}")
        autonomy = autonomy_pct(driver.interventions, seconds)
        lines.append(f"interventions {driver.interventions}   autonomy {autonomy:.1f} %")
        return lines

    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(*FRESH_SEEDS))
    if args.seed is None:
        print(f"seed {seed} (--seed {seed} shows this road again)")
    recorder = TakeoverRecorder(args.record, driver, model_name, hz) if args.record else None
    if args.record:
        from training.data.record import remove_leftovers

        remove_leftovers(Path(args.record))  # what a killed `watch --record` or recorder left there
    viewer = Viewer(
        env,
        driver,
        size=(args.width, args.height),
        fps=0.0 if video else args.fps,
        seed=seed,
        sink=recorder,
        script=script,
        title=f"camdrive watch - {model_name} in {env_id}",
        hud_extra=hud_extra,
        overlays=[cnn],
        video_fps=hz if video is not None else None,
        help_rows=[
            ("any drive key / pad", "take over (counts an intervention)"),
            ("Enter / Tab", "give the car back to the model"),
            ("V", "saliency: its most salient tenth (guided backprop)"),
            ("F", "feature maps of every convolution layer"),
        ],
    )
    writer: VideoWriter | None = None
    try:
        try:
            viewer.open()
        except DisplayUnavailableError as e:
            print(f"{prog}: {e}. {display_problem(prog) or 'Is a display available?'}", file=sys.stderr)
            return exit_codes.FAILED
        max_frames = args.frames
        try:
            if video is not None:
                writer = VideoWriter(video, hz)
                seconds = args.seconds if args.seconds is not None else DEFAULT_VIDEO_SECONDS
                max_frames = max_frames or max(1, int(round(seconds * hz)))
                stats = viewer.run(max_frames=max_frames, after_frame=lambda v: writer.add(v.frame_rgb()))
                writer.close()
            else:
                stats = viewer.run(max_frames=max_frames, max_seconds=args.seconds)
        except BaseException as error:
            if interruption(error) is not None:
                raise KeyboardInterrupt(_keep_partial(writer, recorder)) from None
            if writer is not None:
                writer.discard()
            raise
        if args.screenshot:
            with replacing(args.screenshot) as tmp:
                viewer.save_screenshot(tmp)
            print(f"screenshot saved to {args.screenshot}")
    finally:
        viewer.close()
        env.close()
    print(summary(stats, driver, period, video, f"{args.width}x{args.height}", safety))
    if recorder is not None:
        print(f"{len(recorder.saved)} takeover(s) recorded in {args.record}")
    return 0


def summary(stats: Any, driver: Any, period: float, video: str | None, size: str, safety: bool = True) -> str:
    """The one line that says what the run did: the video written (its frames, played at the control
    rate, are the driving: one env step each) or the frames shown in the window, then the episodes, the
    interventions and whether the safety system was on. A video's render rate is left out: it says
    nothing about the file."""
    seconds = driver.steps * period
    if video is not None:
        driving = f"{stats.frames * period:.1f} s of driving, {size}"
        frames = f"{stats.frames} frames at {1.0 / period:g} fps ({driving})"
        head = f"wrote {video} in {stats.seconds:.1f} s: {frames}"
    else:
        shown = f"{stats.fps:.1f} fps at {size}"
        head = f"{stats.frames} frames in {stats.seconds:.1f} s ({shown}), {stats.steps} steps"
    autonomy = autonomy_pct(driver.interventions, seconds)
    return (
        f"{head}; {stats.episodes} episode(s), {driver.interventions} intervention(s) in {seconds:.1f} s "
        f"driven, autonomy {autonomy:.1f} %, safety system {'on' if safety else 'off'}"
    )


def _keep_partial(writer: VideoWriter | None, recorder: TakeoverRecorder | None) -> str:
    """Ctrl-C or SIGTERM during the drive: keep the video so far and the stretch being driven; the
    words say what was kept, for the one line `camdrive` prints."""
    kept = []
    if writer is not None:
        kept.append(writer.keep_partial())
    if recorder is not None:
        recorder.interrupted()
        kept.append(f"{len(recorder.saved)} takeover(s) recorded in {recorder.directory}")
    return "; ".join(kept)


def describe_action(action: Any) -> str:
    """The model's last action in words: its steering for continuous actions, the name for discrete."""
    if action is None:
        return "-"
    a = np.asarray(action)
    if a.ndim == 0:
        from sim.actions import DISCRETE_ACTION_NAMES

        i = int(a)
        return DISCRETE_ACTION_NAMES[i] if 0 <= i < len(DISCRETE_ACTION_NAMES) else str(i)
    return f"steer {float(a.reshape(-1)[0]):+.2f}"
