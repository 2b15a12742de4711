"""The settings of a behaviour-cloning run (`BCConfig`) and the limits a run must keep to.

Why a module of its own: `camdrive train bc`'s options are made from these dataclasses
(`training.common.config_cli`), so its parser imports this module, and `--help` must stay quick and
torch-free; nothing but the standard library and the options' naming rule is imported here (the
range checks import `sim.validation` when called). The field docstrings are the options' help.

Seed ranges: episode i of a run with `--seed S` is `env.reset(seed=S * SEED_STRIDE + i)`, its DAgger
episodes take the block from S * SEED_STRIDE + DAGGER_SEED_OFFSET, and evaluation uses seeds from
EVAL_SEED_START on, which training never reaches. `check_limits` refuses a run that would leave its
block before any work is done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.common.config_cli import option_name

ENV_ID = "camdrive/LaneKeep-v0"
"""The env behaviour cloning drives, records and learns from."""
SEED_STRIDE = 10_000
"""Run --seed S trains on env seeds S * SEED_STRIDE + i (expert) and + DAGGER_SEED_OFFSET + ... (DAgger)."""
DAGGER_SEED_OFFSET = 5_000
MAX_EXPERT_EPISODES = DAGGER_SEED_OFFSET
"""Expert seeds S * SEED_STRIDE + i must stay below the run's DAgger seeds."""
MAX_DAGGER_EPISODES = 100
"""Each DAgger round has a block of this many seeds."""
MAX_DAGGER_ROUNDS = (SEED_STRIDE - DAGGER_SEED_OFFSET) // MAX_DAGGER_EPISODES
"""The rounds' seed blocks fill the rest of the run's SEED_STRIDE, so no two runs share a seed."""
EVAL_SEED_START = 1_000_000
"""Seeds from here on are for evaluation only; training never uses them."""

EXPERT_LOOKAHEAD_S = 0.9
"""The expert's look-ahead time (`sim.lane_control.steer_to_offset`'s default); see `training.bc.augment`."""
RETURN_S = 0.9
"""Time in which a geometric label brings a displaced view back to the recorded path. NVIDIA used 2 s,
too gentle a correction to learn recoveries from an imperfect driver's demonstrations; 0.9 s, the
expert's own look-ahead time, was chosen on validation roads (assets/pilotnet/MODEL_CARD.md)."""
VIEW_LABELS = ("expert", "geometric")
"""How the extra views are labelled: the expert's controller, or `geometric_label` (`training.bc.augment`)."""


@dataclass(frozen=True)
class ViewConfig:
    """Range of the extra views: displacements are drawn uniformly in [-max, max], independently."""

    max_shift_m: float = 0.9
    """Largest sideways displacement; 0.9 m stays inside a 3.6 m lane with the car's 1.9 m width."""
    max_yaw_deg: float = 6.0
    """Largest rotation; 6 degrees at 20 m/s is a drift of 2 m/s, well beyond what the expert does."""
    lookahead_s: float = EXPERT_LOOKAHEAD_S
    """Look-ahead time of the expert's controller when it labels the views."""
    labels: str = "expert"
    """Label of the extra views: expert = the expert's controller from the displaced pose; geometric =
    NVIDIA's steering back onto the recorded path in --view-return-s seconds, from the recorded steering
    and the view's displacement alone, no expert."""
    return_s: float = RETURN_S
    """Geometric view labels: seconds in which they bring a view back onto the recorded path; NVIDIA
    used 2, which corrects too gently to learn recoveries from an imperfect driver (the default was
    chosen on validation roads)."""

    def __post_init__(self) -> None:
        if self.labels not in VIEW_LABELS:
            raise ValueError(f"view labels must be one of {', '.join(VIEW_LABELS)}, got {self.labels!r}")


@dataclass(frozen=True)
class LookConfig:
    """The training looks: how many randomised palettes, how strong, how often the default look."""

    count: int = 96
    """Randomised palettes in the pool (each palette's renderer is built on its first use)."""
    strength: float = 1.0
    """`Palette.randomised` strength, 0..1 (the env's `randomize`); 0 turns the pool off."""
    default_fraction: float = 0.25
    """Probability that a frame is drawn in the default look."""

    @property
    def enabled(self) -> bool:
        """Whether any frame is drawn in a randomised look."""
        return self.count > 0 and self.strength > 0


@dataclass(frozen=True)
class JitterConfig:
    """Per-sample photometric jitter ranges (factors around 1, or amounts around 0), drawn uniformly."""

    brightness: float = 0.3
    """Brightness factor, 1 +- brightness."""
    contrast: float = 0.35
    """Contrast factor about the image's mean grey, 1 +- contrast."""
    colour: float = 0.15
    """Per-channel gain (colour balance)."""
    saturation: float = 0.6
    """Blend toward (< 1) or away from (> 1) the pixel's grey level, factor 1 +- saturation."""
    mix: float = 0.15
    """Off-diagonal entries of a random 3 x 3 colour-mixing matrix (a hue shift), +- mix."""
    offset: float = 15.0
    """Per-channel additive shift, +- offset (0..255 units)."""
    noise: float = 6.0
    """Per-pixel grey Gaussian noise whose standard deviation is drawn per sample in [0, noise]."""


@dataclass
class BCConfig:
    """Everything `train_bc` needs; `camdrive train bc` makes its options from these fields."""

    out: Path
    """Model file to write (.safetensors); its logs are named after it."""
    data: Path | None = None
    """Train on the demonstrations recorded by `camdrive record` in this directory; None: drive the expert."""
    expert_episodes: int = 24
    """Expert episodes (60 s each) to collect when no --data."""
    augment: int = 2
    """Extra shifted/rotated views per state."""
    epochs: int = 6
    """Training epochs."""
    batch_size: int = 64
    """Frames (viewpoint views included) per Adam step; an epoch drops its ragged last batch."""
    seed: int = 0
    """Run seed: expert episode i drives env seed S*10000 + i (DAgger from S*10000 + 5000); it also seeds
    torch, the noise and the randomised looks; below 100, so training stays under the evaluation seeds."""
    dagger: int = 0
    """DAgger rounds after behaviour cloning."""
    dagger_episodes: int = 10
    """Learner episodes per DAgger round."""
    dagger_epochs: int = 3
    """Epochs of retraining per DAgger round."""
    lr: float = 1e-3
    """Adam learning rate."""
    patience: int = 3
    """Epochs without a better validation loss after which a stage stops (each halves the learning rate)."""
    max_minutes: float | None = 14.0
    """Wall-clock cap of the run in minutes, 0: none. No epoch starts that would end after it, and no DAgger
    round after it; a run it cut short says so in its .metrics.json (stopped_by_time_cap) and is not
    repeatable."""
    val_fraction: float = 0.1
    """Share of the episodes (at least one) kept for validation."""
    noise: float = 0.15
    """Std of the smooth noise on the expert's steering."""
    noise_tau_s: float = 1.0
    """Correlation time of that noise (Ornstein-Uhlenbeck), in seconds."""
    color_space: str = "rgb"
    """Colour space PilotNet converts its input to."""
    precision: str = "bf16"
    """Training arithmetic; bf16 autocast is faster on CPUs with AVX512-BF16."""
    threads: int = 1
    """Torch threads."""
    episode_seconds: float = 60.0
    """Length of the expert's and DAgger's episodes."""
    randomize: float = 1.0
    """Domain randomisation strength 0..1 of the training looks: every training frame is drawn in the
    default look or in one of --looks randomised palettes of this strength (drawn from the run seed,
    never the evaluation seeds' looks); 0: default look only."""
    looks: int = 96
    """Randomised palettes the training frames are drawn in."""
    default_look: float = 0.25
    """Probability that a training frame is drawn in the default look."""
    device: str = "auto"
    """Torch device of the network, batches and optimiser: auto = cuda when torch sees a GPU, else cpu;
    cuda without one is refused before any work. The data set stays in CPU memory."""
    tensorboard: Path | None = None
    """Directory for TensorBoard scalars (losses, learning rate, DAgger rounds); None: nothing written."""
    force: bool = False
    """Replace an existing model and its logs (otherwise the run refuses to start)."""
    progress: bool = True
    """Progress bars on stderr."""
    command: str = ""
    """The command line, recorded in the model and its metrics."""
    views: ViewConfig = field(default_factory=ViewConfig)
    """The extra views: their range and labels."""
    jitter: JitterConfig = field(default_factory=JitterConfig)
    """The photometric jitter of training batches."""

    def env_options(self) -> dict[str, Any]:
        """The LaneKeep-v0 options the data is collected with (defaults but the episode length).

        No `randomize`: the looks are drawn per frame by `LookPool`, not per episode by the env.
        """
        return {"episode_seconds": self.episode_seconds}

    def look_config(self) -> LookConfig:
        return LookConfig(count=self.looks, strength=self.randomize, default_fraction=self.default_look)


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


def seed_ranges(cfg: BCConfig) -> dict[str, Any]:
    """The env seeds the run trains on, for its metrics and model metadata."""
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


def check_limits(cfg: BCConfig) -> str | None:
    """Why `cfg` would fail part-way through the run (seed ranges), or None.

    `expert_seeds` and `dagger_seeds` enforce the same limits, but only when they are reached, which
    for DAgger is after the whole behaviour-cloning training: a command line that cannot finish must
    be refused before any of that work. The ranges of the numbers come first: the command line's
    parser takes any int or float, and the messages name the options.
    """
    problem = _range_problem(cfg)
    if problem is not None:
        return problem
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
    if not (math.isfinite(cfg.views.return_s) and cfg.views.return_s > 0):
        return f"--view-return-s must be above 0, got {cfg.views.return_s:g}"
    return None


def _range_problem(cfg: BCConfig) -> str | None:
    """Why a count or amount of `cfg` is out of its range (in `sim.validation`'s words), or None."""
    from sim.validation import check_at_least

    counts = (
        "expert_episodes",
        "epochs",
        "batch_size",
        "dagger_episodes",
        "dagger_epochs",
        "patience",
        "threads",
    )
    minimums = {**dict.fromkeys(counts, 1), **dict.fromkeys(("augment", "seed", "dagger", "looks"), 0)}
    amounts = {"noise": cfg.noise, "max_minutes": 0.0 if cfg.max_minutes is None else cfg.max_minutes}
    try:
        for name, low in minimums.items():
            check_at_least(option_name(name), getattr(cfg, name), low, integer=True)
        for name, value in amounts.items():
            check_at_least(option_name(name), value, 0)
    except ValueError as e:
        return str(e)
    if not (0.0 <= cfg.randomize <= 1.0 and 0.0 <= cfg.default_look <= 1.0):
        return "--randomize and --default-look must be in 0..1"
    return None
