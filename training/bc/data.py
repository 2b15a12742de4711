"""The data behaviour cloning learns from: frames and steering labels grouped by episode (`Dataset`),
and the expert's noisy driving that fills it when there is no `--data`.

Without `--data`, the privileged expert drives LaneKeep-v0 on the run's training seeds
(`training.bc.config`). The executed steering is the expert's plus smooth (Ornstein-Uhlenbeck) noise, so
the car drifts and the expert's clean labels show how to recover (DART-style). Every visited state
gives the frame the car sees, labelled with the expert's steering, plus `--augment` extra views from
displaced poses (`training.bc.augment`), each frame drawn in a training look of its own.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from agent.expert import Expert
from agent.pilotnet import INPUT_SHAPE
from sim import seeding  # importing sim registers the envs
from sim.envs.base import CamDriveEnv, unwrap
from training.bc.augment import (
    LookPicker,
    LookPool,
    render_state,
    render_views,
    target_offset,
    view_displacements,
)
from training.bc.config import ENV_ID, BCConfig, ViewConfig, expert_seeds
from training.bc.progress import progress


class Dataset:
    """Frames and steering labels in memory, grouped by episode (the unit of the train/val split).

    Each chunk is one episode's frames (uint8, N x 66 x 200 x 3) and labels (float32); `arrays()`
    concatenates them once per training stage. 40 KB a frame: 60k frames are 2.4 GB.
    """

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.sources: list[str] = []
        """'expert', 'demo' or 'dagger<r>' per episode."""
        self.states = 0

    def add_episode(self, frames: np.ndarray, labels: np.ndarray, source: str, states: int) -> None:
        if frames.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"frames must be {INPUT_SHAPE}, got {frames.shape[1:]}")
        if len(frames) != len(labels):
            raise ValueError(f"{len(frames)} frames but {len(labels)} labels")
        self.frames.append(frames)
        self.labels.append(labels.astype(np.float32))
        self.sources.append(source)
        self.states += states

    @property
    def episodes(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> int:
        return sum(len(f) for f in self.frames)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames, labels, episode index per frame)."""
        episode = np.concatenate([np.full(len(f), i, dtype=np.int32) for i, f in enumerate(self.frames)])
        return np.concatenate(self.frames), np.concatenate(self.labels), episode


class OUNoise:
    """Ornstein-Uhlenbeck steering noise: stationary std `sigma`, correlation time `tau` seconds.

    Smooth noise makes the car drift over a second or two, like a distracted driver, so the expert's
    labels include real recoveries; white noise of the same size mostly averages out in the steering
    rate limit.
    """

    def __init__(self, sigma: float, tau: float, dt: float, rng: np.random.Generator) -> None:
        self.a = math.exp(-dt / tau)
        self.b = sigma * math.sqrt(1.0 - self.a * self.a)
        self.rng = rng
        self.value = rng.normal(0.0, sigma) if sigma > 0 else 0.0

    def __call__(self) -> float:
        self.value = self.a * self.value + self.b * self.rng.normal()
        return self.value


def extra_views(
    world: Any,
    renderer: Any,
    lane: int,
    k: int,
    cfg: ViewConfig,
    rng: np.random.Generator,
    looks: LookPicker | None = None,
    recorded_steer: float | None = None,
):
    """`k` extra views of the current state: in `renderer`'s look, or each in a look picked from `looks`.

    Labelled as `cfg.labels` says: the expert's controller toward `lane`'s centre, or the geometric
    label from `recorded_steer` (the state's own label) when `cfg.labels` is "geometric".
    """
    deltas = view_displacements(cfg, rng, k)
    if looks is not None and looks.enabled:
        renderer = looks.pick(k)
    recorded = recorded_steer if cfg.labels == "geometric" else None
    if cfg.labels == "geometric" and recorded is None:
        raise ValueError("geometric view labels need the state's recorded steering")
    return render_views(
        world, renderer, target_offset(world, lane), deltas, cfg.lookahead_s, recorded, cfg.return_s
    )


def label_state(
    obs,
    u: CamDriveEnv[Any],
    expert: Expert,
    augment: int,
    views,
    rng,
    frames: list,
    labels: list,
    looks: LookPicker | None = None,
) -> float:
    """Append the frame the car sees, labelled with the expert's steering, plus `augment` shifted views.

    With `looks`, the frame the car sees is redrawn in a look picked for it (the default look keeps
    the env's own frame) and every view gets its own look. Returns the expert's clean steering.
    """
    clean = expert.steering()
    if looks is not None and looks.enabled:
        (renderer,) = looks.pick()
        if renderer is not looks.default or u.look != renderer.palette:
            obs = render_state(renderer, u.world)
    frames.append(obs[None])
    labels.append(np.array([clean], dtype=np.float32))
    if augment:
        f, lab = extra_views(
            u.world, u.camera.renderer, expert.target_lane, augment, views, rng, looks, clean
        )
        frames.append(f)
        labels.append(lab)
    return clean


def collect_expert_episode(
    env: gym.Env,
    seed: int,
    augment: int,
    views: ViewConfig,
    noise: float,
    noise_tau: float,
    looks: LookPool | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Drive one episode with the noisy expert; frames and labels of every state plus its extra views.

    Returns (frames, labels, states). Randomness (noise, view displacements, looks) is drawn from the
    episode seed, so an episode's data does not depend on which other episodes were collected.
    """
    u = unwrap(env)
    rng = seeding.stream(seed, seeding.BC_EXPERT_EPISODE)
    picker = looks.picker(seed, seeding.BC_EXPERT_LOOKS) if looks is not None else None
    obs, _ = env.reset(seed=seed)
    expert = Expert()
    expert.reset(env)
    ou = OUNoise(noise, noise_tau, u.dt, rng)
    frames: list[np.ndarray]
    labels: list[np.ndarray]
    frames, labels = [], []
    states = 0
    while True:
        clean = label_state(obs, u, expert, augment, views, rng, frames, labels, picker)
        states += 1
        action = np.array([np.clip(clean + (ou() if noise > 0 else 0.0), -1.0, 1.0)], dtype=np.float32)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return np.concatenate(frames), np.concatenate(labels), states


def collect_expert(cfg: BCConfig, data: Dataset, log: Any, looks: LookPool | None = None) -> None:
    env = gym.make(ENV_ID, **cfg.env_options())
    try:
        if looks is None:
            looks = LookPool(env, cfg.look_config(), cfg.seed)
        for seed in progress(expert_seeds(cfg.seed, cfg.expert_episodes), cfg.progress, "expert episodes"):
            frames, labels, states = collect_expert_episode(
                env, seed, cfg.augment, cfg.views, cfg.noise, cfg.noise_tau_s, looks
            )
            data.add_episode(frames, labels, "expert", states)
    finally:
        env.close()
    log(f"expert data: {data.episodes} episodes, {data.states} states, {data.size} frames")


def data_summary(
    data: Dataset, val_mask: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray
) -> dict[str, Any]:
    return {
        "episodes": data.episodes,
        "val_episodes": int(val_mask.sum()),
        "states": data.states,
        "frames": data.size,
        "train_frames": len(train_idx),
        "val_frames": len(val_idx),
        "sources": {s: data.sources.count(s) for s in dict.fromkeys(data.sources)},
    }
