"""The DQN's auxiliary targets: what they read from scripted traffic, and that the head learns them."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import sim  # noqa: F401  (registers the envs)
from agent.qnet import QNet
from training.dqn.affordances import AFFORDANCES, CLOSING_MPS, AffordanceHead, affordances
from training.dqn.config import DQNConfig
from training.dqn.learn import gradient_step, make_aux_head, make_optimizer, world_affordances
from training.dqn.log import Recent
from training.dqn.replay import ReplayBuffer
from training.dqn.state import load_training_state


def empty_road(lane: int = 1):
    """A Traffic-v0 world with the ego in `lane` and every car 500 m behind it, and the env."""
    env = gym.make("camdrive/Traffic-v0", safety=False, obs_type="grid", action_mode="steer")
    env.reset(seed=3)
    world = env.unwrapped.world
    world.d = world.lane_centre(lane)
    world.traffic.s[:] = world.s - 500.0
    return world, env


def read(world) -> dict[str, float]:
    return dict(zip(AFFORDANCES, affordances(world).tolist(), strict=True))


def test_an_open_road_reads_free_in_every_lane():
    world, env = empty_road()
    values = read(world)
    assert values["speed"] == pytest.approx(world.ego.speed / 35.0)
    assert values["lane_offset"] == pytest.approx(0.0, abs=1e-6)
    for lane in ("band", "left", "own", "right"):
        assert values[f"{lane}_gap_ahead"] == 1.0
    for lane in ("left", "own", "right"):
        assert values[f"{lane}_gap_behind"] == 1.0 and values[f"{lane}_closing"] == 0.0
    assert values["band_closing"] == 0.0
    env.close()


def test_a_slower_car_ahead_reads_as_its_gap_and_closing_speed():
    world, env = empty_road()
    world.ego.speed = 25.0
    world.traffic.set_car(0, world.s + 30.0, 1, 17.0, desired_speed=17.0)
    values = read(world)
    gap = 30.0 - 0.5 * world.traffic.length[0] - 0.5 * world.ego.params.length
    assert values["own_gap_ahead"] == pytest.approx(gap / 60.0, rel=1e-5)
    assert values["own_closing"] == pytest.approx(8.0 / CLOSING_MPS, rel=1e-5)
    assert values["band_gap_ahead"] == values["own_gap_ahead"]
    assert values["band_closing"] == values["own_closing"]
    assert values["left_gap_ahead"] == values["right_gap_ahead"] == 1.0  # the neighbours are free
    # A car beyond 60 m does not count as closed on, however slow.
    world.traffic.set_car(0, world.s + 90.0, 1, 5.0, desired_speed=5.0)
    assert read(world)["own_closing"] == 0.0 and read(world)["own_gap_ahead"] == 1.0
    env.close()


def test_a_car_alongside_reads_as_a_negative_gap_in_its_lane_only():
    world, env = empty_road()
    world.traffic.set_car(0, world.s - 1.0, 0, world.ego.speed, desired_speed=world.ego.speed)
    values = read(world)
    assert values["left_gap_behind"] < 0.0  # its front bumper is past the ego's rear one
    assert values["own_gap_behind"] == values["right_gap_behind"] == 1.0
    assert values["own_gap_ahead"] == values["band_gap_ahead"] == 1.0
    env.close()


def test_a_lane_beyond_the_road_reads_as_blocked():
    world, env = empty_road(lane=0)
    values = read(world)
    assert (values["left_gap_ahead"], values["left_gap_behind"], values["left_closing"]) == (
        pytest.approx(-10.0 / 60.0),
        pytest.approx(-10.0 / 30.0),
        1.0,
    )
    assert values["right_gap_ahead"] == 1.0
    env.close()


def test_no_world_is_read_without_the_auxiliary_loss():
    assert world_affordances(DQNConfig(envs=3), envs=None) == [None, None, None]  # type: ignore[arg-type]
    assert make_aux_head(DQNConfig(), QNet(), torch.device("cpu")) is None


def test_the_head_learns_the_targets_through_the_q_networks_features():
    """Gradient steps on one batch with `aux_weight` drive the auxiliary loss down (the targets are a
    function of the frames here), and move the convolutions too: the features are what it shapes."""
    torch.manual_seed(0)
    cfg = DQNConfig(aux_weight=1.0, lr=1e-3, hidden=64)
    q, target = QNet(5, 4, 24, 40, 64), QNet(5, 4, 24, 40, 64)
    head = make_aux_head(cfg, q, torch.device("cpu"))
    assert isinstance(head, AffordanceHead)
    opt = make_optimizer(cfg, [*q.parameters(), *head.parameters()])
    buffer = ReplayBuffer(2_000, (24, 40), 1, 4, 1, 0.9, aux_dim=len(AFFORDANCES))
    rng = np.random.default_rng(0)

    def frame_and_targets() -> tuple[np.ndarray, np.ndarray]:
        place = int(rng.integers(0, 5))
        frame = np.full((24, 40), 30, dtype=np.uint8)
        frame[6:18, place * 8 : place * 8 + 8] = 220
        return frame, np.full(len(AFFORDANCES), place / 4.0, dtype=np.float32)

    buffer.start_episode(0, *frame_and_targets())
    for _ in range(300):
        frame, targets = frame_and_targets()
        buffer.add_step(0, 0, 0.0, False, False, frame, next_aux=targets)
    batch = buffer.sample(64)
    assert batch.aux is not None and batch.aux.shape == (64, len(AFFORDANCES))
    conv_before = q.features[0].weight.detach().clone()
    recent = Recent()
    for _ in range(150):
        gradient_step(cfg, batch, q, target, opt, torch.device("cpu"), recent, aux_head=head)
    assert recent.aux_loss[-1] < 0.2 * recent.aux_loss[0]
    assert not torch.equal(conv_before, q.features[0].weight)


class SimulatedKillError(Exception):
    """Stands in for SIGKILL between two checkpoints."""


@pytest.mark.slow
def test_a_run_with_the_head_logs_its_loss_and_resumes_with_it(tmp_path):
    """On Traffic-v0: the head's loss is logged, its weights go into the training state, and a killed
    run resumes with them (a state without them, or another aux_weight, could not be resumed)."""
    from safetensors.torch import load_file

    from training.dqn.train import train

    def config(**overrides) -> DQNConfig:
        cfg = DQNConfig(
            out=str(tmp_path / "m.safetensors"), steps=240, envs=2, buffer_size=2_000, hidden=32,
            learning_starts=60, train_every=2, checkpoint_every=120, log_every=60, eval_every=0,
            eval_runs=1, eval_seconds=1.0, episode_seconds=3.0, aux_weight=1.0, progress=False,
        )  # fmt: skip
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg

    def kill_at_150(step: int) -> None:
        if step >= 150:
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        train(config(), on_step=kill_at_150)
    saved = load_file(str(tmp_path / "m.train.safetensors"))
    head = {k for k in saved if k.startswith("aux.")}
    assert head == {"aux.net.0.weight", "aux.net.0.bias", "aux.net.2.weight", "aux.net.2.bias"}
    cfg = config()
    q, target = QNet(5, 4, 33, 100, 32), QNet(5, 4, 33, 100, 32)
    fresh = make_aux_head(cfg, q, torch.device("cpu"))
    assert fresh is not None
    opt = make_optimizer(cfg, [*q.parameters(), *fresh.parameters()])
    load_training_state(tmp_path / "m.train.safetensors", q, target, opt, np.random.default_rng(), fresh)
    assert all(torch.equal(v, saved[f"aux.{k}"]) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="aux_weight: saved 1.0, now 0.5"):
        train(config(aux_weight=0.5, resume=True))
    summary = train(config(resume=True))
    assert summary["resumed_from"] == 120 and summary["global_step"] == 240
    with open(tmp_path / "m.csv") as f:
        losses = [row["aux_loss"] for row in csv.DictReader(f)]
    assert losses and all(float(loss) > 0 for loss in losses[1:])
    resumed = load_file(str(tmp_path / "m.train.safetensors"))
    assert not torch.equal(resumed["aux.net.2.weight"], saved["aux.net.2.weight"])  # it kept learning
