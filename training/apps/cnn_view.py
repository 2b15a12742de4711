"""What `camdrive watch`'s CNN sees, drawn over the viewer (`agent.explain` computes it): `CnnView`.

V overlays guided-backprop saliency on the camera view, F shows the feature maps of every convolution
layer as tiles, both for the observation the car is about to act on. The observation is a smaller
picture from the same camera (same field of view and pose), so it covers a centred horizontal band of
the window's camera view, and the saliency is drawn exactly there: the most salient 10 % of its pixels
in red to yellow, the next 10 % fading out, the rest of the scene untouched. For a DQN each action's
Q-value minus the mean of all of them (its advantage: what the choice depends on) is a bar on a fixed,
round scale (+-1, one step's reward at 80 mph, or the next of 2, 5, 10, ... that holds every bar), with
the scale and the values printed in the panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    # numpy declares ndarray's buffer protocol (__buffer__) only for Python 3.12+, where Buffer is in
    # collections.abc; pygame's stubs take any Buffer.
    from typing_extensions import Buffer

HUD_BOTTOM = 282
"""Where the viewer's HUD ends (at 600 px window height) with watch's two extra lines."""
TILE_ROW_BOX = (384.0, 52.0)
"""Space for one layer's tiles in the feature-map panel (at 600 px window height)."""
PANEL_TEXT = (230, 230, 230)
GREEDY_RGB = (60, 200, 90)
OTHER_RGB = (90, 160, 255)


class CnnView:
    """Saliency (V), feature maps (F) and, for a DQN, Q-value bars: a `sim.viewer.Overlay`.

    Everything is computed once per new sim state (in `on_scene`), from the observation the model is
    about to act on, and drawn from cache every displayed frame.
    """

    def __init__(self, viewer_obs: Any, model: Any, saliency: bool = False, features: bool = False) -> None:
        """`viewer_obs()` returns the current observation; `model` is the learned driver (or None)."""
        self.viewer_obs, self.model = viewer_obs, model
        self.saliency, self.features = saliency, features
        self._tiles: list[tuple[str, np.ndarray]] = []

    @property
    def available(self) -> bool:
        return self.model is not None

    def handle_key(self, key: int) -> bool:
        import pygame

        if key == pygame.K_v and self.available:
            self.saliency = not self.saliency
            return True
        if key == pygame.K_f and self.available:
            self.features = not self.features
            return True
        return False

    def on_scene(self, picture: np.ndarray) -> None:
        if not self.available or not (self.saliency or self.features):
            self._tiles = []
            return
        from agent.explain import explain
        from agent.heatmaps import tile_maps

        seen = explain(self.model, self.viewer_obs())
        if self.saliency:
            blend_saliency(picture, seen.saliency)
        self._tiles = []
        if self.features:
            # A panel row is wide and low: lay each layer's channels out in the grid that fills it best.
            for layer in seen.layers:
                columns = best_columns(*cast(tuple[int, int, int], layer.maps.shape), box=TILE_ROW_BOX)
                self._tiles.append((layer.name, tile_maps(layer.maps, columns=columns)))

    def draw(self, window: Any, scale: float) -> None:
        if self._tiles:
            self._draw_tiles(window, scale)
        q = getattr(self.model, "q_values", None)
        if q is not None:
            self._draw_q(window, scale, np.asarray(q, dtype=np.float64))

    def _draw_tiles(self, window: Any, scale: float) -> None:
        """Each conv layer's maps, one row per layer, in a panel down the left below the HUD."""
        import pygame

        from sim.text import hud_font

        h = window.get_size()[1]
        x0, y0 = int(10 * scale), int(HUD_BOTTOM * scale)
        width, height = int(440 * scale), h - y0 - int(30 * scale)
        row_h = height // max(len(self._tiles), 1)
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        window.blit(panel, (x0, y0))
        font = hud_font(int(18 * scale))
        label_w = int(50 * scale)
        box = (width - label_w - int(6 * scale), row_h - int(4 * scale))
        for i, (name, image) in enumerate(self._tiles):
            y = y0 + i * row_h
            window.blit(font.render(name, PANEL_TEXT), (x0 + int(6 * scale), y + int(6 * scale)))
            ih, iw = image.shape[:2]
            fit = min(box[0] / iw, box[1] / ih)
            surf = pygame.image.frombuffer(cast("Buffer", np.ascontiguousarray(image)), (iw, ih), "RGB")
            size = (max(1, int(iw * fit)), max(1, int(ih * fit)))
            window.blit(pygame.transform.scale(surf, size), (x0 + label_w, y + int(2 * scale)))

    def _draw_q(self, window: Any, scale: float, q: np.ndarray) -> None:
        """Each action's advantage (Q - mean Q) as a bar from the middle, on `q_bars`' round scale,
        its value at the right; the greedy action in green. Bottom right, sized to its text."""
        import pygame

        from sim.actions import DISCRETE_ACTION_NAMES
        from sim.text import hud_font

        s = scale
        font, small = hud_font(int(20 * s)), hud_font(int(16 * s))
        advantage, end = q_bars(q)
        names = [
            DISCRETE_ACTION_NAMES[i] if i < len(DISCRETE_ACTION_NAMES) else str(i) for i in range(len(q))
        ]
        values = [f"{a:+.2f}" for a in advantage]
        title, mean = "Q - mean Q", f"mean {float(q.mean()):.2f}"
        pad, row, bar_w, bar_h = int(8 * s), int(20 * s), int(150 * s), int(12 * s)
        name_w = max(font.size(n)[0] for n in names)
        value_w = max(font.size(v)[0] for v in values)
        inner = max(name_w + bar_w + value_w + 2 * pad, font.size(title)[0] + font.size(mean)[0] + 2 * pad)
        width = inner + 2 * pad
        height = 2 * pad + font.height + int(6 * s) + row * len(q) + small.height
        w, h = window.get_size()
        x0, y0 = w - width - int(10 * s), h - height - int(10 * s)
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        window.blit(panel, (x0, y0))
        window.blit(font.render(title, PANEL_TEXT), (x0 + pad, y0 + pad))
        window.blit(font.render(mean, (170, 170, 170)), (x0 + width - pad - font.size(mean)[0], y0 + pad))
        bar_x = x0 + pad + name_w + pad
        mid = bar_x + bar_w // 2
        y = y0 + pad + font.height + int(6 * s)
        best = int(np.argmax(q))
        for i, (name, a, text) in enumerate(zip(names, advantage, values, strict=True)):
            color = GREEDY_RGB if i == best else OTHER_RGB
            window.blit(font.render(name, PANEL_TEXT), (x0 + pad, y))
            bar_y = y + (font.height - bar_h) // 2
            pygame.draw.rect(window, (60, 60, 60), (bar_x, bar_y, bar_w, bar_h))
            fill = int(round(min(abs(a) / end, 1.0) * (bar_w // 2)))
            if fill:
                pygame.draw.rect(window, color, (mid if a > 0 else mid - fill, bar_y, fill, bar_h))
            window.blit(font.render(text, PANEL_TEXT), (x0 + width - pad - font.size(text)[0], y))
            y += row
        pygame.draw.line(window, (255, 255, 255), (mid, y0 + pad + font.height), (mid, y))
        for label, x in ((f"-{end:g}", bar_x), ("0", mid - small.size("0")[0] // 2)):
            window.blit(small.render(label, (170, 170, 170)), (x, y))
        right = f"+{end:g}"
        window.blit(small.render(right, (170, 170, 170)), (bar_x + bar_w - small.size(right)[0], y))


def q_bars(q: np.ndarray) -> tuple[np.ndarray, float]:
    """(advantages Q - mean Q, the bar's half-length in the same units).

    Only differences between Q-values decide anything, so the bars show them from the middle. Scaled
    to their own range, a 0.6 spread would fill one bar and empty another, like a strong preference;
    on a fixed scale of 1 (one step's reward at 80 mph, the DQN's reward unit) it reads as 0.6 of a
    step, and the small frame-to-frame jitter of a trained DQN stays a sliver. A larger
    advantage picks the next round scale (2, 5, 10, ...), printed under the bars.
    """
    q = np.asarray(q, dtype=np.float64)
    advantage = q - q.mean()
    largest = float(np.max(np.abs(advantage))) if advantage.size else 0.0
    return advantage, round_scale(largest)


def round_scale(value: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value` (1 for anything not above 1)."""
    if not np.isfinite(value) or value <= 1.0:
        return 1.0
    decade = 10.0 ** np.floor(np.log10(value))
    return float(next(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade >= value))


def blend_saliency(picture: np.ndarray, saliency: np.ndarray) -> None:
    """Paint `saliency` (the observation's size) on the band of `picture` that the observation covers,
    in place: the colours and weights of `agent.heatmaps.saliency_rgba` (the most salient tenth of the
    pixels, the rest of the scene untouched), scaled and blended by pygame in C, which is several times
    faster than a numpy blend of a window-sized picture.
    """
    import pygame

    from agent.heatmaps import saliency_rgba

    ph, pw = picture.shape[:2]
    top, height = observation_band(saliency.shape, (ph, pw))
    rgba = np.ascontiguousarray(np.clip(saliency_rgba(saliency) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    heat = pygame.image.frombuffer(cast("Buffer", rgba), (saliency.shape[1], saliency.shape[0]), "RGBA")
    target = pygame.image.frombuffer(cast("Buffer", picture), (pw, ph), "RGB")  # shares the picture's memory
    target.blit(pygame.transform.smoothscale(heat, (pw, height)), (0, top))


def best_columns(channels: int, height: int, width: int, box: tuple[float, float]) -> int:
    """How many columns make a grid of `channels` maps appear largest when fitted into `box` (w, h)."""

    def shown_scale(columns: int) -> float:
        rows = -(-channels // columns)
        grid_w, grid_h = columns * width + columns - 1, rows * height + rows - 1
        return min(box[0] / grid_w, box[1] / grid_h)

    return max(range(1, channels + 1), key=shown_scale)


def observation_band(obs_hw: tuple[int, ...], picture_hw: tuple[int, ...]) -> tuple[int, int]:
    """(first row, rows) of the window picture that the observation covers.

    Both pictures come from one pinhole camera with the same horizontal field of view, centred principal
    point and pose, so the observation is the window picture scaled by width ratio and centred.
    """
    oh, ow = int(obs_hw[0]), int(obs_hw[1])
    ph, pw = int(picture_hw[0]), int(picture_hw[1])
    height = min(ph, int(round(oh * pw / ow)))
    return (ph - height) // 2, height
