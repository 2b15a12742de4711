"""PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving Cars") and its driver.

The network is the paper's, layer for layer, so results can be compared with it:

    input 3x66x200 -> fixed normalisation (x / 127.5 - 1)
    conv 5x5/2: 24, 36, 48 -> conv 3x3/1: 64, 64 -> flatten (64x1x18 = 1152)
    FC 100 -> 50 -> 10 -> 1 (steering, -1 left .. +1 right)

with ELU activations (the paper does not name its nonlinearity; ELU trains a little faster than ReLU
on small data sets and never produces dead units). 252,219 parameters.

The paper feeds YUV planes. Here the input colour space is a constructor choice ("rgb" or "yuv", done
inside the network so a driver always receives the env's raw RGB frame); RGB is the default because a
fixed linear colour transform in front of a learned first convolution changes nothing the convolution
cannot learn, and measuring it on camdrive's frames showed no gain: trained alike (10 expert episodes,
3 epochs, seed 1), RGB reached validation MSE 0.0079 and drove 10 km with mean |offset| 0.066 m (max
0.30 m), YUV 0.0071 and 0.086 m (max 0.45 m); neither had an intervention.

This module imports torch; `sim` never imports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agent.checkpoint import load_model

ARCH = "pilotnet"
INPUT_SHAPE = (66, 200, 3)
"""(height, width, channels) of the frames PilotNet takes: the env's default camera (HWC, uint8)."""
COLOR_SPACES = ("rgb", "yuv")

# BT.601 RGB -> YUV on [0, 1] values (rows Y, U, V); U and V are centred at 0.
_RGB_TO_YUV = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]], dtype=torch.float32
)


class PilotNet(nn.Module):
    """NVIDIA's PilotNet: uint8 frames (B, 66, 200, 3) in HWC, steering (B, 1) out.

    Taking HWC uint8 directly (and normalising inside) means the training loop, the driver and any
    exported model share one preprocessing path that cannot drift apart.
    """

    def __init__(self, color_space: str = "rgb") -> None:
        super().__init__()
        if color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
        self.color_space = color_space
        self.features = nn.Sequential(
            nn.Conv2d(3, 24, 5, stride=2),
            nn.ELU(),
            nn.Conv2d(24, 36, 5, stride=2),
            nn.ELU(),
            nn.Conv2d(36, 48, 5, stride=2),
            nn.ELU(),
            nn.Conv2d(48, 64, 3),
            nn.ELU(),
            nn.Conv2d(64, 64, 3),
            nn.ELU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 1 * 18, 100),
            nn.ELU(),
            nn.Linear(100, 50),
            nn.ELU(),
            nn.Linear(50, 10),
            nn.ELU(),
            nn.Linear(10, 1),
        )

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """The paper's fixed normalisation layer: uint8 HWC -> float NCHW in [-1, 1] (after YUV if asked)."""
        x = frames.permute(0, 3, 1, 2).float()
        if self.color_space == "yuv":
            x = torch.einsum("ij,bjhw->bihw", _RGB_TO_YUV.to(x.device), x / 255.0) * 255.0
        return x / 127.5 - 1.0

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 66, 200, 3) uint8 (or float 0..255) -> (B, 1) steering, unbounded (clip when acting)."""
        return self.head(self.features(self.normalise(frames)))


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_pilotnet(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[PilotNet, dict[str, Any]]:
    """A PilotNet (eval mode, on `device`: see `agent.checkpoint.load_checkpoint`) and its metadata from
    a model file; CheckpointError on any mismatch."""

    def build(meta: dict[str, Any]) -> nn.Module:
        return PilotNet(color_space=meta.get("observation", {}).get("color_space", "rgb"))

    return load_model(path, ARCH, build, device)


class PilotNetDriver:
    """A `Driver` that steers LaneKeep-v0 from the camera frame alone with a trained PilotNet.

    Inference runs on one thread in inference mode: at batch 1 a second thread only adds overhead,
    and the simulator (and anything else on the machine) keeps the other core. It runs on the model's
    device (see `load_pilotnet`'s `device`); frames are moved there.
    """

    name = "pilotnet"

    def __init__(
        self, model: PilotNet, metadata: dict[str, Any] | None = None, threads: int | None = 1
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.metadata = metadata or {}
        if threads is not None:
            torch.set_num_threads(threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> PilotNetDriver:
        """Load a PilotNet saved by `agent.checkpoint.save_checkpoint` (architecture is checked)."""
        model, metadata = load_pilotnet(Path(path))
        return cls(model, metadata)

    def reset(self, env: gym.Env) -> None:
        """PilotNet is memoryless: nothing to reset. Checks the frames will be the size it was trained on."""
        self.check_spaces(env.observation_space, env.action_space)

    @staticmethod
    def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
        """ValueError unless an env with these spaces gives PilotNet's frames and takes one steering value."""
        shape = tuple(observation_space.shape or ())
        if shape != INPUT_SHAPE:
            raise ValueError(f"PilotNet needs {INPUT_SHAPE} RGB frames, the env gives {shape}")
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (1,):
            raise ValueError(f"PilotNet steers (one value in -1 .. 1), the env's actions are {action_space}")

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> np.ndarray:
        """Steering for one frame, as the env's action: float32 array (1,) clipped to [-1, 1]."""
        frame = torch.from_numpy(np.ascontiguousarray(observation, dtype=np.uint8))[None].to(self.device)
        with torch.inference_mode():
            steer = float(self.model(frame)[0, 0])
        if not np.isfinite(steer):
            steer = 0.0
        return np.array([np.clip(steer, -1.0, 1.0)], dtype=np.float32)
