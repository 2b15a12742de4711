"""What the CNN sees: guided-backprop saliency and per-layer feature maps for camdrive's networks.

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

SEPARATOR_RGB = (40, 90, 160)
"""Colour of the 1-px lines between tiles (and of empty grid cells): distinct from black, dead maps."""


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
class Explanation:
    """Everything the viewer draws for one observation, from a single forward pass."""

    saliency: np.ndarray
    """(H, W) float32 in [0, 1], the network input's spatial size (= the observation's for camdrive)."""
    layers: list[LayerMaps]
    """One entry per convolution layer, in forward order."""
    output: np.ndarray
    """The network's raw output for this input: PilotNet's steering (1,), or the DQN's Q-values."""


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


def _guided_pass(
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
    _, saliency = _guided_pass(model, lambda: model(x), target)
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


def _layer_maps(layers: list[_ConvLayer], maps: list[torch.Tensor]) -> list[LayerMaps]:
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
    return _layer_maps(seen.layers, seen.maps)


def grid_columns(channels: int, height: int, width: int) -> int:
    """Columns that make a grid of `channels` tiles of height x width roughly square (at least 1)."""
    return max(1, min(channels, round(float(np.sqrt(channels * height / max(width, 1))))))


def tile_maps(maps: np.ndarray, columns: int | None = None, scale: int = 1) -> np.ndarray:
    """One layer's maps (C, h, w) as one RGB uint8 image (rows*h*scale + rows-1, cols*w*scale + cols-1, 3).

    Each channel is stretched to 0..255 on its own (channels differ in range by orders of magnitude; a
    shared scale would leave most of them black; a constant channel is black). Tiles are separated by
    1-px lines of `SEPARATOR_RGB`, which also fills unused cells of the last row. `scale` repeats
    pixels so 1-row maps stay visible. HWC like the env's frames; pygame wants it transposed
    (`pygame.surfarray.make_surface(tiles.swapaxes(0, 1))`).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"expected maps of shape (channels, height, width), got {maps.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    channels, h, w = maps.shape
    cols = grid_columns(channels, h, w) if columns is None else max(1, min(int(columns), channels))
    rows = -(-channels // cols)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    norm = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)
    gray = (norm * 255.0 + 0.5).astype(np.uint8)
    if scale > 1:
        gray = gray.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    out = np.empty((rows * h + rows - 1, cols * w + cols - 1, 3), dtype=np.uint8)
    out[:] = SEPARATOR_RGB
    for c in range(channels):
        r, k = divmod(c, cols)
        out[r * (h + 1) : r * (h + 1) + h, k * (w + 1) : k * (w + 1) + w] = gray[c][:, :, None]
    return out


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) float array resampled to (height, width), pixel centres aligned (numpy only)."""
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape
    if (h, w) == (height, width):
        return image

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    r0, r1, fr = axis(h, height)
    c0, c1, fc = axis(w, width)
    rows = image[r0] * (1 - fr)[:, None] + image[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


SALIENT_SHARE = 0.10
"""Share of the pixels drawn in full: the set whose blanking the deletion test shows matters most."""
FADE_SHARE = 0.05
"""Share of the pixels below those drawn fading out, so the highlight has soft edges, not a cut."""
SALIENCY_ALPHA = 0.7
"""Blend weight of the most salient pixel (half of it at the edge of the top share): the road under
the highlight stays visible."""


def saliency_rgba(
    saliency: np.ndarray, top: float = SALIENT_SHARE, fade: float = FADE_SHARE, alpha: float = SALIENCY_ALPHA
) -> np.ndarray:
    """(H, W) saliency -> (H, W, 4) float RGBA in [0, 1] to blend over the picture.

    Drawn by rank, not by value: the `top` share of pixels from red at half the weight `alpha` to yellow
    at full weight with rising saliency, the next `fade` share fading out from half weight, everything
    else untouched (alpha 0). A map
    scaled by its maximum would paint a frame whose salient pixels are spread out as a faint wash and
    one with a single hot spot as nothing else; the rank says the same thing on every frame.
    """
    s = np.asarray(saliency, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"expected a 2-D saliency map, got shape {s.shape}")
    lo, hi = (float(q) for q in np.quantile(s, [max(0.0, 1.0 - top - fade), 1.0 - top]))
    peak = float(s.max())
    ramp = (s - lo) / (hi - lo) if hi > lo else (s > hi).astype(np.float32)
    heat = np.clip((s - hi) / (peak - hi), 0.0, 1.0) if peak > hi else np.zeros_like(s)
    # Half weight at the top share's edge, full at its peak: the hottest pixels stand out and the
    # scene shows through the rest.
    strength = np.where(s > hi, 0.5 + 0.5 * heat, 0.5 * np.clip(ramp, 0.0, 1.0))
    strength = np.where((s > lo) & (s > 0), strength, 0.0)
    rgba = np.stack([np.ones_like(s), 0.25 + 0.75 * heat, 0.1 * heat, alpha * strength], axis=-1)
    return rgba.astype(np.float32)


def overlay_saliency(frame: np.ndarray, saliency: np.ndarray, alpha: float = SALIENCY_ALPHA) -> np.ndarray:
    """The frame with the saliency drawn on by `saliency_rgba`; uint8 RGB of the frame's size.

    The colours are resized to the frame (bilinear, numpy), so it works on the network's input frame
    or on a larger render of the same view. Pixels outside the drawn share are left exactly as they
    were. Grayscale frames ((H, W) or (H, W, 1)) are shown as RGB.
    """
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3), (H, W, 1) or (H, W) frame, got {frame.shape}")
    rgba = saliency_rgba(saliency, alpha=float(np.clip(alpha, 0.0, 1.0)))
    h, w = frame.shape[:2]
    rgba = np.stack([resize_bilinear(rgba[:, :, c], h, w) for c in range(4)], axis=-1)
    weight = rgba[:, :, 3:]
    blended = frame.astype(np.float32) * (1.0 - weight) + rgba[:, :, :3] * (255.0 * weight)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


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
    seen, saliency = _guided_pass(model, lambda: model(x), target)
    output = seen.result[0].detach().float().cpu().numpy().copy()
    return Explanation(saliency, _layer_maps(seen.layers, seen.maps), output)
