"""The renderer's per-pixel loops for the cars and the whole camera frame, compiled by numba.

Each kernel is the inner loop of one drawing step whose maths is documented, and kept in plain
numpy as the reference the tests compare against, beside it: the cars (`cars.CarPainter`; the
ground's loops are in `sim.render.ground_kernels`), the sensor noise, and `draw_camera_frame`, which
runs the ground, the cars and the noise in one call. Everything around them (which rows, which cars,
which colours) stays in numpy; only loops over pixels are here.

Compiled code is cached on disk next to this file (`cache=True`; numba's NUMBA_CACHE_DIR moves
it), so only the first process after an install pays the compile time (`camdrive bench --first-step`
measures it; the README has the figure).
"""

from __future__ import annotations

import numba
import numpy as np

from sim.render.ground_kernels import JIT, paint_ground, row_frames, to_byte

CALLEE_SOURCES_SHA256 = "6798622ab8998016762fe2794abc97344d244a9281907123eeb2e0bb5695d94b"
"""sha256 of ground_kernels.py, whose loops `draw_camera_frame` calls. numba keys a function's cached
machine code by the text of its own file alone, yet the cached frame kernel contains those loops: an
edit there alone would leave the stale frame kernel in use. Keeping their digest here (the tests
check it) makes every such edit change this file too."""


@numba.njit(**JIT)
def cull_cars(
    x: np.ndarray,
    y: np.ndarray,
    yaw: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    colour: np.ndarray,
    n_colours: int,
    cam_x: float,
    cam_y: float,
    cam_yaw: float,
    cos_yaw: float,
    sin_yaw: float,
    max_distance: float,
    max_slope: float,
    near_m: float,
    seen: np.ndarray,
    seen_colour: np.ndarray,
) -> int:
    """The cars that can be in view, in camera coordinates; returns how many (k).

    A car is kept unless its bounding circle lies wholly behind the near plane, beyond
    `max_distance` or outside the widest column's ray (plus a metre). Row 0..5 of `seen[:, :k]`
    receive its forward and left distance from the lens, yaw relative to the camera, length, width
    and height, in the cars' order; `seen_colour[:k]` its palette colour (colour mod n_colours).
    """
    k = 0
    for q in range(x.size):
        dx, dy = x[q] - cam_x, y[q] - cam_y
        fwd = dx * cos_yaw + dy * sin_yaw
        left = -dx * sin_yaw + dy * cos_yaw
        reach = 0.5 * np.hypot(length[q], width[q])
        far_end = fwd + reach
        if far_end > near_m and fwd - reach < max_distance and abs(left) - reach < far_end * max_slope + 1.0:
            seen[0, k], seen[1, k], seen[2, k] = fwd, left, yaw[q] - cam_yaw
            seen[3, k], seen[4, k], seen[5, k] = length[q], width[q], height[q]
            seen_colour[k] = colour[q] % n_colours
            k += 1
    return k


@numba.njit(**JIT)
def paint_cars(
    frame: np.ndarray,
    slope: np.ndarray,
    row_slope: np.ndarray,
    mount: float,
    fwd: np.ndarray,
    left: np.ndarray,
    yaw_rel: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    colour: np.ndarray,
    face_lut: np.ndarray,
    drawn_lut: np.ndarray,
    near_m: float,
    tail_inset_m: float,
    grid: int,
    grid_offset: int,
    grid_size: int,
    hit_car: np.ndarray,
    hit_in: np.ndarray,
    hit_out: np.ndarray,
) -> None:
    """Cast each image column's ray against the boxes of the cars and paint the nearest one hit.

    Slab method in each box's own frame (`cars.CarPainter`): the camera at (ox, oy) and the ray
    direction (cos_r - slope * sin_r, -sin_r - slope * cos_r) rotated into the box, entry and exit
    distances from the length and width slabs. The nearest entry wins the column; the face it
    enters through (an end or a side), whether it is a rear face and whether the ray enters within
    a tail light's inset pick its row of `face_lut`, and each pixel's height on the car, floored in
    1/grid of the car's height, its band. `hit_car`, `hit_in`, `hit_out` receive each column's car
    (-1: none) and its entry and exit distances (for roofs, drawn by the caller).
    """
    k = fwd.size
    cos_r, sin_r = np.cos(yaw_rel), np.sin(yaw_rel)
    ox = -fwd * cos_r - left * sin_r
    oy = fwd * sin_r - left * cos_r
    low, high = _slope_ranges(fwd, left, cos_r, sin_r, length, width)
    for j in range(slope.size):
        best, best_in, best_out, best_end, best_inv_x, best_inv_y = -1, np.inf, np.inf, False, 0.0, 0.0
        for q in range(k):
            if slope[j] < low[q] or slope[j] > high[q]:
                continue  # the column's ray passes beside this car's box: no need to cast it
            inv_x = 1.0 / (cos_r[q] - slope[j] * sin_r[q])
            inv_y = 1.0 / (-sin_r[q] - slope[j] * cos_r[q])
            hl, hw = 0.5 * length[q], 0.5 * width[q]
            ax, bx = (-hl - ox[q]) * inv_x, (hl - ox[q]) * inv_x
            ay, by = (-hw - oy[q]) * inv_y, (hw - oy[q]) * inv_y
            near_x, far_x = min(ax, bx), max(ax, bx)
            near_y, far_y = min(ay, by), max(ay, by)
            t_in, t_out = max(near_x, near_y), min(far_x, far_y)
            if t_in >= t_out or t_out <= near_m:
                continue
            t_in = max(t_in, near_m)
            if t_in < best_in:
                best, best_in, best_out = q, t_in, t_out
                best_end, best_inv_x, best_inv_y = near_x >= near_y, inv_x, inv_y
        hit_car[j] = best
        hit_in[j] = best_in
        hit_out[j] = best_out
        if best < 0:
            continue
        rear = best_end and best_inv_x > 0
        lateral = oy[best] + best_in / best_inv_y
        tail = rear and abs(lateral) > 0.5 * width[best] - tail_inset_m
        base = ((colour[best] * 2 + int(best_end)) * 2 + int(tail)) * grid_size
        h = height[best]
        top, bottom = _car_rows(row_slope, mount * grid, best_in * grid, h, grid_offset, grid_size - 1.0)
        for r in range(top, bottom):
            g = (mount * grid - row_slope[r] * (best_in * grid)) / h + grid_offset
            index = np.uintp(base + int(min(max(g, 0.0), grid_size - 1.0)))  # unsigned: no wraparound
            if drawn_lut[index]:
                frame[r, j, 0] = face_lut[index, np.uintp(0)]
                frame[r, j, 1] = face_lut[index, np.uintp(1)]
                frame[r, j, 2] = face_lut[index, np.uintp(2)]


@numba.njit(**JIT)
def _car_rows(
    row_slope: np.ndarray, lens: float, depth: float, height: float, offset: int, last: float
) -> tuple[int, int]:
    """The rows [top, bottom) of a column where the car `depth` / grid ahead can be drawn: its grid
    index g(r) = (lens - row_slope[r] * depth) / height + offset lies strictly between 0 and `last`.

    Outside them g is clamped to the first or the last index, which are never drawn (below the
    shadow, above the roof edge), so `paint_cars` skips them. row_slope increases down the image and
    depth and height are positive, so g never increases with r, in floating point too (rounding is
    monotonic): two binary searches find the rows, with g computed as `paint_cars` computes it.
    """
    n = row_slope.size
    lo, hi = 0, n
    while lo < hi:  # the first row with g < last
        mid = (lo + hi) // 2
        if (lens - row_slope[mid] * depth) / height + offset < last:
            hi = mid
        else:
            lo = mid + 1
    top = lo
    hi = n
    while lo < hi:  # the first row with g <= 0
        mid = (lo + hi) // 2
        if (lens - row_slope[mid] * depth) / height + offset <= 0.0:
            hi = mid
        else:
            lo = mid + 1
    return top, lo


_SLOPE_MARGIN = 1e-6
"""Widens each car's column range in `_slope_ranges`, so that rounding never culls a ray that hits."""


@numba.njit(**JIT)
def _slope_ranges(
    fwd: np.ndarray,
    left: np.ndarray,
    cos_r: np.ndarray,
    sin_r: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per car, the interval of column ray slopes (right / forward) its box can cover.

    A box wholly ahead of the lens covers exactly the slopes between those of its four corners
    (its image is their convex hull), widened by a margin; a box reaching to or behind the lens
    plane gets every slope, so `paint_cars` casts every column at it. Culling by these intervals
    only skips rays that miss the box, so the painted frame is the same as casting every ray.
    """
    k = fwd.size
    low, high = np.full(k, -np.inf), np.full(k, np.inf)
    for q in range(k):
        lo, hi = np.inf, -np.inf
        for sx in (-0.5, 0.5):
            for sy in (-0.5, 0.5):
                # The corner (sx * length, sy * width) of the box, turned by its relative yaw.
                dx, dy = sx * length[q], sy * width[q]
                corner_fwd = fwd[q] + dx * cos_r[q] - dy * sin_r[q]
                corner_left = left[q] + dx * sin_r[q] + dy * cos_r[q]
                if corner_fwd <= 0.05:
                    lo, hi = -np.inf, np.inf
                else:
                    corner = -corner_left / corner_fwd
                    lo, hi = min(lo, corner), max(hi, corner)
        low[q], high[q] = lo - _SLOPE_MARGIN * (1.0 + abs(lo)), hi + _SLOPE_MARGIN * (1.0 + abs(hi))
    return low, high


@numba.njit(**JIT)
def draw_camera_frame(
    frame: np.ndarray,
    background: np.ndarray,
    first_row: int,
    road_x: np.ndarray,
    road_y: np.ndarray,
    road_heading: np.ndarray,
    road_s: np.ndarray,
    i0: int,
    i1: int,
    cam_x: float,
    cam_y: float,
    cam_yaw: float,
    cos_yaw: float,
    sin_yaw: float,
    forward: np.ndarray,
    right: np.ndarray,
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
    car_x: np.ndarray,
    car_y: np.ndarray,
    car_yaw: np.ndarray,
    car_length: np.ndarray,
    car_width: np.ndarray,
    car_height: np.ndarray,
    car_colour: np.ndarray,
    n_colours: int,
    max_distance: float,
    max_slope: float,
    near_m: float,
    seen: np.ndarray,
    seen_colour: np.ndarray,
    slope: np.ndarray,
    row_slope: np.ndarray,
    mount: float,
    face_lut: np.ndarray,
    drawn_lut: np.ndarray,
    tail_inset_m: float,
    grid: int,
    grid_offset: int,
    grid_size: int,
    hit_car: np.ndarray,
    hit_in: np.ndarray,
    hit_out: np.ndarray,
    noise: np.ndarray,
    noise_i: int,
    noise_j: int,
) -> tuple[int, bool]:
    """A whole camera frame in one call, so that a frame releases the interpreter once: the
    background copied into `frame`, the ground (`row_frames` of road samples i0..i1, then
    `paint_ground` into rows first_row..; none if `forward` is empty), the cars (`cull_cars`, then
    `paint_cars`), and the sensor noise at (noise_i, noise_j) if `noise` is not empty.

    The same kernels as `ground.GroundPainter.draw`, `cars.CarPainter.draw` and `add_noise` called
    one after another (tests/test_camera.py holds the two ways equal). Returns the number k of cars
    in view and whether a car lower than the camera was hit: its roof is then the caller's to paint,
    and the noise, which goes on last, too (it is then not added here).
    """
    flat_frame, flat_background = frame.reshape(frame.size), background.reshape(background.size)
    # The background goes only where the ground does not: `paint_ground` writes every byte of its rows.
    row_length = frame.shape[1] * frame.shape[2]
    ground_start = first_row * row_length if forward.size else flat_frame.size
    ground_end = (first_row + forward.size) * row_length if forward.size else flat_frame.size
    for q in range(ground_start):  # flat loops: numba's frame[:] = background walks 3-D indices
        flat_frame[q] = flat_background[q]
    for q in range(ground_end, flat_frame.size):
        flat_frame[q] = flat_background[q]
    if forward.size:
        s_row, lat_row, cos_row, sin_row = row_frames(
            road_x, road_y, road_heading, road_s, i0, i1, cam_x, cam_y, cam_yaw, forward
        )
        paint_ground(
            frame, first_row, right, s_row, lat_row, cos_row, sin_row, d_min,
            inv_texel_d, inv_texel_s, across_level, first, entry_layer, entry_weight, along_level, table,
            keep, add,
        )  # fmt: skip
    k = 0
    if car_x.size:
        k = cull_cars(
            car_x, car_y, car_yaw, car_length, car_width, car_height, car_colour, n_colours, cam_x, cam_y,
            cam_yaw, cos_yaw, sin_yaw, max_distance, max_slope, near_m, seen, seen_colour,
        )  # fmt: skip
    roofs = False
    if k:
        paint_cars(
            frame, slope, row_slope, mount, seen[0, :k], seen[1, :k], seen[2, :k], seen[3, :k], seen[4, :k],
            seen[5, :k], seen_colour[:k], face_lut, drawn_lut, near_m, tail_inset_m, grid, grid_offset,
            grid_size, hit_car, hit_in, hit_out,
        )  # fmt: skip
        for j in range(hit_car.size):
            if hit_car[j] >= 0 and mount > seen[5, hit_car[j]]:
                roofs = True
    if noise.size and not roofs:
        add_noise(frame, noise, noise_i, noise_j)
    return k, roofs


@numba.njit(**JIT)
def add_noise(frame: np.ndarray, noise: np.ndarray, i: int, j: int) -> None:
    """Sensor noise, in place: each pixel of `frame` (h, w, 3) uint8 plus noise[i + r, j + c] (float32,
    C-contiguous, its last axis 1, the same for the three channels, or 3, one per channel), clipped
    to 0..255 and truncated, as `np.clip(frame + noise[i:i + h, j:j + w], 0, 255).astype(np.uint8)`
    computes it.

    The add-and-clip loop runs over one contiguous row of the frame and one of the noise, which the
    compiler vectorises. Noise with one value per pixel is first spread over the channels, row by row
    (a strided copy that costs more than the rest); the renderer's noise is stored spread
    (`FrontCameraRenderer`), so its rows are read as they are.
    """
    h, w, channels = frame.shape
    n = w * channels
    rows = frame.reshape(h, n)
    flat_noise = noise.reshape(noise.size)
    per_channel = noise.shape[2] == channels
    spread = np.empty(0 if per_channel else n, np.float32)
    for r in range(h):
        start = ((i + r) * noise.shape[1] + j) * noise.shape[2]
        if per_channel:
            source = flat_noise[start : start + n]
        else:
            for c in range(w):
                for k in range(channels):
                    spread[c * channels + k] = flat_noise[start + c]
            source = spread
        row = rows[r]
        for q in range(n):
            row[q] = to_byte(np.float32(row[q]) + source[q])
