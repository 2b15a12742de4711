"""Front-camera geometry: where the road, its markings and other cars land in the image.

Frames are rendered with `FrontCameraRenderer` on straight roads (`curviness=0`, which runs along +x
from the origin) and checked against what a pinhole camera must see, measured from the pixels:
bright marking pixels for lane lines, the changed pixels for a car, asphalt-coloured pixels for
the road. The expected positions use the pinhole formula written out here, not the renderer's.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from sim.boxes import CarBoxes
from sim.camera import CameraConfig, PinholeCamera
from sim.render.frontcam import FrontCameraRenderer
from sim.render.palette import Palette
from sim.road import Road, RoadConfig

CAMERA = CameraConfig()
W, H = CAMERA.width, CAMERA.height
FOCAL = (W / 2) / math.tan(math.radians(CAMERA.hfov_deg) / 2)


class Scene:
    """A straight road and a renderer for it."""

    def __init__(
        self,
        lanes: int = 3,
        curviness: float = 0.0,
        seed: int = 0,
        camera: CameraConfig = CAMERA,
        **road_options: float,
    ) -> None:
        self.config = RoadConfig(lanes=lanes, curviness=curviness, **road_options)
        self.road = Road(self.config, seed)
        self.renderer = FrontCameraRenderer(camera, self.config, Palette())

    def frame(self, s: float, d: float, yaw_offset: float = 0.0, cars: CarBoxes | None = None) -> np.ndarray:
        x, y, heading = (float(v) for v in self.road.pose(s, d))
        return self.renderer.render(self.road, x, y, heading + yaw_offset, s, cars)

    def car_ahead(self, s: float, distance: float, d: float, color: int = 0) -> CarBoxes:
        """A 4.6 x 1.9 x 1.5 m car along the road, its centre `distance` m ahead of `s`, at offset d."""
        x, y, heading = self.road.pose(s + distance, d)
        one = np.ones(1)
        return CarBoxes(one * x, one * y, one * heading, one * 4.6, one * 1.9, one * 1.5, np.array([color]))


def marking_runs(row: np.ndarray) -> list[float]:
    """Centres (in continuous column coordinates, pixel j spans [j, j+1]) of runs of bright marking pixels."""
    bright = row.max(axis=-1) > 180  # white and yellow paint; asphalt, shoulder and grass are darker
    cols = np.nonzero(bright)[0]
    if cols.size == 0:
        return []
    runs = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)
    return [float(r.mean()) + 0.5 for r in runs]


def nearest_each_side(runs: list[float]) -> tuple[float, float]:
    left = [c for c in runs if c < W / 2]
    right = [c for c in runs if c > W / 2]
    assert left and right, runs
    return max(left), min(right)


def pinhole_column(forward_from_lens: float, right: float, cam: CameraConfig = CAMERA) -> float:
    """Column of a ground point, from first principles: depth along the pitched optical axis."""
    pitch = math.radians(cam.pitch_deg)
    depth = forward_from_lens * math.cos(pitch) + cam.mount_height * math.sin(pitch)
    return W / 2 + FOCAL * right / depth


def ground_forward_of_row(row: int, cam: CameraConfig = CAMERA) -> float:
    """Horizontal distance from the lens to the ground seen by the centre of image row `row`."""
    pitch = math.radians(cam.pitch_deg)
    below_axis = math.atan((row + 0.5 - H / 2) / FOCAL)
    return cam.mount_height / math.tan(pitch + below_axis)


def dash_position(scene: Scene, d: float, rows: tuple[int, ...]) -> float:
    """An s where the dashed lane lines are painted under all `rows` (the dashes are 3 m in 12 m)."""
    for s in np.arange(100.0, 112.0, 0.25):
        frame = scene.frame(float(s), d)
        if all(len(marking_runs(frame[r])) >= 2 for r in rows):
            return float(s)
    raise AssertionError("no s in one dash period shows the lane lines in the bottom rows")


@functools.cache
def straight_road(lanes: int) -> Scene:
    """Straight-road scenes are shared between tests (rendering has no state)."""
    return Scene(lanes=lanes)


@functools.cache
def curvy_road() -> Scene:
    return Scene(lanes=3, curviness=1.0, seed=0, design_speed=20.0, max_lateral_accel=2.0)


BOTTOM = (H - 1, H - 3, H - 6)


@pytest.fixture
def three_lanes() -> Scene:
    return straight_road(3)


# ------------------------------------------------------------------------------- lane markings


@pytest.mark.parametrize(("lanes", "lane"), [(3, 1), (4, 1), (4, 2), (1, 0)])
def test_lane_lines_are_symmetric_when_centred(lanes: int, lane: int) -> None:
    scene = straight_road(lanes)
    d = float(scene.road.lane_centre(lane))
    s = dash_position(scene, d, BOTTOM)
    frame = scene.frame(s, d)
    for r in BOTTOM:
        left, right = nearest_each_side(marking_runs(frame[r]))
        assert abs((left + right) / 2 - W / 2) <= 0.75, (r, left, right)


def test_left_edge_line_is_yellow_and_right_edge_line_is_white() -> None:
    """The image is not mirrored: the yellow (left) edge line appears on the left."""
    scene = straight_road(1)
    frame = scene.frame(150.0, 0.0).astype(int)
    for r in BOTTOM:
        left, right = nearest_each_side(marking_runs(frame[r]))
        yellow, white = frame[r, int(left)], frame[r, int(right)]
        assert yellow[0] > 180 and yellow[2] < 120, yellow
        assert white.min() > 180, white


def test_lane_width_in_pixels_matches_the_pinhole_model(three_lanes: Scene) -> None:
    s = dash_position(three_lanes, 0.0, BOTTOM)
    frame = three_lanes.frame(s, 0.0)
    half = 0.5 * three_lanes.config.lane_width
    for r in BOTTOM:
        left, right = nearest_each_side(marking_runs(frame[r]))
        forward = ground_forward_of_row(r)
        assert right == pytest.approx(pinhole_column(forward, half), abs=1.0)
        assert left == pytest.approx(pinhole_column(forward, -half), abs=1.0)


@pytest.mark.parametrize("shift", [0.3, 0.8, -0.3, -0.8])
def test_moving_the_car_sideways_moves_the_road_the_other_way(three_lanes: Scene, shift: float) -> None:
    """Positive d is LEFT: the car moving left makes the road (and its lines) move RIGHT in the image."""
    s = dash_position(three_lanes, 0.0, BOTTOM)
    centred = three_lanes.frame(s, 0.0)
    moved = three_lanes.frame(s, shift)
    for r in BOTTOM:
        l0, r0 = nearest_each_side(marking_runs(centred[r]))
        l1, r1 = nearest_each_side(marking_runs(moved[r]))
        # Ground fixed in the world, camera moved `shift` left: the ground appears `shift` to the right.
        expected = pinhole_column(ground_forward_of_row(r), shift) - W / 2
        assert np.sign(l1 - l0) == np.sign(shift) and np.sign(r1 - r0) == np.sign(shift)
        assert l1 - l0 == pytest.approx(expected, abs=1.0)
        assert r1 - r0 == pytest.approx(expected, abs=1.0)


def asphalt_centre(row: np.ndarray) -> float:
    """Mean column of the asphalt-coloured pixels of a row (grey, slightly blue, dark)."""
    px = row.astype(int)
    grey = (np.abs(px[:, 0] - px[:, 1]) < 10) & (px[:, 2] >= px[:, 0]) & (px.max(axis=1) < 130)
    # Far pixels blend paint into the asphalt: keep the plain asphalt, the darkest of the greys.
    darkest = px.max(axis=1)[grey].min() if grey.any() else 0
    cols = np.nonzero(grey & (px.max(axis=1) <= darkest + 8))[0]
    assert cols.size > 10
    return float(cols.mean()) + 0.5


def row_at(forward_from_lens: float) -> int:
    return int(PinholeCamera(CAMERA).row_of(np.array(forward_from_lens), 0.0))


def test_road_centre_from_colour_follows_the_car_offset(three_lanes: Scene) -> None:
    rows = [row_at(f) for f in (8.0, 15.0, 30.0)]
    for d, side in ((0.0, 0), (1.5, 1), (-1.5, -1)):
        frame = three_lanes.frame(150.0, d)
        for r in rows:
            offset = asphalt_centre(frame[r]) - W / 2
            if side == 0:
                assert abs(offset) < 1.5
            else:
                assert np.sign(offset) == side and abs(offset) > 3.0


def test_turning_left_moves_the_road_right(three_lanes: Scene) -> None:
    r = row_at(30.0)
    straight = asphalt_centre(three_lanes.frame(150.0, 0.0)[r])
    left = asphalt_centre(three_lanes.frame(150.0, 0.0, yaw_offset=0.05)[r])
    right = asphalt_centre(three_lanes.frame(150.0, 0.0, yaw_offset=-0.05)[r])
    # 0.05 rad is FOCAL * tan(0.05) ~ 6 px at the centre of the image.
    assert left - straight > 4.0
    assert straight - right > 4.0


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_a_curve_ahead_bends_the_road_in_the_image(direction: float) -> None:
    """On a left curve (kappa > 0) the far road lies left of the image centre; on a right curve, right."""
    scene = curvy_road()
    road, k_max = scene.road, scene.config.max_curvature
    road.ensure_length(5000.0)
    ahead = np.arange(0, 120)  # samples 0..60 m ahead
    for i in range(0, road.s.size - 200, 10):
        k = road.kappa[i + ahead]
        if np.all(direction * k > 0.8 * k_max):
            break
    else:
        pytest.fail("no sustained curve found")
    r = row_at(40.0)
    offset = asphalt_centre(scene.frame(float(road.s[i]), 0.0)[r]) - W / 2
    # The road bends kappa * 40^2 / 2 ~ 3 m or more at 40 m: tens of pixels.
    assert -direction * offset > 5.0


# ---------------------------------------------------------------------------------------- cars


def car_mask(scene: Scene, s: float, cars: CarBoxes) -> np.ndarray:
    without = scene.frame(s, 0.0)
    with_car = scene.frame(s, 0.0, cars=cars)
    return np.any(with_car != without, axis=-1)


def test_car_ahead_is_centred_and_grows_as_it_gets_nearer(three_lanes: Scene) -> None:
    s = 150.0
    areas = []
    for distance in (40.0, 20.0, 10.0):
        mask = car_mask(three_lanes, s, three_lanes.car_ahead(s, distance, 0.0))
        rows, cols = np.nonzero(mask)
        assert mask.sum() > 0, distance
        assert float(cols.mean()) + 0.5 == pytest.approx(W / 2, abs=1.0)
        # Symmetric about the centre column, and its width is the pinhole width of a 1.9 m rear face.
        width = cols.max() - cols.min() + 1
        rear = distance - 2.3 - CAMERA.forward_offset
        assert width == pytest.approx(2 * (pinhole_column(rear, 0.95) - W / 2), abs=2.0)
        areas.append(int(mask.sum()))
    assert areas[0] < areas[1] < areas[2]
    assert areas[1] > 2.5 * areas[0] and areas[2] > 2.5 * areas[1]


def test_car_ahead_shows_its_colour(three_lanes: Scene) -> None:
    s = 150.0
    frame = three_lanes.frame(s, 0.0, cars=three_lanes.car_ahead(s, 12.0, 0.0, color=0))  # red
    mask = car_mask(three_lanes, s, three_lanes.car_ahead(s, 12.0, 0.0, color=0))
    px = frame[mask].astype(int)
    red = (px[:, 0] > 120) & (px[:, 0] > 2 * px[:, 1])
    assert red.mean() > 0.3


@pytest.mark.parametrize(("lane_offset", "side"), [(3.6, -1), (-3.6, 1)])
def test_car_in_the_next_lane_appears_on_that_side(three_lanes: Scene, lane_offset: float, side: int) -> None:
    s = 150.0
    for distance in (10.0, 20.0, 40.0):
        mask = car_mask(three_lanes, s, three_lanes.car_ahead(s, distance, lane_offset))
        cols = np.nonzero(mask)[1]
        assert cols.size > 0
        centre = float(cols.mean()) + 0.5
        assert side * (centre - W / 2) > 5.0
        # Roughly where the pinhole model puts the middle of that lane.
        expected = pinhole_column(distance - 2.3 - CAMERA.forward_offset, -lane_offset)
        assert centre == pytest.approx(expected, abs=0.25 * abs(expected - W / 2) + 2.0)


def test_car_behind_the_camera_is_not_drawn(three_lanes: Scene) -> None:
    s = 150.0
    assert not car_mask(three_lanes, s, three_lanes.car_ahead(s, -10.0, 0.0)).any()


def test_nearer_car_hides_a_farther_one(three_lanes: Scene) -> None:
    s = 150.0
    near = three_lanes.car_ahead(s, 10.0, 0.0, color=1)
    far = three_lanes.car_ahead(s, 40.0, 0.0, color=0)
    both = CarBoxes(
        *(
            np.concatenate((getattr(far, f), getattr(near, f)))
            for f in ("x", "y", "yaw", "length", "width", "height", "color")
        )
    )
    assert np.array_equal(three_lanes.frame(s, 0.0, cars=both), three_lanes.frame(s, 0.0, cars=near))
    assert not np.array_equal(three_lanes.frame(s, 0.0, cars=both), three_lanes.frame(s, 0.0, cars=far))


def test_empty_car_list_draws_nothing(three_lanes: Scene) -> None:
    assert np.array_equal(three_lanes.frame(150.0, 0.0, cars=CarBoxes.empty()), three_lanes.frame(150.0, 0.0))


# -------------------------------------------------------------------------------- sky, pixels


def first_ground_row(frame: np.ndarray) -> int:
    """First row that is not one uniform colour (the sky and the haze band are uniform per row)."""
    uniform = np.all(frame == frame[:, :1], axis=(1, 2))
    return int(np.argmin(uniform))


def test_sky_is_above_the_horizon_and_moves_with_pitch() -> None:
    low = Scene(camera=CameraConfig(pitch_deg=2.0))
    high = Scene(camera=CameraConfig(pitch_deg=12.0))
    f_low, f_high = low.frame(150.0, 0.0), high.frame(150.0, 0.0)
    top = f_low[0].astype(int)
    assert np.all(top[:, 2] > top[:, 0])  # blue sky at the top
    horizon_low = PinholeCamera(CameraConfig(pitch_deg=2.0)).horizon_row
    horizon_high = PinholeCamera(CameraConfig(pitch_deg=12.0)).horizon_row
    assert first_ground_row(f_low) >= math.floor(horizon_low)
    assert first_ground_row(f_high) >= math.floor(horizon_high)
    # Tilting the camera down moves the horizon (and the ground) up the image.
    assert first_ground_row(f_high) < first_ground_row(f_low) - 5
    # Expected horizon rows from first principles.
    assert horizon_low == pytest.approx(H / 2 - FOCAL * math.tan(math.radians(2.0)))


def test_frames_are_uint8_with_the_configured_shape() -> None:
    cam = CameraConfig(width=120, height=40)
    scene = Scene(camera=cam)
    frame = scene.frame(150.0, 0.0)
    assert frame.dtype == np.uint8 and frame.shape == (40, 120, 3)


def test_grayscale_is_the_luminance_of_the_colour_frame(three_lanes: Scene) -> None:
    gray = FrontCameraRenderer(CAMERA, three_lanes.config, Palette(), grayscale=True)
    x, y, h = (float(v) for v in three_lanes.road.pose(150.0, 0.0))
    cars = three_lanes.car_ahead(150.0, 15.0, 0.0)
    g = gray.render(three_lanes.road, x, y, h, 150.0, cars)
    c = three_lanes.renderer.render(three_lanes.road, x, y, h, 150.0, cars)
    assert g.shape == (H, W, 1) and g.dtype == np.uint8
    luminance = c.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.max(np.abs(g[..., 0] - luminance)) <= 1.0


def test_rendering_is_a_pure_function_of_the_pose(three_lanes: Scene) -> None:
    a = three_lanes.frame(321.0, 0.7, cars=three_lanes.car_ahead(321.0, 18.0, 3.6))
    three_lanes.frame(50.0, -2.0)
    b = three_lanes.frame(321.0, 0.7, cars=three_lanes.car_ahead(321.0, 18.0, 3.6))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("field", "option", "value"),
    [
        ("width", "camera_width", 0),
        ("height", "camera_height", 8),
        ("hfov_deg", "camera_hfov_deg", 170.0),
        ("mount_height", "camera_mount_height", 0.0),
        ("pitch_deg", "camera_pitch_deg", 90.0),
    ],
)
def test_bad_camera_config_raises_naming_the_option(field: str, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        PinholeCamera(CameraConfig(**{field: value}))


# ------------------------------------------------------------- fast paths match the plain maths


def plain_frenet(renderer, road, x: float, y: float, yaw: float, s_near: float):
    """Each ground pixel's (s, d) by the plain formulas of `row_frames`' docstring, in float32."""
    from sim.render.ground import row_frames

    s_row, lat_row, cos_row, sin_row = row_frames(road, x, y, yaw, s_near, renderer.forward)
    delta = renderer.right - lat_row[:, None]
    return s_row[:, None] - delta * sin_row[:, None], -(delta * cos_row[:, None])


def numpy_row_frames(road: Road, i0: int, i1: int, x: float, y: float, yaw: float, forward: np.ndarray):
    """The rows' arc length, lateral offset and cos / sin of the relative heading by numpy's formulas:
    the samples' forward distances made non-decreasing, then np.interp at each row's distance."""
    cos_y, sin_y = np.cos(yaw), np.sin(yaw)
    dx, dy = road.x[i0:i1] - x, road.y[i0:i1] - y
    fwd = np.maximum.accumulate(dx * cos_y + dy * sin_y)
    phi = np.interp(forward, fwd, road.heading[i0:i1] - yaw)
    s_row = np.interp(forward, fwd, road.s[i0:i1])
    lat_row = np.interp(forward, fwd, dx * sin_y - dy * cos_y)
    return tuple(a.astype(np.float32) for a in (s_row, lat_row, np.cos(phi), np.sin(phi)))


def test_compiled_row_frames_are_numpys_interpolation_bit_for_bit() -> None:
    """`ground_kernels.row_frames` (one search per row) gives numpy's numbers on curved roads, from
    poses off the lane and turned (sideways and backwards too, where the running maximum has long
    flat stretches), for rows exactly at samples' distances, and on windows of 1 to 5 samples with
    rows beyond both ends."""
    from sim.render.ground import road_window
    from sim.render.ground_kernels import row_frames

    rng = np.random.default_rng(0)
    forward = Scene().renderer.forward
    beyond = np.concatenate([forward, [1e6, -1e6, 0.0]])
    for seed in range(8):
        road = Road(RoadConfig(curviness=1.0), seed)
        for _ in range(20):
            s, d = rng.uniform(40.0, 1500.0), rng.uniform(-8.0, 8.0)
            x, y, heading = (float(v) for v in road.pose(s, d))
            yaw = heading + rng.choice([0.0, 1.6, 3.1]) + rng.normal(0.0, 0.3)  # sideways, backwards too
            i0, i1 = road_window(road, s, forward)
            ahead = (road.x[i0:i1] - x) * np.cos(yaw) + (road.y[i0:i1] - y) * np.sin(yaw)
            on_samples = np.maximum.accumulate(ahead)[::7]  # rows exactly at samples, plateaus too
            windows = [(i0, i1, forward), (i0, i1, on_samples)] + [(i0, i0 + n, beyond) for n in (1, 2, 3, 5)]
            for a, b, rows in windows:
                compiled = row_frames(road.x, road.y, road.heading, road.s, a, b, x, y, yaw, rows)
                for got, want in zip(compiled, numpy_row_frames(road, a, b, x, y, yaw, rows), strict=True):
                    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("randomize", [0.0, 1.0])
def test_compiled_ground_pass_matches_the_plain_sum_of_layers(randomize: float) -> None:
    """The kernel sums the same layers as `GroundPainter.reference_colour` (float64); float32
    rounding may move a pixel by one level, and a texel boundary may move a handful of pixels."""
    scene = Scene(curviness=1.0, seed=3)
    r = scene.renderer
    palette = Palette.randomised(np.random.default_rng(5), randomize)
    r.ground.set_look(palette, wear_seed=9)
    for s, d, yaw in ((60.0, 0.0, 0.0), (900.0, 2.5, 0.2), (1777.7, -4.0, -0.6)):
        x, y, h = (float(v) for v in scene.road.pose(s, d))
        compiled = np.zeros((len(r.rows), W, 3), dtype=np.uint8)
        r.ground.draw(scene.road, x, y, h + yaw, s, compiled)
        ps, pd = plain_frenet(r, scene.road, x, y, h + yaw, s)
        plain = np.clip(r.ground.reference_colour(ps, pd), 0, 255).astype(np.uint8)
        diff = np.abs(compiled.astype(int) - plain.astype(int))
        assert np.mean(diff <= 1) > 0.995 and np.mean(diff == 0) > 0.95, (s, diff.max())


def test_compiled_car_pass_matches_the_numpy_reference(make_env) -> None:
    """Bit for bit, over the traffic of 300 steps of both environments (cars near and far,
    beside and ahead, changing lanes)."""
    from reference_cars import paint_cars_reference

    from sim.render.cars import NEAR_M

    for env_id in ("camdrive/LaneKeep-v0", "camdrive/Traffic-v0"):
        env = make_env(env_id)
        env.reset(seed=4)
        env.action_space.seed(4)
        painter = env.unwrapped.obs_type.renderer.cars
        drawn = 0
        for _ in range(150):
            env.step(env.action_space.sample())
            world = env.unwrapped.world
            e, cars = world.ego, world.cars()
            cx, cy = e.x + CAMERA.forward_offset * np.cos(e.yaw), e.y + CAMERA.forward_offset * np.sin(e.yaw)
            compiled = np.zeros((H, W, 3), dtype=np.uint8)
            painter.draw(compiled, cx, cy, e.yaw, cars)
            dx, dy = cars.x - cx, cars.y - cy
            fwd = dx * np.cos(e.yaw) + dy * np.sin(e.yaw)
            left = -dx * np.sin(e.yaw) + dy * np.cos(e.yaw)
            ahead = np.flatnonzero(fwd + 5.0 > NEAR_M)
            reference = np.zeros_like(compiled)
            paint_cars_reference(
                painter, reference, fwd[ahead], left[ahead], cars.yaw[ahead] - e.yaw, cars.subset(ahead)
            )
            assert np.array_equal(compiled, reference)
            drawn += int(compiled.any(axis=-1).sum())
        assert drawn > 2_000, "the scenes must show cars for the comparison to mean anything"


def test_a_new_look_keeps_the_layout_tables_and_changes_only_the_colours() -> None:
    scene = Scene()
    ground = scene.renderer.ground
    across, default_look = ground.across, ground.look
    scene.renderer.set_look(Palette.randomised(np.random.default_rng(1), 1.0), wear_seed=3)
    assert ground.across is across and ground.look is not default_look
    assert not np.array_equal(ground.look.table, default_look.table)
    scene.renderer.set_look(Palette())
    assert ground.look is default_look  # the default look is built once and reused


def test_edge_lines_stay_solid_to_the_horizon(three_lanes: Scene) -> None:
    """Far pixels are wider than a line: each must show the line's share of its footprint, so
    the line fades with distance but never breaks into dots (a point-sampled line does)."""
    frame = three_lanes.frame(150.0, 0.0).astype(int)
    asphalt = frame[:, W // 2 - 2 : W // 2 + 2].mean(axis=1)  # the lane's centre: plain asphalt
    half = three_lanes.config.half_width - 0.25  # the right edge line's offset
    checked = 0
    for r in three_lanes.renderer.rows:
        column = pinhole_column(ground_forward_of_row(r), half)
        if not 2 <= column < W - 2 or ground_forward_of_row(r) > 150.0:
            continue
        near_line = frame[r, int(column) - 2 : int(column) + 3, 1]  # green: white paint, not grass
        assert near_line.max() - asphalt[r, 1] >= 2, (r, near_line, asphalt[r])
        checked += 1
    assert checked > 20


def test_shade_bands_change_only_between_dashes() -> None:
    """The asphalt's two shades meet in the gaps between dashes, never where a dash ends."""
    from sim.render.ground import AlongLevels, RoadLayers

    layers = RoadLayers.of(RoadConfig())
    look = AlongLevels(layers, Palette(), 0, np.array([1]))
    asphalt, first_lane_line = look.table[0, :, 2, 0], look.table[0, :, 5, 0]
    changes = np.flatnonzero(np.diff(asphalt, append=asphalt[:1]) != 0)
    assert changes.size > 0
    painted = first_lane_line != 0
    assert not np.any(painted[changes] | painted[(changes + 1) % painted.size])


def test_car_pixel_grid_follows_the_band_edges() -> None:
    """A pixel is drawn when -0.08 <= f < 1 (f = its height on the car as a fraction of the car's),
    and the grid index that flooring 100 f + offset gives names the band that f falls in."""
    from sim.render.cars import _BAND_EDGES, GRID, GRID_OFFSET, GRID_SIZE, _band_of_grid

    band = _band_of_grid()
    f = np.linspace(-0.5, 1.5, 20001)
    f = f[np.abs(f * GRID - np.round(f * GRID)) > 1e-6]  # not exactly on a grid line
    index = np.clip(f * GRID + GRID_OFFSET, 0, GRID_SIZE - 1).astype(int)
    drawn = (f >= _BAND_EDGES[0]) & (f < _BAND_EDGES[-1])
    assert np.array_equal(band[index] >= 0, drawn)
    expected = np.searchsorted(np.asarray(_BAND_EDGES), f, side="right") - 1
    assert np.array_equal(band[index][drawn], expected[drawn])
    assert set(band[band >= 0]) == set(range(len(_BAND_EDGES) - 1))


@pytest.mark.parametrize("channels", [1, 3], ids=["one value per pixel", "spread over the channels"])
def test_compiled_sensor_noise_is_the_numpy_formula_bit_for_bit(channels: int) -> None:
    from sim.render import kernels

    rng = np.random.default_rng(channels)
    for _ in range(20):
        frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        noise = rng.normal(0.0, 40.0, (2 * H, 2 * W, 1)).astype(np.float32)  # some sums leave 0..255
        noise = np.repeat(noise, channels, axis=2)
        i, j = int(rng.integers(0, H + 1)), int(rng.integers(0, W + 1))
        expected = np.clip(frame + noise[i : i + H, j : j + W], 0, 255).astype(np.uint8)
        kernels.add_noise(frame, noise, i, j)
        assert np.array_equal(frame, expected)


@pytest.mark.parametrize("randomize", [0.0, 1.0])
def test_a_camera_that_sees_no_ground_draws_sky_only(make_env, randomize: float) -> None:
    """Pitched up with a short frame, no row reaches the ground: the frame is the sky (plus the
    look's sensor noise when randomised)."""
    env = make_env("camdrive/LaneKeep-v0", camera_height=16, camera_pitch_deg=-10.0, randomize=randomize)
    env.reset(seed=0)
    renderer = env.unwrapped.obs_type.renderer
    assert renderer.rows.size == 0
    obs, *_ = env.step([0.0])
    diff = obs.astype(int) - renderer.background.astype(int)
    if randomize == 0.0:
        assert not diff.any()
    else:
        # Truncating to uint8 biases the noise by about -0.5.
        assert abs(diff.mean()) < 1.0 and diff.std() <= 1.5 * renderer.palette.noise_std + 0.5


def drawn_step_by_step(renderer: FrontCameraRenderer, world, noise_offset: tuple[int, int]) -> np.ndarray:
    """A frame drawn by the separate passes, one after another (sky, ground, cars, roofs, noise), the
    noise from `noise_offset` (row, column): the oracle of the one-call frame."""
    from sim.render import kernels

    e, off = world.ego, renderer.camera.config.forward_offset
    cx, cy = e.x + off * np.cos(e.yaw), e.y + off * np.sin(e.yaw)
    frame = renderer.background.copy()
    if renderer.rows.size:
        r0, r1 = renderer.rows[0], renderer.rows[-1] + 1
        renderer.ground.draw(world.road, cx, cy, e.yaw, world.s + off, frame[r0:r1])
    renderer.cars.draw(frame, cx, cy, e.yaw, world.cars())  # roofs included
    if renderer._noise is not None:
        kernels.add_noise(frame, renderer._noise, *noise_offset)
    return frame


@pytest.mark.parametrize(
    "options",
    [{}, {"randomize": 1.0}, {"camera_mount_height": 2.5, "randomize": 1.0}, {"camera_pitch_deg": -10.0}],
    ids=["default", "noise", "roofs_and_noise", "no_ground"],
)
@pytest.mark.slow
def test_the_one_call_frame_equals_the_passes_drawn_one_by_one(make_env, options: dict) -> None:
    """`FrontCameraRenderer.render` draws a frame in one compiled call (`kernels.draw_camera_frame`);
    bit for bit it is the ground, car, roof and noise passes called one after another."""
    roofs = 0
    for env_id in ("camdrive/LaneKeep-v0", "camdrive/Traffic-v0"):
        env = make_env(env_id, **options)
        env.reset(seed=2)
        env.action_space.seed(2)
        renderer = env.unwrapped.obs_type.renderer
        for _ in range(60):
            env.step(env.action_space.sample())
            world = env.unwrapped.world
            e = world.ego
            out = np.zeros(env.observation_space.shape, np.uint8)
            job = renderer.prepare(world.road, e.x, e.y, e.yaw, world.s, world.cars(), out=out)
            job.draw()
            assert job.finish() is out
            _, noise_i, noise_j = job._noise
            assert np.array_equal(out, drawn_step_by_step(renderer, world, (noise_i, noise_j)))
            roofs += int(renderer.cars.hit_car.max() >= 0 and renderer.camera.config.mount_height > 2.0)
    if options.get("camera_mount_height"):
        assert roofs > 10, "the scenes must show roofs for the comparison to mean anything"


def test_setting_the_look_in_use_again_restarts_its_noise() -> None:
    """`set_look` with the look already in use keeps its tables but restarts the sensor noise, so
    an episode's frames are the same whether or not the previous one had the same look."""
    scene = Scene(curviness=1.0, seed=1)
    palette = Palette.randomised(np.random.default_rng(3), 1.0)
    assert palette.noise_std > 0
    fresh = FrontCameraRenderer(CAMERA, scene.config, palette, wear_seed=7)
    reused = scene.renderer
    reused.set_look(palette, wear_seed=7)
    tables = reused.ground.look, reused.cars
    first = [scene.frame(s, 0.0) for s in (100.0, 200.0)]
    reused.set_look(palette, wear_seed=7)
    assert (reused.ground.look, reused.cars) == tables
    again = [scene.frame(s, 0.0) for s in (100.0, 200.0)]
    x, y, h = (float(v) for v in scene.road.pose(100.0, 0.0))
    assert np.array_equal(first[0], fresh.render(scene.road, x, y, h, 100.0))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])


def test_noise_offsets_are_two_draws_per_frame_from_the_wear_seed() -> None:
    """Frame k after a look is set takes its sensor noise from (row, column) = the k-th pair of
    `integers(0, height)` and `integers(0, width)` from a generator seeded with the wear seed, past
    the offsets the renderer draws ahead too; setting the look again starts them over."""
    palette = Palette.randomised(np.random.default_rng(3), 1.0)
    assert palette.noise_std > 0
    renderer = FrontCameraRenderer(CAMERA, Scene(curviness=1.0, seed=1).config, palette, wear_seed=7)
    for _ in range(2):
        rng = np.random.default_rng(7)
        for _ in range(150):
            assert renderer.noise_offset() == (int(rng.integers(0, H)), int(rng.integers(0, W)))
        renderer.set_look(palette, wear_seed=7)
