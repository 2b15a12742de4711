"""The DQN replay buffer: windows never cross episode starts, n-step returns, several envs, ring wrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.dqn.replay import ReplayBuffer


def frame(value: int) -> np.ndarray:
    """A 2x3 frame whose pixels all equal `value` (episode * 100 + t), so windows are easy to read."""
    return np.full((2, 3), value, dtype=np.uint8)


def values(windows: np.ndarray) -> np.ndarray:
    """(B, frames) pixel values of (B, frames, H, W) windows."""
    return windows[:, :, 0, 0].astype(int)


def fill(
    buf: ReplayBuffer, env: int, episode: int, steps: int, terminated: bool, reward: float = 1.0
) -> None:
    buf.start_episode(env, frame(episode * 10))
    for t in range(1, steps + 1):
        last = t == steps
        buf.add_step(
            env, t % 5, reward, terminated and last, (not terminated) and last, frame(episode * 10 + t)
        )


def test_windows_repeat_the_first_frame_of_their_episode():
    buf = ReplayBuffer(100, (2, 3), frames=4)
    fill(buf, 0, episode=1, steps=5, terminated=True)  # positions 0..5 hold frames 10..15
    fill(buf, 0, episode=2, steps=3, terminated=False)  # positions 6..9 hold frames 20..23
    w = values(buf.window(np.zeros(6, dtype=np.int64), np.array([0, 1, 2, 5, 6, 8])))
    assert w.tolist() == [
        [10, 10, 10, 10],
        [10, 10, 10, 11],
        [10, 10, 11, 12],
        [12, 13, 14, 15],
        [20, 20, 20, 20],  # not [13, 14, 15, 20]: the previous episode never leaks in
        [20, 20, 21, 22],
    ]


def test_channels_last_windows_hold_the_same_frames():
    buf = ReplayBuffer(100, (2, 3), frames=4)
    fill(buf, 0, episode=1, steps=5, terminated=True)
    fill(buf, 0, episode=2, steps=3, terminated=False)
    env, pos = np.zeros(6, dtype=np.int64), np.array([0, 1, 2, 5, 6, 8])
    plain, last = buf.window(env, pos), buf.window(env, pos, channels_last=True)
    assert last.shape == plain.shape and (last == plain).all()
    assert last.strides[1] == 1  # frame axis innermost: what torch calls channels_last
    assert torch.from_numpy(buf.sample(4).obs).is_contiguous(memory_format=torch.channels_last)


def test_sampled_transitions_stay_inside_one_episode():
    buf = ReplayBuffer(200, (2, 3), frames=4, seed=0)
    for episode in range(1, 10):
        fill(buf, 0, episode, steps=1 + episode % 4, terminated=episode % 2 == 0)
    b = buf.sample(256)
    obs, nxt = values(b.obs), values(b.next_obs)
    assert (obs // 10 == obs[:, -1:] // 10).all() and (nxt // 10 == obs[:, -1:] // 10).all()
    assert (nxt[:, -1] == obs[:, -1] + 1).all()  # 1-step: the next frame is the following one
    assert (np.diff(obs, axis=1) >= 0).all()
    # The final observation of an episode is never a transition's start.
    ends = {10 * e + 1 + e % 4 for e in range(1, 10)}
    assert not set(obs[:, -1].tolist()) & ends


def test_terminal_has_no_bootstrap_but_truncation_does():
    buf = ReplayBuffer(100, (2, 3), frames=2, gamma=0.9)
    fill(buf, 0, episode=1, steps=1, terminated=True)
    fill(buf, 0, episode=2, steps=1, terminated=False)
    b = buf.sample(64)
    first = values(b.obs)[:, -1]
    assert np.allclose(b.discounts[first == 10], 0.0)
    assert np.allclose(b.discounts[first == 20], 0.9)
    assert np.allclose(b.returns, 1.0)


def test_n_step_returns_are_summed_and_cut_at_the_episode_end():
    buf = ReplayBuffer(100, (2, 3), frames=2, n_step=3, gamma=0.5)
    buf.start_episode(0, frame(0))
    for t, r in enumerate([1.0, 2.0, 4.0, 8.0], start=1):
        buf.add_step(0, 0, r, t == 4, False, frame(t))
    b = buf.sample(200)
    start = values(b.obs)[:, -1]
    expected = {  # start frame: (return, discount, next frame)
        0: (1 + 0.5 * 2 + 0.25 * 4, 0.125, 3),
        1: (2 + 0.5 * 4 + 0.25 * 8, 0.0, 4),
        2: (4 + 0.5 * 8, 0.0, 4),
        3: (8.0, 0.0, 4),
    }
    assert set(start.tolist()) == set(expected)
    for s, (ret, disc, nxt) in expected.items():
        rows = start == s
        assert np.allclose(b.returns[rows], ret) and np.allclose(b.discounts[rows], disc)
        assert (values(b.next_obs)[rows, -1] == nxt).all()


def test_n_step_stops_at_the_newest_frame_and_bootstraps_from_it():
    buf = ReplayBuffer(100, (2, 3), frames=2, n_step=3, gamma=0.5)
    buf.start_episode(0, frame(0))
    buf.add_step(0, 0, 1.0, False, False, frame(1))  # episode still running: frame 1 has no step yet
    b = buf.sample(8)
    assert np.allclose(b.returns, 1.0) and np.allclose(b.discounts, 0.5)
    assert (values(b.next_obs)[:, -1] == 1).all()


def test_the_teachers_action_is_sampled_with_its_transition():
    buf = ReplayBuffer(200, (2, 3), frames=2, seed=0)
    buf.start_episode(0, frame(10))
    for t in range(1, 30):
        # The teacher's action from the frame of value v is v % 5; some steps have none (-1).
        label = -1 if t % 7 == 0 else (10 + t - 1) % 5
        buf.add_step(0, t % 5, 1.0, False, t == 29, frame(10 + t), expert_action=label)
    b = buf.sample(128)
    newest = values(b.obs)[:, -1]
    expected = np.where((newest - 10 + 1) % 7 == 0, -1, newest % 5)
    assert (b.expert_actions == expected).all()
    assert (b.expert_actions == -1).any() and (b.expert_actions >= 0).any()


def test_auxiliary_targets_are_sampled_with_their_frame_and_required_once_kept():
    buf = ReplayBuffer(200, (2, 3), num_envs=2, frames=2, seed=0, aux_dim=3)
    for env in (0, 1):
        buf.start_episode(env, frame(10 * env), aux=np.full(3, 10.0 * env, dtype=np.float32))
    for t in range(1, 40):  # each frame's targets are its value, in both rings
        for env in (0, 1):
            v = 10 * env + t
            buf.add_step(env, 0, 0.0, False, False, frame(v), next_aux=np.full(3, v, dtype=np.float32))
    b = buf.sample(64)
    assert b.aux is not None and b.aux.shape == (64, 3)
    assert (b.aux == values(b.obs)[:, -1, None]).all()  # the window's newest frame's
    with pytest.raises(ValueError, match="auxiliary targets"):
        buf.add_step(0, 0, 0.0, False, False, frame(1))
    assert ReplayBuffer(100, (2, 3)).aux is None


def test_envs_have_separate_rings():
    buf = ReplayBuffer(200, (2, 3), num_envs=2, frames=3, seed=1)
    buf.start_episode(0, frame(10))
    buf.start_episode(1, frame(50))
    for t in range(1, 8):  # interleaved, as a vector env delivers them
        buf.add_step(0, 0, 0.0, False, False, frame(10 + t))
        buf.add_step(1, 0, 0.0, False, False, frame(50 + t))
    obs = values(buf.sample(256).obs)
    assert ((obs < 50).all(axis=1) | (obs >= 50).all(axis=1)).all()
    assert (np.diff(obs, axis=1) <= 1).all()


def test_ring_wrap_keeps_windows_consistent():
    buf = ReplayBuffer(30, (2, 3), frames=4, seed=2)
    for episode in range(1, 25):  # far more frames than the ring holds
        fill(buf, 0, episode % 20 + 1, steps=6, terminated=False)
    b = buf.sample(500)
    obs, nxt = values(b.obs), values(b.next_obs)
    assert (obs // 10 == obs[:, -1:] // 10).all()
    assert (np.diff(obs, axis=1) >= 0).all() and (np.diff(obs, axis=1) <= 1).all()
    assert (nxt[:, -1] == obs[:, -1] + 1).all()


def test_errors():
    buf = ReplayBuffer(100, (2, 3))
    with pytest.raises(RuntimeError):
        buf.add_step(0, 0, 0.0, False, False, frame(1))
    buf.start_episode(0, frame(0))
    with pytest.raises(ValueError):
        buf.sample(4)
