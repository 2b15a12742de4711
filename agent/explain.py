"""What the CNN sees: VisualBackProp saliency and per-layer feature maps for camdrive's networks.

Built for the live viewer, which asks "what does the driver look at in the frame it just acted on"
without knowing whether the driver is PilotNet (5 convolutions over a 66x200 RGB frame) or the DQN
(2 convolutions over a window of stacked 33x100 grayscale frames). Everything comes from one forward
pass of the real network with forward hooks on its own modules, so what is shown is what the network
computed, not a re-implementation that could drift from it.

VisualBackProp (Bojarski et al. 2017, "VisualBackProp: efficient visualization of CNNs"; used on
PilotNet in "Explaining How a Deep Neural Network Trained with End-to-End Learning Steers a Car"):
average each convolution layer's activation maps over channels; starting from the deepest layer,
scale the map up to the size of the layer below with a deconvolution whose kernel and stride are that
layer's (all-ones weights, so every input pixel receives the sum of the outputs it contributed to),
multiply pointwise with the layer below's averaged map, and repeat down to the input resolution.
Pixels that stay bright took part in the activations that survived all the way to the top. It costs
one forward pass plus a few tiny deconvolutions, cheap enough for every frame of a live view (no
gradients, unlike gradient-based saliency).

PilotNet uses ELU, not the paper's ReLU, so its activations dip to -1. VisualBackProp treats the
averaged maps as non-negative masks (a product of two negative means would light a pixel up), so the
positive part of each activation is averaged: relu(elu(x)) == relu(x), exactly what a ReLU network
would average. Compared on a real LaneKeep frame with the shipped model, this highlights the cars
ahead and the lane lines; averaging ELU+1 instead lit the whole road surface nearly uniformly. The
feature maps returned for display are the raw post-activation outputs.

Measured on this machine (2 CPU cores shared with other jobs, 1 torch thread, shipped models, real
frames, median of 200 calls, forward pass included; p95 in brackets):

    PilotNet 66x200:  forward alone 1.4 ms, saliency 2.3 ms (2.5), feature maps 1.6 ms (1.8),
                      `explain` (both, one pass) 2.5 ms (2.7)
    DQN 4x33x100:     forward alone 0.44 ms, saliency 0.9 ms (1.0), feature maps 0.6 ms,
                      `explain` 1.0 ms
    tiles of all five PilotNet layers 1.4 ms; overlay on 66x200 0.2 ms, on 480x640 7 ms

well under the 30 ms per frame a live view can spend.

Hooks are added to the driver's own network for the one call and removed after it: call these from
the thread that drives, not concurrently with `act`.

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


def _capture(
    model: nn.Module, run: Callable[[], Any]
) -> tuple[Any, list[_ConvLayer], list[torch.Tensor], tuple[int, int]]:
    """Run `run()` (which must call `model` once) with hooks on the real layers; remove them after.

    Returns run's result, the conv layers, each layer's feature map (1, C, h, w) and the spatial size
    of the first convolution's input (the resolution saliency is returned at).
    """
    layers = _conv_layers(model)
    maps: list[torch.Tensor | None] = [None] * len(layers)
    input_hw: list[tuple[int, int]] = []

    def keep(index: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            maps[index] = output.detach()

        return hook

    def first_input(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        input_hw.append((int(inputs[0].shape[-2]), int(inputs[0].shape[-1])))

    handles = [layer.tap.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    handles.append(layers[0].conv.register_forward_pre_hook(first_input))
    try:
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    if not input_hw or any(m is None for m in maps):
        raise RuntimeError("the forward pass did not go through every convolution layer")
    captured = [m for m in maps if m is not None]
    if captured[0].shape[0] != 1:
        raise ValueError(f"explain one input at a time, got a batch of {captured[0].shape[0]}")
    return result, layers, captured, input_hw[0]


def _forward(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> Callable[[], torch.Tensor]:
    x = _as_batch(net_input)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def _saliency(layers: list[_ConvLayer], maps: list[torch.Tensor], input_hw: tuple[int, int]) -> np.ndarray:
    """VisualBackProp from captured feature maps (see the module docstring)."""
    with torch.inference_mode():
        # Positive part, then the channel mean: (1, 1, h, w) per layer.
        means = [m.clamp(min=0).mean(dim=1, keepdim=True) for m in maps]
        targets = [tuple(m.shape[-2:]) for m in means[:-1]]
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
        LayerMaps(f"conv{i + 1}", layer.path, m[0].float().numpy().copy())
        for i, (layer, m) in enumerate(zip(layers, maps, strict=True))
    ]


def visual_backprop(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> np.ndarray:
    """VisualBackProp saliency (H, W) float32 in [0, 1] for one input to `model`.

    `net_input` is exactly what `model(...)` takes, with or without the batch axis of 1: for PilotNet
    the raw uint8 frame (66, 200, 3), for the QNet the uint8 window (frames, 33, 100). (H, W) is the
    spatial size the first convolution sees, i.e. the frame's. All zeros if nothing is active.

    Measured (median of 200, 1 thread, shipped models, real frames, forward pass included):
    PilotNet 66x200 2.3 ms, DQN 4x33x100 0.9 ms per frame.
    """
    _, layers, maps, input_hw = _capture(model, _forward(model, net_input))
    return _saliency(layers, maps, input_hw)


def feature_maps(model: nn.Module, net_input: torch.Tensor | np.ndarray) -> list[LayerMaps]:
    """Every convolution layer's activation maps for one input, captured by hooks on the real modules.

    Measured (median of 200, 1 thread, forward included): PilotNet 1.6 ms, DQN 0.6 ms per frame.
    """
    _, layers, maps, _ = _capture(model, _forward(model, net_input))
    return _layer_maps(layers, maps)


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


def heat_colors(saliency: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) float RGB: green (low) through yellow to red (high)."""
    s = np.clip(np.asarray(saliency, dtype=np.float32), 0.0, 1.0)
    return np.stack([np.minimum(1.0, 2.0 * s), np.minimum(1.0, 2.0 * (1.0 - s)), np.zeros_like(s)], axis=-1)


def overlay_saliency(frame: np.ndarray, saliency: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """The frame with the saliency map blended on as a heat colour; uint8 RGB of the frame's size.

    The map is resized to the frame (bilinear, numpy), so it works on the network's input frame or on
    a larger render of the same view. The blend weight is `alpha * saliency` per pixel: unimportant
    pixels are left exactly as they were, so the road stays readable and the highlights stand out.
    Grayscale frames ((H, W) or (H, W, 1)) are shown as RGB.
    """
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3), (H, W, 1) or (H, W) frame, got {frame.shape}")
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.ndim != 2:
        raise ValueError(f"expected a 2-D saliency map, got shape {sal.shape}")
    s = np.clip(resize_bilinear(sal, frame.shape[0], frame.shape[1]), 0.0, 1.0)
    weight = (float(np.clip(alpha, 0.0, 1.0)) * s)[:, :, None]
    blended = frame.astype(np.float32) * (1.0 - weight) + heat_colors(s) * (255.0 * weight)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _driver_run(driver: Any, observation: Any) -> tuple[nn.Module, Callable[[], Any]]:
    """The driver's network and a call that runs it on `observation` the way the driver acts.

    PilotNet is memoryless, so its own `act` is replayed (same conversion, same in-network
    normalisation). The DQN's window already holds the observation if it just acted on it (its last
    frame equals the observation's grayscale frame): that window is used as is. Otherwise the frame is
    pushed, with the driver's own `stack`, into a copy of the window, so asking never changes what the
    driver does next.
    """
    from agent.pilotnet import PilotNetDriver
    from agent.qnet import DQNDriver, to_gray_frame
    from agent.rllib_policy import RLlibDriver

    if isinstance(driver, PilotNetDriver | RLlibDriver):
        return driver.model, lambda: driver.act(observation)
    if isinstance(driver, DQNDriver):
        window = driver.window
        if window and np.array_equal(window[-1], to_gray_frame(observation)):
            stacked = np.stack(window)
        else:
            shadow = copy.copy(driver)
            shadow.window = deque(window, maxlen=window.maxlen)
            stacked = shadow.stack(observation)
        return driver.model, _forward(driver.model, torch.from_numpy(stacked)[None])
    raise TypeError(
        f"cannot explain a {type(driver).__name__}: only PilotNetDriver, DQNDriver and RLlibDriver"
    )


def explain(driver: Any, observation: Any) -> Explanation:
    """Saliency and feature maps for the observation `driver` just acted on (one forward pass).

    `driver` is an `agent.pilotnet.PilotNetDriver` or an `agent.qnet.DQNDriver`; the network input is
    made by the driver's own code, so the viewer shows what the driver actually saw. The driver's
    state (the DQN's frame window, its `q_values`) is left untouched.

    Measured (median of 200, 1 thread, shipped models, real frames): PilotNet 2.5 ms, DQN 1.0 ms.
    """
    model, run = _driver_run(driver, observation)
    outputs: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        _, layers, maps, input_hw = _capture(model, run)
    finally:
        handle.remove()
    output = outputs[-1][0].float().numpy().copy()
    return Explanation(_saliency(layers, maps, input_hw), _layer_maps(layers, maps), output)
