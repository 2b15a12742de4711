"""Pictures of what a CNN sees, in numpy: feature maps tiled into a grid, and saliency blended over a
frame, for the viewer to draw."""

from __future__ import annotations

import numpy as np

SEPARATOR_RGB = (40, 90, 160)
"""Colour of the 1-px lines between tiles (and of empty grid cells): distinct from black, dead maps."""


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
