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

Photometric jitter (brightness, contrast, colour balance) is applied per sample in the training loop
(`photometric_jitter`), so the network keys on the road's geometry rather than its exact colours.

The view functions are numpy only; `photometric_jitter` imports torch when called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.lane_control import steer_to_offset
from sim.world import World

if TYPE_CHECKING:
    import torch

EXPERT_LOOKAHEAD_S = 0.9
"""The expert's look-ahead time (`steer_to_offset`'s default); see the module docstring."""


@dataclass(frozen=True)
class ViewConfig:
    """Range of the extra views: displacements are drawn uniformly in [-max, max], independently."""

    max_shift_m: float = 0.9
    """Largest sideways displacement; 0.9 m stays inside a 3.6 m lane with the car's 1.9 m width."""
    max_yaw_deg: float = 6.0
    """Largest rotation; 6 degrees at 20 m/s is a drift of 2 m/s, well beyond what the expert does."""
    lookahead_s: float = EXPERT_LOOKAHEAD_S

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """(k, 2) displacements [delta_d (m, + left), delta_yaw (rad, + left)]."""
        out = np.empty((k, 2))
        out[:, 0] = rng.uniform(-self.max_shift_m, self.max_shift_m, k)
        out[:, 1] = np.radians(rng.uniform(-self.max_yaw_deg, self.max_yaw_deg, k))
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


def displaced_pose(world: World, delta_d: float, delta_yaw: float) -> tuple[float, float, float]:
    """World (x, y, yaw) of the ego car moved `delta_d` metres along the road's left normal and turned."""
    assert world.road is not None
    e = world.ego
    h = world.road.heading_at(world.s)
    return e.x - math.sin(h) * delta_d, e.y + math.cos(h) * delta_d, e.yaw + delta_yaw


def render_views(
    world: World, renderer: Any, d_target: float, deltas: np.ndarray, lookahead_s: float = EXPERT_LOOKAHEAD_S
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (k, H, W, C) uint8 and labels (k,) float32 of the views displaced by each row of `deltas`.

    `renderer` is a `sim.render.frontcam.FrontCameraRenderer` (the env's: `env.unwrapped.obs_type.renderer`),
    so the views look exactly like the env's observations, traffic included.
    """
    assert world.road is not None
    cars = world.cars()
    frames, labels = [], []
    for delta_d, delta_yaw in deltas:
        x, y, yaw = displaced_pose(world, float(delta_d), float(delta_yaw))
        frames.append(renderer.render(world.road, x, y, yaw, world.s, cars))
        labels.append(recovery_label(world, d_target, float(delta_d), float(delta_yaw), lookahead_s))
    return np.stack(frames), np.asarray(labels, dtype=np.float32)


@dataclass(frozen=True)
class JitterConfig:
    """Per-sample photometric jitter ranges (multiplicative factors around 1)."""

    brightness: float = 0.25
    contrast: float = 0.25
    colour: float = 0.08


def photometric_jitter(
    frames: torch.Tensor, generator: torch.Generator, cfg: JitterConfig = JitterConfig()
) -> torch.Tensor:
    """Random brightness, contrast and per-channel colour gain: uint8 (B, H, W, C) -> float 0..255.

    Contrast scales each image about its own mean grey; brightness and colour scale the result. Drawn
    from `generator`, so a seeded training run sees the same jitter every time.
    """
    import torch

    x = frames.float()
    b, c = x.shape[0], x.shape[-1]

    def factor(spread: float, *shape: int) -> torch.Tensor:
        return 1.0 + spread * (2.0 * torch.rand(*shape, generator=generator) - 1.0)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    gain = factor(cfg.contrast, b, 1, 1, 1)
    scale = factor(cfg.brightness, b, 1, 1, 1) * factor(cfg.colour, b, 1, 1, c)
    x = ((x - mean) * gain + mean) * scale
    return x.clamp_(0.0, 255.0)
