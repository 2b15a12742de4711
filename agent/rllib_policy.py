"""Policies trained with Ray RLlib (`camdrive train rllib`), rebuilt in plain torch, and their driver.

Why not load the RLlib checkpoint: RLlib checkpoints hold pickles (module specs, connector state), and
unpickling runs code, so opening one found anywhere is unsafe; it would also make `camdrive eval` and
`camdrive watch` need Ray. Instead `training.rllib.train` exports, at the end of training, the part of the
RLlib module that chooses the action (its actor or Q encoder and head) into a camdrive model file
(`agent.checkpoint`: safetensors + JSON metadata, architecture "rllib-cnn"). This module rebuilds that
network from the metadata's layer description alone, so it needs neither Ray nor any code from the file.

The network: frames (B, H, W, C) uint8, scaled to [0, 1] inside (the same x / 255 the training envs'
observation wrapper applies), then the convolutions, a flatten and the fully connected layers. Its
outputs are RLlib's action-distribution inputs: for a continuous action the Gaussian's means then
log-stds, for discrete actions one logit (PPO/APPO) or advantage (DQN, dueling) per action. The driver
acts deterministically: the mean clipped to the action bounds, or the argmax (the dueling value stream
adds the same number to every action, so the advantages' argmax is the greedy Q action).

This module imports torch, never ray; `sim` never imports it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

ARCH = "rllib-cnn"
MAX_LAYERS = 64
"""Most convolutions, and most fully connected layers, a description may ask for: RLlib's CNNs have a
handful, and a description of 100,000 layers would take minutes to build just to be refused."""
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU}
"""Activations a network description may name (RLlib's choices for its CNN and MLP layers)."""


class RLlibPolicyNet(nn.Module):
    """The action head of an RLlib CNN policy, from a description (`config()`), taking uint8 HWC frames.

    `conv`: [{"out": C, "kernel": [kh, kw], "stride": [sh, sw]}] ("valid": no padding), each followed by
    `conv_activation`; `flatten`: "chw" (torch's order) or "hwc" (RLlib's encoders
    flatten channels-last maps); `hidden`: sizes of the fully connected layers after the flatten, each
    followed by `hidden_activation`; `outputs`: size of the last, linear layer.
    """

    def __init__(
        self,
        input_shape: list[int],
        conv: list[dict[str, Any]],
        hidden: list[int],
        outputs: int,
        conv_activation: str = "relu",
        hidden_activation: str = "relu",
        flatten: str = "chw",
    ) -> None:
        super().__init__()
        if len(input_shape) != 3 or not conv:
            raise ValueError(
                f"need an (H, W, C) input shape and convolutions, got {input_shape!r:.80} and {conv!r:.80}"
            )
        if len(conv) > MAX_LAYERS or len(hidden) > MAX_LAYERS:
            raise ValueError(f"at most {MAX_LAYERS} convolutions and {MAX_LAYERS} hidden layers")
        if flatten not in ("chw", "hwc"):
            raise ValueError(f"flatten must be 'chw' or 'hwc', got {flatten!r}")
        for name in (conv_activation, hidden_activation):
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
        self.input_shape = [int(n) for n in input_shape]
        self.conv_spec: list[dict[str, Any]] = [
            {
                "out": int(c["out"]),
                "kernel": [int(k) for k in c["kernel"]],
                "stride": [int(s) for s in c["stride"]],
            }
            for c in conv
        ]
        self.hidden = [int(n) for n in hidden]
        self.outputs = int(outputs)
        self.conv_activation, self.hidden_activation, self.flatten = (
            conv_activation,
            hidden_activation,
            flatten,
        )
        layers: list[nn.Module] = []
        channels = self.input_shape[2]
        for c in self.conv_spec:
            layers.append(nn.Conv2d(channels, c["out"], tuple(c["kernel"]), stride=tuple(c["stride"])))
            layers.append(ACTIVATIONS[conv_activation]())
            channels = c["out"]
        self.features = nn.Sequential(*layers)
        n_features = feature_count(self.input_shape, self.conv_spec)
        head: list[nn.Module] = []
        for size in self.hidden:
            head += [nn.Linear(n_features, size), ACTIVATIONS[hidden_activation]()]
            n_features = size
        head.append(nn.Linear(n_features, self.outputs))
        self.head = nn.Sequential(*head)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored in the model file so the network can be rebuilt without code."""
        return {
            "input_shape": self.input_shape,
            "conv": self.conv_spec,
            "hidden": self.hidden,
            "outputs": self.outputs,
            "conv_activation": self.conv_activation,
            "hidden_activation": self.hidden_activation,
            "flatten": self.flatten,
        }

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) uint8 frames (or float 0..255) -> (B, outputs) action-distribution inputs."""
        return self.forward_scaled(frames.to(torch.float32) / 255.0)

    def forward_scaled(self, frames: torch.Tensor) -> torch.Tensor:
        """The same for float frames already in [0, 1]: what the RLlib module saw in training."""
        maps = self.features(frames.permute(0, 3, 1, 2))
        if self.flatten == "hwc":
            maps = maps.permute(0, 2, 3, 1)
        return self.head(maps.reshape(maps.shape[0], -1))


def feature_count(input_shape: list[int], conv: list[dict[str, Any]]) -> int:
    """Size of the flattened feature map of "valid" convolutions `conv` over (H, W, C) frames.

    Computed, not measured by running the convolutions on a zero frame: a description's frame size is
    data from a file, and a zero frame of 100,000 x 100,000 pixels would be 40 GB.
    """
    h, w, c = input_shape
    if min(h, w, c) < 1:
        raise ValueError(f"input shape must be positive, got {input_shape}")
    for layer in conv:
        (kh, kw), (sh, sw) = layer["kernel"], layer["stride"]
        if min(kh, kw, sh, sw, layer["out"]) < 1:
            raise ValueError(f"kernel, stride and channels must be positive, got {layer}")
        h, w, c = (h - kh) // sh + 1, (w - kw) // sw + 1, layer["out"]
        if h < 1 or w < 1:
            raise ValueError(f"the convolutions shrink {input_shape[:2]} frames to nothing")
    return h * w * c


def load_rllib_policy(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[RLlibPolicyNet, dict[str, Any]]:
    """The network (eval mode, on `device`) and metadata of an exported RLlib policy; CheckpointError on
    any mismatch (the description is data: a bad one is an error, never code run)."""
    from agent.checkpoint import CheckpointError, load_model

    model, meta = load_model(path, ARCH, lambda meta: RLlibPolicyNet(**meta["network"]), device)
    problem = action_problem(meta.get("action"), model.outputs)
    if problem:
        raise CheckpointError(path, f"metadata 'action': {problem}")
    return model, meta


def action_problem(action: object, outputs: int) -> str | None:
    """Why the metadata's action description cannot drive (`RLlibDriver.act` reads it), or None.

    Discrete: "n" actions, at most one per network output. Continuous: "low" and "high" bounds of equal
    length, finite, whose means are the network's first outputs.
    """
    if not isinstance(action, dict) or action.get("type") not in ("discrete", "continuous"):
        return f"must say discrete or continuous, got {action!r:.80}"
    if action["type"] == "discrete":
        n = action.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= outputs:
            return f"discrete actions need a count n in 1 .. {outputs} (the network's outputs), got {n!r:.80}"
        return None
    low, high = action.get("low"), action.get("high")
    if (
        not isinstance(low, list)
        or not isinstance(high, list)
        or not all(b and all(_finite_number(x) for x in b) for b in (low, high))
    ):
        return f"continuous actions need lists of finite low and high bounds, got {low!r:.40}, {high!r:.40}"
    if len(low) != len(high) or len(low) > outputs:
        return (
            f"low and high must have one bound per action (at most {outputs}), got {len(low)} and {len(high)}"
        )
    return None


def _finite_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class RLlibDriver:
    """A deterministic `Driver` over an exported RLlib policy: argmax for discrete actions, the
    Gaussian's mean clipped to the action bounds for continuous ones. Memoryless (one frame in).

    Inference on one thread, as the other drivers: at batch 1 a second thread only adds overhead.
    """

    name = "rllib"

    def __init__(self, model: RLlibPolicyNet, metadata: dict[str, Any], threads: int | None = 1) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.metadata = metadata
        self.action = metadata["action"]
        if threads is not None:
            torch.set_num_threads(threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> RLlibDriver:
        model, meta = load_rllib_policy(Path(path))
        return cls(model, meta)

    def reset(self, env: gym.Env) -> None:
        """Memoryless: nothing to forget. Checks the env gives the frames and actions it was trained on."""
        self.check_spaces(env.observation_space, env.action_space)

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """ValueError unless an env with these spaces gives this policy's frames and takes its actions:
        as many discrete actions, or continuous ones of the same size."""
        shape = list(observation_space.shape or ())
        if shape != self.model.input_shape:
            raise ValueError(f"this policy needs {self.model.input_shape} frames, the env gives {shape}")
        if isinstance(action_space, gym.spaces.Discrete):
            fits = self.action["type"] == "discrete" and int(action_space.n) == self.action["n"]
        else:
            size = len(self.action.get("low", []))
            fits = self.action["type"] == "continuous" and tuple(action_space.shape or ()) == (size,)
        if not fits:
            mine = (
                f"{self.action['n']} discrete actions"
                if self.action["type"] == "discrete"
                else f"continuous actions of size {len(self.action['low'])}"
            )
            raise ValueError(f"this policy has {mine}, the env {action_space}")

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> Any:
        frame = torch.from_numpy(np.ascontiguousarray(observation, dtype=np.uint8))[None].to(self.device)
        with torch.inference_mode():
            out = self.model(frame)[0].cpu().numpy()
        if self.action["type"] == "discrete":
            return int(np.argmax(out[: int(self.action["n"])]))
        size = len(self.action["low"])
        mean = np.nan_to_num(out[:size], nan=0.0)
        return np.clip(mean, self.action["low"], self.action["high"]).astype(np.float32)
