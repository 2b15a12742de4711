"""Text for the viewer's HUD, the env's `render()` picture and `camdrive watch`'s panels.

One font for all of them, drawn as whole runs of text with even glyph spacing. pygame's `font`
module (SDL_ttf) applies the default font's kerning pairs with hinting, and at HUD sizes that pulls
glyphs apart: "thrott le", "sim 30 H z", "l ane 2", "seed 1736 560". The same font through
`pygame.freetype` with kerning off spaces them evenly. Sizes are given as for `pygame.font.Font(None,
size)` (which draws the default font at 0.6875 of the size asked), so the HUD's layout is unchanged.
Below SUPERSAMPLE_BELOW px (a window of half the default size) even unkerned glyphs snap to whole
pixels unevenly ("seed 1736 560"), so small text is drawn three times as large and scaled down.

pygame is imported on first use: `sim` imports this for `render()`, which must not open a window.

The font is read into memory once and every `HudFont` reads from its own copy of those bytes, not from
the file: FreeType reads a font's glyphs lazily from its stream, and a file stream's offset is shared
with every process forked after it was opened (a vector env's worker processes). A worker drawing text
(`render_mode="rgb_array"`) then moved the offset under its parent's reads, which failed with "Failed
to resize font: unknown file format" or drew the wrong glyphs.
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any

DEFAULT_FONT_SCALE = 0.6875
"""What pygame.font.Font(None, size) scales the size of its default font by."""
SUPERSAMPLE_BELOW = 14
SUPERSAMPLE = 3


def _pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    import pygame.freetype

    if not pygame.freetype.get_init():
        pygame.freetype.init()
    return pygame


class HudFont:
    """pygame's default font at one size, kerning off, every line as tall as the font."""

    def __init__(self, size: int) -> None:
        pygame = _pygame()
        self.size_asked = int(size)
        self._factor = SUPERSAMPLE if size < SUPERSAMPLE_BELOW else 1
        font_file = io.BytesIO(_default_font_bytes())  # kept alive by the Font, which reads from it
        self._font = pygame.freetype.Font(font_file, max(1.0, size * self._factor * DEFAULT_FONT_SCALE))
        self._font.kerning = False
        self._font.antialiased = True
        self._font.pad = True  # every surface spans ascender to descender: lines of text align

    @property
    def height(self) -> int:
        """Height of every rendered line, px."""
        return round(self._font.get_sized_height() / self._factor)

    def render(self, text: str, color: tuple[int, int, int]) -> Any:
        """The text as a pygame Surface with per-pixel alpha, `color` on transparent."""
        surface, _ = self._font.render(text, color)
        if self._factor == 1:
            return surface
        return _pygame().transform.smoothscale(surface, self.size(text))

    def size(self, text: str) -> tuple[int, int]:
        """(width, height) that `render(text, ...)` will have."""
        width = self._font.get_rect(text).width
        return max(1, round(width / self._factor)), self.height


@functools.cache
def _default_font_bytes() -> bytes:
    """pygame's default font file (what `pygame.freetype.Font(None, ...)` opens), read once."""
    import pygame.pkgdata as pkgdata

    with pkgdata.getResource(_pygame().freetype.get_default_font()) as font_file:
        return font_file.read()


_FONTS: dict[int, HudFont] = {}


def hud_font(size: int) -> HudFont:
    """The shared `HudFont` of this size (fonts are cached: opening one costs about a millisecond)."""
    size = int(size)
    if size not in _FONTS:
        _FONTS[size] = HudFont(size)
    return _FONTS[size]
