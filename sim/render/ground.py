"""How the ground looks: the road as a sum of separable layers, box-filtered per image row.

The road surface is periodic along the road (dashes, shade bands, worn paint) and fixed across it
(lanes, lines, shoulders, grass). Every part of it is a product of a function of s (along) and a
function of d (across): the asphalt is "on the road" (a function of d) times "this shade band" (a
function of s), a dash is "on line k" times "painted here". So the ground's colour is

    colour(s, d) = sum over layers t of  across_t(d) * along_t(s)      (along_t holds the RGB)

Far pixels cover metres of road and must show the average colour of their footprint, or dashes
flicker and thin lines break into dots. A box filter of a product is the product of the box-filtered
factors, so each pixel's footprint is applied by filtering small one-dimensional tables: `across`
at the pixel's lateral footprint (`AcrossLevels`; wider off-centre, where a far pixel's lengthwise
extent reaches sideways), `along` at its row's lengthwise footprint (`AlongLevels`), both rounded to
quarter octaves. The look (palette, paint wear) lives only in the `along` tables: a new look is a
few hundred 1-D box filters and one small matrix product (about 5 ms), not a rebuilt texture.

Drawing is then, per pixel, its Frenet (s, d), the few layers present at that d (a sparse list per
footprint level and texel column), one multiply-add per layer and the haze of its row, in a compiled kernel
(`sim.render.ground_kernels.paint_ground`); `reference_colour` is the same sum in plain numpy, which the
tests hold the kernel to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from sim.render import ground_kernels
from sim.render.palette import Palette
from sim.render.shared_arrays import shared
from sim.road import SAMPLE_SPACING_M, Road, RoadConfig

TEXEL_S_M = 0.09375
"""Texel length along the road: 1024 texels per period, so wrapping s is a bitwise AND."""
TEXEL_D_M = 0.04
"""Texel width across the road: a 12 cm lane line spans three texels."""
DASH_LENGTH_M = 3.0
DASH_PERIOD_M = 12.0
"""Lane lines: 3 m painted, 9 m gap (the US highway pattern)."""
PERIOD_M = 96.0
"""The along tables repeat every 8 dash periods, so worn dashes do not repeat every dash."""
BAND_OFFSET_M = 7.5
"""Shade bands change colour in the middle of the gaps between dashes, never where a dash ends."""
BAND_RAMP_M = 3.0
"""Shade bands blend into each other over this length instead of meeting in a hard seam."""
WEAR_PATCH_M = 2.0
"""Edge lines wear away in patches of this length."""
GRASS_MARGIN_M = 4.0
"""Grass drawn beyond the shoulder; further out the outermost texel column repeats."""
LANE_LINE_WIDTH_M = 0.12
EDGE_LINE_WIDTH_M = 0.15
EDGE_LINE_INSET_M = 0.25
LEVELS_PER_OCTAVE = 4
"""Along-footprints are rounded to quarter octaves: rows of nearly equal footprint share one table."""
N_S = int(round(PERIOD_M / TEXEL_S_M))
assert N_S & (N_S - 1) == 0, "texels per period must be a power of two"


def _coverage(
    centres: np.ndarray, texel: float, lo: float | np.ndarray, hi: float | np.ndarray
) -> np.ndarray:
    """Fraction of each texel [c - texel/2, c + texel/2] covered by the interval [lo, hi]."""
    overlap = np.minimum(centres + texel / 2, hi) - np.maximum(centres - texel / 2, lo)
    return np.clip(overlap / texel, 0.0, 1.0)


def box_filter(a: np.ndarray, width: int, periodic: bool) -> np.ndarray:
    """Mean of each `width`-texel window centred on each texel along the last axis of `a`.

    `periodic` wraps around (the along tables repeat every PERIOD_M); otherwise the ends are
    extended (the across tables: grass goes on beyond the margin). Width 1 returns `a` unchanged.
    """
    if width <= 1:
        return a
    n = a.shape[-1]
    left, right = width // 2, width - width // 2 - 1
    if periodic:
        reps = -(-(width + n) // n)
        tiled = np.concatenate([a] * (2 * reps + 1), axis=-1)
        padded = tiled[..., reps * n - left : reps * n + n + right]
    else:
        padded = np.concatenate(
            (np.repeat(a[..., :1], left, axis=-1), a, np.repeat(a[..., -1:], right, axis=-1)), axis=-1
        )
    c = np.cumsum(padded, axis=-1, dtype=np.float64)
    c = np.concatenate((np.zeros((*a.shape[:-1], 1)), c), axis=-1)
    return (c[..., width:] - c[..., :-width]) / width


@dataclass(frozen=True, eq=False)
class RoadLayers:
    """Where each layer is across the road, for one road layout (no colours: shared by all looks).

    Layers: 0 grass, 1 shoulder, 2 asphalt, 3 left (yellow) edge line, 4 right edge line, then one
    per lane line from left to right. `across` is (layers, n_d): the fraction of each texel column
    the layer covers. Lines lie on the asphalt, so the asphalt's along table subtracts what the
    lines paint over (`AlongLevels`).
    """

    d_min: float
    across: np.ndarray
    lanes: int

    @property
    def n_d(self) -> int:
        return int(self.across.shape[1])

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def of(road: RoadConfig) -> RoadLayers:
        """The layers of `road`, computed once per layout."""
        half = road.half_width
        d_min = -(half + road.shoulder_width + GRASS_MARGIN_M)
        n_d = int(np.ceil(-2 * d_min / TEXEL_D_M))
        d = d_min + (np.arange(n_d) + 0.5) * TEXEL_D_M
        on_road = _coverage(np.abs(d), TEXEL_D_M, -1.0, half)
        on_shoulder = _coverage(np.abs(d), TEXEL_D_M, half, half + road.shoulder_width)
        centre, w = half - EDGE_LINE_INSET_M, EDGE_LINE_WIDTH_M / 2
        lines = [_coverage(d, TEXEL_D_M, c - w, c + w) for c in (centre, -centre)]
        for k in range(1, road.lanes):
            line_d, lw = half - k * road.lane_width, LANE_LINE_WIDTH_M / 2
            lines.append(_coverage(d, TEXEL_D_M, line_d - lw, line_d + lw))
        across = np.stack([1.0 - on_road - on_shoulder, on_shoulder, on_road, *lines])
        across.flags.writeable = False
        return RoadLayers(d_min, across, road.lanes)


class AlongLevels:
    """The look: every layer's RGB along the road, box-filtered at each footprint level.

    `table` is float32 (levels, N_S, layers, 3), colours with the palette's light applied. Built
    from a palette and a wear seed in a few milliseconds, which is what makes a randomised look
    free at reset.
    """

    def __init__(self, layers: RoadLayers, palette: Palette, wear_seed: int, widths: np.ndarray) -> None:
        rng = np.random.default_rng(wear_seed)
        s = (np.arange(N_S) + 0.5) * TEXEL_S_M
        # Shade bands: band b covers the second half of every 2 * band_length, its edges ramped
        # over BAND_RAMP_M and centred in the gaps between dashes (v: distance from b's middle).
        length = palette.band_length
        v = (s - BAND_OFFSET_M - 0.5 * length) % (2 * length) - length
        band_b = np.clip(0.5 + (0.5 * length - np.abs(v)) / BAND_RAMP_M, 0.0, 1.0)
        band_a = 1.0 - band_b
        worn_patch = rng.random(int(PERIOD_M / WEAR_PATCH_M)) < 0.3 * palette.marking_wear
        edge_on = (~worn_patch[(s // WEAR_PATCH_M).astype(int)]).astype(np.float64)
        n_dashes = int(PERIOD_M / DASH_PERIOD_M)
        dash_kept = rng.random((n_dashes, max(layers.lanes - 1, 1))) >= palette.marking_wear
        dash_cover = _coverage(s % DASH_PERIOD_M, TEXEL_S_M, 0.0, DASH_LENGTH_M)
        dash_index = (s // DASH_PERIOD_M).astype(int)
        paint = [edge_on, edge_on] + [dash_cover * dash_kept[dash_index, k] for k in range(layers.lanes - 1)]
        # Sharp along functions: the two bands, then per line: paint, paint on band a, paint on band b.
        funcs = [band_a, band_b]
        for p in paint:
            funcs += [p, p * band_a, p * band_b]
        sharp = np.stack(funcs)
        mix = self._mixing(palette, layers.across.shape[0], len(paint))
        self.widths = widths
        filtered = ground_kernels.periodic_box_filters(sharp, widths.astype(np.int64))  # (L, N_S, F)
        # table[l, s, t, c] = sum over f of filtered[l, s, f] * mix[f, t, c]: one matrix product,
        # (L * N_S, F) @ (F, layers * 3). np.einsum("lsf,ftc->lstc", ..., optimize=True) makes the same
        # product, bit for bit (300 looks compared), but took 1.7x as long with its extra copies.
        levels, n_s, functions = filtered.shape
        product = filtered.reshape(levels * n_s, functions) @ mix.reshape(functions, -1)
        self.table = product.astype(np.float32).reshape(levels, n_s, *mix.shape[1:])
        self.table.flags.writeable = False  # shared by every renderer in this look

    @staticmethod
    def _mixing(pal: Palette, n_layers: int, n_lines: int) -> np.ndarray:
        """(functions, layers, 3): how much of each colour each filtered function adds to each layer."""
        grass, grass_alt = pal.array(pal.grass), pal.array(pal.grass_alt)
        asphalt, asphalt_alt = pal.array(pal.asphalt), pal.array(pal.asphalt_alt)
        line_colours = [pal.array(pal.centre_edge_line), pal.array(pal.edge_line)]
        line_colours += [pal.array(pal.lane_line)] * (n_lines - 2)
        mix = np.zeros((2 + 3 * n_lines, n_layers, 3))
        mix[0, 0], mix[1, 0] = grass, grass_alt
        mix[0, 1] = mix[1, 1] = pal.array(pal.shoulder)  # the shoulder has one shade: a + b = 1
        mix[0, 2], mix[1, 2] = asphalt, asphalt_alt
        for i, colour in enumerate(line_colours):
            f = 2 + 3 * i
            mix[f, 3 + i] = colour  # the paint ...
            mix[f + 1, 3 + i] = -asphalt  # ... replaces the asphalt under it
            mix[f + 2, 3 + i] = -asphalt_alt
        return mix


def footprint_levels(texels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filter widths for footprints of `texels` texels, and the level of each footprint.

    Footprints are rounded to quarter octaves (pixels of nearly equal footprint share one table),
    then to an odd number of texels: an odd box is centred on its texel, so a scene symmetric
    about the road's centre stays symmetric in the image. Quarter octaves that round to one width
    (the small ones: 1, 1, 1, 1, 3, 3, 3, 3, 5, ...) share its level, so no table is filtered and
    stored twice (a randomised look builds its tables at every reset).
    """
    key = np.round(np.log2(np.maximum(texels, 1.0)) * LEVELS_PER_OCTAVE).astype(int)
    if key.size == 0:  # a camera that sees no ground (pitched up): one unused level keeps tables valid
        return np.ones(1, dtype=int), key.astype(np.int32)
    keys, key_index = np.unique(key, return_inverse=True)
    key_widths = 2 * np.floor(2.0 ** (keys / LEVELS_PER_OCTAVE) / 2).astype(int) + 1
    widths, level = np.unique(key_widths, return_inverse=True)
    return widths, level[key_index].reshape(np.shape(texels)).astype(np.int32)


@dataclass(frozen=True)
class AcrossLevels:
    """The layers across the road box-filtered at each footprint width, stored sparsely.

    `layer` (levels, n_d, k) int8 lists the layers present in each texel column (-1 pads), `weight`
    the filtered coverage of each: only a handful of the layers are present at any d (3.3 of 11 on
    average on Traffic-v0's road). The painter reads the same entries packed end to end
    (`entry_layer`, `entry_weight`: level a's column c has entries first[a, c] up to
    first[a, c + 1]): a third of the bytes of the padded slots, so the part a frame reads
    stays in the core's cache when many worlds' frames are drawn in turn.
    """

    layer: np.ndarray
    weight: np.ndarray
    first: np.ndarray
    entry_layer: np.ndarray
    entry_weight: np.ndarray

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def of(layers: RoadLayers, widths: tuple[int, ...]) -> AcrossLevels:
        dense = np.stack([box_filter(layers.across, w, periodic=False) for w in widths])
        present = np.abs(dense) > 1e-9  # (levels, layers, n_d)
        k = max(int(present.sum(axis=1).max()), 1)
        layer = np.full((len(widths), layers.n_d, k), -1, dtype=np.int8)
        weight = np.zeros((len(widths), layers.n_d, k), dtype=np.float32)
        lvl, t, j = np.nonzero(present)
        order = np.lexsort((t, j, lvl))
        lvl, t, j = lvl[order], t[order], j[order]
        # Slot of each entry within its (level, column): its rank among the entries before it there.
        group = lvl * layers.n_d + j
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        slot = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
        layer[lvl, j, slot] = t
        weight[lvl, j, slot] = dense[lvl, t, j]
        column_starts = np.arange(len(widths))[:, None] * layers.n_d + np.arange(layers.n_d + 1)
        first = np.searchsorted(group, column_starts).astype(np.int32)
        # Grass, shoulder and asphalt add up to 1 in every column: each has an entry, which
        # `paint_ground` reads before looking for more.
        assert (np.diff(first, axis=1) > 0).all(), "a texel column without layers"
        entry_layer, entry_weight = t.astype(np.int8), weight[lvl, j, slot]
        for a in (layer, weight, first, entry_layer, entry_weight):
            a.flags.writeable = False  # shared by every painter of this layout
        return AcrossLevels(layer, weight, first, entry_layer, entry_weight)


class GroundPainter:
    """Draws the ground of one viewer grid (camera or top-down) in one compiled pass.

    Each grid row is a line across the view at one forward distance: `forward` (rows,) metres ahead
    and `right` (rows, cols) float32 metres to the right. A pixel covers `along_m` (rows,) metres
    of road lengthwise and `across_m` (rows, cols) crosswise (wider off-centre in a camera: a far
    pixel's lengthwise extent is seen at an angle), and fades by the haze of distance `haze_m`
    (rows,), or not at all with None (the top-down map). It starts in `palette`'s look with the paint
    wear of `wear_seed`; `set_look` changes them cheaply, while the layout-dependent tables are built
    once per layout and footprint.
    """

    def __init__(
        self,
        road: RoadConfig,
        forward: np.ndarray,
        right: np.ndarray,
        along_m: np.ndarray,
        across_m: np.ndarray,
        haze_m: np.ndarray | None,
        palette: Palette,
        wear_seed: int = 0,
    ) -> None:
        self.layers = RoadLayers.of(road)
        self.forward = shared(np.asarray(forward, dtype=np.float64))
        self.right = shared(np.asarray(right, dtype=np.float32))
        self.haze_m = haze_m
        self.along_widths, along_level = footprint_levels(np.asarray(along_m) / TEXEL_S_M)
        across_widths, across_level = footprint_levels(np.asarray(across_m) / TEXEL_D_M)
        # One byte per pixel for the across level (there are a few dozen): the frame reads it for
        # every pixel, and a quarter of the bytes keeps more of the tables in the core's cache.
        across_dtype = np.uint8 if across_widths.size <= 256 else np.int32
        self.along_level, self.across_level = shared(along_level), shared(across_level.astype(across_dtype))
        self.across = AcrossLevels.of(self.layers, tuple(int(w) for w in across_widths))
        self.set_look(palette, wear_seed)

    def set_look(self, palette: Palette, wear_seed: int = 0) -> None:
        """Colour the road with `palette`, its paint worn as drawn from `wear_seed`."""
        self.look_key = (palette, wear_seed)
        self.look = _along_levels(self.layers, palette, wear_seed, tuple(int(w) for w in self.along_widths))
        haze = np.zeros(len(self.forward))
        if self.haze_m is not None:
            haze = 1.0 - np.exp(-np.asarray(self.haze_m) / palette.visibility_m)
        self.keep = shared((1.0 - haze).astype(np.float32))
        self.add = shared((haze[:, None] * palette.array(palette.sky_horizon) + 0.5).astype(np.float32))

    def draw(self, road: Road, x: float, y: float, yaw: float, s_near: float, out: np.ndarray) -> None:
        """Colour `out` (the ground rows of the frame, a C-contiguous array) for a viewer at (x, y, yaw),
        arc length s_near."""
        if not out.flags.c_contiguous:
            raise ValueError("GroundPainter.draw needs a C-contiguous frame")
        s_row, lat_row, cos_row, sin_row = row_frames(road, x, y, yaw, s_near, self.forward)
        ground_kernels.paint_ground(
            out, 0, self.right, s_row, lat_row, cos_row, sin_row, self.layers.d_min, 1.0 / TEXEL_D_M,
            1.0 / TEXEL_S_M, self.across_level, self.across.first, self.across.entry_layer,
            self.across.entry_weight, self.along_level,
            self.look.table, self.keep, self.add,
        )  # fmt: skip

    def reference_colour(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The same colours as `draw`, by the plain formulas: float RGB of the ground rows at (s, d).

        `s` and `d` are (rows, cols) Frenet coordinates of this painter's pixels. The tests hold the
        compiled kernel to this sum, computed in float64.
        """
        column = np.clip((d - self.layers.d_min) / TEXEL_D_M, 0, self.layers.n_d - 1).astype(np.int64)
        texel = np.floor(s / TEXEL_S_M).astype(np.int64) & (N_S - 1)
        layer = self.across.layer[self.across_level, column]  # (rows, cols, k)
        weight = self.across.weight[self.across_level, column].astype(np.float64)
        along = self.look.table[self.along_level[:, None, None], texel[..., None], np.maximum(layer, 0)]
        colour = np.sum(np.where(layer[..., None] >= 0, weight[..., None] * along, 0.0), axis=2)
        return colour * self.keep[:, None, None] + self.add[:, None, :]


@functools.lru_cache(maxsize=8)
def _along_levels(
    layers: RoadLayers, palette: Palette, wear_seed: int, widths: tuple[int, ...]
) -> AlongLevels:
    """Looks are kept for reuse: envs with the default look, or a vector env's, share one."""
    return AlongLevels(layers, palette, wear_seed, np.asarray(widths))


def row_frames(
    road: Road, x: float, y: float, yaw: float, s_near: float, forward: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per grid row (float32 vectors): the centreline point's arc length s and lateral offset, and
    cos / sin of the road's heading relative to the viewer.

    The viewer stands at world (x, y) facing `yaw`; grid point (row i, column j) lies `forward[i]`
    ahead and `right[i, j]` to the right (so every grid row is a line across the view at one forward
    distance: true of camera image rows and of top-down rows alike). For each row the centreline
    point at that forward distance is interpolated once; a point `delta` to its right is then at
    d = -delta * cos(phi) and s = s_c - delta * sin(phi), where phi is the road's heading relative to
    the viewer. This is exact on straight road and accurate to kappa * delta^2 / 2 on curves, and it
    needs the road to keep heading forward within the view (true for curvature-bounded roads).
    `s_near` is the viewer's arc length; the road is read from 30 m behind it to the farthest row.
    """
    i0, i1 = road_window(road, s_near, forward)
    return ground_kernels.row_frames(road.x, road.y, road.heading, road.s, i0, i1, x, y, yaw, forward)


def road_window(road: Road, s_near: float, forward: np.ndarray) -> tuple[int, int]:
    """The road samples i0..i1 that `row_frames` reads for a viewer at arc length `s_near` (the road
    extended that far if need be): from 30 m behind it to past the farthest row."""
    # Camera rows run far to near, top-down rows far to near too: forward[0] is the farthest.
    s_far = s_near + forward[0] * 1.3 + 30.0
    road.ensure_length(s_far + 1.0)
    i0 = max(int((s_near - 30.0 - max(0.0, -forward[-1])) / SAMPLE_SPACING_M), 0)
    i1 = int(s_far / SAMPLE_SPACING_M) + 2
    return i0, i1
