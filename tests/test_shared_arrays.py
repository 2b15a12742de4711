"""The renderers' constant arrays: one copy per process of each distinct array."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import sim  # noqa: F401  (registers the environments)
from sim.render.shared_arrays import shared


def test_equal_arrays_are_handed_out_once() -> None:
    first = shared(np.arange(12, dtype=np.float32).reshape(3, 4))
    again = shared(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert again is first


def test_arrays_that_differ_in_bytes_dtype_or_shape_stay_apart() -> None:
    base = shared(np.arange(6, dtype=np.float64))
    assert shared(np.arange(6, dtype=np.float64) + 1) is not base
    assert shared(np.arange(6, dtype=np.float32)) is not base
    assert shared(np.arange(6, dtype=np.float64).reshape(2, 3)) is not base


def test_a_non_contiguous_array_is_shared_as_a_contiguous_copy() -> None:
    strided = np.arange(20, dtype=np.int32)[::2]
    out = shared(strided)
    assert out.flags.c_contiguous and np.array_equal(out, strided)


def test_sub_envs_draw_with_one_copy_of_their_camera_geometry() -> None:
    envs = gym.make_vec("camdrive/LaneKeep-v0", num_envs=3, workers=1, camera_width=64, camera_height=32)
    try:
        renderers = [env.camera.renderer for env in envs.unwrapped.envs]
        assert all(r.right is renderers[0].right for r in renderers)
        assert all(r.ground.across_level is renderers[0].ground.across_level for r in renderers)
        assert all(r.background is renderers[0].background for r in renderers)
    finally:
        envs.close()
