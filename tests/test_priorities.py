"""Prioritised replay: the sum tree, draws in proportion to priority, stale slots never drawn, and a
DQN that still learns with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_dqn import pick_config

from agent.qnet import QNet
from training.dqn.config import DQNConfig
from training.dqn.learn import gradient_step, make_optimizer, priority_beta
from training.dqn.log import Recent
from training.dqn.priorities import SumTree
from training.dqn.replay import PRIORITY_EPS, ReplayBuffer
from training.dqn.train import train


def test_sum_tree_sums_and_finds_leaves_by_mass():
    tree = SumTree(5)  # padded to 8 leaves
    tree.set(np.array([0, 2, 4]), np.array([1.0, 3.0, 2.0]))
    assert tree.total == pytest.approx(6.0)
    # Leaf 0 takes [0, 1), leaf 2 [1, 4), leaf 4 [4, 6); the zero leaves 1 and 3 take nothing.
    assert tree.find(np.array([0.0, 0.99, 1.0, 3.99, 4.0, 5.99])).tolist() == [0, 0, 2, 2, 4, 4]
    tree.set(np.array([2, 2]), np.array([5.0, 0.5]))  # a repeated leaf takes its last value
    assert tree.get(np.array([2])).tolist() == [0.5] and tree.total == pytest.approx(3.5)
    tree.set(np.array([4]), 0.0)
    assert tree.find(np.array([3.49])).tolist() == [2]
    # A draw at the total (rounding) still lands on the last non-zero leaf, never a zero one.
    assert tree.find(np.array([3.5])).tolist() == [2]
    with pytest.raises(ValueError, match="at least one leaf"):
        SumTree(0)


def fill(buf: ReplayBuffer, steps: int, env: int = 0) -> None:
    """One episode of `steps` steps whose frames hold their step number (0..steps)."""
    buf.start_episode(env, np.full((2, 3), 0, dtype=np.uint8))
    for t in range(1, steps + 1):
        buf.add_step(env, t % 5, 1.0, False, t == steps, np.full((2, 3), t, dtype=np.uint8))


def test_draws_follow_the_priorities_and_weights_undo_them():
    buf = ReplayBuffer(200, (2, 3), frames=1, seed=0, priority_alpha=1.0)
    fill(buf, 10)  # transitions at positions 0..9, all at the starting priority
    first = buf.sample(64)
    assert first.weights is not None and np.allclose(first.weights, 1.0)  # equal priorities
    # Transition 3 gets a TD error of 9, every other one 0: 9.01 against 0.01 of mass each.
    pos = np.arange(10)
    errors = np.where(pos == 3, 9.0, 0.0)
    buf.update_priorities(np.zeros(10, dtype=np.int64), pos, errors)
    drawn = np.concatenate([buf.sample(32).pos for _ in range(50)])
    share = np.mean(drawn == 3)
    expected = (9.0 + PRIORITY_EPS) / (9.0 + 10 * PRIORITY_EPS)
    assert share == pytest.approx(expected, abs=0.02)
    # Transition 3 at priority 1, the others at 0.25: with beta 1 the weights are inversely
    # proportional to the draw's probability, so 3's is a quarter of the others'.
    buf.update_priorities(np.zeros(10, dtype=np.int64), pos, np.where(pos == 3, 0.99, 0.24))
    batch = buf.sample(32, beta=1.0)
    assert batch.pos is not None and batch.weights is not None
    assert (batch.obs[:, -1, 0, 0] == batch.pos).all()  # the window of position p ends on frame p
    common, rare = batch.weights[batch.pos == 3], batch.weights[batch.pos != 3]
    assert common.size and rare.size
    assert np.allclose(rare, 1.0) and np.allclose(common, 0.25)
    # beta 0: no correction at all.
    assert np.allclose(buf.sample(32, beta=0.0).weights, 1.0)


def test_a_new_transition_starts_at_the_largest_priority():
    buf = ReplayBuffer(200, (2, 3), frames=1, seed=0, priority_alpha=0.5)
    fill(buf, 4)
    buf.update_priorities(np.zeros(4, dtype=np.int64), np.arange(4), np.array([0.0, 3.99, 0.0, 0.0]))
    assert buf.max_priority == pytest.approx(2.0)  # (3.99 + 0.01) ** 0.5
    fill(buf, 1)  # position 5 (4 is the end of the first episode)
    assert buf.priorities is not None
    assert buf.priorities.get(np.array([5])).tolist() == [pytest.approx(2.0)]
    assert buf.priorities.get(np.array([4])).tolist() == [0.0]  # an episode's last frame: no step


def test_slots_whose_windows_the_ring_overwrote_are_never_drawn():
    # 40 slots, windows of 4 frames 2 apart reach back 7 slots; after 100 frames the ring holds
    # positions 60..99, whole windows start at 66, and 99 is the newest frame (no step yet).
    buf = ReplayBuffer(40, (2, 3), frames=4, frame_stride=2, seed=1, priority_alpha=0.6)
    buf.start_episode(0, np.full((2, 3), 0, dtype=np.uint8))
    for t in range(1, 100):
        buf.add_step(0, 0, 1.0, False, False, np.full((2, 3), t % 256, dtype=np.uint8))
    drawn = np.concatenate([buf.sample(16).pos for _ in range(100)])
    assert drawn.min() >= 66 and drawn.max() <= 98
    assert set(range(66, 99)) <= set(drawn.tolist())
    # A transition that went stale after its draw keeps priority 0 when its TD error comes back.
    batch = buf.sample(16)
    for t in range(100, 110):
        buf.add_step(0, 0, 1.0, False, False, np.full((2, 3), t % 256, dtype=np.uint8))
    buf.update_priorities(batch.env, batch.pos, np.full(16, 5.0))
    stale = batch.pos < 76  # the ring now holds 70..109: whole windows start at 76
    assert buf.priorities is not None and stale.any() and (~stale).any()
    updated = (5.0 + PRIORITY_EPS) ** 0.6
    # A stale slot keeps 0, or what the newer transition written over it has; a live one is updated.
    assert not np.isclose(buf.priorities.get(batch.pos[stale] % 40), updated).any()
    assert np.allclose(buf.priorities.get(batch.pos[~stale] % 40), updated)
    drawn = np.concatenate([buf.sample(16).pos for _ in range(100)])
    assert drawn.min() >= 76


def test_uniform_replay_has_no_weights():
    buf = ReplayBuffer(200, (2, 3), frames=1, seed=0)
    fill(buf, 10)
    batch = buf.sample(8)
    assert batch.weights is None and batch.pos is None and buf.priorities is None


def test_importance_weights_scale_what_each_transition_teaches():
    """A transition of weight 0 teaches nothing (Adam moves no weight); weight 1 does; the TD errors
    returned are Q(s, a) minus the target, the priorities' input."""
    buf = ReplayBuffer(200, (24, 40), frames=4, seed=0, priority_alpha=0.5)
    buf.start_episode(0, np.zeros((24, 40), dtype=np.uint8))
    for t in range(1, 20):
        buf.add_step(0, t % 5, float(t), False, False, np.full((24, 40), 10 * t, dtype=np.uint8))
    cfg = DQNConfig(lr=1e-2)
    for weight, moves in ((0.0, False), (1.0, True)):
        torch.manual_seed(0)
        q, target = QNet(5, 4, 24, 40, 16), QNet(5, 4, 24, 40, 16)
        before = [p.detach().clone() for p in q.parameters()]
        batch = buf.sample(8)
        batch.weights = np.full(8, weight, dtype=np.float32)
        with torch.no_grad():  # Q(s, a) and the Double-DQN target, by hand
            q_taken = q(torch.from_numpy(batch.obs))[np.arange(8), batch.actions].numpy()
            nxt = torch.from_numpy(batch.next_obs)
            best = q(nxt).argmax(dim=1).numpy()
            y = batch.returns + batch.discounts * target(nxt)[np.arange(8), best].numpy()
        opt = make_optimizer(cfg, list(q.parameters()))
        errors = gradient_step(cfg, batch, q, target, opt, torch.device("cpu"), Recent())
        assert errors is not None and np.allclose(errors, q_taken - y, atol=1e-5) and np.any(errors != 0)
        moved = any(not torch.equal(a, b) for a, b in zip(before, q.parameters(), strict=True))
        assert moved is moves


def test_beta_rises_linearly_to_one_over_the_run():
    cfg = DQNConfig(steps=1000, priority_beta=0.4)
    assert priority_beta(cfg, 0) == pytest.approx(0.4)
    assert priority_beta(cfg, 500) == pytest.approx(0.7)
    assert priority_beta(cfg, 1000) == pytest.approx(1.0) and priority_beta(cfg, 5000) == pytest.approx(1.0)


@pytest.mark.slow
def test_trainer_learns_the_pick_task_with_prioritised_replay(tmp_path):
    summary = train(pick_config(tmp_path, priority_alpha=0.6, priority_beta=0.4))
    # Greedy return per 10-step episode on held-out seeds: random play gets 2 on average.
    assert summary["final_eval"]["score"] >= 7.0, summary["final_eval"]
