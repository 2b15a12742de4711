"""`camdrive train bc`: behaviour cloning of the expert into PilotNet, from nothing to a model in minutes.

Pipeline (each step is a function below, so tests and notebooks can run pieces of it):

1. Data. Without `--data`: drive the privileged expert in LaneKeep-v0 for `--expert-episodes` episodes
   on training seeds (episode i of a run with `--seed S` is `env.reset(seed=S * 10_000 + i)`; with the
   default S = 0 that is seeds 0 .. N-1, and DAgger episodes use S * 10_000 + 5_000 + ...; evaluation
   uses seeds >= 1_000_000, which training refuses). The executed steering is the expert's plus smooth
   (Ornstein-Uhlenbeck) noise, so the car drifts and the expert's clean labels show how to recover
   (DART-style). With `--data DIR`: LaneKeep-v0 demonstrations recorded by `camdrive record` (labels
   when the file has them, else the executed actions; episodes of another env or without continuous
   steering are skipped, each in one stderr line naming the file); the extra views need world states,
   so each episode is re-simulated from its reset seed and actions (the env is deterministic; the
   replay is checked against the recorded states and augmentation stops for an episode that diverges).
2. Viewpoint augmentation (`training.bc.augment`): for every visited state, `--augment K` extra frames
   rendered from the car displaced sideways (up to +-0.9 m) and turned (up to +-6 degrees), labelled
   with the expert controller's steering from the displaced pose (`--view-labels expert`, the
   default), or without the expert (`--view-labels geometric`, `training.bc.augment.geometric_label`):
   NVIDIA's steering back onto the recorded path in a fixed time (`--view-return-s`, 0.9 s), from the state's
   recorded steering (the expert's clean steering, or a demo's label or action) and the view's
   displacement alone. The car's own frames keep the recorded steering as label either way. DAgger
   asks the expert, so it is refused with geometric labels.
   Domain randomisation (`--randomize`, `--looks`, `--default-look`; `training.bc.augment.LookPool`):
   every frame, the car's own and each extra view, is drawn in a look picked for it alone: the
   default look (25 %) or one of 96 palettes drawn by `Palette.randomised` from the run seed. The env
   itself stays in the default look: its `randomize` option gives a whole episode one look, and 24
   episodes are then only 24 looks, which the network memorises instead of generalising (the
   PilotNet model card has the measurements).
3. Training: episodes split into train / validation (10 %, at least one); Adam, MSE on steering,
   photometric jitter on training batches (brightness, contrast, colour gain, saturation, hue mixing,
   offsets, sensor noise), per-epoch CSV and PNG of the losses, the best model on
   validation loss kept (and written as soon as found), learning rate halved when validation stalls,
   early stopping after `--patience` epochs without improvement. Seeded: the same command twice gives
   identical weights (torch.manual_seed, numpy Generators, fixed data order, fixed thread count).
4. DAgger (`--dagger K`): K rounds of driving LaneKeep-v0 with the learner (the expert takes over
   beyond 1 m, as a safety driver would, until the car is back near the centre), labelling every
   visited state with the expert's steering (plus the K extra views), aggregating, and retraining
   from the current weights.

Outputs beside the model, named after it as the DQN trainer names its own (`m.safetensors` ->
`m.csv`, the losses per epoch; `m.png`, their plot; `m.metrics.json`: command line, seed, data size,
timings, losses, DAgger rounds, device), the model card's raw numbers; two models in one folder keep
their own. With `--tensorboard DIR` the same per-epoch losses and learning rate, and the DAgger rounds,
also go to TensorBoard event files. Existing files are never replaced without `--force`; a run that
completes no epoch fails and writes nothing; Ctrl-C or SIGTERM keeps the best model saved so far.

Device (`--device`, default auto: CUDA when torch sees a GPU): the network, each batch and the
optimiser live there; the data set stays in CPU memory, and the initial weights and the jitter are
drawn on the CPU from the run seed, so only the arithmetic differs between devices.

Defaults: 24 expert episodes (14,400 states, 24 km), 2 extra views per state (43,200 frames), every
frame in a look of its own (25 % default, else one of 96 randomised palettes), 6 epochs of batch 64,
bf16 autocast, one torch thread: minutes on a 2-core CPU (the PilotNet model card has the timings
and the held-out results). `--max-minutes` caps a run on an overloaded machine. DAgger is off by
default: a round costs as much as the first training.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import sim  # noqa: F401  (registers the envs)
from agent.checkpoint import save_checkpoint
from agent.device import select_device
from agent.expert import Expert
from agent.pilotnet import ARCH, INPUT_SHAPE, PilotNet, param_count
from training.bc.augment import (
    JitterConfig,
    LookConfig,
    LookPicker,
    LookPool,
    ViewConfig,
    photometric_jitter,
    render_state,
    render_views,
    target_offset,
)
from training.common import exit_codes
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import (
    check_output_file,
    refuse_existing,
    remove_stale_temps,
    replacing,
    sidecar,
    write_text,
)
from training.common.tensorboard_log import TensorBoardLog, check_tensorboard

ENV_ID = "camdrive/LaneKeep-v0"
SEED_STRIDE = 10_000
"""Run --seed S trains on env seeds S * SEED_STRIDE + i (expert) and + DAGGER_SEED_OFFSET + ... (DAgger)."""
DAGGER_SEED_OFFSET = 5_000
MAX_EXPERT_EPISODES = DAGGER_SEED_OFFSET
"""Expert seeds S * SEED_STRIDE + i must stay below the run's DAgger seeds."""
MAX_DAGGER_EPISODES = 100
"""Each DAgger round has a block of this many seeds."""
MAX_DAGGER_ROUNDS = (SEED_STRIDE - DAGGER_SEED_OFFSET) // MAX_DAGGER_EPISODES
"""50: the rounds' seed blocks fill the rest of the run's SEED_STRIDE, so no two runs share a seed."""
EVAL_SEED_START = 1_000_000
"""Seeds from here on are for evaluation only; training never uses them."""
INTERVENTION_M = 1.0
"""|lateral offset| beyond which the safety driver (the expert) takes over while collecting DAgger data."""
HANDBACK_M = 0.3
SIDECARS = (".csv", ".png", ".metrics.json")
"""What each run writes beside its model, named after it (`training.common.outputs.sidecar`)."""


class NothingTrainedError(RuntimeError):
    """The run completed no epoch (its time cap ran out first): no model was written. Exit code 1."""


class NoUsableDemosError(ValueError):
    """`--data` holds no episode to learn from: bad input, found before any training, so `camdrive
    train bc` reports it in one line with exit code 2, as it does a bad option."""


def warn_line(message: str) -> None:
    """One line on stderr about a `--data` file (skipped, or used without its extra views).

    Why not `warnings.warn`: it prints the line of camdrive's code under each message, two lines a
    file, which a directory of hundreds of files turns into a log nobody reads.
    """
    text = " ".join(message.splitlines())
    print(f"camdrive train bc: warning: {text}", file=sys.stderr, flush=True)


@dataclass
class BCConfig:
    """Everything `train_bc` needs; `camdrive train bc` fills it from the command line."""

    out: Path
    data: Path | None = None
    expert_episodes: int = 24
    augment: int = 2
    epochs: int = 6
    batch_size: int = 64
    seed: int = 0
    dagger: int = 0
    dagger_episodes: int = 10
    dagger_epochs: int = 3
    lr: float = 1e-3
    patience: int = 3
    max_minutes: float | None = 14.0
    """Wall-clock cap of the whole run: no epoch or DAgger round starts that would end past it. The
    defaults need far less (see the module docstring); the cap only bites on a badly overloaded machine,
    and a run it cut short says so in its .metrics.json (`stopped_by_time_cap`) and is not repeatable."""
    val_fraction: float = 0.1
    noise: float = 0.15
    noise_tau_s: float = 1.0
    color_space: str = "rgb"
    precision: str = "bf16"
    threads: int = 1
    episode_seconds: float = 60.0
    randomize: float = 1.0
    """Domain randomisation strength of the training looks (`training.bc.augment.LookPool`): every frame
    is drawn in the default look or one of `looks` palettes of this strength; 0: default look only."""
    looks: int = 96
    default_look: float = 0.25
    """Probability that a training frame is drawn in the default look (when randomize > 0)."""
    device: str = "auto"
    """Torch device of the network, batches and optimiser (`agent.device.DEVICES`); data stays on the CPU."""
    tensorboard: Path | None = None
    """Directory for TensorBoard scalars (losses, learning rate, DAgger rounds); None: nothing written."""
    force: bool = False
    """Replace an existing model and its sidecars (otherwise `check_ready` refuses them)."""
    progress: bool = True
    command: str = ""
    views: ViewConfig = field(default_factory=ViewConfig)
    jitter: JitterConfig = field(default_factory=JitterConfig)

    def env_options(self) -> dict[str, Any]:
        """The LaneKeep-v0 options the data is collected with (defaults but the episode length).

        No `randomize`: the looks are drawn per frame by `LookPool`, not per episode by the env.
        """
        return {"episode_seconds": self.episode_seconds}

    def look_config(self) -> LookConfig:
        return LookConfig(count=self.looks, strength=self.randomize, default_fraction=self.default_look)


# ------------------------------------------------------------------------------------------------ data
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


def check_training_seed(seed: int) -> int:
    if not 0 <= seed < EVAL_SEED_START:
        raise ValueError(f"env seed {seed} is outside the training range 0 .. {EVAL_SEED_START - 1}")
    return seed


def expert_seeds(run_seed: int, episodes: int) -> list[int]:
    if episodes > MAX_EXPERT_EPISODES:
        raise ValueError(f"at most {MAX_EXPERT_EPISODES} expert episodes per run, got {episodes}")
    return [check_training_seed(run_seed * SEED_STRIDE + i) for i in range(episodes)]


def dagger_seeds(run_seed: int, round_: int, episodes: int) -> list[int]:
    base = run_seed * SEED_STRIDE + DAGGER_SEED_OFFSET + (round_ - 1) * MAX_DAGGER_EPISODES
    if episodes > MAX_DAGGER_EPISODES:
        raise ValueError(f"at most {MAX_DAGGER_EPISODES} DAgger episodes per round, got {episodes}")
    if not 1 <= round_ <= MAX_DAGGER_ROUNDS:
        raise ValueError(f"DAgger rounds are 1 .. {MAX_DAGGER_ROUNDS}, got {round_}")
    return [check_training_seed(base + i) for i in range(episodes)]


def check_limits(cfg: BCConfig) -> str | None:
    """Why `cfg` would fail part-way through the run (seed ranges), or None.

    `expert_seeds` and `dagger_seeds` enforce the same limits, but only when they are reached, which
    for DAgger is after the whole behaviour-cloning training: a command line that cannot finish must
    be refused before any of that work.
    """
    if cfg.seed * SEED_STRIDE + SEED_STRIDE > EVAL_SEED_START:
        return f"--seed must be below {EVAL_SEED_START // SEED_STRIDE}"
    if cfg.expert_episodes > MAX_EXPERT_EPISODES:
        return f"--expert-episodes must be at most {MAX_EXPERT_EPISODES}, got {cfg.expert_episodes}"
    if cfg.dagger > MAX_DAGGER_ROUNDS:
        return f"--dagger must be at most {MAX_DAGGER_ROUNDS} rounds, got {cfg.dagger}"
    if cfg.dagger_episodes > MAX_DAGGER_EPISODES:
        return f"--dagger-episodes must be at most {MAX_DAGGER_EPISODES}, got {cfg.dagger_episodes}"
    if cfg.dagger and cfg.views.labels == "geometric":
        return "--dagger labels with the expert, which --view-labels geometric does without: use one"
    if cfg.views.return_s <= 0:
        return f"--view-return-s must be above 0, got {cfg.views.return_s:g}"
    return None


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


def _views(
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
    deltas = cfg.sample(rng, k)
    if looks is not None and looks.enabled:
        renderer = looks.pick(k)
    recorded = recorded_steer if cfg.labels == "geometric" else None
    if cfg.labels == "geometric" and recorded is None:
        raise ValueError("geometric view labels need the state's recorded steering")
    return render_views(
        world, renderer, target_offset(world, lane), deltas, cfg.lookahead_s, recorded, cfg.return_s
    )


def _label_state(
    obs,
    u,
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
        if renderer is not looks.default or u.obs_type.renderer.palette != renderer.palette:
            obs = render_state(renderer, u.world)
    frames.append(obs[None])
    labels.append(np.array([clean], dtype=np.float32))
    if augment:
        f, lab = _views(u.world, u.obs_type.renderer, expert.target_lane, augment, views, rng, looks, clean)
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
    u = env.unwrapped
    rng = np.random.default_rng([seed, 11])
    picker = looks.picker(seed, 14) if looks is not None else None
    obs, _ = env.reset(seed=seed)
    expert = Expert()
    expert.reset(env)
    ou = OUNoise(noise, noise_tau, u.dt, rng)
    frames, labels = [], []
    states = 0
    while True:
        clean = _label_state(obs, u, expert, augment, views, rng, frames, labels, picker)
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
        for seed in _progress(expert_seeds(cfg.seed, cfg.expert_episodes), cfg.progress, "expert episodes"):
            frames, labels, states = collect_expert_episode(
                env, seed, cfg.augment, cfg.views, cfg.noise, cfg.noise_tau_s, looks
            )
            data.add_episode(frames, labels, "expert", states)
    finally:
        env.close()
    log(f"expert data: {data.episodes} episodes, {data.states} states, {data.size} frames")


def load_demos(cfg: BCConfig, data: Dataset, log: Any, looks: LookPool | None = None) -> None:
    """Demonstrations from `cfg.data`, with the extra views rendered by re-simulating each episode.

    With training looks (`cfg.randomize` > 0) the re-simulated states are also redrawn in looks picked
    per frame, recorded frames included, so that a frame's look says nothing about its label. A file
    that cannot be used is skipped in one `warn_line`; NoUsableDemosError when no file is left.
    """
    from training.data.demo_reader import iter_episodes

    assert cfg.data is not None
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        warn_line(f"{message}; skipped")

    for ep in iter_episodes(cfg.data, on_error=lambda error: skip(str(error))):
        assert ep.frames is not None
        if ep.frames.shape[1:] != INPUT_SHAPE:
            skip(f"{ep.path}: frames {ep.frames.shape[1:]} are not PilotNet's {INPUT_SHAPE}")
            continue
        labels, problem = steering_labels(ep)
        if labels is None:
            skip(f"{ep.path}: {problem}")
            continue
        frames = ep.frames[: ep.steps]
        if cfg.augment or cfg.look_config().enabled:
            extra = replay_views(ep, cfg, looks)
            if extra is not None:
                views, view_labels, centres = extra
                if centres is not None:
                    frames = frames.copy()
                    frames[: len(centres)] = centres
                frames = np.concatenate([frames, views])
                labels = np.concatenate([labels, view_labels])
        data.add_episode(frames, labels, "demo", ep.steps)
    if data.episodes == 0:
        why = f"{len(skipped)} file(s) skipped" if skipped else "no finished episode files"
        raise NoUsableDemosError(f"--data {cfg.data}: no usable episodes ({why})")
    log(f"demo data: {data.episodes} episodes, {data.states} states, {data.size} frames (with views)")


def steering_labels(ep: Any) -> tuple[np.ndarray | None, str]:
    """The episode's steering labels (its labels, else its executed actions), or None and why not.

    Only LaneKeep-v0 episodes qualify: another env's frames can have the same size (Traffic-v0's are
    also 66x200x3) while its actions mean something else (Traffic-v0's discrete action numbers 0..4
    would be learnt as steering). Continuous steering is a float array whose first column is within
    the steering range -1..1 (LaneKeep-v0 records steering, or steering and throttle from `play`).
    """
    env_id = ep.meta.get("env_id")
    if env_id != ENV_ID:
        return None, f"recorded in {env_id}, not {ENV_ID}: its actions are not {ENV_ID} steering"
    if ep.steps == 0:
        return None, "it has no steps"
    which = "labels" if ep.labels is not None else "actions"
    source = np.asarray(ep.labels if ep.labels is not None else ep.actions)
    if source.dtype.kind != "f":
        return None, f"its {which} are {source.dtype} numbers, not continuous steering"
    steering = source.reshape(ep.steps, -1)[:, 0].astype(np.float32)
    if not np.all(np.isfinite(steering)) or np.any(np.abs(steering) > 1.0):
        return None, f"its {which} are not steering values in -1 .. 1"
    return steering, ""


def _data_problem(directory: Path) -> str | None:
    """Why `--data DIR` cannot be read at all (no such directory...), or None."""
    from training.data.demo_reader import list_files
    from training.data.demos import DemoError

    try:
        list_files(directory)
    except DemoError as e:
        return f"--data {e}"
    return None


def replay_views(
    ep: Any, cfg: BCConfig, looks: LookPool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Re-simulate a recorded episode from its seed and actions and render the extra views of each state.

    Returns (views, their labels, the replayed states' own frames redrawn in picked looks or None when
    the looks are off), or None (with a `warn_line`) when the episode cannot be replayed: no reset seed,
    another env, or a replay that leaves the recorded trajectory (then only the states before that are
    augmented).
    """
    from agent.env_spec import make_env as make_checked_env

    meta = ep.meta
    if meta.get("reset_seed") is None or meta.get("env_id") != ENV_ID:
        warn_line(
            f"{ep.path}: cannot re-simulate (env {meta.get('env_id')}, seed "
            f"{meta.get('reset_seed')}); no extra views"
        )
        return None
    try:
        env = make_checked_env(meta["env_id"], meta.get("env_options", {}))  # any failure a ValueError
    except ValueError as e:
        # An option this camdrive no longer knows (or a value it rejects): the recorded frames and
        # labels are still usable, only the re-simulation for the views is not.
        warn_line(
            f"{ep.path}: cannot re-simulate, {meta['env_id']} rejects the recorded env_options "
            f"({type(e).__name__}: {e}); no extra views"
        )
        return None
    rng = np.random.default_rng([int(meta["reset_seed"]), 12])
    recorded, _ = steering_labels(ep)
    frames, labels, centres = [], [], []
    try:
        env.reset(seed=int(meta["reset_seed"]))
        u = env.unwrapped
        if looks is None or not looks.matches(env):
            looks = LookPool(env, cfg.look_config(), cfg.seed)
        picker = looks.picker(int(meta["reset_seed"]), 15)
        for t in range(ep.steps):
            if not _matches(u.world, ep.state, t):
                warn_line(f"{ep.path}: replay diverges from the recording at step {t}; views stop there")
                break
            w = u.world
            if picker.enabled:
                (r,) = picker.pick()
                centres.append(render_state(r, w)[None])
            if cfg.augment:
                steer = None if recorded is None else float(recorded[t])
                f, lab = _views(
                    w, u.obs_type.renderer, w.state().lane, cfg.augment, cfg.views, rng, picker, steer
                )
                frames.append(f)
                labels.append(lab)
            env.step(ep.actions[t])
    finally:
        env.close()
    if not frames and not centres:
        return None
    shape = (0, *INPUT_SHAPE)
    return (
        np.concatenate(frames) if frames else np.zeros(shape, dtype=np.uint8),
        np.concatenate(labels) if labels else np.zeros(0, dtype=np.float32),
        np.concatenate(centres) if centres else None,
    )


def _matches(world: Any, state: dict[str, np.ndarray], t: int, tol: float = 1e-3) -> bool:
    for key, value in (("x", world.ego.x), ("y", world.ego.y), ("yaw", world.ego.yaw)):
        rec = state.get(key)
        if rec is not None and t < len(rec) and np.isfinite(rec[t]) and abs(rec[t] - value) > tol:
            return False
    return True


# -------------------------------------------------------------------------------------------- training
@dataclass
class EpochLog:
    epoch: int
    stage: str
    train_loss: float
    val_loss: float
    seconds: float
    lr: float


@dataclass
class Trainer:
    """Adam on MSE with jitter, best-on-validation tracking, LR halving and early stopping.

    Trains on the device the model is on: frames and labels stay in CPU memory (numpy) and each batch
    is jittered there, with the seeded CPU generator (so a run's numbers do not depend on the device's
    random numbers), then moved to the device.
    """

    model: PilotNet
    cfg: BCConfig
    history: list[EpochLog] = field(default_factory=list)
    best_val: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    on_best: Any = None
    on_epoch: Callable[[EpochLog], None] | None = None
    """Called with each epoch's log as soon as it is known (TensorBoard scalars)."""
    deadline: float = math.inf
    """time.perf_counter() value after which no new epoch starts (BCConfig.max_minutes)."""
    stopped_by_time_cap: bool = False

    def __post_init__(self) -> None:
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.device = next(self.model.parameters()).device

    def fit(
        self,
        frames: np.ndarray,
        labels: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        epochs: int,
        stage: str,
        rng: np.random.Generator,
    ) -> None:
        """Train up to `epochs` epochs; ends with the stage's best weights loaded into the model."""
        stage_best, stalled = math.inf, 0
        last_epoch_s = 0.0
        for _ in range(epochs):
            t0 = time.perf_counter()
            if t0 + last_epoch_s > self.deadline:
                self.stopped_by_time_cap = True
                break
            train_loss = self._epoch(frames, labels, rng.permutation(train_idx), stage)
            val_loss = evaluate_loss(self.model, frames, labels, val_idx)
            seconds = last_epoch_s = time.perf_counter() - t0
            lr = self.opt.param_groups[0]["lr"]
            self.history.append(EpochLog(len(self.history) + 1, stage, train_loss, val_loss, seconds, lr))
            if self.on_epoch is not None:
                self.on_epoch(self.history[-1])
            score = val_loss if math.isfinite(val_loss) else train_loss  # no validation episodes: train loss
            if score < stage_best:
                stage_best, stalled = score, 0
                self.best_val = score
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.on_best is not None:
                    self.on_best(self)
            else:
                stalled += 1
                for group in self.opt.param_groups:
                    group["lr"] *= 0.5
                if stalled >= self.cfg.patience:
                    break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def _epoch(self, frames: np.ndarray, labels: np.ndarray, order: np.ndarray, stage: str) -> float:
        self.model.train()
        bs = self.cfg.batch_size
        n_batches = max(1, len(order) // bs)  # drop the ragged last batch: equal-weight steps
        total = 0.0
        bar = _progress(range(n_batches), self.cfg.progress, f"{stage} epoch {len(self.history) + 1}")
        for b in bar:
            idx = np.sort(order[b * bs : (b + 1) * bs])
            x = photometric_jitter(torch.from_numpy(frames[idx]), self.gen, self.cfg.jitter).to(self.device)
            y = torch.from_numpy(labels[idx])[:, None].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
                out = self.model(x)
            loss = F.mse_loss(out.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.item()
        return total / n_batches


def evaluate_loss(
    model: PilotNet, frames: np.ndarray, labels: np.ndarray, idx: np.ndarray, batch: int = 256
) -> float:
    """Mean squared steering error over `idx`, in full precision and without jitter, on the model's device."""
    if len(idx) == 0:
        return math.nan
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(idx), batch):
            part = idx[start : start + batch]
            out = model(torch.from_numpy(frames[part]).to(device))[:, 0]
            total += float(((out - torch.from_numpy(labels[part]).to(device)) ** 2).sum())
    return total / len(idx)


def split_episodes(n_episodes: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over episodes: True for validation (at least one, and never all when there are two+)."""
    n_val = min(max(1, round(n_episodes * val_fraction)), max(n_episodes - 1, 1))
    mask = np.zeros(n_episodes, dtype=bool)
    if n_episodes > 1:
        mask[rng.choice(n_episodes, n_val, replace=False)] = True
    return mask


# ---------------------------------------------------------------------------------------------- DAgger
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
    u = env.unwrapped
    device = next(model.parameters()).device
    rng = np.random.default_rng([seed, 13])
    obs, info = env.reset(seed=seed)
    expert = Expert()
    expert.reset(env)
    model.eval()
    picker = looks.picker(seed, 16) if looks is not None else None
    eyes = picker.pick()[0] if picker is not None and picker.enabled else None
    frames, labels = [], []
    states, interventions, expert_driving = 0, 0, False
    while True:
        seen = obs
        if eyes is not None:
            seen = render_state(eyes, u.world)
        clean = _label_state(obs, u, expert, augment, views, rng, frames, labels, picker)
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


# ------------------------------------------------------------------------------------------------ main
def training_device(cfg: BCConfig) -> torch.device:
    """`cfg.device` as a torch.device; ValueError naming the option when this machine cannot train so.

    Why bf16 is checked here: autocast refuses bfloat16 on a GPU without it, which would otherwise fail
    at the first batch, after the minutes of data collection.
    """
    device = select_device(cfg.device)
    if device.type == "cuda" and cfg.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16: this GPU has no bfloat16 arithmetic; use --precision fp32")
    return device


def check_ready(cfg: BCConfig) -> torch.device:
    """The device to train on; ValueError naming the option when `cfg.device`, `cfg.tensorboard` or
    `cfg.out` cannot be used here (the command line calls it before its other work, `train_bc` again).

    Why `cfg.out` here: a model that cannot be written, or one that would silently replace a file the
    user has (another model, its logs), is found before the minutes of data collection, not after.
    """
    device = training_device(cfg)
    check_tensorboard(cfg.tensorboard)
    check_outputs(cfg)
    return device


def output_paths(cfg: BCConfig) -> list[Path]:
    """The model and its sidecars, the files a run writes."""
    return [Path(cfg.out), *(sidecar(cfg.out, suffix) for suffix in SIDECARS)]


def check_outputs(cfg: BCConfig) -> None:
    """OutputError when a file of the run cannot be written, or exists and `cfg.force` is off."""
    model, *logs = output_paths(cfg)
    check_output_file(model, "--out", force=cfg.force)
    for path in logs:
        check_output_file(path, f"--out {model}, log", force=True)
    if not cfg.force:
        refuse_existing(logs, "--out", model)


def train_bc(cfg: BCConfig, log: Any = print) -> dict[str, Any]:
    """The whole pipeline (module docstring); returns the metrics also written to MODEL.metrics.json.

    Raises ValueError before any work when `cfg.device`, `cfg.tensorboard` or `cfg.out` cannot be
    used here (OutputError, a ValueError, for the last), NoUsableDemosError (a ValueError too) when
    `cfg.data` holds no usable episode, NothingTrainedError when no epoch completed.
    A KeyboardInterrupt propagates with a message saying what it kept.
    """
    device = check_ready(cfg)
    for path in output_paths(cfg):
        remove_stale_temps(path)
    saved: list[float] = []  # validation losses of the models written so far
    with TensorBoardLog(cfg.tensorboard) as tb, saying_what_is_kept(lambda: _kept(cfg.out, saved)):
        return _train_bc(cfg, log, device, tb, saved)


def _train_bc(
    cfg: BCConfig, log: Any, device: torch.device, tb: TensorBoardLog, saved: list[float]
) -> dict[str, Any]:
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 3])
    out = Path(cfg.out)

    data = Dataset()
    env = gym.make(ENV_ID, **cfg.env_options())
    looks = LookPool(env, cfg.look_config(), cfg.seed)
    env.close()
    if cfg.data is not None:
        load_demos(cfg, data, log, looks)
    else:
        collect_expert(cfg, data, log, looks)
    collect_s = time.perf_counter() - t_start
    out.parent.mkdir(parents=True, exist_ok=True)  # only now: --data refused leaves no trace

    val_mask = split_episodes(data.episodes, cfg.val_fraction, rng)
    model = PilotNet(cfg.color_space).to(device)  # initialised on the CPU: the same weights on any device
    metrics: dict[str, Any] = {
        "command": cfg.command,
        "seed": cfg.seed,
        "config": _config_dict(cfg),
        "architecture": ARCH,
        "param_count": param_count(model),
        "env_id": ENV_ID,
        "env_options": cfg.env_options(),
        "training_env_seeds": _seed_ranges(cfg),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": cfg.threads,
            "cpu": platform.processor() or platform.machine(),
            "device": str(device),
        },
        "dagger_rounds": [],
        "looks": _looks_dict(cfg),
    }

    def save(trainer: Trainer) -> None:
        if not saved and cfg.force:
            for path in output_paths(cfg)[1:]:  # the replaced model's logs would describe the wrong model
                path.unlink(missing_ok=True)
        _save_model(out, trainer.model, cfg, metrics, data, time.perf_counter() - t_start, trainer.best_val)
        saved.append(trainer.best_val)

    def log_epoch(h: EpochLog) -> None:
        losses = {"loss/train": h.train_loss, "loss/validation": h.val_loss}
        tb.scalars({**losses, "train/lr": h.lr, "perf/epoch_seconds": h.seconds}, h.epoch)

    trainer = Trainer(model, cfg, on_best=save, on_epoch=log_epoch)
    if cfg.max_minutes is not None:
        trainer.deadline = t_start + 60.0 * cfg.max_minutes
    t_train = time.perf_counter()
    frames, labels, episode = data.arrays()
    train_idx = np.flatnonzero(~val_mask[episode])
    val_idx = np.flatnonzero(val_mask[episode])
    metrics["data"] = _data_dict(data, val_mask, train_idx, val_idx)
    log(f"training on {len(train_idx)} frames, validating on {len(val_idx)} ({int(val_mask.sum())} episodes)")
    trainer.fit(frames, labels, train_idx, val_idx, cfg.epochs, "bc", rng)
    if not trainer.history:
        raise NothingTrainedError(
            f"no epoch completed: --max-minutes {cfg.max_minutes or 0:g} ran out after {collect_s:.0f} s of "
            "data collection; no model written"
        )
    log(f"behaviour cloning: best validation MSE {trainer.best_val:.5f}")

    if cfg.dagger:
        env = gym.make(ENV_ID, **cfg.env_options())
        try:
            for r in range(1, cfg.dagger + 1):
                if trainer.stopped_by_time_cap or time.perf_counter() > trainer.deadline:
                    trainer.stopped_by_time_cap = True
                    break
                t_round = time.perf_counter()
                interventions, metres, states = 0, 0.0, 0
                for seed in _progress(
                    dagger_seeds(cfg.seed, r, cfg.dagger_episodes), cfg.progress, f"DAgger {r}"
                ):
                    f, lab, n, k, m = collect_dagger_episode(model, env, seed, cfg.augment, cfg.views, looks)
                    data.add_episode(f, lab, f"dagger{r}", n)
                    interventions, metres, states = interventions + k, metres + m, states + n
                drive_s = time.perf_counter() - t_round
                val_mask = np.concatenate([val_mask, np.zeros(data.episodes - len(val_mask), dtype=bool)])
                del frames, labels, episode
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
                metrics["data"] = _data_dict(data, val_mask, train_idx, val_idx)
                log(
                    f"DAgger round {r}: learner drove {metres / 1000:.1f} km with {interventions} "
                    f"interventions; {len(frames)} frames; val MSE {trainer.best_val:.5f}"
                )
        finally:
            env.close()

    train_s = time.perf_counter() - t_train
    total_s = time.perf_counter() - t_start
    metrics.update(
        collect_seconds=collect_s,
        train_seconds=train_s,
        total_seconds=total_s,
        epochs_run=len(trainer.history),
        stopped_by_time_cap=trainer.stopped_by_time_cap,
        best_val_loss=trainer.best_val,
        final_val_loss=trainer.history[-1].val_loss if trainer.history else math.nan,
        final_train_loss=trainer.history[-1].train_loss if trainer.history else math.nan,
        model_file=out.name,
    )
    _save_model(out, model, cfg, metrics, data, total_s, trainer.best_val)
    losses_csv, losses_png, metrics_json = output_paths(cfg)[1:]
    write_loss_csv(losses_csv, trainer.history)
    plot_losses(losses_png, trainer.history)
    write_text(metrics_json, json.dumps(_jsonable(metrics), indent=2) + "\n")
    log(f"wrote {out} ({total_s:.0f} s total: {collect_s:.0f} s data, {train_s:.0f} s training)")
    return metrics


def _kept(out: Path | str, saved: Sequence[float]) -> str:
    """What an interrupted run leaves: the last model it saved (the best so far), or nothing."""
    if not saved:
        return "no epoch completed, no model written"
    return f"the best model so far (validation MSE {saved[-1]:.5f}) is in {out}, without its logs"


def _save_model(
    out: Path,
    model: PilotNet,
    cfg: BCConfig,
    metrics: dict[str, Any],
    data: Dataset,
    seconds: float,
    val_loss: float,
) -> None:
    save_checkpoint(
        out,
        model,
        {
            "architecture": ARCH,
            "observation": {
                "shape": list(INPUT_SHAPE),
                "dtype": "uint8",
                "layout": "HWC",
                "color_space": cfg.color_space,
                "env_color": "rgb",
            },
            "action": {
                "shape": [1],
                "dtype": "float32",
                "low": -1.0,
                "high": 1.0,
                "meaning": "steering, -1 full left .. +1 full right",
            },
            "preprocessing": "raw env frame in; inside the model: "
            + ("RGB -> YUV (BT.601), then " if cfg.color_space == "yuv" else "")
            + "x / 127.5 - 1",
            "env_id": ENV_ID,
            "env_options": {},
            "training": {
                "method": "behaviour cloning" + (f" + DAgger x{cfg.dagger}" if cfg.dagger else ""),
                "view_labels": cfg.views.labels if cfg.augment else "none",
                "command": cfg.command,
                "seed": cfg.seed,
                "env_seeds": metrics["training_env_seeds"],
                "data_states": data.states,
                "data_frames": data.size,
                "data_episodes": data.episodes,
                "seconds": round(seconds, 1),
                "val_loss": val_loss,
                "device": metrics["machine"]["device"],
            },
        },
    )


def _seed_ranges(cfg: BCConfig) -> dict[str, Any]:
    base = cfg.seed * SEED_STRIDE
    out: dict[str, Any] = {"eval_seeds_start": EVAL_SEED_START}
    if cfg.data is None:
        out["expert"] = [base, base + cfg.expert_episodes - 1]
    if cfg.dagger:
        out["dagger"] = [
            base + DAGGER_SEED_OFFSET,
            base + DAGGER_SEED_OFFSET + (cfg.dagger - 1) * 100 + cfg.dagger_episodes - 1,
        ]
    return out


def _looks_dict(cfg: BCConfig) -> dict[str, Any]:
    from training.bc.augment import LOOK_STREAM

    if not cfg.look_config().enabled:
        return {"randomised": 0, "default_fraction": 1.0}
    return {
        "randomised": cfg.looks,
        "strength": cfg.randomize,
        "default_fraction": cfg.default_look,
        "palette_seeds": f"numpy default_rng([{cfg.seed}, {LOOK_STREAM}, i]), i < {cfg.looks}",
    }


def _data_dict(
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


def _config_dict(cfg: BCConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    d["data"] = None if cfg.data is None else str(cfg.data)
    d["tensorboard"] = None if cfg.tensorboard is None else str(cfg.tensorboard)
    return d


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_loss_csv(path: Path, history: Sequence[EpochLog]) -> None:
    """The losses per epoch as CSV, written atomically (`training.common.outputs.replacing`)."""
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "stage", "train_loss", "val_loss", "seconds", "lr"])
        for h in history:
            w.writerow(
                [
                    h.epoch,
                    h.stage,
                    f"{h.train_loss:.6g}",
                    f"{h.val_loss:.6g}",
                    f"{h.seconds:.1f}",
                    f"{h.lr:.3g}",
                ]
            )


def plot_losses(path: Path, history: Sequence[EpochLog]) -> None:
    """Training and validation MSE per epoch (log scale); DAgger rounds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [h.epoch for h in history]
    ax.plot(epochs, [h.train_loss for h in history], "o-", label="train (with jitter)")
    ax.plot(epochs, [h.val_loss for h in history], "s-", label="validation")
    for prev, h in zip(history, history[1:], strict=False):
        if h.stage != prev.stage:
            ax.axvline(h.epoch - 0.5, color="grey", ls=":", lw=1)
            ax.text(h.epoch - 0.45, ax.get_ylim()[1], h.stage, va="top", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("steering MSE")
    ax.set_title("PilotNet behaviour cloning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def _progress(items: Iterable[Any], enabled: bool, desc: str) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)


def main(args: argparse.Namespace) -> int:
    """Entry point of `camdrive train bc`."""
    cfg = BCConfig(
        out=Path(args.out),
        data=None if args.data is None else Path(args.data),
        expert_episodes=args.expert_episodes,
        augment=args.augment,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        dagger=args.dagger,
        dagger_episodes=args.dagger_episodes,
        dagger_epochs=args.dagger_epochs,
        lr=args.lr,
        patience=args.patience,
        noise=args.noise,
        color_space=args.color,
        precision=args.precision,
        threads=args.threads,
        max_minutes=args.max_minutes or None,
        randomize=args.randomize,
        looks=args.looks,
        default_look=args.default_look,
        device=args.device,
        views=ViewConfig(labels=args.view_labels, return_s=args.view_return_s),
        tensorboard=None if args.tensorboard is None else Path(args.tensorboard),
        force=args.force,
        progress=not args.quiet,
        command=shlex.join(["camdrive", *sys.argv[1:]]),
    )
    if not 0.0 <= cfg.randomize <= 1.0 or not 0.0 <= cfg.default_look <= 1.0:
        print("camdrive train bc: error: --randomize and --default-look must be in 0..1", file=sys.stderr)
        return exit_codes.BAD_INPUT
    problem = check_limits(cfg)
    if problem is None and cfg.data is not None:
        problem = _data_problem(cfg.data)
    if problem is None:
        try:
            check_ready(cfg)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"camdrive train bc: error: {problem}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    try:
        train_bc(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except NoUsableDemosError as exc:
        print(f"camdrive train bc: error: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except NothingTrainedError as exc:
        print(f"camdrive train bc: error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    return exit_codes.OK
