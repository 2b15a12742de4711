"""The settings of a DQN run: `DQNConfig`, its checks, and `--set KEY=VALUE` for any field.

`camdrive train dqn` makes its options from these fields (training/dqn/command.py), so this module
must stay light to import: no torch, no simulator (its range checks are imported when a config is
validated). The seed ranges live here too, since the config and the evaluations share them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from agent.device import DEVICES
from agent.frame_window import window_span
from training.common.outputs import sidecar

TRAFFIC_ID = "camdrive/Traffic-v0"
ACTION_MODES = ("steer", "lane")
TEACHERS = ("expert", "oracle")
VECTORS = ("sync", "async")
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


@dataclass
class DQNConfig:
    """Every knob of a DQN run; `camdrive train dqn` fills it from the command line."""

    out: str = "assets/dqn/dqn_steer.safetensors"
    """Model file to write (.safetensors); the log, curve, metrics and training state go beside it."""
    env: str = "traffic"
    """Task: "traffic" (camdrive/Traffic-v0); from Python also any registered Gymnasium id with (H, W, 1)
    uint8 frames."""
    action_mode: str = "steer"
    """Traffic-v0 action mode: left/right turn the wheel (steer) or change lane (lane)."""
    steps: int = 300_000
    """Env steps, summed over all envs."""
    envs: int = 4
    """Parallel envs collecting experience."""
    vector: str = "sync"
    """Vector env: sync (SyncVectorEnv, measured faster here) or async (AsyncVectorEnv, one process per
    env)."""
    seed: int = 0
    """Seeds torch, numpy and the training envs (env seeds from S*10000, kept < 1000000)."""
    camera_width: int = 100
    """Camera frame width: the default 200 halved (same field of view)."""
    camera_height: int = 33
    """Camera frame height: the default 66 halved. The network's convolutions leave the bottom 5 of 33
    rows unread (`agent.qnet.unread_edge`); 36 rows are read whole."""
    camera_hfov_deg: float = 80.0
    """The camera's horizontal field of view (the env's default 80). Wider, a car being passed stays in
    view until it is nearly alongside, at the cost of fewer pixels for the road ahead."""
    speedometer: bool = False
    """Frames with the env's speed bar along the bottom edge (`sim.render.gauge`). The teacher decides to
    brake or accelerate from the car's speed, which a window of frames shows only as the road's motion;
    with the bar a network can read it as the teacher does."""
    accel_step: float = 1.0  # sim.envs.traffic.TrafficOptions.accel_step (a test holds them equal)
    """m/s an accelerate or decelerate action moves Traffic-v0's target speed (its default 1). Shedding
    8 m/s for a slower car ahead takes 8 decelerate decisions in a row at 1 and 3 at 3: a larger step
    asks fewer right decisions of the network for one manoeuvre, at a coarser cruise speed."""
    steer_amount: float = 0.3  # sim.envs.traffic.TrafficOptions.steer_amount (likewise)
    """Steering input a left or right action holds for its step in steer mode (Traffic-v0's 0.3)."""
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
    safety_penalty: float = 0.0
    """Subtracted from the reward of each step in which the safety system overrode the network: it braked,
    or in steer mode took the wheel (the steps its info's safety_brakes and safety_refusals count). With
    `safety` on, the system keeps training runs from crashing at any speed while the penalty teaches the
    network to drive so that the system is never needed, which is driving safely without it (then
    choose with `select_without_safety`). 0: the system's help is free."""
    danger_penalty: float = 0.0
    """Subtracted from the reward of each step that ends where the safety system, were it on, would be
    called on (`sim.safety.in_danger`: a slower car close ahead asks its brake to act, or in steer mode
    the car's sweep reaches an unsafe lane or the road's edge), whether it is on or off. With `safety`
    off, a dense cost of closing in that the network feels long before the crash that `crash_penalty`
    charges. 0: none."""
    select_without_safety: bool = False
    """Choose MODEL, and draw the learning curve's noop and expert lines, on validation runs with the
    safety system off, whatever `safety` trains with: the bar for a network trained to leave it idle."""
    expert_weight: float = 0.0
    """Weight of a large-margin loss toward a privileged teacher (DQfD, Hester et al. 2018): the expert
    (`agent.expert.Expert`, which reads the true traffic state) is asked what it would do in every state
    the run visits, as DAgger asks, and the loss ranks its action above every other by `expert_margin`
    on top of the TD loss. The network still sees frames only. 0: plain DQN, no teacher."""
    expert_margin: float = 0.8
    """Margin of that loss, in Q units (a step at the speed limit earns 1)."""
    expert_headway_s: float = 1.6  # agent.expert.HEADWAY_S (a test holds them equal; --help stays light)
    """Time gap the teacher keeps to the car ahead (the expert of the evaluation tables keeps the default)."""
    expert_speed_band: float = 0.0
    """0: the teacher decides accelerate / decelerate against the cruise target its own pulses have set,
    which the frames do not show. > 0: against the car's actual speed (which the road's motion shows),
    with this dead band in m/s: it then brakes in every step the car is too fast, not in one pulse."""
    expert_balance: bool = False
    """Weight the large-margin loss by the inverse share of each teacher action among the replay's labels,
    so that a rare action (braking) counts as much as a common one."""
    expert_balance_power: float = 1.0
    """With expert_balance: each label weighs its action's share to the power -P (then scaled to average
    1). 1 gives every action the same total weight; 0.5 lifts a rare action less far above a common one."""
    expert_explore: float = 0.0
    """Share of the exploring steps (epsilon) that take the teacher's action instead of a random one, so
    that early experience reaches the traffic a random driver never gets to."""
    expert_teacher: str = "expert"
    """Who teaches: "expert" (`agent.expert.Expert`, rules on the true state) or "oracle"
    (`agent.oracle.Oracle`: it searches lane and time-gap plans 4 s ahead in copies of the world and
    drives the best one with the expert's controllers). Both take expert_speed_band; the oracle picks
    its own time gaps, so expert_headway_s is the expert's only. The oracle drives faster (the DQN model
    card measures both) and costs a few milliseconds of planning per env and training step."""
    aux_weight: float = 0.0
    """Weight of an auxiliary loss (`training.dqn.affordances`): a head on the Q-network's convolutional
    features predicts, in every replayed state, the distances and closing speeds to the cars ahead and
    beside that the true state holds, so that the features learn to see them. The network still acts
    from frames alone; the head is not part of the model file. 0: none."""
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
    priority_alpha: float = 0.0
    """Prioritised replay (Schaul et al. 2016, `training.dqn.priorities`): draw each transition in
    proportion to (|TD error| + 0.01) ** alpha, so that the rare ones the network gets most wrong, the
    seconds before a crash, are replayed until learned; Rainbow uses 0.5. 0: uniform, as before."""
    priority_beta: float = 0.4
    """With priority_alpha: the importance weights' exponent at the first step, rising linearly to 1
    at the last (1 undoes the skewed draws' bias entirely)."""
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
    """Env steps between evaluations on the validation seeds, which choose MODEL; 0: evaluate only once,
    at the end, and keep the final network."""
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
    """Torch threads (the machine's other core belongs to the simulator and other jobs)."""
    flush_denormal: bool = True
    """Flush denormal floats to zero (x86 FTZ/DAZ, process-wide). Adam's moments of weights whose
    gradient stays exactly zero (dead ReLU units) decay into the denormal range and stay there, where
    every float operation is many times slower (measured in assets/dqn/MODEL_CARD.md)."""
    resume: bool = False
    """Continue from MODEL's training state (refused when there is none)."""
    force: bool = False
    """Start a new run over MODEL, its training state and its .csv, .png and .metrics.json (without it,
    an --out that has them is refused: continue it with --resume)."""
    device: str = "auto"
    """Torch device of the networks, sampled batches and optimiser (the replay buffer stays in CPU
    memory): auto = cuda when torch sees a GPU, else cpu; cuda without one is refused before any work."""
    tensorboard: str | None = None
    """Also write TensorBoard scalars (TD loss, mean Q, epsilon, training and validation scores, env
    steps/s) to DIR, for `tensorboard --logdir DIR`; needs the tensorboard package (pip install
    tensorboard)."""
    progress: bool = True
    """tqdm progress bar."""
    command: str = ""
    """The command line, recorded in the metadata."""

    # --------------------------------------------------------------------------------- validation
    def validate(self) -> DQNConfig:
        """Check every field's type and range; raise ValueError naming the first bad field.

        Why up front: a bad value otherwise fails late or never. `train_every` = 0 loops forever,
        `log_every`, `checkpoint_every` or `target_update` = 0 divide by zero only after the baseline
        evaluation has run, and a string or None fails deep inside torch. `training.dqn.train.train`
        calls this first, so library callers get the same messages as `camdrive train dqn --set`.
        Booleans are never taken for numbers (`check_range` refuses them), and NaN/inf never pass.
        Returns self, like the simulator's config classes.
        """
        from sim.validation import check_at_least, check_choice, check_range  # imports the simulator

        _check_text("out", self.out)
        _check_text("env", self.env)
        check_choice("action_mode", self.action_mode, ACTION_MODES)
        check_choice("expert_teacher", self.expert_teacher, TEACHERS)
        check_choice("vector", self.vector, VECTORS)
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
        check_range("camera_hfov_deg", self.camera_hfov_deg, 20.0, 150.0)
        for name in ("episode_seconds", "lr", "adam_eps", "grad_clip", "eval_seconds"):
            check_at_least(name, getattr(self, name), 0, strict=True)
        for name in ("gamma", "eps_start", "eps_end", "eps_fraction", "expert_explore", "priority_beta"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        _check_text("init_from", self.init_from, allow_empty=True)
        check_at_least("crash_penalty", self.crash_penalty, 0)
        check_at_least("safety_penalty", self.safety_penalty, 0)
        check_at_least("danger_penalty", self.danger_penalty, 0)
        check_at_least("expert_weight", self.expert_weight, 0)
        check_at_least("aux_weight", self.aux_weight, 0)
        check_at_least("expert_margin", self.expert_margin, 0)
        check_at_least("expert_headway_s", self.expert_headway_s, 0, strict=True)
        check_at_least("expert_speed_band", self.expert_speed_band, 0)
        check_range("expert_balance_power", self.expert_balance_power, 0.0, 1.0)
        check_range("priority_alpha", self.priority_alpha, 0.0, 1.0)
        if self.speedometer and self.env == "traffic":
            from agent.qnet import unread_edge
            from sim.render.gauge import GAUGE_ROWS

            unread = unread_edge(self.camera_height)
            if unread >= GAUGE_ROWS:
                near = range(self.camera_height - 8, self.camera_height + 9)
                fit = [h for h in near if unread_edge(h) == 0]
                raise ValueError(
                    f"speedometer: the network's convolutions never read the bottom {unread} rows of a "
                    f"{self.camera_height}-row frame, where the bar is drawn; take camera_height "
                    f"{' or '.join(map(str, fit))} (read whole)"
                )
        if self.env == "traffic":  # the env's own ranges, before any work
            from sim.envs.traffic import TrafficOptions

            TrafficOptions(accel_step=self.accel_step, steer_amount=self.steer_amount).validate()
        reads_worlds = self.uses_teacher() or self.danger_penalty or self.aux_weight
        if reads_worlds and (self.env != "traffic" or self.vector != "sync"):
            raise ValueError(
                "expert_weight, expert_explore, danger_penalty and aux_weight need env traffic and vector "
                f"sync (they read each training world), got env {self.env!r}, vector {self.vector!r}"
            )
        flags = (
            "speedometer", "safety", "select_without_safety", "expert_balance", "dueling", "flush_denormal"
        )  # fmt: skip
        for name in (*flags, "resume", "force", "progress"):
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
            "camera_hfov_deg": self.camera_hfov_deg,
            "grayscale": True,
            "speedometer": self.speedometer,
            "action_mode": self.action_mode,
            "accel_step": self.accel_step,
            "steer_amount": self.steer_amount,
        }

    def training_env_options(self) -> dict[str, Any]:
        """`env_options` plus what holds while training and choosing MODEL but is not the model's to
        impose on its users: whether the safety system is on (evaluation chooses, `eval --safety`)."""
        if self.env != "traffic":
            return {}
        return {**self.env_options(), "safety": self.safety}

    def selection_env_options(self) -> dict[str, Any]:
        """`training_env_options` for the validation runs that choose MODEL: the safety system off
        with `select_without_safety`."""
        options = self.training_env_options()
        if options and self.select_without_safety:
            options["safety"] = False
        return options

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

    `training.common.arguments.key_value` reads VALUE as JSON where it can, so a value may arrive as
    another type than the field's. Only lossless readings are converted here: an int for a float
    field, an integral float (3e5) for an int field, a numeric string JSON does not read (.5, 300_000),
    and true/false, yes/no, on/off, 1/0 for a bool field. Anything else is stored as given, for
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
