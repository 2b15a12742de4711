"""Traffic behaviour: placement, IDM following, safe lane changes, recycling, determinism, queries.

The checks recompute what they need (lanes, gaps, IDM braking) from the public arrays with their
own small formulas rather than asking the Traffic object, so a wrong internal helper cannot hide
its own mistake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.collision import boxes_overlap
from sim.road import Road, RoadConfig
from sim.traffic import (
    HEIGHT_RANGE,
    LENGTH_RANGE,
    WIDTH_RANGE,
    Traffic,
    TrafficConfig,
    lane_changes,
    recycling,
)

DT = 0.1
EGO_LENGTH, EGO_WIDTH = 4.6, 1.9


def make(cars: int, lanes: int = 3, seed: int = 0, curviness: float = 0.7, **options: float) -> Traffic:
    road = Road(RoadConfig(lanes=lanes, curviness=curviness), seed)
    return Traffic(road, TrafficConfig(cars=cars, **options), np.random.default_rng(seed))


def idm_accel(cfg: TrafficConfig, v: float, v0: float, gap: float, v_lead: float) -> float:
    """Textbook IDM, written independently of sim.traffic."""
    s_star = cfg.min_gap + max(
        0.0, v * cfg.time_headway + v * (v - v_lead) / (2 * math.sqrt(cfg.max_accel * cfg.comfort_brake))
    )
    return cfg.max_accel * (1 - (v / v0) ** 4 - (s_star / gap) ** 2)


def lateral_overlap(tr: Traffic, d: float, half_width: float) -> np.ndarray:
    return np.abs(tr.d - d) < 0.5 * tr.width + half_width


def traffic_overlaps(tr: Traffic) -> np.ndarray:
    """Pairs (i, j), i < j, of traffic cars whose Frenet footprints overlap."""
    along = np.abs(tr.s[:, None] - tr.s[None, :]) < 0.5 * (tr.length[:, None] + tr.length[None, :])
    across = np.abs(tr.d[:, None] - tr.d[None, :]) < 0.5 * (tr.width[:, None] + tr.width[None, :])
    return np.argwhere(np.triu(along & across, k=1))


def in_window(tr: Traffic, ego_s: float) -> np.ndarray:
    cfg = tr.config
    return (tr.s >= ego_s - cfg.behind_m) & (tr.s <= ego_s + cfg.ahead_m)


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cars", 81),
        ("cars", 2.5),
        ("ahead_m", 5.0),
        ("behind_m", -1.0),
        ("speed_min", 0.0),
        ("speed_max", 100.0),
        ("time_headway", 0.0),
        ("min_gap", float("nan")),
        ("max_accel", 0.0),
        ("comfort_brake", 10.0),
        ("lane_change_rate", -0.1),
        ("lane_change_time", 0.1),
    ],
)
def test_config_rejects_out_of_range_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrafficConfig(**{field: value}).validate()


def test_config_rejects_speed_min_above_speed_max() -> None:
    with pytest.raises(ValueError, match="speed_min"):
        TrafficConfig(speed_min=30.0, speed_max=25.0).validate()
    assert TrafficConfig(speed_min=25.0, speed_max=25.0).validate().speed_max == 25.0


def test_making_traffic_compiles_its_rare_events_and_changes_nothing() -> None:
    """The rare events' kernels are compiled (or loaded) when the first traffic of a process is made, not
    at its first recycled car mid-episode; that call moves no car, bumps no revision and draws nothing
    from the generator."""
    road = Road(RoadConfig(lanes=3), 0)
    t = Traffic(road, TrafficConfig(cars=12), np.random.default_rng(5))
    assert recycling.recycle.signatures and lane_changes.try_lane_change.signatures
    t._compile_rare_events()  # what the first traffic of a process runs
    assert t.revision == 0
    assert t.rng.bit_generator.state == np.random.default_rng(5).bit_generator.state
    assert not t.s.any() and not t.lane.any() and (t.lane == t._from_lane).all() and not t._bits[:-1].any()


def test_traffic_validates_its_config() -> None:
    with pytest.raises(ValueError, match="cars"):
        make(cars=-1)


# ------------------------------------------------------------------------------------- reset


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_reset_spreads_cars_without_overlap_clear_of_ego_and_at_safe_speeds(seed: int) -> None:
    tr = make(cars=30, seed=seed)
    cfg = tr.config
    ego_s, ego_d, ego_v = 500.0, float(tr.road.lane_centre(1)), 25.0
    tr.reset(ego_s, ego_d, ego_v)
    assert in_window(tr, ego_s).all()
    assert len(traffic_overlaps(tr)) == 0
    assert set(tr.lane.tolist()) == {0, 1, 2}
    assert (tr.length >= LENGTH_RANGE[0]).all() and (tr.length <= LENGTH_RANGE[1]).all()
    assert (tr.width >= WIDTH_RANGE[0]).all() and (tr.width <= WIDTH_RANGE[1]).all()
    assert (tr.height >= 1.45).all() and (tr.height <= HEIGHT_RANGE[1]).all()
    assert ((tr.color >= 0) & (tr.color < 8)).all()
    assert (tr.desired_speed >= cfg.speed_min).all() and (tr.desired_speed <= cfg.speed_max).all()
    assert (tr.speed <= tr.desired_speed).all() and (tr.speed >= 0).all()
    near_ego = lateral_overlap(tr, ego_d, EGO_WIDTH / 2)
    bumper_gap = np.abs(tr.s - ego_s) - 0.5 * (tr.length + EGO_LENGTH)
    assert (bumper_gap[near_ego] >= 12.0).all()
    # Nobody starts needing more than max_accel of braking behind its leader (the ego included).
    for i in range(tr.n):
        same = (tr.lane == tr.lane[i]) & (tr.s > tr.s[i])
        gaps = tr.s[same] - 0.5 * tr.length[same] - tr.s[i] - 0.5 * tr.length[i]
        speeds = tr.speed[same]
        if near_ego[i] and ego_s > tr.s[i]:
            gaps = np.append(gaps, ego_s - EGO_LENGTH / 2 - tr.s[i] - 0.5 * tr.length[i])
            speeds = np.append(speeds, ego_v)
        if gaps.size:
            k = np.argmin(gaps)
            acc = idm_accel(cfg, tr.speed[i], tr.desired_speed[i], gaps[k], speeds[k])
            assert acc >= -cfg.max_accel - 1e-6


def test_reset_raises_when_the_window_cannot_hold_the_cars() -> None:
    tr = make(cars=80, lanes=1)
    with pytest.raises(ValueError, match="cars"):
        tr.reset(100.0, 0.0, 20.0)


# --------------------------------------------------------------------------------------- IDM


@pytest.mark.parametrize("leader_is_ego", [True, False])
def test_follower_slows_behind_slow_leader_and_never_closes_below_min_gap(leader_is_ego: bool) -> None:
    tr = make(cars=2, lanes=1, ahead_m=300.0, behind_m=300.0)
    cfg = tr.config
    ego_s, ego_v = 400.0, 10.0
    tr.reset(ego_s, 0.0, ego_v)
    if leader_is_ego:
        tr.set_car(0, ego_s - 150.0, 0, speed=30.0, desired_speed=30.0)
        tr.set_car(1, ego_s - 280.0, 0, speed=10.0, desired_speed=10.0)  # far behind, irrelevant
    else:
        tr.set_car(0, ego_s - 200.0, 0, speed=30.0, desired_speed=30.0)
        tr.set_car(1, ego_s - 60.0, 0, speed=10.0, desired_speed=10.0)
    min_gap = math.inf
    for _ in range(600):  # 60 s
        ego_s += ego_v * DT
        tr.step(DT, ego_s, 0.0, ego_v, EGO_LENGTH, EGO_WIDTH)
        lead_s, lead_len = (ego_s, EGO_LENGTH) if leader_is_ego else (tr.s[1], tr.length[1])
        gap = lead_s - 0.5 * lead_len - tr.s[0] - 0.5 * tr.length[0]
        min_gap = min(min_gap, gap)
    assert min_gap >= cfg.min_gap
    assert abs(tr.speed[0] - 10.0) < 0.5  # settled to the leader's speed
    # ... at IDM's equilibrium gap s* / sqrt(1 - (v/v0)^4), s* = s0 + v T.
    equilibrium = (cfg.min_gap + 10.0 * cfg.time_headway) / math.sqrt(1 - (10.0 / 30.0) ** 4)
    assert gap == pytest.approx(equilibrium, abs=1.0)


def test_a_car_the_ego_drives_through_does_not_emergency_brake() -> None:
    # The ego crashing through a car is the environment's business; the car must not stand on the
    # brakes once the ego is past (IDM would, at 9 m/s^2, while the gap is below min_gap).
    tr = make(cars=1, lanes=1, lane_change_rate=0.0)
    ego_s, ego_v = 300.0, 25.0
    tr.reset(ego_s, 0.0, ego_v)
    tr.set_car(0, ego_s + 20.0, 0, speed=15.0, desired_speed=15.0)
    speeds = []
    for _ in range(40):
        ego_s += ego_v * DT
        tr.step(DT, ego_s, 0.0, ego_v, EGO_LENGTH, EGO_WIDTH)
        speeds.append(tr.speed[0])
    assert ego_s - tr.s[0] > 10.0  # the ego went through and on
    assert min(speeds) > 14.0


# ---------------------------------------------------------------------------- dense traffic


def _check_new_lane_changes(tr: Traffic, prev_s: np.ndarray, prev_lane: np.ndarray, ego: tuple) -> int:
    """Assert every lane change that began this step went into a safe gap; return how many began."""
    cfg, lane_width = tr.config, tr.road.config.lane_width
    ego_s, ego_d, ego_v = ego
    moved_normally = np.abs(tr.s - prev_s) < 5.0  # recycled cars jump (and never start changing)
    started = np.flatnonzero(tr.changing_lane & (tr.lane != prev_lane))
    for i in started:
        target = tr.lane[i]
        centre = float(tr.road.lane_centre(target))
        others = ((tr.lane == target) | lateral_overlap(tr, centre, lane_width / 2)) & moved_normally
        others[i] = False
        s_all = np.append(tr.s[others], ego_s)
        len_all = np.append(tr.length[others], EGO_LENGTH)
        v_all = np.append(tr.speed[others], ego_v)
        v0_all = np.append(tr.desired_speed[others], np.inf)
        if abs(ego_d - centre) >= lane_width / 2 + EGO_WIDTH / 2:
            s_all, len_all, v_all, v0_all = s_all[:-1], len_all[:-1], v_all[:-1], v0_all[:-1]
        bumper = np.abs(s_all - tr.s[i]) - 0.5 * (len_all + tr.length[i])
        assert (bumper >= cfg.min_gap + tr.length[i] - 1e-9).all(), "lane change into a short gap"
        behind = np.flatnonzero(s_all < tr.s[i])
        if behind.size:
            f = behind[np.argmax(s_all[behind])]
            acc = idm_accel(cfg, v_all[f], v0_all[f], bumper[f], tr.speed[i])
            assert acc >= -cfg.comfort_brake - 1e-9, "new follower would brake too hard"
    return started.size


@pytest.mark.slow
def test_dense_traffic_never_overlaps_stays_in_window_and_changes_lanes_safely() -> None:
    tr = make(cars=30, lanes=3, seed=5)
    ego_s, ego_v = 100.0, 20.0
    ego_d = float(tr.road.lane_centre(1))
    tr.reset(ego_s, ego_d, ego_v)
    lane_changes = recycled = 0
    for step in range(2000):
        prev_s, prev_lane = tr.s.copy(), tr.lane.copy()
        ego_s += ego_v * DT
        tr.step(DT, ego_s, ego_d, ego_v, EGO_LENGTH, EGO_WIDTH)
        assert tr.s.shape == (30,) and tr.d.shape == (30,)
        assert in_window(tr, ego_s).all()
        assert len(traffic_overlaps(tr)) == 0, f"overlap at step {step}"
        lane_changes += _check_new_lane_changes(tr, prev_s, prev_lane, (ego_s, ego_d, ego_v))
        new = (np.abs(tr.s - prev_s) > 5.0) & lateral_overlap(tr, ego_d, EGO_WIDTH / 2)
        ego_gap = np.abs(tr.s[new] - ego_s) - 0.5 * (tr.length[new] + EGO_LENGTH)
        assert (ego_gap >= 12.0).all(), "recycled car placed too close to the ego"
        recycled += int(np.sum(np.abs(tr.s - prev_s) > 5.0))
        if step % 20 == 0:  # the world-space test the environment uses
            boxes = np.column_stack((*tr.world_pose(), tr.length, tr.width))
            for i in range(29):
                assert not boxes_overlap(boxes[i], boxes[i + 1 :]).any()
    assert lane_changes > 0
    assert recycled > 0


def test_held_up_car_overtakes_a_slow_leader() -> None:
    tr = make(cars=2, lanes=3, lane_change_rate=1.0, ahead_m=300.0)
    ego_s, ego_v = 100.0, 10.0
    ego_d = float(tr.road.lane_centre(2))
    tr.reset(ego_s, ego_d, ego_v)
    tr.set_car(0, ego_s + 40.0, 0, speed=10.0, desired_speed=30.0)
    tr.set_car(1, ego_s + 70.0, 0, speed=10.0, desired_speed=10.0)
    yaw_seen, d_seen = [], [tr.d[0]]
    for _ in range(600):
        ego_s += ego_v * DT
        tr.step(DT, ego_s, ego_d, ego_v)
        if tr.changing_lane[0] or d_seen[-1] != tr.d[0]:
            yaw_seen.append(tr.yaw_relative()[0])
            d_seen.append(tr.d[0])
        if tr.lane[0] != 0 and not tr.changing_lane[0]:
            break
    assert tr.lane[0] == 1
    assert tr.d[0] == pytest.approx(tr.road.lane_centre(1))
    assert len(d_seen) - 1 == pytest.approx(tr.config.lane_change_time / DT, abs=1)
    # Smooth profile: lateral steps start and end near zero and peak mid-way.
    steps = -np.diff(d_seen)
    assert (steps >= 0).all()
    assert steps[0] < 0.2 * steps.max() and steps[-1] < 0.2 * steps.max()
    assert np.argmax(steps) in range(len(steps) // 3, 2 * len(steps) // 3 + 1)
    assert min(yaw_seen) < -0.01  # moving right = towards smaller d = clockwise
    assert tr.yaw_relative()[0] == 0.0


def test_lane_change_waits_for_min_gap_plus_a_length_even_when_idm_would_allow_less() -> None:
    # Car 0 is held up; car 1, in the target lane just ahead, pulls away slowly: IDM alone would be
    # comfortable at once, but the change must wait until the gap is min_gap + a car length.
    tr = make(cars=3, lanes=3, lane_change_rate=10.0)
    ego_s, ego_v = 300.0, 10.0
    ego_d = float(tr.road.lane_centre(2))
    tr.reset(ego_s, ego_d, ego_v)
    tr.set_car(0, ego_s + 20.0, 0, speed=10.0, desired_speed=30.0)
    tr.set_car(2, ego_s + 20.0 + 17.0, 0, speed=10.0, desired_speed=10.0)  # the slow leader
    tr.length[:] = 4.5
    tr.set_car(1, ego_s + 20.0 + 4.5 + 4.0, 1, speed=16.0, desired_speed=16.0)  # bumper gap 4 m
    need = tr.config.min_gap + tr.length[0]
    for _ in range(30):
        ego_s += ego_v * DT
        tr.step(DT, ego_s, ego_d, ego_v)
        if tr.lane[0] == 1:
            break
    assert tr.lane[0] == 1
    assert tr.s[1] - tr.s[0] - 4.5 >= need


@pytest.mark.parametrize("blocked", [True, False])
def test_no_lane_change_while_the_target_lane_is_occupied(blocked: bool) -> None:
    tr = make(cars=3, lanes=2, lane_change_rate=5.0, ahead_m=200.0, behind_m=200.0)
    ego_s, ego_v = 300.0, 10.0
    ego_d = float(tr.road.lane_centre(1))
    tr.reset(ego_s, ego_d, ego_v)
    tr.set_car(0, ego_s - 60.0, 0, speed=10.0, desired_speed=30.0)  # held up ...
    tr.set_car(1, ego_s - 40.0, 0, speed=10.0, desired_speed=10.0)  # ... by this one
    # Alongside car 0 in the only other lane, at the same speed, or well out of the way.
    tr.set_car(2, ego_s - (60.0 if blocked else 190.0), 1, speed=10.0, desired_speed=10.0)
    changed = False
    for _ in range(300):
        ego_s += ego_v * DT
        tr.step(DT, ego_s, ego_d, ego_v)
        changed |= bool(tr.lane[0] != 0)
    assert changed != blocked


# ----------------------------------------------------------------------------------- recycling


@pytest.mark.parametrize("ego_v", [40.0, 12.0])
def test_recycling_keeps_every_car_in_the_window(ego_v: float) -> None:
    tr = make(cars=20, seed=3)
    cfg = tr.config
    ego_s, ego_d = 100.0, float(tr.road.lane_centre(1))
    tr.reset(ego_s, ego_d, ego_v)
    respawned = behind_ego = other_end = 0
    for _ in range(600):
        prev_s = tr.s.copy()
        ego_s += ego_v * DT
        tr.step(DT, ego_s, ego_d, ego_v)
        assert tr.s.size == 20 and in_window(tr, ego_s).all()
        assert len(traffic_overlaps(tr)) == 0
        new = np.flatnonzero(np.abs(tr.s - prev_s) > 5.0)
        respawned += new.size
        for i in new:
            # A car left behind reappears ahead and vice versa. Only if that end is jammed may it
            # enter from the end it left, and then it must be moving into the window.
            ahead_of_ego = tr.s[i] > ego_s
            behind_ego += int(not ahead_of_ego)
            if ahead_of_ego == (prev_s[i] > ego_s):
                other_end += 1
                assert tr.speed[i] <= ego_v if ahead_of_ego else tr.speed[i] >= ego_v
            # Never faster than is safe behind its new leader.
            ahead = (tr.lane == tr.lane[i]) & (tr.s > tr.s[i])
            if ahead.any():
                k = np.flatnonzero(ahead)[np.argmin(tr.s[ahead])]
                if k in new:  # placed after car i, checked as car i's leader's follower instead
                    continue
                gap = tr.s[k] - tr.s[i] - 0.5 * (tr.length[k] + tr.length[i])
                acc = idm_accel(cfg, tr.speed[i], tr.desired_speed[i], gap, tr.speed[k])
                assert acc >= -cfg.max_accel - 1e-6
    assert respawned > 50
    assert other_end <= 0.25 * respawned
    # Faster than all traffic: cars only reappear ahead. Slower: most reappear behind.
    assert (behind_ego == 0) if ego_v > 32.0 else (behind_ego > respawned / 2)


def test_window_is_cut_at_the_start_of_the_road() -> None:
    tr = make(cars=20, seed=6)
    ego_s = 10.0
    tr.reset(ego_s, 0.0, 5.0)
    for _ in range(100):
        assert (tr.s >= 0.0).all()
        ego_s += 0.5
        tr.step(DT, ego_s, 0.0, 5.0)
    assert (tr.s >= 0.0).all()


# ---------------------------------------------------------------------------------- determinism


def _run(seed: int) -> Traffic:
    tr = make(cars=25, seed=seed)
    ego_s, ego_d = 100.0, float(tr.road.lane_centre(1))
    tr.reset(ego_s, ego_d, 25.0)
    for _ in range(300):
        ego_s += 2.5
        tr.step(DT, ego_s, ego_d, 25.0)
    return tr


def test_same_seed_gives_identical_traffic_and_another_seed_does_not() -> None:
    a, b, c = _run(11), _run(11), _run(12)
    np.testing.assert_array_equal(a.s, b.s)
    np.testing.assert_array_equal(a.d, b.d)
    np.testing.assert_array_equal(a.speed, b.speed)
    assert not np.array_equal(a.s, c.s)


# -------------------------------------------------------------------------------------- queries


def test_occupancy_grid_marks_a_car_ahead_in_the_ego_lane() -> None:
    tr = make(cars=1)
    ego_s = 100.0
    tr.reset(ego_s, float(tr.road.lane_centre(1)), 20.0)
    tr.set_car(0, ego_s + 12.5, 1, speed=15.0)
    tr.length[0] = 4.5  # spans 10.25 .. 14.75 m ahead: the third 5 m patch ahead of the ego
    grid = tr.occupancy_grid(ego_s, 1, 1, 6, 2, 5.0, 30.0)
    assert grid.shape == (8, 3) and grid.dtype == np.float32
    expected = np.ones((8, 3), dtype=np.float32)
    expected[3, 1] = 0.5  # row 0 is 25..30 m ahead, row 3 is 10..15 m; 15 / 30 m/s
    np.testing.assert_array_equal(grid, expected)
    # From the leftmost lane, the column left of the ego is off the road and the car is to the right.
    grid = tr.occupancy_grid(ego_s, 0, 1, 6, 2, 5.0, 30.0)
    assert (grid[:, 0] == 0.0).all()
    assert grid[3, 2] == 0.5 and grid[3, 1] == 1.0


def test_leader_and_follower_measure_bumper_gaps_in_a_lateral_band() -> None:
    tr = make(cars=3)
    tr.reset(0.0, 0.0, 20.0)
    tr.set_car(0, 30.0, 1, speed=18.0)
    tr.set_car(1, -20.0, 1, speed=22.0)
    tr.set_car(2, 10.0, 0, speed=25.0)  # next lane: outside the band
    tr.length[:] = 4.0
    d1 = float(tr.road.lane_centre(1))
    assert tr.leader(2.3, d1, 0.95) == pytest.approx((30.0 - 2.0 - 2.3, 18.0))
    assert tr.follower(-2.3, d1, 0.95) == pytest.approx((-2.3 + 20.0 - 2.0, 22.0))
    assert tr.leader(40.0, d1, 0.95) == (math.inf, math.inf)
    # A wide band reaching into lane 0 sees car 2 first.
    assert tr.leader(2.3, d1 + 2.0, 0.95)[1] == 25.0


def test_cars_ahead_lists_every_car_ahead_in_a_band_not_only_the_nearest() -> None:
    """The safety brake must see a much slower car behind a faster nearer one in the lane it enters."""
    tr = make(cars=4)
    tr.reset(0.0, 0.0, 20.0)
    tr.set_car(0, 30.0, 1, speed=18.0)
    tr.set_car(1, 50.0, 2, speed=5.0)
    tr.set_car(2, -20.0, 1, speed=22.0)  # behind: not ahead
    tr.set_car(3, 40.0, 0, speed=25.0)  # lane 0: outside the band
    tr.length[:] = 4.0
    d1, d2 = (float(tr.road.lane_centre(k)) for k in (1, 2))
    gaps, speeds = tr.cars_ahead(2.3, min(d1, d2) - 0.95, max(d1, d2) + 0.95)
    order = np.argsort(gaps)
    np.testing.assert_allclose(gaps[order], [25.7, 45.7])
    np.testing.assert_allclose(speeds[order], [18.0, 5.0])
    # Same answer as `leader` for a single-lane band.
    gaps, speeds = tr.cars_ahead(2.3, d1 - 0.95, d1 + 0.95)
    np.testing.assert_allclose(gaps, [25.7])
    np.testing.assert_allclose(speeds, [18.0])
    assert tr.cars_ahead(100.0, d1 - 0.95, d1 + 0.95)[0].size == 0
    # A car changing lanes counts in its target lane with `anticipate`.
    tr.start_lane_change(3, 1)
    assert tr.changing_lane[3] and tr.lane[3] == 1
    assert 25.0 in tr.cars_ahead(2.3, d1 - 0.95, d1 + 0.95, anticipate=True)[1].tolist()
    assert 25.0 not in tr.cars_ahead(2.3, d1 - 0.95, d1 + 0.95)[1].tolist()


def test_an_ego_band_over_two_lanes_is_followed_in_both() -> None:
    """During a lane change the world reports the ego over its lane and its target lane: the
    followers of both lanes brake for it."""
    tr = make(cars=2, lanes=3, curviness=0.0, lane_change_rate=0.0)
    tr.reset(0.0, 0.0, 20.0)
    d0, d1 = (float(tr.road.lane_centre(k)) for k in (0, 1))
    ego_s = 100.0
    tr.set_car(0, ego_s - 25.0, 0, speed=28.0, desired_speed=30.0)
    tr.set_car(1, ego_s - 25.0, 1, speed=28.0, desired_speed=30.0)
    tr.step(DT, ego_s, d1, 20.0, EGO_LENGTH, EGO_WIDTH)  # ego only in lane 1
    assert tr.speed[0] > 28.0 and tr.speed[1] < 28.0
    band_lo, band_hi = min(d0, d1) - 0.5 * EGO_WIDTH, max(d0, d1) + 0.5 * EGO_WIDTH
    v0 = float(tr.speed[0])
    tr.step(DT, ego_s + 2.0, 0.5 * (band_lo + band_hi), 20.0, EGO_LENGTH, band_hi - band_lo)
    assert tr.speed[0] < v0  # lane 0's follower now brakes for the ego too


def test_an_ego_band_over_two_lanes_blocks_cut_ins_into_either() -> None:
    """A car held up beside the ego does not start a change into a lane the ego's band covers; once
    the band has left that lane, it does."""
    tr = make(cars=2, lanes=3, curviness=0.0, lane_change_rate=10.0)  # a held-up car tries every step
    tr.reset(0.0, 0.0, 20.0)
    d0, d1 = (float(tr.road.lane_centre(k)) for k in (0, 1))
    ego_s, speed = 100.0, 20.0
    tr.set_car(0, ego_s, 2, speed=speed, desired_speed=30.0)  # beside the ego, in lane 2
    tr.set_car(1, ego_s + 14.0, 2, speed=12.0, desired_speed=12.0)  # slower car just ahead of it
    band_lo, band_hi = min(d0, d1) - 0.5 * EGO_WIDTH, max(d0, d1) + 0.5 * EGO_WIDTH
    for _ in range(5):  # the ego's band covers lanes 0 and 1
        ego_s += speed * DT
        tr.step(DT, ego_s, 0.5 * (band_lo + band_hi), speed, EGO_LENGTH, band_hi - band_lo)
        assert tr.lane[0] == 2  # a change would set its lane to the target at once
    assert tr.speed[0] < speed  # it was held up, so it wanted to change
    for _ in range(5):  # the ego is in lane 0 alone: lane 1 is free
        ego_s += speed * DT
        tr.step(DT, ego_s, d0, speed, EGO_LENGTH, EGO_WIDTH)
    assert tr.lane[0] == 1


def test_world_pose_sits_on_the_road_pose() -> None:
    tr = make(cars=10, seed=4)
    tr.reset(300.0, 0.0, 20.0)
    wx, wy, wyaw = tr.world_pose()
    x, y, heading = tr.road.pose(tr.s, tr.d)
    np.testing.assert_allclose(wx, x)
    np.testing.assert_allclose(wy, y)
    np.testing.assert_allclose(wyaw, heading)  # nobody is changing lanes yet


def test_zero_cars_is_a_valid_configuration() -> None:
    tr = make(cars=0)
    tr.reset(0.0, 0.0, 20.0)
    tr.step(DT, 2.0, 0.0, 20.0)
    assert [a.shape for a in tr.world_pose()] == [(0,)] * 3
    assert (tr.occupancy_grid(2.0, 1, 1, 4, 2, 5.0, 30.0) == 1.0).all()
    assert tr.leader(0.0, 0.0, 1.0) == (math.inf, math.inf)
