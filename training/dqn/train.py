"""`camdrive train dqn`: Double DQN on Traffic-v0 from camera frames (CleanRL-style, one file).

The loop in `train` reads top to bottom: make K envs, fill the replay buffer with epsilon-greedy
actions, every `train_every` env steps sample a batch and take one Adam step on the Huber loss against
the Double-DQN target (online net picks the next action, target net values it), copy the online net
into the target net every `target_update` env steps, evaluate every `eval_every` steps.

Files written (MODEL = --out):
- MODEL: the best network by validation runs (held-out seeds from VALIDATION_SEED_START, apart from
  the test seeds; see `selection_key`: fewest collisions and off-road exits first, then the highest
  score; the final one when no evaluation ran), a camdrive
  model file (`agent.checkpoint`) whose metadata holds the env options, so `camdrive eval --model MODEL`
  recreates the same small grayscale camera and action mode.
- MODEL stem + `.train.safetensors`: the training state (online and target networks, Adam state,
  counters, numpy and torch RNG states, config) written atomically every `checkpoint_every` steps;
  `--resume` continues from it after a kill (and refuses to run without it). The replay buffer is
  NOT saved (100k frames = 330 MB): on resume it is refilled with `learning_starts` fresh
  epsilon-greedy steps before updates restart.
  Envs restart from new episodes (seeds advanced by the resume count).
- MODEL stem + `.csv` (log), `.png` (learning curve), `.metrics.json` (summary), as
  `training.common.outputs.sidecar` names them for every trainer.

An --out that holds any of these is refused unless `--resume` continues its run or `--force` starts a
new one over it (removing the old files first, so no old training state can be resumed into the new
run). A run whose settings allow no gradient step (`learning_starts` >= `steps`) is refused before it
starts; one that still made none fails (exit code 1) and writes no model. Ctrl-C or SIGTERM stops it with
what was written kept: the best model so far and the last training state, which `--resume` continues.
- With `--tensorboard DIR`: the CSV's losses, epsilon, scores and steps/s as TensorBoard scalars
  (`TENSORBOARD_TAGS`), at each CSV row.

Device (`--device`, default auto: CUDA when torch sees a GPU): the networks, Adam's state and each
sampled batch live there; the replay buffer stays in CPU memory (numpy) and the training state is
always written from CPU copies, so a run can resume on another device.

Seeds: training env seeds are SEED * 10000 + 100 * resume + i (< 1_000_000); evaluation uses seeds
from 1_000_000 (never used in training), with the DeepTraffic score (median of per-run mean speed,
mph) from `training.evaluation.evaluate`.

Vector envs: `SyncVectorEnv` by default. Measured here (2 shared cores, K=4, 33x100 grayscale, random
actions, 5 s each): Sync 1221 env steps/s, Async 1134. The simulator steps in ~1 ms, so the pipes of
AsyncVectorEnv cost about what they save, and with the gradient step taking most of the time and
another training job on the machine, extra processes only compete for the same two cores.

Speed: the loop is bound by the update (~9.5 ms CPU per update of batch 32 on one thread: the two
no-grad forwards of the target 3.3 ms, forward + backward 4 ms, clipping + Adam 1.3 ms, sampling
0.5 ms), against ~3 ms for the 4 env steps between two updates and ~0.9 ms for acting. What keeps it
there, each explained where it is done: fused Adam (`make_optimizer`), denormals flushed to zero
(`DQNConfig.flush_denormal`), channels-last training windows (`ReplayBuffer.window`), next windows
scaled once for both networks (`QNet.scale`), no acting forward when every env explores.
`python -m training.evaluation.sb3_compare` runs Stable-Baselines3's DQN on the same env, network and budget.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import shlex
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import sim  # noqa: F401  (registers the envs)
from agent.device import DEVICES, select_device
from agent.expert import HEADWAY_S, Expert
from agent.qnet import ARCH, DQNDriver, QNet, param_count, window_span
from sim.validation import check_at_least, check_choice, check_range
from training.common import exit_codes
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import (
    OutputError,
    check_output_file,
    refuse_existing,
    remove_stale_temps,
    replacing,
    sidecar,
    write_text,
)
from training.common.tensorboard_log import TensorBoardLog, check_tensorboard
from training.dqn.replay import ReplayBuffer

TRAFFIC_ID = "camdrive/Traffic-v0"
SEED_STRIDE = 10_000
EVAL_SEED_START = 1_000_000
"""Seeds from here on are for evaluation only; training never uses them."""
VALIDATION_SEED_START = 2_000_000
"""The periodic evaluations that pick the best checkpoint drive here: held out from training, and
apart from the test seeds from EVAL_SEED_START on that `camdrive eval` reports (a checkpoint picked on
the test runs would make the test optimistic). `camdrive watch` draws its roads below this."""
MIN_FRAME_SIDE = 20
"""Smallest camera width/height QNet accepts: its 8x8 stride-4 then 4x4 convolutions need 20 pixels."""
MAX_FRAME_SIDE = 4096
"""Largest camera width/height the simulator renders (sim.camera.CameraConfig)."""
MAX_SEED = 2**32 - 1
"""Largest --seed: numpy and torch take it, with room for the resume offsets added to it."""


SIDECARS = (".train.safetensors", ".csv", ".png", ".metrics.json")
"""What a run writes beside its model, named after it (`training.common.outputs.sidecar`); the state first."""


class NothingTrainedError(RuntimeError):
    """The run made no gradient step: no model was written. Exit code 1."""


@dataclass
class DQNConfig:
    """Every knob of a DQN run; `camdrive train dqn` fills it from the command line."""

    out: str = "assets/dqn/dqn_steer.safetensors"
    """Model file to write; the log, curve, metrics and training state go beside it."""
    env: str = "traffic"
    """"traffic" (camdrive/Traffic-v0) or any registered Gymnasium id with (H, W, 1) uint8 frames."""
    action_mode: str = "steer"
    """Traffic-v0 action mode: "steer" (left/right turn the wheel) or "lane" (left/right change lane)."""
    steps: int = 300_000
    """Total env steps, summed over all envs."""
    envs: int = 4
    """Parallel envs collecting experience."""
    vector: str = "sync"
    """"sync" (SyncVectorEnv, measured faster here) or "async" (AsyncVectorEnv, one process per env)."""
    seed: int = 0
    """Seeds torch, numpy and the training envs (SEED * 10000 + ...; always < 1_000_000)."""
    camera_width: int = 100
    """Camera frame width: the default 200 halved (same field of view)."""
    camera_height: int = 33
    """Camera frame height: the default 66 halved."""
    episode_seconds: float = 60.0
    """Training episode length (truncation; not treated as termination)."""
    safety: bool = True
    """Traffic-v0's safety system (DeepTraffic's brake, lane-change check and lane-keeping assist) in
    the training envs and in the evaluations that choose MODEL. False: the network alone must keep
    from crashing; `camdrive eval --safety on|off` then tests it either way."""
    crash_penalty: float = 0.0
    """Subtracted from the reward of a step that ends the episode (terminated: in Traffic-v0 a collision
    or an off-road exit). 0 keeps DeepTraffic's reward, speed alone, where a crash only costs the speed
    that would have followed; a penalty makes it cost more than any short gain from tailgating."""
    expert_weight: float = 0.0
    """Weight of a large-margin loss toward a privileged teacher (DQfD, Hester et al. 2018): the expert
    (`agent.expert.Expert`, which reads the true traffic state) is asked what it would do in every state
    the run visits, as DAgger asks, and the loss ranks its action above every other by `expert_margin`
    on top of the TD loss. The network still sees frames only. 0: plain DQN, no teacher."""
    expert_margin: float = 0.8
    """Margin of that loss, in Q units (a step at the speed limit earns 1)."""
    expert_headway_s: float = HEADWAY_S
    """Time gap the teacher keeps to the car ahead (the expert of the evaluation tables keeps the default)."""
    expert_explore: float = 0.0
    """Share of the exploring steps (epsilon) that take the teacher's action instead of a random one, so
    that early experience reaches the traffic a random driver never gets to."""
    init_from: str = ""
    """A DQN model file whose Q-network starts the run (a curriculum: say the model trained with the
    safety system on, then trained on without it); "" starts from random weights. Its network and
    frames must match this run's."""
    frames: int = 4
    """Frames in the temporal window (stacked on channels)."""
    frame_stride: int = 1
    """Steps between the window's frames: 4 frames at stride 4 show the last 1.3 s (13 steps), at stride
    1 only 0.3 s. A car being passed is out of the front camera's view while it is alongside; a window
    that reaches back to when it was last seen ahead is what lets a network remember it is there."""
    hidden: int = 256
    """Hidden units of each head."""
    dueling: bool = True
    """Dueling head (V + A - mean A)."""
    buffer_size: int = 100_000
    """Replay capacity in frames, split evenly between envs."""
    batch_size: int = 32
    """Transitions per gradient step."""
    lr: float = 1e-4
    """Adam learning rate."""
    adam_eps: float = 1.5e-4
    """Adam epsilon (Rainbow's value; the default 1e-8 makes early steps jumpy)."""
    gamma: float = 0.99
    """Discount per step (10 Hz: a horizon of ~10 s)."""
    n_step: int = 3
    """n-step returns (1 = plain DQN)."""
    train_every: int = 4
    """Env steps (over all envs) per gradient step."""
    learning_starts: int = 5_000
    """Env steps of collection before the first gradient step (also after a resume)."""
    target_update: int = 2_000
    """Env steps between hard copies of the online net into the target net."""
    eps_start: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.05
    """Final exploration rate."""
    eps_fraction: float = 0.3
    """Fraction of `steps` over which epsilon falls linearly."""
    grad_clip: float = 10.0
    """Max global gradient norm."""
    eval_every: int = 25_000
    """Env steps between held-out evaluations (0 = only at the end)."""
    eval_runs: int = 20
    """Runs per periodic evaluation (validation seeds VALIDATION_SEED_START, ...). 5 runs were too
    few: a checkpoint that crashes once in 20 runs passes a 5-run evaluation clean about a quarter of
    the time."""
    eval_seconds: float = 45.0
    """Seconds per evaluation run (camdrive eval's default)."""
    checkpoint_every: int = 10_000
    """Env steps between training-state checkpoints."""
    log_every: int = 5_000
    """Env steps between CSV rows."""
    threads: int = 1
    """torch threads (the machine's other core belongs to the simulator / other jobs)."""
    flush_denormal: bool = True
    """Flush denormal floats to zero (x86 FTZ/DAZ, process-wide). Adam's moments of weights whose
    gradient stays exactly zero (dead ReLU units) decay into the denormal range and stay there, where
    every float operation is many times slower: Adam's step took 2.2 ms instead of 0.7 ms after 15k
    updates without this."""
    resume: bool = False
    """Continue from the training state beside `out` (FileNotFoundError when there is none)."""
    force: bool = False
    """Start a new run over the files of an earlier one at `out` (refused otherwise, unless `resume`)."""
    device: str = "auto"
    """Torch device of networks, batches and Adam ("auto": CUDA when available); replay stays on the CPU."""
    tensorboard: str | None = None
    """Directory for TensorBoard scalars (TD loss, mean Q, epsilon, scores, steps/s); None: none written."""
    progress: bool = True
    """tqdm progress bar."""
    command: str = ""
    """The command line, recorded in the metadata."""

    # --------------------------------------------------------------------------------- validation
    def validate(self) -> DQNConfig:
        """Check every field's type and range; raise ValueError naming the first bad field.

        Why up front: a bad value otherwise fails late or never. `train_every` = 0 loops forever,
        `log_every`, `checkpoint_every` or `target_update` = 0 divide by zero only after the baseline
        evaluation has run, and a string or None fails deep inside torch. `train` calls this first, so
        library callers get the same messages as `camdrive train dqn --set`. Booleans are never taken
        for numbers (`check_range` refuses them), and NaN/inf never pass. Returns self, like the
        simulator's config classes.
        """
        _check_text("out", self.out)
        _check_text("env", self.env)
        check_choice("action_mode", self.action_mode, ("steer", "lane"))
        check_choice("vector", self.vector, ("sync", "async"))
        check_choice("device", self.device, DEVICES)
        if self.tensorboard is not None:
            _check_text("tensorboard", self.tensorboard)
        _check_text("command", self.command, allow_empty=True)
        counts = (
            "steps", "envs", "frames", "frame_stride", "hidden", "buffer_size", "batch_size", "n_step",
            "train_every",
        )  # fmt: skip
        for name in (*counts, "target_update", "eval_runs", "checkpoint_every", "log_every", "threads"):
            check_at_least(name, getattr(self, name), 1, integer=True)
        check_at_least("learning_starts", self.learning_starts, 0, integer=True)
        check_at_least("eval_every", self.eval_every, 0, integer=True)  # 0: only the final evaluation
        check_range("seed", self.seed, 0, MAX_SEED, integer=True)
        check_range("camera_width", self.camera_width, MIN_FRAME_SIDE, MAX_FRAME_SIDE, integer=True)
        check_range("camera_height", self.camera_height, MIN_FRAME_SIDE, MAX_FRAME_SIDE, integer=True)
        for name in ("episode_seconds", "lr", "adam_eps", "grad_clip", "eval_seconds"):
            check_at_least(name, getattr(self, name), 0, strict=True)
        for name in ("gamma", "eps_start", "eps_end", "eps_fraction", "expert_explore"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        _check_text("init_from", self.init_from, allow_empty=True)
        check_at_least("crash_penalty", self.crash_penalty, 0)
        check_at_least("expert_weight", self.expert_weight, 0)
        check_at_least("expert_margin", self.expert_margin, 0)
        check_at_least("expert_headway_s", self.expert_headway_s, 0, strict=True)
        if self.uses_teacher() and (self.env != "traffic" or self.vector != "sync"):
            raise ValueError(
                "expert_weight and expert_explore need env traffic and vector sync (the teacher reads "
                f"each training world), got env {self.env!r}, vector {self.vector!r}"
            )
        for name in ("safety", "dueling", "flush_denormal", "resume", "force", "progress"):
            _check_bool(name, getattr(self, name))
        # The replay keeps a ring per env that must hold a whole window plus an n-step return.
        smallest = self.envs * (window_span(self.frames, self.frame_stride) + self.n_step + 1)
        if self.buffer_size < smallest:
            raise ValueError(
                "buffer_size must be an integer >= envs * ((frames - 1) * frame_stride + n_step + 2) = "
                f"{smallest}, got {self.buffer_size!r}"
            )
        return self

    # ------------------------------------------------------------------------------ derived paths
    def path(self, suffix: str) -> Path:
        """A file of the run beside the model, named after it."""
        return sidecar(self.out, suffix)

    def output_paths(self) -> list[Path]:
        """Every file a run writes: the model, its training state and its logs."""
        return [Path(self.out), *(self.path(suffix) for suffix in SIDECARS)]

    def env_options(self) -> dict[str, Any]:
        """Options a model needs at evaluation too (recorded in its metadata)."""
        if self.env != "traffic":
            return {}
        return {
            "camera_width": self.camera_width,
            "camera_height": self.camera_height,
            "grayscale": True,
            "action_mode": self.action_mode,
        }

    def training_env_options(self) -> dict[str, Any]:
        """`env_options` plus what holds while training and choosing MODEL but is not the model's to
        impose on its users: whether the safety system is on (evaluation chooses, `eval --safety`)."""
        if self.env != "traffic":
            return {}
        return {**self.env_options(), "safety": self.safety}

    def env_id(self) -> str:
        return TRAFFIC_ID if self.env == "traffic" else self.env

    def uses_teacher(self) -> bool:
        """Whether the privileged expert is asked in every training state."""
        return self.expert_weight > 0 or self.expert_explore > 0


def _check_bool(name: str, value: object) -> None:
    """Raise ValueError unless value is a real bool (1 or "yes" would only look like one)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _check_text(name: str, value: object, *, allow_empty: bool = False) -> None:
    """Raise ValueError unless value is a string (non-empty unless `allow_empty`).

    A Path or number would get past here only to break the JSON metadata written at the first checkpoint.
    """
    if not isinstance(value, str) or (not allow_empty and not value):
        kind = "a string" if allow_empty else "a non-empty string"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def apply_settings(cfg: DQNConfig, settings: Iterable[tuple[str, object]]) -> None:
    """Set `--set KEY=VALUE` pairs on `cfg`; raise ValueError for an unknown key.

    `training.common.arguments.key_value` reads VALUE as JSON where it can, so a value may arrive as another type
    than the field's. Only lossless readings are converted here: an int for a float field, an
    integral float (3e5) for an int field, a numeric string JSON does not read (.5, 300_000), and
    true/false, yes/no, on/off, 1/0 for a bool field. Anything else is stored as given, for
    `DQNConfig.validate` to reject with the field's name and range (not a raw TypeError from int()).
    """
    hints = get_type_hints(DQNConfig)
    known = sorted(f.name for f in fields(DQNConfig))
    for key, value in settings:
        if key not in hints:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
        setattr(cfg, key, _convert(hints[key], value))


def _convert(kind: object, value: object) -> object:
    """`value` as a `kind` when that loses nothing, else unchanged (see `apply_settings`)."""
    if isinstance(value, bool):
        return value  # never a number, whatever the field
    if kind is bool:
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        return value
    try:
        if kind is float and isinstance(value, (int, str)):
            return float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is int and isinstance(value, str):
            return int(value)
    except (ValueError, OverflowError):
        pass  # not a number (or beyond a float): validate() names the field
    return value


def check_ready(cfg: DQNConfig) -> torch.device:
    """`cfg.validate()`, a device and TensorBoard directory this machine can use and an --out it may
    write (ValueError; `check_outputs`), and with `cfg.resume` the training state it continues from
    (FileNotFoundError when there is none): everything a run can be refused for before it starts.
    Returns the device the run trains on.

    Why a missing state is an error: `--resume` means "continue the run that was killed". Starting from
    scratch instead would silently train again from step 0 (and overwrite MODEL), e.g. after a typo in
    --out.
    """
    cfg.validate()
    device = select_device(cfg.device)
    check_tensorboard(cfg.tensorboard)
    check_outputs(cfg)
    if cfg.init_from and not cfg.resume:
        load_init_from(cfg)
    return device


def load_init_from(cfg: DQNConfig) -> QNet:
    """The network of `cfg.init_from`; ValueError naming the file if it is unreadable or its window,
    layers or (on Traffic-v0, whose camera the run sets) frame size are not the ones this run builds.
    The frame size of another env and the action count are only known once the env is made:
    `initial_weights` checks the whole network then."""
    from agent.checkpoint import CheckpointError
    from agent.qnet import load_qnet

    try:
        start, _ = load_qnet(cfg.init_from)
    except CheckpointError as e:
        raise ValueError(f"init_from: {e}") from None
    wanted: dict[str, Any] = {
        "frames": cfg.frames, "frame_stride": cfg.frame_stride, "hidden": cfg.hidden, "dueling": cfg.dueling,
    }  # fmt: skip
    if cfg.env == "traffic":
        wanted.update(height=cfg.camera_height, width=cfg.camera_width)
    found = {k: start.config()[k] for k in wanted}
    if found != wanted:
        raise ValueError(f"init_from: {cfg.init_from} has the network {found}, this run builds {wanted}")
    return start


def check_outputs(cfg: DQNConfig) -> None:
    """Refuse an --out whose files cannot be written, or that holds a run `cfg` would replace silently.

    Why a training state is special: it is what a 20,000-step run can be resumed from, and a new
    1,000-step run would overwrite it within minutes. Without --resume or --force, any file of an
    earlier run (model, state, logs) is refused; --resume needs the state; the two are exclusive.
    """
    model, state, *logs = cfg.output_paths()
    if cfg.resume and cfg.force:
        raise ValueError("--resume continues the run in --out, --force replaces it: give one")
    check_output_file(model, "--out", force=True)
    for path in (state, *logs):
        check_output_file(path, f"--out {model}, file", force=True)
    if cfg.resume and not state.is_file():
        raise FileNotFoundError(
            f"cannot resume: no training state {state} (a run writes it every checkpoint_every env "
            "steps beside its model); start without --resume (resume=False) for a new run"
        )
    if cfg.resume:
        _check_resume_config(state, cfg)
        return
    if not cfg.force and state.exists():
        raise OutputError(
            f"--out {model}: {state} holds the training state of an earlier run; continue it with "
            "--resume or replace it with --force"
        )
    if not cfg.force:
        refuse_existing([model, *logs], "--out", model)
    if cfg.learning_starts >= cfg.steps:
        raise ValueError(
            f"no gradient step would run: learning_starts ({cfg.learning_starts}) collection steps come "
            f"first, and the run has {cfg.steps} steps; give more --steps or --set learning_starts=N"
        )


# ------------------------------------------------------------------------------------------ pieces
def epsilon(cfg: DQNConfig, step: int) -> float:
    """Linear schedule from eps_start to eps_end over eps_fraction * steps, then flat."""
    span = max(1.0, cfg.eps_fraction * cfg.steps)
    return cfg.eps_end + (cfg.eps_start - cfg.eps_end) * max(0.0, 1.0 - step / span)


def double_dqn_target(
    returns: torch.Tensor, discounts: torch.Tensor, next_q_online: torch.Tensor, next_q_target: torch.Tensor
) -> torch.Tensor:
    """returns + discounts * Q_target(s', argmax_a Q_online(s', a)) (van Hasselt et al. 2016)."""
    best = next_q_online.argmax(dim=1, keepdim=True)
    return returns + discounts * next_q_target.gather(1, best).squeeze(1)


def large_margin_loss(q_all: torch.Tensor, expert_actions: torch.Tensor, margin: float) -> torch.Tensor:
    """DQfD's supervised loss: the mean over states of max_a [Q(s, a) + margin * (a != a_E)] - Q(s, a_E).

    Zero once the expert's action a_E leads every other action by the margin; unlike a cross-entropy it
    leaves the Q values themselves to the TD loss, so they stay returns."""
    margins = torch.full_like(q_all, margin)
    margins.scatter_(1, expert_actions[:, None], 0.0)
    q_expert = q_all.gather(1, expert_actions[:, None]).squeeze(1)
    return ((q_all + margins).max(dim=1).values - q_expert).mean()


def make_teachers(cfg: DQNConfig, envs: gym.vector.VectorEnv) -> list[Expert]:
    """One privileged expert per training env (none unless `cfg.uses_teacher()`), answering each state
    on its own (`Expert(sigma_delta=False)`), since the network, not the expert, takes the actions."""
    if not cfg.uses_teacher():
        return []
    teachers = [Expert(headway_s=cfg.expert_headway_s, sigma_delta=False) for _ in range(cfg.envs)]
    for teacher, env in zip(teachers, envs.envs, strict=True):
        teacher.reset(env)
    return teachers


def make_optimizer(cfg: DQNConfig, params: list[torch.nn.Parameter]) -> torch.optim.Adam:
    """Adam with the fused CPU kernel when torch has it (2.4+; camdrive allows 2.2).

    Why fused: one pass over all parameters instead of a loop of small per-tensor ops. Measured for
    QNet (1 thread, warm / cold cache): 0.5 / 0.7 ms per step, against 1.5 / 2.1 ms for torch's CPU
    default (single-tensor) and 1.3 / 1.9 ms for foreach=True, in an update of ~9.5 ms in all.
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


def evaluate(cfg: DQNConfig, net: QNet, runs: int, seed: int = VALIDATION_SEED_START) -> dict[str, Any]:
    """Greedy policy on held-out seeds (by default the validation seeds): the DeepTraffic score on
    Traffic-v0, mean return otherwise."""
    driver = DQNDriver(net, threads=None)
    if cfg.env == "traffic":
        from training.evaluation.evaluate import evaluate_traffic

        env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.training_env_options())
        result = evaluate_traffic(driver, env, runs, seed)
        env.close()
        return result
    env = gym.make(cfg.env_id())
    returns = []
    for run in range(runs):
        obs, info = env.reset(seed=seed + run)
        driver.reset(env)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(driver.act(obs, info))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return {"score": float(np.mean(returns)), "runs": runs}


def score_of(result: dict[str, Any]) -> float:
    return float(result.get("score_mph", result.get("score", math.nan)))


def failures_of(result: dict[str, Any]) -> int:
    """Collisions plus off-road exits in an evaluation (0 for envs that do not report them)."""
    return int(result.get("collisions", 0) or 0) + int(result.get("offroad", 0) or 0)


def selection_key(result: dict[str, Any]) -> tuple[float, float]:
    """How checkpoints are ranked for MODEL: larger is better, compared as a tuple.

    First the number of collisions and off-road exits (fewer is better, so it enters negated), then
    the score. A checkpoint with a crash never wins over one without, whatever its speed: the
    DeepTraffic score ignores crashes (a crashed run is averaged up to the crash), so selecting on
    score alone favours aggressive policies. Among crash-free evaluations this is plain score.
    """
    score = score_of(result)
    return (-float(failures_of(result)), score if math.isfinite(score) else -math.inf)


def baseline_scores(cfg: DQNConfig, runs: int) -> dict[str, float]:
    """noop and expert scores on the validation seeds, as reference lines in the learning curve."""
    if cfg.env != "traffic":
        return {}
    from agent.baselines import load_driver
    from training.evaluation.evaluate import evaluate_traffic

    out = {}
    for name in ("noop", "expert"):
        env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.training_env_options())
        out[name] = evaluate_traffic(load_driver(name), env, runs, VALIDATION_SEED_START)["score_mph"]
        env.close()
    return out


# --------------------------------------------------------------------------------- checkpointing
def _atomic_save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from agent.checkpoint import save_atomically

    save_atomically(path, tensors, {"camdrive_train": json.dumps(meta)}, private=True)


def save_training_state(
    path: Path,
    q: QNet,
    target: QNet,
    opt: torch.optim.Optimizer,
    counters: dict[str, Any],
    cfg: DQNConfig,
    rng: np.random.Generator,
) -> None:
    """Networks, Adam state, counters, RNG states and config in one safetensors file (no pickle).

    Always CPU copies, whatever device the run trains on, so the file resumes on any machine.
    """

    def cpu_copy(value: Any) -> torch.Tensor:
        return torch.as_tensor(value).detach().to("cpu", copy=True).contiguous()

    tensors = {f"q.{k}": cpu_copy(v) for k, v in q.state_dict().items()}
    tensors.update({f"target.{k}": cpu_copy(v) for k, v in target.state_dict().items()})
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"opt.{i}.{key}"] = cpu_copy(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"counters": counters, "config": asdict(cfg), "numpy_rng": rng.bit_generator.state}
    _atomic_save(path, tensors, meta)


def load_training_state(
    path: Path, q: QNet, target: QNet, opt: torch.optim.Optimizer, rng: np.random.Generator
) -> dict[str, Any]:
    """Restore what `save_training_state` wrote into fresh objects; returns the counters.

    The tensors are read onto the CPU (map_location) and copied to the devices of `q`, `target` and
    `opt`'s parameters by `load_state_dict`, so a state written on one device resumes on another.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path), device="cpu")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["camdrive_train"])
    q.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("q.")})
    target.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("target.")})
    opt_state = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, i, key = name.split(".", 2)
            state.setdefault(int(i), {})[key] = value
    opt_state["state"] = state
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
    return meta["counters"]


RESUME_MUST_MATCH = (
    "env", "action_mode", "camera_width", "camera_height", "frames", "frame_stride", "hidden", "dueling",
    "safety", "crash_penalty",
)  # fmt: skip


def initial_weights(cfg: DQNConfig, q: QNet) -> dict[str, torch.Tensor]:
    """The Q-network weights of `cfg.init_from`, checked to fit `q`, its action count included
    (ValueError naming the file)."""
    start = load_init_from(cfg)
    if start.config() != q.config():
        raise ValueError(
            f"init_from: {cfg.init_from} has the network {start.config()}, this run builds {q.config()}"
        )
    return start.state_dict()


def _check_resume_config(path: Path, cfg: DQNConfig) -> None:
    """Refuse to resume a run with a different task or network (it would silently train something else)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            saved = json.loads(f.metadata()["camdrive_train"])["config"]
    except Exception as e:  # safetensors raises its own errors for a corrupt file
        raise ValueError(f"{path}: cannot resume: not a readable training state ({e})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: cannot resume: its config is not a JSON object")
    defaults = DQNConfig()  # a state written before a setting existed ran with its default
    diff = [
        f"{k}: saved {saved.get(k, getattr(defaults, k))!r}, now {getattr(cfg, k)!r}"
        for k in RESUME_MUST_MATCH
        if saved.get(k, getattr(defaults, k)) != getattr(cfg, k)
    ]
    if diff:
        raise ValueError(f"{path}: cannot resume with different settings ({'; '.join(diff)})")


def save_model(cfg: DQNConfig, q: QNet, path: Path, extra: dict[str, Any]) -> None:
    from agent.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        q,
        {
            "architecture": ARCH,
            "network": q.config(),
            "env_id": cfg.env_id(),
            "env_options": cfg.env_options(),
            "observation": {
                "frames": cfg.frames,
                "frame_stride": cfg.frame_stride,
                "shape": [cfg.camera_height, cfg.camera_width],
                "color_space": "gray",
                "episode_start": "first frame repeated",
            },
            "action_mode": cfg.action_mode,
            "training": {"algorithm": "double dqn", "config": asdict(cfg), **extra},
        },
    )


def plot_curve(cfg: DQNConfig, rows: list[dict[str, Any]], baselines: dict[str, float]) -> None:
    """Held-out score and training episode speed against env steps, with noop/expert lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ev = [r for r in rows if r.get("eval_score") not in ("", None)]
    ax.plot([r["step"] for r in ev], [r["eval_score"] for r in ev], "o-", label="validation score")
    tr = [r for r in rows if r.get("train_score") not in ("", None)]
    ax.plot([r["step"] for r in tr], [r["train_score"] for r in tr], alpha=0.6, label="training episodes")
    for name, value in baselines.items():
        ax.axhline(value, ls="--", lw=1, color="grey" if name == "noop" else "green", label=name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mph (median of run mean speeds)" if cfg.env == "traffic" else "return")
    ax.set_title(f"DQN {cfg.env} {cfg.action_mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with replacing(cfg.path(".png")) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------- training
def train(cfg: DQNConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run DQN as configured; returns the summary also written to the metrics JSON.

    `on_step(global_step)` is called after every vector step (tests use it to simulate a kill).
    Raises ValueError for a bad setting (or a device, TensorBoard directory or --out this machine cannot
    use, or an --out holding an earlier run) and FileNotFoundError when `cfg.resume` finds no training
    state (`check_ready`), both before anything is built or written; NothingTrainedError when no
    gradient step ran (no model is written then). The TensorBoard writer and the envs are closed however
    the run ends; a KeyboardInterrupt propagates with a message saying what it kept.
    """
    device = check_ready(cfg)
    for path in cfg.output_paths():
        remove_stale_temps(path)
        if cfg.force:  # a new run: nothing of the old one may be resumed into it or mistaken for it
            path.unlink(missing_ok=True)
    progress: dict[str, Any] = {"step": 0, "state_step": None}
    with contextlib.ExitStack() as closing, saying_what_is_kept(lambda: _kept(cfg, progress)):
        return _train(cfg, device, closing, on_step, progress)


def _kept(cfg: DQNConfig, progress: dict[str, Any]) -> str:
    """What an interrupted run leaves behind, for the one line `camdrive` prints."""
    model = f"the best model so far is in {cfg.out}" if Path(cfg.out).exists() else "no model written yet"
    if progress["state_step"] is None:
        return f"at step {progress['step']}; {model}; no training state written yet, nothing to resume"
    return (
        f"at step {progress['step']}; {model}; --resume continues from step {progress['state_step']} "
        f"({cfg.path('.train.safetensors')})"
    )


def _train(
    cfg: DQNConfig,
    device: torch.device,
    closing: contextlib.ExitStack,
    on_step: Callable[[int], None] | None,
    progress: dict[str, Any],
) -> dict[str, Any]:
    """`train` once the run is accepted; what needs closing at any exit goes on `closing`. `progress`
    tells the caller the step reached and the step of the last training state written."""
    torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    # Process-wide: give the caller back IEEE floats (torch's default) however the run ends.
    closing.callback(torch.set_flush_denormal, False)
    state_path = cfg.path(".train.safetensors")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)

    # Networks, optimiser, RNGs.
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    probe = gym.make(cfg.env_id(), **cfg.env_options())
    h, w = probe.observation_space.shape[:2]
    n_actions = int(probe.action_space.n)
    probe.close()
    # Initialised on the CPU, then moved: the same starting weights on every device.
    network = dict(n_actions=n_actions, frames=cfg.frames, height=h, width=w, hidden=cfg.hidden)
    network.update(dueling=cfg.dueling, frame_stride=cfg.frame_stride)
    q = QNet(**network).to(device)
    target = QNet(**network).to(device)
    if cfg.init_from:
        q.load_state_dict(initial_weights(cfg, q))
    target.load_state_dict(q.state_dict())
    opt = make_optimizer(cfg, list(q.parameters()))
    counters: dict[str, Any] = {
        "global_step": 0,
        "updates": 0,
        "episodes": 0,
        "best_score": -math.inf,
        "best_failures": math.inf,
        "resumes": 0,
        "train_seconds": 0.0,
    }
    resumed_from = None
    if cfg.resume:  # the state file exists and matches cfg: checked above
        counters = load_training_state(state_path, q, target, opt, rng)
        counters["resumes"] += 1
        resumed_from = counters["global_step"]
        progress["state_step"] = resumed_from
    rows: list[dict[str, Any]] = []
    if resumed_from is not None and cfg.path(".csv").exists():
        with open(cfg.path(".csv")) as f:
            rows = [
                {k: _number(v) for k, v in r.items()}
                for r in csv.DictReader(f)
                if float(r["step"]) <= resumed_from
            ]
    # A resumed run hides what the killed one logged after its checkpoint, as the CSV drops those rows.
    purge = None if resumed_from is None else resumed_from + 1
    tb = closing.enter_context(TensorBoardLog(cfg.tensorboard, purge_step=purge))

    # Envs and replay. Training seeds stay below 1_000_000 (evaluation's range).
    envs = make_vector_env(cfg)
    closing.callback(envs.close)  # also when Ctrl-C or SIGTERM stops the run: no worker left behind
    buffer = ReplayBuffer(
        cfg.buffer_size,
        (h, w),
        cfg.envs,
        cfg.frames,
        cfg.n_step,
        cfg.gamma,
        seed=cfg.seed + counters["resumes"],
        frame_stride=cfg.frame_stride,
    )
    base = (cfg.seed * SEED_STRIDE + 100 * counters["resumes"]) % EVAL_SEED_START
    obs, _ = envs.reset(seed=[base + i for i in range(cfg.envs)])
    for e in range(cfg.envs):
        buffer.start_episode(e, obs[e, :, :, 0])
    teachers = make_teachers(cfg, envs)
    every_env = np.arange(cfg.envs)
    needs_start = np.zeros(cfg.envs, dtype=bool)
    episode_speed = [[] for _ in range(cfg.envs)]
    episode_return = np.zeros(cfg.envs)
    recent = Recent()
    baselines = baseline_scores(cfg, cfg.eval_runs) if resumed_from is None else counters.get("baselines", {})
    counters["baselines"] = baselines
    collected_since_start = 0
    last_eval: dict[str, Any] = {}

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=counters["global_step"], unit="step", dynamic_ncols=True)
    t0, step0 = time.time(), counters["global_step"]
    next_log = (counters["global_step"] // cfg.log_every + 1) * cfg.log_every
    next_eval = (counters["global_step"] // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (counters["global_step"] // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    next_target = (counters["global_step"] // cfg.target_update + 1) * cfg.target_update
    next_train = counters["global_step"] + cfg.train_every

    def checkpoint() -> None:
        counters["train_seconds"] += time.time() - checkpoint.mark
        checkpoint.mark = time.time()
        save_training_state(state_path, q, target, opt, counters, cfg, rng)
        progress["state_step"] = counters["global_step"]

    checkpoint.mark = time.time()

    while counters["global_step"] < cfg.steps:
        step = counters["global_step"]
        # 1. Act: epsilon-greedy on each env's window; no forward at all when every env explores.
        eps = epsilon(cfg, step)
        explore = rng.random(cfg.envs) < eps
        actions = rng.integers(0, n_actions, cfg.envs)
        labels = np.array([t.act() for t in teachers], dtype=np.int64) if teachers else None
        if labels is not None and cfg.expert_explore:
            actions = np.where(rng.random(cfg.envs) < cfg.expert_explore, labels, actions)
        if not explore.all():
            with torch.inference_mode():
                window = buffer.window(every_env, buffer.count - 1)  # each env's newest window
                greedy = q(torch.from_numpy(window).to(device)).argmax(dim=1).cpu().numpy()
            actions = np.where(explore, actions, greedy)
        next_obs, rewards, terms, truncs, infos = envs.step(actions)

        # 2. Store: a NEXT_STEP autoreset step (after an episode ended) only brings the new first frame.
        for e in range(cfg.envs):
            frame = next_obs[e, :, :, 0]
            if needs_start[e]:
                buffer.start_episode(e, frame)
                if teachers:
                    teachers[e].reset(envs.envs[e])
                needs_start[e] = False
                continue
            reward = float(rewards[e]) - (cfg.crash_penalty if terms[e] else 0.0)
            label = -1 if labels is None else int(labels[e])
            buffer.add_step(e, int(actions[e]), reward, bool(terms[e]), bool(truncs[e]), frame, label)
            episode_return[e] += rewards[e]
            if "speed" in infos:
                episode_speed[e].append(float(infos["speed"][e]))
            if terms[e] or truncs[e]:
                needs_start[e] = True
                counters["episodes"] += 1
                if episode_speed[e]:
                    recent.score.append(float(np.mean(episode_speed[e])) * 2.2369363)
                else:
                    recent.score.append(float(episode_return[e]))
                episode_speed[e], episode_return[e] = [], 0.0
            counters["global_step"] += 1
            collected_since_start += 1
        step = progress["step"] = counters["global_step"]

        # 3. Learn: Double DQN on a replay batch, Huber loss, clipped gradients.
        while step >= next_train:
            next_train += cfg.train_every
            if collected_since_start < cfg.learning_starts:
                continue
            b = buffer.sample(cfg.batch_size)  # numpy in CPU memory; only the batch goes to the device
            obs_t, actions_t, returns_t, discounts_t, next_obs_t = (
                torch.from_numpy(a).to(device) for a in (b.obs, b.actions, b.returns, b.discounts, b.next_obs)
            )
            with torch.no_grad():
                next_x = QNet.scale(next_obs_t)  # scaled once, read by both networks
                y = double_dqn_target(
                    returns_t, discounts_t, q.forward_scaled(next_x), target.forward_scaled(next_x)
                )
            q_all = q(obs_t)
            q_taken = q_all.gather(1, actions_t[:, None]).squeeze(1)
            td_loss = loss = F.smooth_l1_loss(q_taken, y)
            labelled = torch.from_numpy(b.expert_actions >= 0).to(device)
            if cfg.expert_weight and bool(labelled.any()):
                expert_t = torch.from_numpy(b.expert_actions).to(device)[labelled]
                q_labelled = q_all[labelled]
                margin_loss = large_margin_loss(q_labelled, expert_t, cfg.expert_margin)
                loss = td_loss + cfg.expert_weight * margin_loss
                recent.expert_agreement.append((q_labelled.argmax(dim=1) == expert_t).float().mean().item())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(q.parameters(), cfg.grad_clip)
            opt.step()
            counters["updates"] += 1
            recent.td_loss.append(td_loss.item())
            recent.mean_q.append(q_taken.mean().item())
        if step >= next_target:
            next_target += cfg.target_update
            target.load_state_dict(q.state_dict())

        # 4. Evaluate, log, checkpoint.
        evaluated = False
        if next_eval is not None and step >= next_eval:
            next_eval += cfg.eval_every
            last_eval = evaluate(cfg, q, cfg.eval_runs)
            if counters["updates"] and _is_better(last_eval, counters):  # an untrained net is no model
                _set_best(last_eval, step, counters)
                save_model(
                    cfg, q, Path(cfg.out), {"best_step": step, "eval": last_eval, "device": str(device)}
                )
            evaluated = True
        if step >= next_log or evaluated:
            next_log = max(next_log, (step // cfg.log_every + 1) * cfg.log_every)
            wall_s = counters["train_seconds"] + time.time() - checkpoint.mark
            steps_per_s = (step - step0) / max(time.time() - t0, 1e-9)
            row = log_row(step, wall_s, steps_per_s, eps, counters, recent, last_eval if evaluated else {})
            rows.append(row)
            _write_csv(cfg.path(".csv"), rows)
            _log_row(tb, row)
        if step >= next_ckpt:
            next_ckpt += cfg.checkpoint_every
            checkpoint()
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(
                sps=f"{(step - step0) / max(time.time() - t0, 1e-9):.0f}",
                eps=f"{eps:.2f}",
                train=f"{np.mean(recent.score):.1f}" if recent.score else "-",
                score=f"{score_of(last_eval):.1f}" if last_eval else "-",
                refresh=False,
            )
        if on_step is not None:
            on_step(step)

    # Env steps/s of the loop above (periodic evaluations included), stopped before the final
    # evaluation, plot and files, like SB3's learn() in `training.evaluation.sb3_compare`.
    step = counters["global_step"]
    loop_steps_per_s = (step - step0) / max(time.time() - t0, 1e-9)

    if not counters["updates"]:
        raise NothingTrainedError(
            f"no gradient step ran in {step} env steps (learning_starts {cfg.learning_starts}, "
            f"train_every {cfg.train_every}); no model written"
        )
    # Final evaluation, model, state, log, curve, metrics.
    if bar is not None:  # the bar stands at 100 %: say what the next seconds are spent on
        bar.close()
        bar = None
        print(
            f"final evaluation: {cfg.eval_runs} runs on the validation roads...", file=sys.stderr, flush=True
        )
    final = evaluate(cfg, q, cfg.eval_runs)
    if _is_better(final, counters) or not Path(cfg.out).exists():
        _set_best(final, step, counters)
        save_model(cfg, q, Path(cfg.out), {"best_step": step, "eval": final, "device": str(device)})
    checkpoint()
    wall_s = counters["train_seconds"] + time.time() - checkpoint.mark
    rows.append(log_row(step, wall_s, loop_steps_per_s, epsilon(cfg, step), counters, recent, final))
    _write_csv(cfg.path(".csv"), rows)
    _log_row(tb, rows[-1])
    if bar is not None:
        bar.close()
    envs.close()
    try:
        plot_curve(cfg, rows, baselines)
    except Exception as exc:  # a missing matplotlib must not lose a finished run
        print(f"learning curve not written: {exc}", file=sys.stderr)
    summary = {
        "out": str(cfg.out),
        "global_step": step,
        "updates": counters["updates"],
        "episodes": counters["episodes"],
        "best_score": counters["best_score"],
        "best_failures": counters.get("best_failures"),
        "best_step": counters.get("best_step"),
        "selection": "fewest collisions + off-road exits in the periodic evaluation, then highest score",
        "final_eval": final,
        "baselines_on_validation_seeds": baselines,
        "validation_seeds_start": VALIDATION_SEED_START,
        "resumed_from": resumed_from,
        "resumes": counters["resumes"],
        "steps_per_s_this_session": loop_steps_per_s,
        "device_this_session": str(device),
        "train_seconds_total": counters["train_seconds"],
        "param_count": param_count(q),
        "config": asdict(cfg),
    }
    write_text(cfg.path(".metrics.json"), json.dumps(summary, indent=2, default=str))
    return summary


def _is_better(result: dict[str, Any], counters: dict[str, Any]) -> bool:
    """Whether an evaluation beats the best so far by `selection_key`."""
    best = (-float(counters.get("best_failures", math.inf)), float(counters["best_score"]))
    return selection_key(result) > best


def _set_best(result: dict[str, Any], step: int, counters: dict[str, Any]) -> None:
    counters["best_score"] = score_of(result)
    counters["best_failures"] = failures_of(result)
    counters["best_step"] = step


TENSORBOARD_TAGS = {
    "loss": "train/td_loss",
    "mean_q": "train/mean_q",
    "expert_agreement": "train/expert_agreement",
    "epsilon": "train/epsilon",
    "train_score": "train/episode_score",
    "steps_per_s": "perf/env_steps_per_s",
    "eval_score": "eval/score",
    "eval_collisions": "eval/collisions",
    "eval_offroad": "eval/offroad",
}
"""The CSV columns also written to TensorBoard (`--tensorboard`), and their tags. The learning rate is
constant in a DQN run, so it is not logged."""


@dataclass
class Recent:
    """The running figures a log row averages."""

    td_loss: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """TD loss of the last 100 gradient steps."""
    mean_q: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """Mean Q of the actions taken, in the last 100 batches."""
    expert_agreement: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """Share of the last 100 batches' states where the greedy action is the teacher's."""
    score: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    """DeepTraffic scores (mph; the return for other envs) of the last 20 training episodes."""


def log_row(
    step: int,
    wall_s: float,
    steps_per_s: float,
    eps: float,
    counters: dict[str, Any],
    recent: Recent,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """One row of the CSV log; `evaluation` is the evaluation made at this step ({}: none), empty
    cells are figures not measured yet."""

    def mean(values: deque[float], digits: int) -> float | str:
        return round(float(np.mean(values)), digits) if values else ""

    return {
        "step": step,
        "wall_s": round(wall_s, 1),
        "steps_per_s": round(steps_per_s, 1),
        "epsilon": round(eps, 4),
        "updates": counters["updates"],
        "episodes": counters["episodes"],
        "loss": mean(recent.td_loss, 5),
        "mean_q": mean(recent.mean_q, 4),
        "expert_agreement": mean(recent.expert_agreement, 4),
        "train_score": mean(recent.score, 3),
        "eval_score": round(score_of(evaluation), 3) if evaluation else "",
        "eval_collisions": evaluation.get("collisions", ""),
        "eval_offroad": evaluation.get("offroad", ""),
    }


def _log_row(tb: TensorBoardLog, row: dict[str, Any]) -> None:
    """A CSV row's values as TensorBoard scalars at its step (empty cells, not measured yet, skipped)."""
    tb.scalars({tag: row[column] for column, tag in TENSORBOARD_TAGS.items()}, row["step"])


def _number(text: str) -> float | int | str:
    """A CSV cell read back: int when integral, float otherwise, "" for empty."""
    if text == "":
        return ""
    value = float(text)
    return int(value) if value.is_integer() else value


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The log so far, rewritten atomically (`training.common.outputs.replacing`) at every row."""
    keys = list(rows[0].keys())
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(args: argparse.Namespace) -> int:
    """`camdrive train dqn`.

    Settings are applied and checked before anything runs: a bad value, an unknown key, an --out that
    cannot be written or holds an earlier run, or --resume with no training state prints one line to
    stderr and exits 2 (argparse's code for bad usage), without a traceback and before the minutes-long
    baseline evaluation. A run that made no gradient step exits 1.
    """
    cfg = DQNConfig(
        out=args.out,
        env=args.env,
        action_mode=args.action_mode,
        steps=args.steps,
        envs=args.envs,
        vector=args.vector,
        seed=args.seed,
        eval_every=args.eval_every,
        resume=args.resume,
        force=args.force,
        threads=args.threads,
        device=args.device,
        tensorboard=args.tensorboard,
        progress=not args.quiet,
        command=shlex.join(["camdrive", *sys.argv[1:]]),
    )
    try:
        apply_settings(cfg, getattr(args, "set", None) or [])
        check_ready(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"camdrive train dqn: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    try:
        summary = train(cfg)
    except NothingTrainedError as exc:
        print(f"camdrive train dqn: error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    print(describe_run(summary))
    return exit_codes.OK


def describe_run(summary: dict[str, Any]) -> str:
    """What a finished run made, in words: the model written, its steps, the best evaluation score
    (periodic or final: the model kept) and the final evaluation (the metrics file holds the rest as
    JSON)."""
    final = summary.get("final_eval") or {}
    unit = " mph" if "score_mph" in final else ""
    parts = [f"score {score_of(final):.2f}{unit}"] if final else []
    for key, words in (("collisions", "collision(s)"), ("offroad", "off-road exit(s)")):
        if key in final:
            parts.append(f"{final[key]} {words}")
    runs = f" over {final['runs']} runs" if "runs" in final else ""
    best = summary.get("best_score")
    best_text = f"{best:.2f}" if isinstance(best, int | float) else "-"
    return (
        f"wrote {summary.get('out')}: {summary.get('global_step')} steps, the best evaluation score "
        f"{best_text}; final evaluation{runs}: {', '.join(parts) or 'none'}"
    )
