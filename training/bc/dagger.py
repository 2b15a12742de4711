"""DAgger (`camdrive train bc --dagger K`): the learner drives, the expert labels what it visits.

Behaviour cloning learns from the states the expert visits; the learner's own mistakes take it to
states the expert never showed. Each round drives LaneKeep-v0 with the learner on the round's own
training seeds (`training.bc.config.dagger_seeds`), the expert taking over beyond INTERVENTION_M, as a
safety driver would, until the car is back near the centre; every visited state is labelled with the
expert's steering (plus the extra views), added to the data, and the network retrained from its
current weights. A round costs about as much as the first training, so DAgger is off by default.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agent.expert import Expert
from agent.pilotnet import PilotNet
from sim import seeding
from sim.envs.base import unwrap
from training.bc.augment import LookPool, render_state
from training.bc.config import ENV_ID, BCConfig, ViewConfig, dagger_seeds
from training.bc.data import Dataset, data_summary, label_state
from training.bc.progress import progress
from training.bc.trainer import Trainer
from training.common.tensorboard_log import TensorBoardLog

INTERVENTION_M = 1.0
"""|lateral offset| beyond which the safety driver (the expert) takes over while collecting DAgger data."""
HANDBACK_M = 0.3
"""|lateral offset| below which the expert hands the car back to the learner."""


def collect_dagger_episode(
    model: PilotNet,
    env: gym.Env,
    seed: int,
    augment: int,
    views: ViewConfig,
    looks: LookPool | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int, float]:
    """Drive one episode with the learner, the expert labelling every state and taking over past 1 m.

    With `looks`, the learner sees the whole episode in one look picked for it (so its mistakes
    under unfamiliar looks are visited and labelled) and the labelled frames get looks per frame.
    The learner runs on its own device; the frames it sees are moved there. Returns (frames, labels,
    states, interventions, metres).
    """
    u = unwrap(env)
    device = next(model.parameters()).device
    rng = seeding.stream(seed, seeding.BC_DAGGER_EPISODE)
    obs, info = env.reset(seed=seed)
    expert = Expert()
    expert.reset(env)
    model.eval()
    picker = looks.picker(seed, seeding.BC_DAGGER_LOOKS) if looks is not None else None
    eyes = picker.pick()[0] if picker is not None and picker.enabled else None
    frames: list[np.ndarray]
    labels: list[np.ndarray]
    frames, labels = [], []
    states, interventions, expert_driving = 0, 0, False
    while True:
        seen = obs
        if eyes is not None:
            seen = render_state(eyes, u.world)
        clean = label_state(obs, u, expert, augment, views, rng, frames, labels, picker)
        states += 1
        offset = abs(info["lateral_offset"]) if info["lane"] == expert.target_lane else math.inf
        if not expert_driving and offset > INTERVENTION_M:
            expert_driving, interventions = True, interventions + 1
        elif expert_driving and offset < HANDBACK_M:
            expert_driving = False
        if expert_driving:
            steer = clean
        else:
            with torch.inference_mode():
                steer = float(model(torch.from_numpy(seen)[None].to(device))[0, 0])
        obs, _, terminated, truncated, info = env.step(np.array([np.clip(steer, -1, 1)], dtype=np.float32))
        if terminated or truncated:
            break
    return np.concatenate(frames), np.concatenate(labels), states, interventions, float(info["distance"])


def run_dagger(
    cfg: BCConfig,
    trainer: Trainer,
    data: Dataset,
    val_mask: np.ndarray,
    looks: LookPool,
    rng: np.random.Generator,
    tb: TensorBoardLog,
    metrics: dict[str, Any],
    log: Any,
) -> None:
    """`cfg.dagger` rounds of collecting with `trainer.model` and retraining it on all the data.

    New episodes all go to training (`val_mask` grows with False): validation stays on the expert's
    episodes. Each round's figures go to `metrics["dagger_rounds"]` and TensorBoard; no round starts
    after the run's time cap. The caller must hold no concatenated copy of the data (`Dataset.arrays`),
    which each round makes anew.
    """
    model = trainer.model
    env = gym.make(ENV_ID, **cfg.env_options())
    try:
        for r in range(1, cfg.dagger + 1):
            if trainer.stopped_by_time_cap or time.perf_counter() > trainer.deadline:
                trainer.stopped_by_time_cap = True
                break
            t_round = time.perf_counter()
            interventions, metres, states = 0, 0.0, 0
            for seed in progress(dagger_seeds(cfg.seed, r, cfg.dagger_episodes), cfg.progress, f"DAgger {r}"):
                f, lab, n, k, m = collect_dagger_episode(model, env, seed, cfg.augment, cfg.views, looks)
                data.add_episode(f, lab, f"dagger{r}", n)
                interventions, metres, states = interventions + k, metres + m, states + n
            drive_s = time.perf_counter() - t_round
            val_mask = np.concatenate([val_mask, np.zeros(data.episodes - len(val_mask), dtype=bool)])
            frames, labels, episode = data.arrays()
            train_idx = np.flatnonzero(~val_mask[episode])
            val_idx = np.flatnonzero(val_mask[episode])
            trainer.best_val = math.inf  # a round's result is adopted: expert-only validation
            trainer.fit(frames, labels, train_idx, val_idx, cfg.dagger_epochs, f"dagger{r}", rng)
            round_info = {
                "round": r,
                "learner_interventions": interventions,
                "learner_km": metres / 1000,
                "states_added": states,
                "frames_total": len(frames),
                "val_loss": trainer.best_val,
                "seconds": time.perf_counter() - t_round,
            }
            del frames, labels, episode
            metrics["dagger_rounds"].append(round_info)
            tb.scalars(
                {
                    "dagger/interventions": interventions,
                    "dagger/learner_km": metres / 1000,
                    "dagger/val_loss": trainer.best_val,
                    "perf/dagger_env_steps_per_s": states / max(drive_s, 1e-9),
                },
                r,
            )
            metrics["data"] = data_summary(data, val_mask, train_idx, val_idx)
            log(
                f"DAgger round {r}: learner drove {metres / 1000:.1f} km with {interventions} "
                f"interventions; {round_info['frames_total']} frames; val MSE {trainer.best_val:.5f}"
            )
    finally:
        env.close()
