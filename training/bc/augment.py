"""Data augmentation for behaviour cloning: PilotNet's viewpoint trick and photometric jitter.

Viewpoint augmentation (Bojarski et al. 2016, section 5.2). A policy trained only on an expert's
centred driving has never seen what the road looks like from a car that has drifted, so its small
errors compound. NVIDIA recorded with two extra cameras and synthesised shifted and rotated views by
warping images. camdrive can do better: the renderer draws the camera from any pose, so an extra view
is the exact frame seen by a car displaced sideways by `delta_d` metres and turned by `delta_yaw`
radians at the same arc length, with the same traffic.

Label of an extra view. It is the expert's own controller (`sim.lane_control.steer_to_offset`, pure
pursuit with curvature feed-forward) evaluated at the displaced pose, with the expert's look-ahead
time (0.9 s, so the centre views' labels and the extra views' labels come from one function). Why
that returns the car to the lane centre in about two seconds: linearising pure pursuit with look-ahead
distance L = v * t_la gives lateral error dynamics e'' + (2v/L) e' + (2v^2/L^2) e = 0, a damping ratio
of 0.71 and a decay rate v/L = 1/t_la = 1.1 per second, so 90 % of an offset is gone after 2 s with a
small (4 %) overshoot. NVIDIA's "return in two seconds" rule is the same idea with a fixed time; using the
controller also accounts for the heading error and the road's curvature, which a constant-time formula
ignores. A view shifted LEFT (delta_d > 0) or turned left (delta_yaw > 0) therefore gets a label to
the RIGHT (positive), larger for larger displacements until it saturates.

Geometric label of an extra view (`geometric_label`, `camdrive train bc --view-labels geometric`).
A real car has no expert to ask. NVIDIA labelled its shifted and rotated views with "the steering
that returns the vehicle to the desired location and orientation in two seconds", computed from the
recorded (human) steering and the view's displacement alone. `geometric_label` does that with pure
pursuit toward the recorded path: the recorded steering gives the path's curvature k0, so the car
at the recorded pose would be, after D = v * T metres, at the point P of an arc of curvature k0.
Seen from the displaced car (delta_d to the left, turned delta_yaw to the left), P has coordinates
(x, y) (forward, left), and the one arc from the car through P has curvature k = 2 y / (x^2 + y^2)
(the chord-circle relation of pure pursuit). For small displacements k = k0 - 2 delta_d / D^2
- 2 delta_yaw / D: the recorded curvature plus a correction toward the path. The curvature is
turned into steering as the vehicle model does (`sim.vehicle`: tan(wheel angle) = wheelbase * k,
wheel angle = -steer * max_wheel_angle(v)) and clipped to -1..1. It reads the recorded steering, the
speed and the car's geometry, nothing of the world: the road, the lane centre and the expert stay
unknown. With T = 2 s it is a gentler correction than the expert's (0.9 m to the side asks for
0.07 at 20 m/s where the expert asks for about 0.4; 6 degrees asks for about 0.35, as the expert):
the closed loop it teaches is pure pursuit with a 40 m look-ahead, which still settles without
oscillation (damping ratio 0.71, see above) but takes about 4.5 s for 90 % of an offset. A shorter T
(`--view-return-s`, default RETURN_S = 0.9 s) is the same label with a firmer correction;
assets/pilotnet/MODEL_CARD.md says what each did on the demonstrations of an imperfect driver.

Training looks (`LookPool`, domain randomisation done per frame). Every frame, centre or extra view,
is drawn in a look chosen at random: the default clear day with probability `default_fraction`, else
one of `count` palettes drawn by `Palette.randomised` (the same kinds of randomisation the env's
`randomize` option uses: colours, lighting, marking wear, sensor noise, haze) from the training run's
own seed stream. Why per frame and not the env's per-episode look: with one look per episode, N
episodes show the network only N looks, each tied to one episode, and it learns look-specific
colour cues instead of the road's geometry. Drawing the look independently per frame decouples look
from episode, displacement and label, and shows the network `count` looks (assets/pilotnet/MODEL_CARD.md
has the measurements of both).

Photometric jitter (brightness, contrast, colour gain, saturation, hue mixing, offsets, sensor noise)
is applied per sample in the training loop (`photometric_jitter`), so the network keys on the road's
geometry rather than its exact colours.

The view functions are numpy only; `photometric_jitter` imports torch when called.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sim import seeding
from sim.envs.base import unwrap
from sim.lane_control import steer_to_offset
from sim.render.frontcam import FrontCameraRenderer
from sim.render.palette import Palette
from sim.vehicle import VehicleParams
from sim.world import Camera, World
from training.bc.config import EXPERT_LOOKAHEAD_S, RETURN_S, JitterConfig, LookConfig, ViewConfig

if TYPE_CHECKING:
    import torch


def view_displacements(cfg: ViewConfig, rng: np.random.Generator, k: int) -> np.ndarray:
    """(k, 2) displacements [delta_d (m, + left), delta_yaw (rad, + left)], uniform in `cfg`'s range."""
    out = np.empty((k, 2))
    out[:, 0] = rng.uniform(-cfg.max_shift_m, cfg.max_shift_m, k)
    out[:, 1] = np.radians(rng.uniform(-cfg.max_yaw_deg, cfg.max_yaw_deg, k))
    return out


def target_offset(world: World, lane: int) -> float:
    """Lateral offset d of the centre of `lane` (what the views' labels steer back to)."""
    assert world.road is not None
    return float(world.road.lane_centre(lane))


def recovery_label(
    world: World, d_target: float, delta_d: float, delta_yaw: float, lookahead_s: float
) -> float:
    """Steering (-1 left .. +1 right) the expert would command from the car's pose displaced by
    (delta_d, delta_yaw): it brings the car back to `d_target` in about two seconds (module docstring)."""
    assert world.road is not None
    st = world.state()
    return steer_to_offset(
        world.road,
        world.ego.params,
        st.s,
        st.d + delta_d,
        st.yaw + delta_yaw,
        st.speed,
        d_target,
        lookahead_time=lookahead_s,
    )


def geometric_label(
    recorded_steer: float,
    speed: float,
    params: VehicleParams,
    delta_d: float,
    delta_yaw: float,
    return_s: float = RETURN_S,
) -> float:
    """Steering (-1 left .. +1 right) that brings a view displaced by (delta_d m, delta_yaw rad, both
    + left) back onto the recorded path in `return_s` seconds, from the recorded steering alone.

    Pure pursuit toward the point the recorded path reaches after D = speed * return_s metres
    (module docstring); no road, lane or expert. Zero displacement returns the recorded steering.
    """
    wheel_max = params.max_wheel_angle(speed)
    k0 = math.tan(-recorded_steer * wheel_max) / params.wheelbase
    dist = max(speed * return_s, 1.0)  # a stopped car still aims a metre ahead
    # The recorded path's point after `dist` metres on an arc of curvature k0, from the recorded pose
    # (x forward, y left); then the same point seen from the displaced car.
    turn = k0 * dist
    px, py = (math.sin(turn) / k0, (1.0 - math.cos(turn)) / k0) if abs(turn) > 1e-9 else (dist, 0.0)
    dx, dy = px, py - delta_d
    c, s = math.cos(delta_yaw), math.sin(delta_yaw)
    x, y = c * dx + s * dy, -s * dx + c * dy
    k = 2.0 * y / (x * x + y * y)
    steer = -math.atan(params.wheelbase * k) / wheel_max
    return max(-1.0, min(1.0, steer))


def geometric_labels(
    recorded_steer: float, speed: float, params: VehicleParams, deltas: np.ndarray, return_s: float = RETURN_S
) -> np.ndarray:
    """`geometric_label` of each row (delta_d, delta_yaw) of `deltas`, float32."""
    return np.asarray(
        [geometric_label(recorded_steer, speed, params, float(d), float(y), return_s) for d, y in deltas],
        dtype=np.float32,
    )


def displaced_pose(world: World, delta_d: float, delta_yaw: float) -> tuple[float, float, float]:
    """World (x, y, yaw) of the ego car moved `delta_d` metres along the road's left normal and turned."""
    assert world.road is not None
    e = world.ego
    h = world.road.heading_at(world.s)
    return e.x - math.sin(h) * delta_d, e.y + math.cos(h) * delta_d, e.yaw + delta_yaw


def render_state(renderer: Camera, world: World) -> np.ndarray:
    """The ego's current view drawn by `renderer` (a training look's renderer, say): the frame the
    env would observe if its camera had that look."""
    return world.camera_view(renderer)


def render_views(
    world: World,
    renderer: Any,
    d_target: float,
    deltas: np.ndarray,
    lookahead_s: float = EXPERT_LOOKAHEAD_S,
    recorded_steer: float | None = None,
    return_s: float = RETURN_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (k, H, W, C) uint8 and labels (k,) float32 of the views displaced by each row of `deltas`.

    `renderer` is a `sim.render.frontcam.FrontCameraRenderer` (the env's: `unwrap(env).camera.renderer`),
    so the views look exactly like the env's observations, traffic included; or a sequence of k
    renderers, one per view (each view in its own look, see `LookPool`). Labels: the expert's
    controller toward `d_target`, or with `recorded_steer` the geometric labels back to the recorded
    path (`geometric_label`; `d_target` is then unused).
    """
    renderers = renderer if isinstance(renderer, list | tuple) else [renderer] * len(deltas)
    frames, labels = [], []
    for (delta_d, delta_yaw), r in zip(deltas, renderers, strict=True):
        pose = displaced_pose(world, float(delta_d), float(delta_yaw))
        frames.append(world.camera_view(r, pose))
        if recorded_steer is None:
            labels.append(recovery_label(world, d_target, float(delta_d), float(delta_yaw), lookahead_s))
    if recorded_steer is not None:
        return np.stack(frames), geometric_labels(
            recorded_steer, world.ego.speed, world.ego.params, deltas, return_s
        )
    return np.stack(frames), np.asarray(labels, dtype=np.float32)


class LookPool:
    """Renderers of the training looks for one env's camera and road; `pick` chooses one per frame.

    Index -1 is the env's default-look renderer; 0 .. count-1 are the randomised palettes of the run
    seed (module docstring), drawn from stream `sim.seeding.TRAINING_LOOKS`, which the env's own looks
    (`EPISODE_LOOK`) never draw from. Seeded: which look a frame gets comes from the caller's generator.
    """

    def __init__(self, env: Any, cfg: LookConfig, run_seed: int) -> None:
        camera = unwrap(env).camera
        self.cfg, self.run_seed = cfg, run_seed
        self._camera, self._road, self._grayscale = camera.camera, camera.road, camera.grayscale
        self.default = FrontCameraRenderer(self._camera, self._road, Palette(), self._grayscale)
        self._renderers: dict[int, FrontCameraRenderer] = {}

    def matches(self, env: Any) -> bool:
        """Whether `env` has the camera and road this pool's renderers were built for."""
        o = unwrap(env).camera
        return (o.camera, o.road, o.grayscale) == (self._camera, self._road, self._grayscale)

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def palette(self, i: int) -> Palette:
        return Palette.randomised(seeding.stream(self.run_seed, seeding.TRAINING_LOOKS, i), self.cfg.strength)

    def renderer(self, i: int) -> FrontCameraRenderer:
        if i < 0:
            return self.default
        if i not in self._renderers:
            wear = seeding.stream(self.run_seed, seeding.TRAINING_LOOKS, i, 1)
            self._renderers[i] = FrontCameraRenderer(
                self._camera,
                self._road,
                self.palette(i),
                self._grayscale,
                wear_seed=int(wear.integers(2**31 - 1)),
            )
        return self._renderers[i]

    def picker(self, *key: int) -> LookPicker:
        """This pool with a generator of its own, seeded by `key` (an episode's seed and a `sim.seeding`
        stream)."""
        return LookPicker(self, np.random.default_rng([*key]))

    def pick(self, rng: np.random.Generator, k: int = 1) -> list[FrontCameraRenderer]:
        """`k` renderers, each the default look with probability `default_fraction`, else a random palette."""
        if not self.enabled:
            return [self.default] * k
        default = rng.random(k) < self.cfg.default_fraction
        index = rng.integers(0, self.cfg.count, k)
        return [self.renderer(-1 if d else int(i)) for d, i in zip(default, index, strict=True)]


class LookPicker:
    """A `LookPool` and the generator its picks come from (separate from the episode's other random
    streams, so the looks change how the frames look and nothing else: same trajectory, same views)."""

    def __init__(self, pool: LookPool, rng: np.random.Generator) -> None:
        self.pool, self.rng = pool, rng

    @property
    def enabled(self) -> bool:
        return self.pool.enabled

    @property
    def default(self) -> FrontCameraRenderer:
        return self.pool.default

    def pick(self, k: int = 1) -> list[FrontCameraRenderer]:
        return self.pool.pick(self.rng, k)


DEFAULT_JITTER = JitterConfig()
"""The jitter of training batches (`BCConfig.jitter`'s default)."""


def photometric_jitter(
    frames: torch.Tensor, generator: torch.Generator, cfg: JitterConfig = DEFAULT_JITTER
) -> torch.Tensor:
    """Random brightness, contrast, colour changes and noise: uint8 (B, H, W, C) -> float 0..255.

    In order: colour mixing (hue) and saturation about the pixel's grey level, contrast about the
    image's mean grey, brightness and per-channel gain, per-channel offset, then pixel noise. Drawn from
    `generator`, so a seeded training run sees the same jitter every time; terms whose range is 0
    draw nothing. The defaults cover the kinds of change `Palette.randomised` makes to a whole frame
    (lighting, colour casts, sensor noise); what it changes region by region (the grass, asphalt and
    line colours, haze, wear) is left to the training looks (`LookPool`).
    """
    import torch

    x = frames.float()
    b, c = x.shape[0], x.shape[-1]

    def uniform(spread: float, *shape: int) -> torch.Tensor:
        return spread * (2.0 * torch.rand(*shape, generator=generator) - 1.0)

    def factor(spread: float, *shape: int) -> torch.Tensor:
        return 1.0 + uniform(spread, *shape)

    if c == 3 and (cfg.mix > 0 or cfg.saturation > 0):
        eye = torch.eye(3).expand(b, 3, 3)
        m = eye + (uniform(cfg.mix, b, 3, 3) * (1.0 - eye) if cfg.mix > 0 else 0.0)
        m = m / m.sum(dim=2, keepdim=True)  # rows sum to 1: greys stay grey
        if cfg.saturation > 0:
            grey = torch.tensor([0.299, 0.587, 0.114]).expand(b, 3, 3)
            m = grey + factor(cfg.saturation, b, 1, 1) * (m - grey)  # rows still sum to 1
        x = torch.bmm(x.view(b, -1, 3), m.transpose(1, 2)).view(x.shape)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    gain = factor(cfg.contrast, b, 1, 1, 1)
    scale = factor(cfg.brightness, b, 1, 1, 1) * factor(cfg.colour, b, 1, 1, c)
    # ((x - mean) * gain + mean) * scale + offset, as one multiply and one add
    shift = mean * (1.0 - gain) * scale
    if cfg.offset > 0:
        shift = shift + uniform(cfg.offset, b, 1, 1, c)
    x.mul_(gain * scale).add_(shift)
    if cfg.noise > 0:  # grey noise, like the camera's sensor noise
        sigma = cfg.noise * torch.rand(b, 1, 1, 1, generator=generator)
        x.add_(sigma * torch.randn((*x.shape[:-1], 1), generator=generator))
    return x.clamp_(0.0, 255.0)
