"""The DQN's Q-network and its driver (DeepTraffic from pixels, on CPU).

Input: the last `frames` (default 4) grayscale camera frames stacked on channels, uint8
(frames, H, W), scaled to [0, 1] inside the network so callers pass raw frames. Default frame size
33x100: the default 66x200 camera halved, which keeps its field of view and aspect ratio.

Why this size and not the Nature DQN (3 convs, 84x84, 512 hidden, ~1.7 M parameters):
DQN on this machine is bound by the gradient step on one shared CPU core, not by the simulator
(~1000 env steps/s at 33x100 grayscale). Two strided convolutions (8x8/4 -> 16, 4x4/2 -> 32) reduce
33x100 to 32x2x11 = 704 features (from the frame's top 28 rows: `unread_edge`); with 256-unit dueling
heads the network has 374,838 parameters.
Measured on this machine (1 thread, both cores busy with other jobs, batch 32, one update = two
no-grad forwards for the Double-DQN target + forward/backward/Adam): 47 ms for this net, 158 ms for
the Nature net on 84x84 and 232 ms on 66x200, i.e. ~3.3x cheaper; 42x100 frames cost 51 ms and
555 k parameters for little more to see (those were whole updates before the trainer's own speed-ups,
which bring this net's update to ~9.5 ms: see assets/dqn/MODEL_CARD.md; the ratios are the point). Cars
ahead are still several pixels tall at 33x100, which is what the policy needs. The third Nature conv
(3x3/1) is dropped because at this resolution its input would be only 2 rows high.

Dueling head (Wang et al. 2016), on by default: Q = V + A - mean(A). In Traffic-v0 most actions
matter little most of the time (the road is empty ahead), which is the case dueling helps with.

Frames before an episode's first frame do not exist; the driver (and the replay buffer, see
`training/dqn/replay.py`) repeat the episode's first frame instead, so a window never mixes episodes.

This module imports torch; `sim` never imports it.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agent.checkpoint import load_model
from agent.frame_window import window_span

ARCH = "dqn"
MAX_FRAME_STRIDE = 100
"""Largest window stride (10 s at 10 Hz): a model file asking for more is refused before its driver
keeps that many frames."""


class QNet(nn.Module):
    """Small CNN Q-network over a stack of `frames` uint8 grayscale frames. See the module docstring."""

    def __init__(
        self,
        n_actions: int = 5,
        frames: int = 4,
        height: int = 33,
        width: int = 100,
        hidden: int = 256,
        dueling: bool = True,
        frame_stride: int = 1,
    ) -> None:
        super().__init__()
        if not (type(frame_stride) is int and 1 <= frame_stride <= MAX_FRAME_STRIDE):
            limit = MAX_FRAME_STRIDE
            raise ValueError(f"frame_stride must be an integer in [1, {limit}], got {frame_stride!r}")
        self.n_actions, self.frames, self.height, self.width = n_actions, frames, height, width
        self.hidden, self.dueling = hidden, dueling
        self.frame_stride = frame_stride
        """Steps between the frames of the window: it shows the last (frames - 1) * frame_stride + 1
        steps, every frame_stride-th. Not a layer, but the meaning of the input channels, so it is
        stored with the network and every driver of the model builds its windows the same way."""
        self.features = nn.Sequential(
            nn.Conv2d(frames, 16, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        n_features = 32 * _conv_out(_conv_out(height, 8, 4), 4, 2) * _conv_out(_conv_out(width, 8, 4), 4, 2)
        if n_features < 1:
            raise ValueError(f"{height}x{width} frames are too small for the convolutions (20x20 at least)")
        self.n_features = n_features
        if dueling:
            self.value = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            self.advantage = nn.Sequential(
                nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_actions)
            )
        else:
            self.head = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored in the checkpoint so the network can be rebuilt."""
        return {
            "n_actions": self.n_actions,
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "hidden": self.hidden,
            "dueling": self.dueling,
            "frame_stride": self.frame_stride,
        }

    @staticmethod
    def scale(frames: torch.Tensor) -> torch.Tensor:
        """Float32 frames in [0, 1] from uint8 (or float 0..255) frames, as a new tensor.

        Scaled in place on a fresh copy (`copy=True`: a float caller's tensor is never touched), which
        is ~0.1 ms cheaper per batch of 32 than `frames.float() / 255` (a second 1.7 MB tensor). The
        copy keeps the input's memory layout, so channels-last windows stay channels-last.
        """
        return frames.to(torch.float32, copy=True).mul_(1.0 / 255.0)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Q-values (B, n_actions) for uint8 (or float in 0..255) frame stacks (B, frames, H, W)."""
        return self.forward_scaled(self.scale(frames))

    def forward_scaled(self, scaled: torch.Tensor) -> torch.Tensor:
        """Q-values for frames already passed through `scale`.

        Lets the DQN trainer scale a batch of next windows once for both the online and the target
        network (the Double-DQN target reads it twice).
        """
        return self.values(self.features(scaled))

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values from the convolutional features `self.features` gives (the DQN trainer's auxiliary
        head reads the same features)."""
        if self.dueling:
            a = self.advantage(x)
            return self.value(x) + a - a.mean(dim=1, keepdim=True)
        return self.head(x)


def unread_edge(size: int) -> int:
    """Pixels at the far end of a frame side of `size` (the bottom rows, the right columns) that the
    QNet's convolutions never read: the second convolution's last window ends before the first's, and
    the first's before the frame. 33 rows leave the bottom 5 unread (the first 28 are read), 36 none.

    Why it matters: whatever is drawn there (the speedometer's bar, the road just ahead) does not reach
    the network, and nothing says so. Sides of 20 + 8k pixels are read whole."""
    second = _conv_out(_conv_out(size, 8, 4), 4, 2)
    if second < 1:
        return size
    first_rows_read = (second - 1) * 2 + 4
    return size - ((first_rows_read - 1) * 4 + 8)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a "valid" convolution along one axis (0 when the input is smaller than the kernel).

    Computed rather than measured on a zero frame: the frame size comes from a model file's metadata, and
    running the convolutions on torch's meta device (where a model file's network is first built, see
    `agent.checkpoint.load_model`) costs seconds of first-use set-up.
    """
    return max((size - kernel) // stride + 1, 0)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def to_gray_frame(observation: Any) -> np.ndarray:
    """(H, W) uint8 from an env observation (H, W, 1) grayscale or (H, W, 3) RGB (luma)."""
    obs = np.asarray(observation)
    if obs.ndim == 3 and obs.shape[2] == 1:
        return obs[:, :, 0]
    if obs.ndim == 3 and obs.shape[2] == 3:
        luma = obs[..., 0] * 0.299 + obs[..., 1] * 0.587 + obs[..., 2] * 0.114
        return np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    if obs.ndim == 2:
        return obs.astype(np.uint8, copy=False)
    raise ValueError(f"expected a (H, W, 1|3) or (H, W) frame, got shape {obs.shape}")


def load_qnet(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[QNet, dict[str, Any]]:
    """A QNet (eval mode, on `device`) and its metadata from a model file; CheckpointError on any mismatch.

    `device` is where the weights are loaded (torch.load's map_location): a file written by a run on
    a GPU holds CPU tensors like any other and loads on a machine without one.
    """
    return load_model(path, ARCH, lambda meta: QNet(**meta["network"]), device)


class DQNDriver:
    """Greedy driver over a trained QNet; keeps its own window of the last `frames` frames.

    `q_values` holds the Q-values of the last `act` (numpy, one per action) for a viewer's bars.
    Inference runs on one thread (batch 1: a second thread only adds overhead), on the model's device
    (the DQN trainer evaluates its network where it trains): the window is moved there.
    """

    name = "dqn"

    def __init__(self, model: QNet, metadata: dict[str, Any] | None = None, threads: int | None = 1) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.metadata = metadata or {}
        self.history: deque[np.ndarray] = deque(maxlen=window_span(model.frames, model.frame_stride))
        """The last frames seen, as many as the window spans; the window takes every stride-th."""
        self.q_values: np.ndarray | None = None
        if threads is not None:
            torch.set_num_threads(threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> DQNDriver:
        model, meta = load_qnet(Path(path))
        return cls(model, meta)

    def reset(self, env: gym.Env | None = None) -> None:
        """New episode: forget the frame window (the first frame will be repeated to fill it)."""
        self.history.clear()
        self.q_values = None
        if env is not None:
            self.check_spaces(env.observation_space, env.action_space)

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """ValueError unless an env with these spaces gives frames this DQN takes (its height and width,
        grayscale or RGB: `to_gray_frame`) and has its number of discrete actions."""
        shape = tuple(observation_space.shape or ())
        if len(shape) != 3 or shape[:2] != (self.model.height, self.model.width) or shape[2] not in (1, 3):
            raise ValueError(
                f"this DQN needs {self.model.height}x{self.model.width} frames, the env gives {shape}"
            )
        if not isinstance(action_space, gym.spaces.Discrete) or int(action_space.n) != self.model.n_actions:
            raise ValueError(f"this DQN has {self.model.n_actions} discrete actions, the env {action_space}")

    def stack(self, observation: Any) -> np.ndarray:
        """Push a frame and return the (frames, H, W) window, the first frame repeated at episode start."""
        frame = to_gray_frame(observation)
        if not self.history:
            self.history.extend([frame] * self.history.maxlen)  # type: ignore[operator]
        else:
            self.history.append(frame)
        return self.windowed()

    def windowed(self) -> np.ndarray:
        """The (frames, H, W) window of the frames pushed so far, oldest first (after a `stack`)."""
        return np.stack([self.history[k] for k in range(0, len(self.history), self.model.frame_stride)])

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> int:
        window = torch.from_numpy(self.stack(observation))[None].to(self.device)
        with torch.inference_mode():
            q = self.model(window)[0].cpu()
        self.q_values = q.numpy().copy()
        return int(q.argmax())
