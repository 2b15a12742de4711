"""Geometric view labels (NVIDIA's steering back onto the recorded path) and the imperfect driver whose
demonstrations they are meant for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.imperfect import ImperfectDriver
from sim.vehicle import Vehicle, VehicleParams
from training.bc.augment import geometric_label
from training.bc.config import BCConfig, ViewConfig, check_limits
from training.bc.from_demos import load_demos
from training.data.demo_reader import iter_episodes
from training.data.record import load_driver, record

PARAMS = VehicleParams()
LANE_KEEP = "camdrive/LaneKeep-v0"


@pytest.mark.parametrize("recorded", [0.0, 0.3, -0.5])
def test_an_undisplaced_view_keeps_the_recorded_steering(recorded):
    assert geometric_label(recorded, 20.0, PARAMS, 0.0, 0.0) == pytest.approx(recorded, abs=1e-9)


@pytest.mark.parametrize("recorded", [0.0, 0.2, -0.2])
def test_a_view_shifted_or_turned_left_is_labelled_to_the_right(recorded):
    for delta_d, delta_yaw in [(0.5, 0.0), (0.0, 0.05), (0.5, 0.05)]:
        assert geometric_label(recorded, 20.0, PARAMS, delta_d, delta_yaw) > recorded + 0.02
        assert geometric_label(recorded, 20.0, PARAMS, -delta_d, -delta_yaw) < recorded - 0.02


def test_larger_displacements_ask_for_more_until_full_lock():
    shifts = [geometric_label(0.0, 20.0, PARAMS, d, 0.0) for d in np.linspace(0.0, 20.0, 41)]
    assert all(b >= a for a, b in zip(shifts, shifts[1:], strict=False))
    assert shifts[-1] == 1.0 and geometric_label(0.0, 20.0, PARAMS, -20.0, 0.0) == -1.0
    turns = [geometric_label(0.0, 20.0, PARAMS, 0.0, y) for y in np.linspace(0.0, 0.5, 26)]
    assert all(b >= a for a, b in zip(turns, turns[1:], strict=False)) and turns[-1] == 1.0


def test_small_displacements_follow_the_pure_pursuit_formula():
    """k = k0 - 2 delta_d / D^2 - 2 delta_yaw / D with D = v T (augment's module docstring)."""
    v, t, delta_d, delta_yaw = 20.0, 2.0, 0.2, 0.01
    dist, wheel_max = v * t, PARAMS.max_wheel_angle(v)
    k = -2.0 * delta_d / dist**2 - 2.0 * delta_yaw / dist
    expected = -math.atan(PARAMS.wheelbase * k) / wheel_max
    assert geometric_label(0.0, v, PARAMS, delta_d, delta_yaw, t) == pytest.approx(expected, rel=0.02)
    # A shorter return time asks for more.
    assert geometric_label(0.0, v, PARAMS, delta_d, 0.0, 1.0) > geometric_label(
        0.0, v, PARAMS, delta_d, 0.0, t
    )


def test_steering_by_the_labels_brings_a_displaced_car_back_onto_the_path():
    """Closed loop on the vehicle model: a car 1 m left of a straight recorded path (recorded steering
    0), steered each 0.1 s by the label of its own displacement, is back within 0.15 m in 8 s and
    never crosses to the other side by more than 0.15 m."""
    car = Vehicle(PARAMS)
    car.reset(0.0, 1.0, 0.0, 20.0)
    lateral = []
    for _ in range(80):
        car.step(geometric_label(0.0, car.speed, PARAMS, car.y, car.yaw), 0.0, 0.02, substeps=5)
        lateral.append(car.y)
    assert abs(lateral[-1]) < 0.15 and min(lateral) > -0.15
    assert abs(lateral[20]) < 0.9  # it is on its way back after 2 s


def test_view_labels_are_expert_or_geometric():
    assert ViewConfig().labels == "expert"
    with pytest.raises(ValueError, match="expert, geometric"):
        ViewConfig(labels="human")


def test_dagger_is_refused_with_geometric_labels(tmp_path):
    cfg = BCConfig(out=tmp_path / "m.safetensors", dagger=1, views=ViewConfig(labels="geometric"))
    assert "--view-labels geometric" in (check_limits(cfg) or "")
    assert check_limits(BCConfig(out=tmp_path / "m.safetensors", dagger=1)) is None


def test_a_return_time_of_zero_is_refused(tmp_path):
    cfg = BCConfig(out=tmp_path / "m.safetensors", views=ViewConfig(labels="geometric", return_s=0.0))
    assert "--view-return-s must be above 0" in (check_limits(cfg) or "")
    assert check_limits(BCConfig(out=tmp_path / "m.safetensors", views=ViewConfig(return_s=1.0))) is None


@pytest.fixture(scope="module")
def imperfect_demo(tmp_path_factory):
    """One 6 s LaneKeep-v0 episode recorded with `--driver imperfect`."""
    out = tmp_path_factory.mktemp("imperfect")
    record(LANE_KEEP, {}, load_driver("imperfect"), 1, out, seed=9, steps_per_episode=60, progress=False)
    return out


def test_imperfect_demos_store_only_its_actions(imperfect_demo):
    (ep,) = list(iter_episodes(imperfect_demo))
    assert ep.meta["driver"] == "imperfect" and ep.labels is None and ep.steps == 60


def _centre_and_view_labels(data_dir, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the car's own frames and of one undisplaced view per state, loaded as `train bc` does."""
    views = ViewConfig(max_shift_m=0.0, max_yaw_deg=0.0, labels=labels)
    cfg = BCConfig(out=data_dir / "m.safetensors", data=data_dir, augment=1, randomize=0.0, views=views)
    from training.bc.data import Dataset

    data = Dataset()
    load_demos(cfg, data, log=lambda msg: None)
    (lab,) = data.labels
    return lab[:60], lab[60:]


def test_geometric_views_take_the_recorded_steering_and_expert_views_do_not(imperfect_demo):
    (ep,) = list(iter_episodes(imperfect_demo))
    actions = np.asarray(ep.actions, dtype=np.float32).reshape(-1)
    centre, views = _centre_and_view_labels(imperfect_demo, "geometric")
    np.testing.assert_allclose(centre, actions)
    np.testing.assert_allclose(views, actions, atol=1e-6)  # zero displacement: the recorded steering
    centre, views = _centre_and_view_labels(imperfect_demo, "expert")
    np.testing.assert_allclose(centre, actions)  # the driver's own steering in both modes
    assert np.abs(views - actions).max() > 0.1, np.abs(views - actions).max()  # the expert's steering


def _drive(make_env, seed: int, steps: int) -> tuple[list[float], list[bool], list[float]]:
    env = make_env(LANE_KEEP)
    driver = ImperfectDriver()
    env.reset(seed=seed)
    driver.reset(env)
    actions, lapses, offsets = [], [], []
    for _ in range(steps):
        a = driver.act(None, {})
        actions.append(float(a[0]))
        lapses.append(driver.in_lapse)
        _, _, terminated, _, info = env.step(a)
        offsets.append(info["lateral_offset"])
        assert not terminated
    return actions, lapses, offsets


def test_imperfect_driver_steers_by_keys_has_lapses_stays_on_the_road_and_repeats(make_env):
    actions, lapses, offsets = _drive(make_env, 11, 300)
    steps = np.abs(np.diff([0.0, *actions]))
    # The keyboard ramp: at most 0.2 a step moving out (2.0/s), 0.3 returning (3.0/s), at 10 Hz.
    assert steps.max() <= 0.3 + 1e-6 and np.mean(steps > 0.05) > 0.3
    assert 0.02 < np.mean(lapses) < 0.4
    assert max(abs(o) for o in offsets) < 1.8  # on the road, if not always in the lane
    assert _drive(make_env, 11, 300)[0] == actions
    assert _drive(make_env, 12, 300)[0] != actions


def test_the_command_lines_return_time_is_the_labels_default():
    from training import cli
    from training.bc.config import RETURN_S

    args = cli.build_parser().parse_args(["train", "bc", "--out", "m.safetensors"])
    assert args.view_return_s == RETURN_S
