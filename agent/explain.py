"""What the CNN sees: one call (`explain`) that gives the viewer the saliency and per-layer feature maps
of whichever network drives (the methods are `agent.saliency`'s, the pictures `agent.heatmaps`').

Built for the live viewer, which asks "what does the driver look at in the frame it just acted on"
without knowing whether the driver is PilotNet (5 convolutions over a 66x200 RGB frame) or the DQN
(2 convolutions, the first 8x8 with stride 4, over a window of stacked 33x100 grayscale frames).
Everything comes from one forward and one backward pass of the real network, with hooks on its own
modules, so what is shown is what the network computed, not a re-implementation that could drift.

Saliency is guided backpropagation (Springenberg et al. 2015, "Striving for simplicity"): the gradient
of the driver's decision with respect to the first convolution's input, where every activation passes
back only positive gradients. The decision is PilotNet's steering in the direction it steers, and the
DQN's preference for its greedy action (its Q-value minus the mean Q-value: a shift of all Q-values
changes nothing it does). The map is the gradient's magnitude summed over channels (the DQN's frames
too), smoothed by a 3x3 binomial filter, per pixel of the network's input: no upsampling from a coarse
layer, so the DQN's stride-4 first layer does not turn it into 8x8 blocks.

Why this method: in a deletion test on held-out frames (tests/test_explain.py runs it), blanking the
pixels guided backprop marks changes the output far more than blanking random ones, more than for
gradient x input, VisualBackProp, integrated gradients or the plain gradient; and it depends on the
trained weights, where VisualBackProp (Bojarski et al. 2017, kept as `visual_backprop`) barely does.
docs/saliency.md has the measurements, and the cost per call (a few milliseconds: fine for a live view).

Hooks are added to the driver's own network for the one call and removed after it: call these from
the thread that drives, not concurrently with `act`. Gradients are taken with `torch.autograd.grad`
with respect to the input only: the network's parameters get no `.grad`.

numpy and torch only. This module imports torch; `sim` never imports it.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agent.saliency import (
    LayerMaps,
    Target,
    guided_pass,
    layer_maps,
    preference_target,
    steering_target,
)


@dataclass(frozen=True)
class Explanation:
    """Everything the viewer draws for one observation, from a single forward pass."""

    saliency: np.ndarray
    """(H, W) float32 in [0, 1], the network input's spatial size (= the observation's for camdrive)."""
    layers: list[LayerMaps]
    """One entry per convolution layer, in forward order."""
    output: np.ndarray
    """The network's raw output for this input: PilotNet's steering (1,), or the DQN's Q-values."""


def _driver_run(driver: Any, observation: Any) -> tuple[nn.Module, torch.Tensor, Target]:
    """The driver's network, its input for `observation` made the way the driver acts, and the
    decision to explain.

    PilotNet and an RLlib policy take the frame as `act` does (same conversion, same in-network
    normalisation). The DQN's window already holds the observation if it just acted on it (its last
    frame equals the observation's grayscale frame): that window is used as is. Otherwise the frame is
    pushed, with the driver's own `stack`, into a copy of the window, so asking never changes what the
    driver does next.
    """
    from agent.pilotnet import PilotNetDriver
    from agent.qnet import DQNDriver, to_gray_frame
    from agent.rllib_policy import RLlibDriver

    if isinstance(driver, PilotNetDriver | RLlibDriver):
        frame = torch.from_numpy(np.ascontiguousarray(observation, dtype=np.uint8))[None].to(driver.device)
        target = _rllib_target(driver) if isinstance(driver, RLlibDriver) else steering_target
        return driver.model, frame, target
    if isinstance(driver, DQNDriver):
        history = driver.history
        if history and np.array_equal(history[-1], to_gray_frame(observation)):
            stacked = driver.windowed()
        else:
            shadow = copy.copy(driver)
            shadow.history = deque(history, maxlen=history.maxlen)
            stacked = shadow.stack(observation)
        return driver.model, torch.from_numpy(stacked)[None].to(driver.device), preference_target
    raise TypeError(
        f"cannot explain a {type(driver).__name__}: only PilotNetDriver, DQNDriver and RLlibDriver"
    )


def _rllib_target(driver: Any) -> Target:
    """An RLlib policy's decision: the chosen logit's preference (discrete), or each action mean's
    magnitude in its own direction (continuous; the outputs after the means are log-stds)."""
    action = driver.action
    if action["type"] == "discrete":
        n = int(action["n"])
        return lambda output: preference_target(output.reshape(-1)[:n])
    size = len(action["low"])

    def means(output: torch.Tensor) -> torch.Tensor:
        mean = output.reshape(-1)[:size]
        return (mean * torch.sign(mean).detach()).sum()

    return means


def explain(driver: Any, observation: Any) -> Explanation:
    """Saliency and feature maps for the observation `driver` just acted on (one forward and one
    backward pass).

    `driver` is an `agent.pilotnet.PilotNetDriver`, an `agent.qnet.DQNDriver` or an
    `agent.rllib_policy.RLlibDriver`; the network input is made by the driver's own code, so the
    viewer shows what the driver actually saw. The driver's state (the DQN's frame window, its
    `q_values`) is left untouched. PilotNet 8 ms, DQN 2.6 ms (module docstring).
    """
    model, x, target = _driver_run(driver, observation)
    seen, saliency = guided_pass(model, lambda: model(x), target)
    output = seen.result[0].detach().float().cpu().numpy().copy()
    return Explanation(saliency, layer_maps(seen.layers, seen.maps), output)
