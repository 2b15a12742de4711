"""The ground's per-pixel loops, compiled by numba: the road's layers painted through the camera.

`paint_ground` is the inner loop of `ground.GroundPainter.draw` (whose `reference_colour` is the same
sum in plain numpy, the tests' reference), `row_frames` where each screen row meets the road, and
`periodic_box_filters` the blurred tables a look is drawn from. `sim.render.kernels` calls them too,
to draw a whole camera frame in one compiled call. Compiled code is cached on disk (`cache=True`).
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numba
import numpy as np

from sim.road import interp_between

CALLEE_SOURCES_SHA256 = "00ac49b6aa0045f6ec54b3ca157e1d8995410ab0ccd80007fe8444bb4467b80d"
"""sha256 of sim/road.py, whose `interp_between` `row_frames` contains (as `sim.render.kernels` keeps
the digest of this file, for the same reason): numba keys cached machine code by its own file's text."""


class JitOptions(TypedDict):
    """numba's options for the renderer's pixel loops, typed so that `njit(**JIT)` type-checks."""

    nogil: bool
    cache: bool
    error_model: Literal["python", "numpy"]
    boundscheck: bool


JIT: JitOptions = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}
"""The options of every pixel loop (here and in `sim.render.kernels`): numpy's error model (no
ZeroDivisionError checks), no bounds checks, the GIL released, and the machine code cached on disk."""


_FLOOR_SHIFT = 1 << 20
"""Added to texel rows before truncating, so truncation floors the few negative ones (s < 0 behind
the road's start); a multiple of every table length, so the wrap is unchanged."""


@numba.njit(**JIT)
def paint_ground(
    out: np.ndarray,
    first_row: int,
    right: np.ndarray,
    s_row: np.ndarray,
    lat_row: np.ndarray,
    cos_row: np.ndarray,
    sin_row: np.ndarray,
    d_min: float,
    inv_texel_d: float,
    inv_texel_s: float,
    across_level: np.ndarray,
    first: np.ndarray,
    entry_layer: np.ndarray,
    entry_weight: np.ndarray,
    along_level: np.ndarray,
    table: np.ndarray,
    keep: np.ndarray,
    add: np.ndarray,
) -> None:
    """Colour rows first_row.. of `out` (height, cols, 3) uint8, C-contiguous, from the road's layers.

    Pixel (i, j) lies `delta = right[i, j] - lat_row[i]` to the right of row i's centreline point,
    so at d = -delta * cos_row[i] and s = s_row[i] - delta * sin_row[i] (`ground.row_frames`), in
    texel column (d - d_min) * inv_texel_d (clipped) and texel row s * inv_texel_s (wrapped). Its
    colour is the sum over the layers present in its texel column c at its footprint's level
    a = across_level[i, j] (the packed entries first[a, c] .. first[a, c + 1] of
    `entry_layer`, `entry_weight`: `ground.AcrossLevels`) of weight x the layer's along table (at its
    row's level) at its texel
    (`ground.GroundPainter.reference_colour`), faded by the row's haze: keep[i] x sum + add[i].
    All arithmetic is float32, as the tables are.

    Two choices are for speed, both measured: indices read from arrays are cast to unsigned (they
    are never negative), which spares numba's negative-index wraparound on every lookup, and a row's
    colours go through a float buffer, so that their conversion to bytes is one loop over the
    contiguous row that the compiler vectorises. Together they took this loop to about 0.6x its
    time and a whole camera frame to about 0.75x, with the same bytes. A third: a pixel's first
    entry is read before the loop over its others, which most pixels (one entry) then skip: the
    loop's exit was mispredicted wherever one- and two-entry pixels alternate. 0.82x-0.88x this
    loop's time on 100 frames of each env, the same bytes (w * x is 0 + w * x).
    """
    rows, cols = right.shape
    n_d = first.shape[1] - 1
    n_s = table.shape[1]
    last_column = np.float32(n_d - 1)
    zero = np.float32(0.0)
    d0, inv_d, inv_s = np.float32(d_min), np.float32(inv_texel_d), np.float32(inv_texel_s)
    shift = np.float32(_FLOOR_SHIFT)
    column = np.empty(cols, np.int32)
    texel = np.empty(cols, np.int32)
    colour = np.empty(3 * cols, np.float32)
    flat_out = out.reshape(out.size)
    row_length = 3 * cols
    for i in range(rows):
        lat, cos_phi, sin_phi, s_centre = lat_row[i], cos_row[i], sin_row[i], s_row[i]
        for j in range(cols):  # texel coordinates first: a loop the compiler can vectorise
            delta = right[i, j] - lat
            c = (-(delta * cos_phi) - d0) * inv_d
            column[j] = np.int32(min(max(c, zero), last_column))
            texel[j] = np.int32((s_centre - delta * sin_phi) * inv_s + shift) & (n_s - 1)
        level, fade = np.uintp(along_level[i]), keep[i]
        add_r, add_g, add_b = add[i, 0], add[i, 1], add[i, 2]
        for j in range(cols):
            a, c, t = np.uintp(across_level[i, j]), np.uintp(column[j]), np.uintp(texel[j])
            head = np.uintp(first[a, c])  # every column has an entry (`ground.AcrossLevels`)
            w, k = entry_weight[head], np.uintp(entry_layer[head])
            r = w * table[level, t, k, np.uintp(0)]
            g = w * table[level, t, k, np.uintp(1)]
            b = w * table[level, t, k, np.uintp(2)]
            for e in range(first[a, c] + 1, first[a, c + np.uintp(1)]):
                w, k = entry_weight[np.uintp(e)], np.uintp(entry_layer[np.uintp(e)])
                r += w * table[level, t, k, np.uintp(0)]
                g += w * table[level, t, k, np.uintp(1)]
                b += w * table[level, t, k, np.uintp(2)]
            colour[3 * j] = r * fade + add_r
            colour[3 * j + 1] = g * fade + add_g
            colour[3 * j + 2] = b * fade + add_b
        start = (first_row + i) * row_length
        row = flat_out[start : start + row_length]
        for q in range(row_length):
            row[q] = to_byte(colour[q])


@numba.njit(cache=True, nogil=True)
def row_frames(
    road_x: np.ndarray,
    road_y: np.ndarray,
    road_heading: np.ndarray,
    road_s: np.ndarray,
    i0: int,
    i1: int,
    x: float,
    y: float,
    yaw: float,
    forward: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`ground.row_frames` on the road samples i0..i1, compiled: the samples' forward distances from
    the viewer, made non-decreasing by a running maximum, and at each row's distance `forward[r]` the
    road's arc length, lateral offset and relative heading interpolated as `np.interp(forward, fwd, ...)`
    interpolates them (the same numbers: tests/test_camera.py holds it to those numpy formulas).

    Why not np.interp itself: its three calls searched the samples three times, and needed every
    sample's offset and heading where only the two around each row are read (about 500 samples, 45
    rows). Searching once per row and computing the two samples' values took this function from
    2.8 us to about 1.1 us per frame. The search (`np.searchsorted`, side right) finds the interval
    numpy's does: the last sample not beyond the row.
    """
    cos_y, sin_y = np.cos(yaw), np.sin(yaw)
    n = i1 - i0
    fwd = np.empty(n)
    farthest = -np.inf
    for k in range(n):
        # Running maximum: the samples' forward distances made non-decreasing, as np.interp needs.
        farthest = max(farthest, (road_x[i0 + k] - x) * cos_y + (road_y[i0 + k] - y) * sin_y)
        fwd[k] = farthest
    rows = forward.size
    s_row, lat_row = np.empty(rows, np.float32), np.empty(rows, np.float32)
    cos_row, sin_row = np.empty(rows, np.float32), np.empty(rows, np.float32)
    first, last = i0, i1 - 1
    for r in range(rows):
        at = forward[r]
        j = np.searchsorted(fwd, at, side="right") - 1
        a, b = i0 + min(max(j, 0), n - 1), i0 + min(max(j + 1, 0), n - 1)  # the samples around it
        fa, fb = fwd[a - i0], fwd[b - i0]
        heading = _interp_at(at, j, n, fa, fb, road_heading[a] - yaw, road_heading[b] - yaw,
                             road_heading[first] - yaw, road_heading[last] - yaw)  # fmt: skip
        s_row[r] = _interp_at(at, j, n, fa, fb, road_s[a], road_s[b], road_s[first], road_s[last])
        lat_row[r] = _interp_at(
            at, j, n, fa, fb, _lateral(road_x[a], road_y[a], x, y, cos_y, sin_y),
            _lateral(road_x[b], road_y[b], x, y, cos_y, sin_y),
            _lateral(road_x[first], road_y[first], x, y, cos_y, sin_y),
            _lateral(road_x[last], road_y[last], x, y, cos_y, sin_y),
        )  # fmt: skip
        cos_row[r], sin_row[r] = np.cos(heading), np.sin(heading)
    return s_row, lat_row, cos_row, sin_row


@numba.njit(inline="always", cache=True, nogil=True)
def _lateral(px: float, py: float, x: float, y: float, cos_y: float, sin_y: float) -> float:
    """How far point (px, py) lies to the left of a viewer at (x, y) facing (cos_y, sin_y)."""
    return (px - x) * sin_y - (py - y) * cos_y


@numba.njit(inline="always", cache=True, nogil=True)
def _interp_at(
    at: float, j: int, n: int, x_j: float, x_next: float, f_j: float, f_next: float, f_first: float,
    f_last: float,
) -> float:  # fmt: skip
    """np.interp's value at `at` of samples (x, f), n of them, given the interval j that its search
    finds (-1 before the first sample, n - 1 or more at or after the last): its end cases in its order
    (numpy's compiled_base.c, numba's copy), then the interval's value (`sim.road.interp_between`)."""
    if n == 1:
        return f_first
    if at != at:
        return at
    if j < 0:
        return f_first
    if j >= n - 1:
        return f_last
    return interp_between(at, x_j, x_next, f_j, f_next)


@numba.njit(**JIT)
def periodic_box_filters(sharp: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """`ground.box_filter(sharp, w, periodic=True)` for every w of `widths`, each transposed:
    (len(widths), n, rows) for `sharp` of shape (rows, n).

    The same float64 operations in the same order as the numpy reference (a running sum from the
    window's first padded texel, then differences of that sum divided by the width), so the tables,
    and the frames, are bit for bit the reference's; compiled because a randomised look rebuilds
    these filters at every reset. Transposed because the look's table is a matrix product with one
    row per (level, texel) (`ground.AlongLevels`): written in that layout, the filters need no
    transposing copy, which took as long as the filtering. Every row's running sum advances at
    each texel together (the row index innermost, so the compiler adds several rows per instruction;
    each sum still adds its texels one by one in the reference's order): 0.36 ms for a Traffic-v0
    look's 17 widths of 26 functions, against 1.6 ms one row at a time.
    """
    rows, n = sharp.shape
    texels = np.ascontiguousarray(sharp.T)  # (n, rows): every row's sums advance together, in SIMD
    out = np.empty((widths.size, n, rows))
    running = np.empty((n + int(widths.max()), rows))
    running[0] = 0.0
    for level in range(widths.size):
        width = int(widths[level])
        if width <= 1:
            out[level] = texels
            continue
        texel = (-(width // 2)) % n  # the window's first padded texel
        for k in range(n + width - 1):
            for r in range(rows):
                running[k + 1, r] = running[k, r] + texels[texel, r]
            texel = texel + 1 if texel + 1 < n else 0
        for j in range(n):
            for r in range(rows):
                out[level, j, r] = (running[j + width, r] - running[j, r]) / width
    return out


@numba.njit(inline="always", **JIT)
def to_byte(v: np.float32) -> np.uint8:
    """Clip to 0..255 and truncate. The clamps as min and max, which the compiler turns into the
    vector instructions of the same names: the sensor noise's add-and-clip loop took a quarter of its
    time with them than with two branches (a NaN, which no colour is, gives 0 either way)."""
    return np.uint8(np.int32(min(max(v, np.float32(0.0)), np.float32(255.0))))
