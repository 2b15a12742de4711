"""The speedometer option: a bar along the frame's bottom edge whose length follows the car's speed,
and nothing else in the frame changed."""

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from sim.render.gauge import FULL_SCALE_MS, GAUGE_ROWS

SMALL = {"camera_width": 100, "camera_height": 33, "lanes": 3, "traffic_cars": 6}


def _bar_length(frame: np.ndarray) -> int:
    """Pixels of the bar, checked to be a white run from the left edge and black after it."""
    bottom = frame[-GAUGE_ROWS:]
    white = int((bottom[0] == 255).all(axis=-1).sum())
    assert (bottom[:, :white] == 255).all() and (bottom[:, white:] == 0).all()
    return white


@pytest.mark.parametrize("grayscale", [False, True])
def test_the_bar_shows_the_speed_and_the_rest_of_the_frame_is_unchanged(grayscale: bool) -> None:
    plain = gym.make("camdrive/Traffic-v0", grayscale=grayscale, **SMALL)
    gauged = gym.make("camdrive/Traffic-v0", grayscale=grayscale, speedometer=True, **SMALL)
    lengths = []
    for env in (plain, gauged):
        env.reset(seed=5)
    for action in [1] * 15 + [2] * 25:  # speed up, then slow down
        frame_plain, *_ = plain.step(action)
        frame, _, terminated, truncated, info = gauged.step(action)
        assert not (terminated or truncated)
        np.testing.assert_array_equal(frame[:-GAUGE_ROWS], frame_plain[:-GAUGE_ROWS])
        length = _bar_length(frame)
        assert length == round(info["speed"] / FULL_SCALE_MS * frame.shape[1])
        lengths.append(length)
    assert max(lengths[:15]) > lengths[0] and lengths[-1] < max(lengths)


def test_speedometer_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="speedometer must be True or False"):
        gym.make("camdrive/LaneKeep-v0", speedometer=1)
