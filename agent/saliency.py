"""Guided-backprop saliency and per-layer feature maps of a CNN, from hooks on its own modules.

One forward and one backward pass of the real network: hooks capture each convolution's activation map
(after its nonlinearity) and, for guided backpropagation (Springenberg et al. 2015), let only positive
gradients flow back through every activation; the gradient is taken with respect to the input only, so
the network's parameters get no `.grad`. `visual_backprop` (Bojarski et al. 2017) is kept for
comparison (docs/saliency.md says why guided backprop was chosen). Hooks are removed after each call:
call these from the thread that drives, not concurrently with `act`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ReLU6,
    nn.Hardswish,
    nn.Mish,
)
"""Modules taken as "the nonlinearity after a convolution": its output is the layer's feature map."""


class LayerMaps(NamedTuple):
    """One convolution layer's activation maps for one frame."""

    name: str
    """Short display name, "conv1" .. "convN" in forward order."""
    module: str
    """Path of the `nn.Conv2d` inside the model (as in `model.named_modules()`), e.g. "features.0"."""
    maps: np.ndarray
    """(channels, height, width) float32: the layer's post-activation output (the conv's own output
    if no activation module follows it)."""


@dataclass(frozen=True)
class _ConvLayer:
    path: str
    conv: nn.Conv2d
    tap: nn.Module  # the module whose output is the layer's feature map


def _conv_layers(model: nn.Module) -> list[_ConvLayer]:
    """Each conv with the module that produces its feature map: the activation right after it in its
    `nn.Sequential` if there is one, else the conv itself."""
    following: dict[int, nn.Module] = {}
    for parent in model.modules():
        if isinstance(parent, nn.Sequential):
            children = list(parent.children())
            for here, after in zip(children, children[1:], strict=False):
                if isinstance(after, ACTIVATIONS):
                    following[id(here)] = after
    layers = [
        _ConvLayer(path, module, following.get(id(module), module))
        for path, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to explain")
    return layers


def _as_batch(net_input: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The model's forward input as a batch of one (a leading batch axis is added to 3-D inputs)."""
    x = torch.from_numpy(np.ascontiguousarray(net_input)) if isinstance(net_input, np.ndarray) else net_input
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one input (3-D, or 4-D with batch 1), got shape {tuple(x.shape)}")
    return x


class _Captured(NamedTuple):
    """What one hooked forward pass saw."""

    result: Any
    layers: list[_ConvLayer]
    maps: list[torch.Tensor]
    """Each layer's feature map (1, C, h, w), detached."""
    input_hw: tuple[int, int]
    """Spatial size of the first convolution's input: the resolution saliency is returned at."""
    first_input: torch.Tensor | None
    """The first convolution's input as a leaf that requires grad (only when asked for)."""


def _capture(model: nn.Module, run: Callable[[], Any], grad_leaf: bool = False) -> _Captured:
    """Run `run()` (which must call `model` once) with hooks on the real layers; remove them after.

    With `grad_leaf` the first convolution's input is swapped for a detached copy that requires grad,
    so the gradient can be taken with respect to exactly what the convolutions see (after the model's
    own normalisation), whatever the model's input format; `run` must then allow gradients.
    """
    layers = _conv_layers(model)
    maps: list[torch.Tensor | None] = [None] * len(layers)
    first: list[torch.Tensor] = []

    def keep(index: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            maps[index] = output.detach()

        return hook

    def first_input(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
        if first:  # a second call of the first convolution: not one forward pass of one input
            return None
        x = inputs[0].detach().requires_grad_(True) if grad_leaf else inputs[0]
        first.append(x)
        return (x, *inputs[1:]) if grad_leaf else None

    handles = [layer.tap.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    handles.append(layers[0].conv.register_forward_pre_hook(first_input))
    try:
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    if not first or any(m is None for m in maps):
        raise RuntimeError("the forward pass did not go through every convolution layer")
    captured = [m for m in maps if m is not None]
    if captured[0].shape[0] != 1:
        raise ValueError(f"explain one input at a time, got a batch of {captured[0].shape[0]}")
    input_hw = (int(first[0].shape[-2]), int(first[0].shape[-1]))
    return _Captured(result, layers, captured, input_hw, first[0] if grad_leaf else None)


def _forward(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> Callable[[], torch.Tensor]:
    x = _as_batch(net_input)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


# ---------------------------------------------------------------------------------- guided backprop
Target = Callable[[torch.Tensor], torch.Tensor]
"""The driver's decision as one differentiable number, from the network's output (1, outputs)."""


def steering_target(output: torch.Tensor) -> torch.Tensor:
    """The steering in the direction it steers: saliency answers "what made it turn this way"."""
    steer = output.reshape(-1)[0]
    return steer * torch.sign(steer).detach()


def preference_target(output: torch.Tensor) -> torch.Tensor:
    """The greedy action's value minus the mean over actions: what makes it the choice. (A shift of
    every Q-value changes no decision, so the Q-value itself would also explain the common part.)"""
    values = output.reshape(-1)
    return values.max() - values.mean()


def default_target(output: torch.Tensor) -> torch.Tensor:
    """`steering_target` for a network with one output, else `preference_target`."""
    return steering_target(output) if output.numel() == 1 else preference_target(output)


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (guided backprop's rule)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def _guide(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that pass every activation's output through `_PositiveGradient`: behind a ReLU this is
    guided backprop exactly ((x > 0) * (g > 0) * g); behind an ELU the negative side's slope exp(x)
    still passes the (positive) gradient."""
    return [
        module.register_forward_hook(lambda _m, _i, out: _PositiveGradient.apply(out))
        for module in model.modules()
        if isinstance(module, ACTIVATIONS)
    ]


def _smooth(saliency: torch.Tensor) -> torch.Tensor:
    """(H, W) blurred by a 3x3 binomial filter: single-pixel speckle becomes readable blobs (the
    deletion test above barely moves), edges replicated so the border is not darkened."""
    k = torch.tensor([0.25, 0.5, 0.25], dtype=saliency.dtype)
    kernel = (k[:, None] * k[None, :])[None, None]
    padded = F.pad(saliency[None, None], (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel)[0, 0]


def _unit(saliency: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Scaled to [0, 1] by its maximum (0 stays 0: an untouched pixel reads as unimportant); all
    zeros if there is nothing or something non-finite."""
    high = saliency.max()
    if not bool(torch.isfinite(high)) or float(high) <= 0.0:
        return np.zeros(shape, dtype=np.float32)
    return (saliency / high).detach().numpy().astype(np.float32, copy=False)


def guided_pass(
    model: nn.Module, run: Callable[[], torch.Tensor], target: Target
) -> tuple[_Captured, np.ndarray]:
    """One hooked forward pass with guided activations and one backward pass of `target`:
    (what the forward pass captured, the saliency map (H, W) in [0, 1])."""
    handles = _guide(model)
    try:
        with torch.enable_grad():
            seen = _capture(model, run, grad_leaf=True)
            assert seen.first_input is not None
            (grad,) = torch.autograd.grad(target(seen.result), seen.first_input)
    finally:
        for handle in handles:
            handle.remove()
    saliency = _smooth(grad[0].abs().sum(dim=0).float().cpu())
    return seen, _unit(saliency, seen.input_hw)


def guided_backprop(
    model: nn.Module, net_input: torch.Tensor | np.ndarray, target: Target = default_target
) -> np.ndarray:
    """Guided-backprop saliency (H, W) float32 in [0, 1] for one input to `model` (module docstring).

    `net_input` is exactly what `model(...)` takes, with or without the batch axis of 1: for PilotNet
    the raw uint8 frame (66, 200, 3), for the QNet the uint8 window (frames, 33, 100). (H, W) is the
    spatial size the first convolution sees, i.e. the frame's. `target` turns the output into the
    number explained (`default_target`: the steering, or the greedy action's preference).
    """
    x = _as_batch(net_input)
    _, saliency = guided_pass(model, lambda: model(x), target)
    return saliency


# ---------------------------------------------------------------------------------- VisualBackProp
def _visual_backprop_map(
    layers: list[_ConvLayer], maps: list[torch.Tensor], input_hw: tuple[int, int]
) -> np.ndarray:
    """VisualBackProp from captured feature maps: average each layer's positive activations over
    channels; from the deepest layer down, scale the map up to the layer below with an all-ones
    deconvolution of that layer's kernel and stride and multiply by the layer below's average."""
    with torch.inference_mode():
        # Positive part, then the channel mean: (1, 1, h, w) per layer.
        means = [m.clamp(min=0).mean(dim=1, keepdim=True) for m in maps]
        targets = [(m.shape[-2], m.shape[-1]) for m in means[:-1]]
        targets.insert(0, input_hw)  # layer i's deconvolution goes back to layer i-1's size (input for 0)
        mask = means[-1]
        for i in range(len(layers) - 1, -1, -1):
            mask = _deconvolve_ones(mask, layers[i].conv, targets[i])
            if i > 0:
                mask = mask * means[i - 1]
        mask = mask[0, 0]
        low, high = mask.min(), mask.max()
        if float(high - low) <= 0.0 or not bool(torch.isfinite(high - low)):
            return np.zeros(input_hw, dtype=np.float32)
        return ((mask - low) / (high - low)).numpy().astype(np.float32, copy=False)


def _deconvolve_ones(mask: torch.Tensor, conv: nn.Conv2d, target_hw: tuple[int, int]) -> torch.Tensor:
    """Scale `mask` up to `target_hw` (the size of `conv`'s input) by an all-ones transposed `conv`.

    Kernel, stride, padding and dilation are the conv's own, so each input pixel collects exactly the
    output positions its receptive field fed. A strided conv drops the last rows/columns that do not
    fill a whole stride; output_padding restores them so the sizes match exactly.
    """
    kernel = torch.ones((1, 1, *conv.kernel_size), dtype=mask.dtype)
    padding = conv.padding if isinstance(conv.padding, tuple) else (0, 0)  # "valid" is (0, 0) already
    output_padding = []
    for axis in range(2):
        size = int(mask.shape[2 + axis])
        s, p, d, k = conv.stride[axis], padding[axis], conv.dilation[axis], conv.kernel_size[axis]
        extra = target_hw[axis] - ((size - 1) * s - 2 * p + d * (k - 1) + 1)
        if not 0 <= extra < max(s, d):
            raise ValueError(f"cannot deconvolve {tuple(mask.shape[2:])} to {target_hw} through {conv}")
        output_padding.append(extra)
    return F.conv_transpose2d(
        mask,
        kernel,
        stride=conv.stride,
        padding=padding,
        output_padding=tuple(output_padding),
        dilation=conv.dilation,
    )


def layer_maps(layers: list[_ConvLayer], maps: list[torch.Tensor]) -> list[LayerMaps]:
    return [
        LayerMaps(f"conv{i + 1}", layer.path, m[0].float().cpu().numpy().copy())
        for i, (layer, m) in enumerate(zip(layers, maps, strict=True))
    ]


def visual_backprop(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> np.ndarray:
    """VisualBackProp saliency (H, W) float32 in [0, 1] for one input to `model`, min-max scaled.

    Kept to compare against (the module docstring says why the viewer uses guided backprop). Inputs
    as for `guided_backprop`. All zeros if nothing is active. PilotNet 2.3 ms, DQN 0.9 ms per frame.
    """
    seen = _capture(model, _forward(model, net_input))
    return _visual_backprop_map(seen.layers, seen.maps, seen.input_hw)


def feature_maps(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> list[LayerMaps]:
    """Every convolution layer's activation maps for one input, captured by hooks on the real modules.

    Measured (median of 200, 1 thread, forward included): PilotNet 1.6 ms, DQN 0.6 ms per frame.
    """
    seen = _capture(model, _forward(model, net_input))
    return layer_maps(seen.layers, seen.maps)
