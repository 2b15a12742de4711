"""The parts the DQN loop is made of: the networks and optimiser, the envs and teachers it collects
with, the exploration schedule, and one gradient step (Double-DQN target, Huber loss, the optional
large-margin loss toward a teacher, clipped gradients).

Each is small enough to test on its own (tests/test_dqn.py computes the target and the margin loss by
hand); `training.dqn.train` strings them together.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import sim  # noqa: F401  (registers the envs)
from agent.expert import Expert
from agent.oracle import Oracle
from agent.qnet import QNet
from sim.envs.base import unwrap
from sim.safety import in_danger
from training.dqn.affordances import AffordanceHead, affordance_loss, affordances
from training.dqn.config import DQNConfig
from training.dqn.log import Recent
from training.dqn.replay import Batch
from training.dqn.state import initial_weights


def epsilon(cfg: DQNConfig, step: int) -> float:
    """Linear schedule from eps_start to eps_end over eps_fraction * steps, then flat."""
    span = max(1.0, cfg.eps_fraction * cfg.steps)
    return cfg.eps_end + (cfg.eps_start - cfg.eps_end) * max(0.0, 1.0 - step / span)


def priority_beta(cfg: DQNConfig, step: int) -> float:
    """Prioritised replay's importance exponent: linear from `priority_beta` at step 0 to 1 at the
    run's last step (Schaul et al.: the bias matters most as the network converges)."""
    return cfg.priority_beta + (1.0 - cfg.priority_beta) * min(1.0, step / max(1, cfg.steps))


def double_dqn_target(
    returns: torch.Tensor, discounts: torch.Tensor, next_q_online: torch.Tensor, next_q_target: torch.Tensor
) -> torch.Tensor:
    """returns + discounts * Q_target(s', argmax_a Q_online(s', a)) (van Hasselt et al. 2016)."""
    best = next_q_online.argmax(dim=1, keepdim=True)
    return returns + discounts * next_q_target.gather(1, best).squeeze(1)


def large_margin_loss(
    q_all: torch.Tensor, expert_actions: torch.Tensor, margin: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """DQfD's supervised loss: the mean over states of max_a [Q(s, a) + margin * (a != a_E)] - Q(s, a_E),
    each state's term times `weights` (one per state) if given.

    Zero once the expert's action a_E leads every other action by the margin; unlike a cross-entropy it
    leaves the Q values themselves to the TD loss, so they stay returns."""
    margins = torch.full_like(q_all, margin)
    margins.scatter_(1, expert_actions[:, None], 0.0)
    q_expert = q_all.gather(1, expert_actions[:, None]).squeeze(1)
    per_state = (q_all + margins).max(dim=1).values - q_expert
    return per_state.mean() if weights is None else (weights * per_state).mean()


def balancing_weights(actions: np.ndarray, label_counts: np.ndarray, power: float = 1.0) -> np.ndarray:
    """A weight per labelled state, its teacher action's count to the power -`power`, scaled so that
    the weights of all the labels `label_counts` counts (per action) average 1. Power 1 gives every
    teacher action the same total weight; 0 weighs every label alike. An action never labelled weighs 1.

    Why: braking is a small share of a teacher's actions (a few %), so an unweighted loss is met by
    never braking, and braking is where the safety is. But at power 1 a label of an action the teacher
    almost never takes (noop, braking: under 1 %) outweighs a label to accelerate a hundredfold, and a
    network so taught holds or sheds speed on an open road; a power below 1 softens that."""
    counts = label_counts.astype(np.float64)
    present = counts > 0
    per_action = np.ones_like(counts)
    scale = np.sum(counts[present] ** (1.0 - power))
    per_action[present] = counts.sum() / (scale * counts[present] ** power)
    return per_action[actions].astype(np.float32)


def make_teachers(cfg: DQNConfig, envs: gym.vector.VectorEnv) -> list[Expert | Oracle]:
    """One privileged teacher per training env (none unless `cfg.uses_teacher()`): the expert, or the
    oracle driving its plans with the expert's controllers (`cfg.expert_teacher`). Either answers each
    state on its own (`sigma_delta=False`), since the network, not the teacher, takes the actions."""
    if not cfg.uses_teacher():
        return []
    band = cfg.expert_speed_band or None
    teachers: list[Expert | Oracle]
    if cfg.expert_teacher == "oracle":
        teachers = [Oracle(sigma_delta=False, speed_band=band) for _ in range(cfg.envs)]
    else:
        headway = cfg.expert_headway_s
        teachers = [Expert(headway_s=headway, sigma_delta=False, speed_band=band) for _ in range(cfg.envs)]
    # Teachers need vector sync (DQNConfig.check): envs is a SyncVectorEnv.
    for teacher, env in zip(teachers, cast(gym.vector.SyncVectorEnv, envs).envs, strict=True):
        teacher.reset(env)
    return teachers


def endangered_envs(cfg: DQNConfig, envs: gym.vector.VectorEnv) -> np.ndarray:
    """Per training env, 1.0 if its world is where the safety system would be called on
    (`sim.safety.in_danger`, the steer mode's assist included), else 0.0; all zeros, and no world
    read, without `cfg.danger_penalty`."""
    if not cfg.danger_penalty:
        return np.zeros(cfg.envs)
    steer = cfg.action_mode == "steer"
    # danger_penalty needs vector sync (DQNConfig.check): envs is a SyncVectorEnv.
    return np.array(
        [float(in_danger(unwrap(env).world, steer)) for env in cast(gym.vector.SyncVectorEnv, envs).envs]
    )


def world_affordances(cfg: DQNConfig, envs: gym.vector.VectorEnv) -> list[np.ndarray | None]:
    """Per training env, the auxiliary targets of its world's present state
    (`training.dqn.affordances`); Nones, and no world read, without `cfg.aux_weight`."""
    if not cfg.aux_weight:
        return [None] * cfg.envs
    # aux_weight needs vector sync (DQNConfig.check): envs is a SyncVectorEnv.
    return [affordances(unwrap(env).world) for env in cast(gym.vector.SyncVectorEnv, envs).envs]


def make_aux_head(cfg: DQNConfig, q: QNet, device: torch.device) -> AffordanceHead | None:
    """The auxiliary head on `q`'s features (seeded after the networks, so a run without it draws
    the same weights as before it existed); None without `cfg.aux_weight`."""
    return AffordanceHead(q.n_features, cfg.hidden).to(device) if cfg.aux_weight else None


def make_optimizer(cfg: DQNConfig, params: list[torch.nn.Parameter]) -> torch.optim.Adam:
    """Adam with the fused CPU kernel when torch has it (2.4+; camdrive allows 2.2).

    Why fused: one pass over all parameters instead of a loop of small per-tensor ops, a few times
    faster than torch's CPU default and `foreach=True` (measured in assets/dqn/MODEL_CARD.md).
    """
    try:
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
    except RuntimeError:  # older torch: fused Adam is CUDA-only
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)


def make_vector_env(cfg: DQNConfig) -> gym.vector.VectorEnv:
    options = {**cfg.training_env_options()}
    if cfg.env == "traffic":
        options["episode_seconds"] = cfg.episode_seconds
    fns = [lambda: gym.make(cfg.env_id(), **options) for _ in range(cfg.envs)]
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if cfg.vector == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def build_networks(cfg: DQNConfig, device: torch.device) -> tuple[QNet, QNet]:
    """The online and target networks for the env's frames and actions, initialised on the CPU (the
    same starting weights on every device, from `cfg.init_from` if given) and moved to `device`."""
    probe = gym.make(cfg.env_id(), **cfg.env_options())
    h, w = cast(tuple[int, ...], probe.observation_space.shape)[:2]
    n_actions = int(cast(gym.spaces.Discrete, probe.action_space).n)
    probe.close()
    network: dict[str, Any] = dict(
        n_actions=n_actions, frames=cfg.frames, height=h, width=w, hidden=cfg.hidden
    )
    network.update(dueling=cfg.dueling, frame_stride=cfg.frame_stride)
    q = QNet(**network).to(device)
    target = QNet(**network).to(device)
    if cfg.init_from:
        q.load_state_dict(initial_weights(cfg, q))
    target.load_state_dict(q.state_dict())
    return q, target


def gradient_step(
    cfg: DQNConfig,
    batch: Batch,
    q: QNet,
    target: QNet,
    opt: torch.optim.Optimizer,
    device: torch.device,
    recent: Recent,
    label_counts: np.ndarray | None = None,
    aux_head: AffordanceHead | None = None,
) -> np.ndarray | None:
    """One Adam step on a replay batch (numpy in CPU memory; only the batch goes to the device): the
    Huber loss against the Double-DQN target (each transition's weighted by `batch.weights` when
    the draw was prioritised), plus `cfg.expert_weight` times the large-margin loss on
    the states the teacher labelled, balanced over the teacher's actions by `label_counts` (how often
    the replay holds each) with `cfg.expert_balance`; the losses go to `recent`. For a prioritised draw,
    returns the batch's TD errors, Q(s, a) minus the target, before the step (the transitions' new
    priorities); for a uniform one None, so that no run pays a copy off the device it does not use.
    With `aux_head`, `cfg.aux_weight` times its loss on the batch's auxiliary targets is added, and its
    weights take the same step (`opt` holds them)."""
    obs_t, actions_t, returns_t, discounts_t, next_obs_t = (
        torch.from_numpy(a).to(device)
        for a in (batch.obs, batch.actions, batch.returns, batch.discounts, batch.next_obs)
    )
    with torch.no_grad():
        next_x = QNet.scale(next_obs_t)  # scaled once, read by both networks
        y = double_dqn_target(returns_t, discounts_t, q.forward_scaled(next_x), target.forward_scaled(next_x))
    features = q.features(QNet.scale(obs_t))
    q_all = q.values(features)
    q_taken = q_all.gather(1, actions_t[:, None]).squeeze(1)
    if batch.weights is None:
        td_loss = loss = F.smooth_l1_loss(q_taken, y)
    else:  # a prioritised draw: each transition's loss times its importance weight
        weights_t = torch.from_numpy(batch.weights).to(device)
        td_loss = loss = (weights_t * F.smooth_l1_loss(q_taken, y, reduction="none")).mean()
    labelled = np.flatnonzero(batch.expert_actions >= 0)  # chosen on the CPU: no device sync per step
    if cfg.expert_weight and labelled.size:
        expert_t = torch.from_numpy(batch.expert_actions[labelled]).to(device)
        q_labelled = q_all[torch.from_numpy(labelled).to(device)]
        weights = None
        if cfg.expert_balance and label_counts is not None:
            balance = balancing_weights(
                batch.expert_actions[labelled], label_counts, cfg.expert_balance_power
            )
            weights = torch.from_numpy(balance).to(device)
        margin_loss = large_margin_loss(q_labelled, expert_t, cfg.expert_margin, weights)
        loss = td_loss + cfg.expert_weight * margin_loss
        recent.expert_agreement.append((q_labelled.argmax(dim=1) == expert_t).float().mean().item())
    params = list(q.parameters())
    if aux_head is not None and batch.aux is not None:
        aux_loss = affordance_loss(aux_head(features), torch.from_numpy(batch.aux).to(device))
        loss = loss + cfg.aux_weight * aux_loss
        recent.aux_loss.append(aux_loss.item())
        params += list(aux_head.parameters())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    recent.td_loss.append(td_loss.item())
    recent.mean_q.append(q_taken.mean().item())
    if batch.weights is None:
        return None
    return (q_taken - y).detach().cpu().numpy()
