"""The `camdrive` command line.

Each subcommand is declared by one small function `_add_<name>(subparsers)` listed in `SUBCOMMANDS`: it
adds the subparser with its help and arguments, and sets `run` to a "module:function" string. The module
is imported only when that subcommand runs, so `camdrive --help` stays fast and never imports torch. The
function receives the parsed `argparse.Namespace` and returns the process exit code (None means 0).

To add a subcommand (play, record, train, eval, watch...): write `_add_<name>` below and append it to
`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Sequence

from agent.device import DEVICES
from training import exit_codes
from training.interrupts import interruption, sigterm_as_ctrl_c
from training.version import package_version

PROG = "camdrive"

# The type argparse's add_subparsers() returns (private in argparse, hence the alias).
Subparsers = argparse._SubParsersAction


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_parser(subparsers: Subparsers, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
    )


def _add_bench(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "bench",
        "measure how fast the environments step, render and reset",
        "Measure steps/s (random actions), render-only frames/s and reset time of camdrive/LaneKeep-v0 "
        "and camdrive/Traffic-v0 with their default options (or those given by --option), next to "
        "Gymnasium's CarRacing-v3 "
        "(when Box2D is installed: pip install -e '.[bench]'), and print a table. With --vector, also "
        "their native vector envs' env-steps/s.",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=1000, help="timed steps per environment (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of resets and random actions (default: %(default)s)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers and machine info to FILE")
    _add_force(parser, "--json FILE")
    parser.add_argument("--no-carracing", action="store_true", help="skip the CarRacing-v3 reference")
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="option passed to gymnasium.make for both camdrive envs (not CarRacing-v3), e.g. "
        "traffic_cars=0 or grayscale=true (repeatable)",
    )
    parser.add_argument(
        "--vector",
        action="append",
        metavar="N[,N...]",
        help="also measure env-steps/s of gymnasium.make_vec(env, num_envs=N), camdrive's native vector env, "
        "for each N (a comma list, or repeat the option), e.g. --vector 1,4,16,64",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="K",
        help="processes stepping each vector env's sub-envs, for --vector (default: %(default)s, the bench's "
        "own process; the vector env's workers= option)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="K",
        help="threads drawing each vector env's frames in the bench's process, for --vector (default: 1; the "
        "vector env's threads= option: 2 pays on two physical cores, not on two hyperthreads of one)",
    )
    parser.add_argument(
        "--first-step",
        action="store_true",
        help="also time a new process's first step, with an empty and with a warm cache of numba's "
        "compiled renderer kernels",
    )
    parser.set_defaults(run="training.bench:main")


def _add_export(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "export",
        "copy recorded demonstrations into another format (Minari)",
        "Export every complete episode in DIR to a Minari dataset (needs pip install -e '.[minari]'). "
        "The camera frames are stored exactly as recorded, unlike Minari's own default (JPEG).",
    )
    parser.add_argument("directory", metavar="DIR", help="directory of camdrive demonstrations")
    parser.add_argument("--minari", required=True, metavar="DATASET_ID", help="e.g. camdrive/lane-expert-v0")
    parser.add_argument("--root", metavar="PATH", help="Minari datasets folder (default: Minari's own)")
    parser.add_argument(
        "--jpeg",
        action="store_true",
        help="store the camera frames JPEG-encoded (Minari's default): a smaller dataset, but LOSSY, its "
        "frames differ from the recording and no longer re-simulate (default: lossless raw frames)",
    )
    parser.set_defaults(run="training.export:main")


def _add_eval(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "eval",
        "score a driver: NVIDIA autonomy (lane) or the DeepTraffic score (traffic)",
        "Drive a model, the expert or a baseline on seeds seed, seed+1, ... and print the task's metric. "
        "lane: NVIDIA's autonomy % (an intervention whenever |lateral offset| > 1 m; the car is put "
        "back on the lane centre; autonomy = (1 - interventions * 6 s / elapsed s) * 100). traffic: the "
        "median over runs of the average speed, with the noop, random and expert baselines on the same "
        "seeds and in the same action mode. Shipped models are evaluated on seeds >= 1000000, which "
        "training never uses.",
    )
    parser.add_argument(
        "--model", default="expert", help="model file, or expert|noop|random|oracle (default: %(default)s)"
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--episodes", type=positive_int, default=10, help="episodes / runs (default: 10)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first seed (default: 1000000)")
    parser.add_argument("--km", type=float, help="lane: drive this many kilometres instead of --episodes")
    parser.add_argument(
        "--run-seconds", type=float, default=45.0, help="traffic: seconds per run (default: 45)"
    )
    parser.add_argument(
        "--randomize",
        type=float,
        default=0.0,
        help="domain randomisation strength 0..1 of the evaluation roads (default: 0, the default look)",
    )
    parser.add_argument(
        "--action-mode",
        choices=["steer", "lane"],
        help="traffic: action mode of the built-in drivers (default: the model's own mode, else steer); "
        "the noop/random/expert rows always drive in the same mode as the model",
    )
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="traffic: skip the noop/random/expert rows (the oracle, the reference of the %% column, "
        "always drives)",
    )
    parser.add_argument(
        "--safety",
        choices=["on", "off"],
        default="on",
        help="the simulator's safety system (DeepTraffic's brake, lane-change check and, in steer mode, "
        "lane-keeping assist) for every row: on (default, DeepTraffic's rules) or off, where a driver "
        "must avoid crashes itself",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    _add_force(parser, "--json FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run="training.evaluate:main")


def _add_record(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "record",
        "drive episodes headlessly with a driver and save them as demonstrations",
        "Drive --episodes episodes (reset seeds seed, seed+1, ...) with a driver, headless, and write one "
        "crash-safe .npz file per episode to --out (see training/demos.py for the format). With --noise "
        "the executed action is perturbed while the driver's clean action is stored as the label.",
    )
    parser.add_argument(
        "--driver",
        default="expert",
        help="expert, imperfect (a late, keyboard-steering, sometimes inattentive driver whose demos store "
        "no labels), or MODULE:CLASS of a Driver (default: %(default)s)",
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the episode files")
    parser.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.0,
        metavar="SIGMA",
        help="steering noise std (continuous actions) or probability of a random action (discrete) "
        "(default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode (default: 0)")
    parser.add_argument(
        "--steps-per-episode", type=positive_int, metavar="K", help="end an episode after K steps"
    )
    parser.add_argument(
        "--action-mode",
        choices=["steer", "lane"],
        help="traffic: left/right steer (steer) or change lane (lane); lane env: steer only",
    )
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="environment option passed to gymnasium.make, e.g. camera_width=64 (repeatable)",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=non_negative_float,
        default=5.0,
        metavar="S",
        help="save the episode so far every S seconds of wall time (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run="training.record:main")


def _add_data(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "data",
        "inspect recorded demonstrations",
        "Inspect directories of recorded demonstrations (camdrive record).",
    )
    data_commands = parser.add_subparsers(title="data commands", metavar="DATA_COMMAND", required=True)
    info = data_commands.add_parser(
        "info",
        help="count the episodes, frames, hours and kilometres of a directory; list bad and partial files",
        description="Print the episodes, frames, hours, kilometres and drivers of a demo directory and "
        "list its bad and partial files. Exit code 0 when every episode file is readable, 1 when a file is "
        "bad (each named on stderr) or none is readable, 2 when DIR cannot be read (missing, not a "
        "directory, not listable).",
    )
    info.add_argument("directory", metavar="DIR", help="directory of episode files")
    info.add_argument("--verify", action="store_true", help="also read every frame (finds corrupt data)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run="training.demos:info_main")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, object]:
    """argparse type for KEY=VALUE: VALUE is read as JSON (64, 0.5, true, "x"), True/False/None as Python
    spells them, anything else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    literals: dict[str, object] = {"True": True, "False": False, "None": None}
    if raw in literals:
        return key.strip(), literals[raw]
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def _add_play(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "play",
        "drive a car yourself in the pygame viewer (optionally recording demonstrations)",
        "Drive with the arrow keys or WASD (or a gamepad) in a window showing the front camera, a minimap "
        "and a HUD; H shows the keys. The lane task uses steering + throttle actions, the traffic task "
        "Traffic-v0's five discrete actions. Episode i is reset with seed + i. With --record DIR every "
        "episode is saved as a demonstration file (checkpointed while driving). Needs a display "
        "(or xvfb-run, or SDL_VIDEODRIVER=dummy for a run without a visible window).",
    )
    parser.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode (default: 0)")
    parser.add_argument("--record", metavar="DIR", help="save every episode to DIR as a demonstration")
    _add_view_arguments(parser)
    _add_force(parser, "--screenshot PNG")
    parser.add_argument(
        "--hz",
        type=non_negative_float,
        default=30.0,
        help="control rate of the env, steps per second (default: %(default)s; camdrive record uses 10)",
    )
    parser.set_defaults(run="training.play:play_main")


def _add_replay(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "replay",
        "replay recorded episodes in the viewer, or verify that they re-simulate exactly",
        "Re-create each episode's environment from its env_id and options, reset it with its reset_seed "
        "and execute its recorded actions. In the viewer the files play one after another, the next "
        "starting a moment after a replay ends (R restarts the current one, Esc quits); exit code 1 if a "
        "file could not be played. With --verify, no window: check that every re-simulated observation "
        "equals the recorded frame exactly, printing one line per file and, for several, a summary line; "
        "exit code 0 when all match, 1 when one does not, 2 when a file could not be checked (unreadable, "
        "not a camdrive episode, or its env cannot be made), even if another one mismatched. A bad file "
        "does not stop the run: it is reported on stderr in one line naming it, and the other files are "
        "still checked or played.",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="episode files (.npz) written by play or record, or directories: their finished episodes",
    )
    parser.add_argument(
        "--verify", action="store_true", help="headless exact re-simulation check of every file"
    )
    _add_view_arguments(parser)
    _add_force(parser, "--screenshot PNG")
    parser.set_defaults(run="training.play:replay_main")


def _add_watch(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "watch",
        "watch a trained car drive (take over any time; see what its CNN sees; or write a video)",
        "Drive a model in the viewer: by default the shipped behaviour-cloning PilotNet on a fresh "
        "LaneKeep-v0 road; --model dqn the shipped DQN in Traffic-v0. Any drive key (arrows, WASD, "
        "gamepad) takes over and counts an intervention; the model drives again after --quiet seconds "
        "without input, or at once with Enter. V overlays guided-backprop saliency, F shows the feature "
        "maps of each convolution layer; a DQN shows its Q-values as bars. With --video FILE (.mp4 or "
        ".gif), or when there is no screen, it renders off screen and writes a video instead.",
    )
    parser.add_argument(
        "--model",
        default="bc",
        metavar="PATH|bc|dqn|expert",
        help="who drives: bc = shipped PilotNet (default), dqn = shipped DQN, expert, or a model file",
    )
    parser.add_argument(
        "--env",
        choices=["lane", "traffic"],
        help="task (default: the one the model was trained in; lane for the expert)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="reset seed of the first episode (default: a new road each time, from the seeds no model "
        "was trained on, >= 1,000,000)",
    )
    parser.add_argument(
        "--hz",
        type=float,
        help="control rate, steps per second (default: 30, or the rate a DQN was trained at)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds without input before the model drives again (default: %(default)s)",
    )
    parser.add_argument(
        "--record", metavar="DIR", help="save every stretch you drove to DIR as a demonstration"
    )
    parser.add_argument(
        "--safety",
        choices=["on", "off"],
        default="on",
        help="the simulator's safety system (DeepTraffic's brake, lane-change check, lane-keeping assist): "
        "on (default) or off; the HUD and the summary say which",
    )
    parser.add_argument("--saliency", action="store_true", help="start with the saliency overlay on (key V)")
    parser.add_argument("--features", action="store_true", help="start with the feature maps shown (key F)")
    parser.add_argument(
        "--video",
        metavar="FILE",
        help="render off screen to FILE (.mp4 or .gif) instead of a window, one frame per env step",
    )
    _add_force(parser, "--video FILE and --screenshot PNG")
    _add_view_arguments(
        parser, seconds_help="stop after S seconds (wall clock; of driving with --video, default 30)"
    )
    parser.set_defaults(run="training.watch:watch_main")


def _add_view_arguments(
    parser: argparse.ArgumentParser, seconds_help: str = "quit after S seconds (wall clock)"
) -> None:
    """Window options shared by play, replay and watch."""
    parser.add_argument("--width", type=positive_int, default=960, help="window width (default: 960)")
    parser.add_argument("--height", type=positive_int, default=600, help="window height (default: 600)")
    parser.add_argument(
        "--fps",
        type=non_negative_float,
        default=60.0,
        help="display frame-rate cap (default: %(default)s); 0 = unpaced: one env step per frame, as "
        "fast as the machine can (measures the achievable frame rate)",
    )
    parser.add_argument("--seconds", type=non_negative_float, metavar="S", help=seconds_help)
    parser.add_argument("--frames", type=positive_int, metavar="N", help="quit after N displayed frames")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window to PNG when quitting")


def _non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _add_train(subparsers: Subparsers) -> None:
    parser = _add_parser(
        subparsers,
        "train",
        "train a driving policy (bc: PilotNet by behaviour cloning; dqn: Double DQN in traffic; rllib: Ray)",
        "Train a driving policy. `train bc`: PilotNet by behaviour cloning of the expert in LaneKeep-v0; "
        "`train dqn`: Double DQN in Traffic-v0; `train rllib`: PPO, APPO or DQN from Ray RLlib.",
    )
    train_commands = parser.add_subparsers(title="training methods", metavar="METHOD", required=True)
    bc = train_commands.add_parser(
        "bc",
        help="PilotNet by behaviour cloning (+ viewpoint augmentation, optional DAgger)",
        description="Collect expert driving in LaneKeep-v0 (or load demos with --data), add PilotNet's "
        "shifted/rotated viewpoint views, train PilotNet (on a GPU when torch sees one, see --device) and "
        "write MODEL plus, named after it, .csv (losses per epoch), .png (their plot) and .metrics.json "
        "beside it. Training env seeds are SEED*10000 + i; evaluation seeds >= 1000000 are never used. "
        "The defaults go from nothing to a lane-keeping model in well under 15 minutes. A run that "
        "completes no epoch (--max-minutes used up) fails with exit code 1 and writes no model.",
    )
    bc.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.safetensors)")
    _add_force(bc, "MODEL and its .csv, .png and .metrics.json")
    bc.add_argument("--data", metavar="DIR", help="train on demonstrations recorded by `camdrive record`")
    bc.add_argument(
        "--expert-episodes",
        type=positive_int,
        default=24,
        metavar="N",
        help="expert episodes (60 s each) to collect when no --data (default: %(default)s)",
    )
    bc.add_argument(
        "--augment",
        type=_non_negative_int,
        default=2,
        metavar="K",
        help="extra shifted/rotated views per state (default: %(default)s)",
    )
    bc.add_argument(
        "--view-labels",
        choices=("expert", "geometric"),
        default="expert",
        help="label of the extra views: expert = the expert's controller from the displaced pose; "
        "geometric = NVIDIA's steering back onto the recorded path in --view-return-s seconds, from the "
        "recorded steering and the view's displacement alone, no expert (default: %(default)s)",
    )
    bc.add_argument(
        "--view-return-s",
        type=non_negative_float,
        default=0.9,  # training.augment.RETURN_S (a test holds them equal; --help stays light)
        metavar="T",
        help="geometric view labels: seconds in which they bring a view back onto the recorded path; "
        "NVIDIA used 2, which corrects too gently to learn recoveries from an imperfect driver "
        "(default: %(default)s, chosen on validation roads)",
    )
    bc.add_argument(
        "--epochs", type=positive_int, default=6, metavar="E", help="training epochs (default: %(default)s)"
    )
    bc.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="B",
        help="frames (viewpoint views included) per Adam step; an epoch drops its ragged last batch "
        "(default: %(default)s)",
    )
    bc.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="S",
        help="run seed: expert episode i drives env seed S*10000 + i (DAgger from S*10000 + 5000); it "
        "also seeds torch, the noise and the randomised looks; below 100, so training stays under the "
        "evaluation seeds (default: %(default)s)",
    )
    bc.add_argument(
        "--dagger",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="DAgger rounds after behaviour cloning (default: %(default)s)",
    )
    bc.add_argument(
        "--dagger-episodes",
        type=positive_int,
        default=10,
        metavar="N",
        help="learner episodes per DAgger round (default: %(default)s)",
    )
    bc.add_argument(
        "--dagger-epochs",
        type=positive_int,
        default=3,
        metavar="E",
        help="epochs of retraining per DAgger round (default: %(default)s)",
    )
    bc.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    bc.add_argument(
        "--patience",
        type=positive_int,
        default=3,
        metavar="E",
        help="stop after E epochs without a better validation loss (default: %(default)s)",
    )
    bc.add_argument(
        "--noise",
        type=non_negative_float,
        default=0.15,
        metavar="SIGMA",
        help="std of the smooth noise on the expert's steering (default: %(default)s)",
    )
    bc.add_argument(
        "--color",
        choices=("rgb", "yuv"),
        default="rgb",
        help="colour space PilotNet converts its input to (default: %(default)s)",
    )
    bc.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default="bf16",
        help="training arithmetic; bf16 autocast is ~1.7x faster on CPUs with AVX512-BF16 "
        "(default: %(default)s)",
    )
    bc.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: %(default)s)")
    bc.add_argument(
        "--max-minutes",
        type=non_negative_float,
        default=14.0,
        metavar="M",
        help="no epoch starts that would end after M minutes, 0: none (default: %(default)s)",
    )
    bc.add_argument(
        "--randomize",
        type=non_negative_float,
        default=1.0,
        help="domain randomisation strength 0..1 of the training looks: every training frame is drawn in "
        "the default look or in one of --looks randomised palettes of this strength (drawn from the run "
        "seed, never the evaluation seeds' looks); 0: default look only (default: %(default)s)",
    )
    bc.add_argument(
        "--looks",
        type=_non_negative_int,
        default=96,
        metavar="N",
        help="randomised palettes the training frames are drawn in (default: %(default)s)",
    )
    bc.add_argument(
        "--default-look",
        type=non_negative_float,
        default=0.25,
        metavar="P",
        help="probability that a training frame is drawn in the default look (default: %(default)s)",
    )
    _add_device_and_tensorboard(
        bc, "network, batches and optimiser", "train and validation loss, learning rate, DAgger rounds"
    )
    bc.add_argument("--quiet", action="store_true", help="no progress bars")
    bc.set_defaults(run="training.bc:main")
    _add_train_dqn(train_commands)
    _add_train_rllib(train_commands)


def _add_train_dqn(train_commands: Subparsers) -> None:
    """`camdrive train dqn`: Double DQN on Traffic-v0 from small grayscale camera frames."""
    dqn = train_commands.add_parser(
        "dqn",
        help="Double DQN on Traffic-v0 from camera frames (DeepTraffic from pixels)",
        description="Train a Double DQN (dueling, n-step, target network) on camdrive/Traffic-v0 from "
        "4 stacked 33x100 grayscale frames, collecting from K envs. Writes MODEL: of the networks "
        "evaluated (every --eval-every steps and at the end) on the validation seeds from 2000000, the "
        "one with the fewest collisions plus off-road exits, then the highest score. Beside it: .csv, "
        ".png, .metrics.json and .train.safetensors (training state for --resume). Training env seeds "
        "are < 1000000; the test seeds camdrive eval reports (from 1000000) are never used.",
    )
    dqn.add_argument("--env", choices=["traffic"], default="traffic", help="task (default: traffic)")
    dqn.add_argument("--steps", type=positive_int, default=300_000, help="env steps (default: %(default)s)")
    dqn.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.safetensors)")
    dqn.add_argument("--envs", type=positive_int, default=4, metavar="K", help="parallel envs (default: 4)")
    dqn.add_argument("--vector", choices=["sync", "async"], default="sync", help="vector env (default: sync)")
    dqn.add_argument("--resume", action="store_true", help="continue from MODEL's training state")
    dqn.add_argument(
        "--force",
        action="store_true",
        help="start a new run over MODEL, its training state and its .csv, .png and .metrics.json "
        "(without it, an --out that has them is refused: continue it with --resume)",
    )
    dqn.add_argument(
        "--action-mode",
        choices=["steer", "lane"],
        default="steer",
        help="left/right turn the wheel (steer) or change lane (lane) (default: steer)",
    )
    dqn.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="S",
        help="seeds torch, numpy and the training envs (env seeds from S*10000, kept < 1000000) "
        "(default: %(default)s)",
    )
    dqn.add_argument(
        "--eval-every",
        type=_non_negative_int,
        default=25_000,
        metavar="N",
        help="env steps between evaluations on the validation seeds, which choose MODEL; 0: evaluate "
        "only once, at the end, and keep the final network (default: %(default)s)",
    )
    dqn.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: %(default)s)")
    dqn.add_argument(
        "--set",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="any other DQNConfig field (training/dqn.py), e.g. lr=1e-4 (repeatable)",
    )
    _add_device_and_tensorboard(
        dqn,
        "networks, sampled batches and optimiser (the replay buffer stays in CPU memory)",
        "TD loss, mean Q, epsilon, training and validation scores, env steps/s",
    )
    dqn.add_argument("--quiet", action="store_true", help="no progress bar")
    dqn.set_defaults(run="training.dqn:main")


def _add_train_rllib(train_commands: Subparsers) -> None:
    """`camdrive train rllib`: PPO, APPO or DQN from Ray RLlib, on one machine or a Ray cluster."""
    rllib = train_commands.add_parser(
        "rllib",
        help="PPO, APPO or DQN from Ray RLlib, on this machine or a Ray cluster (pip install -e '.[rllib]')",
        description="Train with Ray RLlib (new API stack) on camdrive/LaneKeep-v0 (PPO, APPO) or "
        "camdrive/Traffic-v0 (PPO, APPO, DQN; 33x100 grayscale frames) with N env runners, printing env "
        "steps, episode return mean and env steps/s each iteration and saving an RLlib checkpoint in DIR "
        "after each. At the end DIR/policy.safetensors holds the trained policy as a camdrive model file "
        "for camdrive eval and watch. Needs the rllib extra; see training/rllib.py for running on a "
        "multi-machine cluster.",
    )
    rllib.add_argument(
        "--algo", choices=["PPO", "DQN", "APPO"], default="PPO", help="algorithm (default: PPO)"
    )
    rllib.add_argument("--env", choices=["lane", "traffic"], default="lane", help="task (default: lane)")
    rllib.add_argument(
        "--workers", type=positive_int, default=2, metavar="N", help="env runners (default: %(default)s)"
    )
    rllib.add_argument(
        "--address",
        metavar="ADDR",
        help="join an existing Ray cluster (auto, or HEAD_IP:6379) instead of starting Ray on this machine",
    )
    stop = rllib.add_mutually_exclusive_group(required=True)
    stop.add_argument(
        "--iterations", type=positive_int, metavar="K", help="stop after K training iterations in all"
    )
    stop.add_argument(
        "--stop-steps", type=positive_int, metavar="S", help="stop once S env steps were sampled in all"
    )
    rllib.add_argument("--out", required=True, metavar="DIR", help="directory of checkpoints and policy")
    rllib.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of RLlib, torch and the envs (default: 0)"
    )
    rllib.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="device of the learner: auto = a GPU when the Ray cluster has one, else the CPU; cuda "
        "without one is refused (default: %(default)s)",
    )
    _add_tensorboard(rllib, "episode return mean, env steps/s")
    rllib.add_argument("--resume", action="store_true", help="continue from the last checkpoint in DIR")
    rllib.add_argument("--force", action="store_true", help="replace the run in a non-empty DIR")
    rllib.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="env option passed to gymnasium.make, e.g. episode_seconds=20 (repeatable)",
    )
    rllib.add_argument(
        "--set",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="RLlib training setting (AlgorithmConfig.training), e.g. train_batch_size_per_learner=400 "
        "or lr=1e-4 (repeatable)",
    )
    rllib.set_defaults(run="training.rllib:main")


def _add_force(parser: argparse.ArgumentParser, what: str) -> None:
    """--force: the only way a command replaces files that exist (`what` names them)."""
    parser.add_argument(
        "--force", action="store_true", help=f"replace {what} if already there (default: refuse to start)"
    )


def _add_device_and_tensorboard(parser: argparse.ArgumentParser, on_device: str, scalars: str) -> None:
    """--device and --tensorboard of the torch trainers; `on_device` and `scalars` say what each
    trainer puts on the device and writes to TensorBoard."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help=f"torch device of the {on_device}: auto = cuda when torch sees a GPU, else cpu; cuda "
        "without one is refused before any work (default: %(default)s)",
    )
    _add_tensorboard(parser, scalars)


def _add_tensorboard(parser: argparse.ArgumentParser, scalars: str) -> None:
    """--tensorboard, shared by every trainer; `scalars` says what it writes."""
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help=f"also write TensorBoard scalars ({scalars}) to DIR, for `tensorboard --logdir DIR`; needs "
        "the tensorboard package (pip install tensorboard)",
    )


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    _add_bench,
    _add_eval,
    _add_export,
    _add_record,
    _add_data,
    _add_play,
    _add_replay,
    _add_train,
    _add_watch,
]


EXIT_CODES_EPILOG = (
    f"exit codes, the same for every command: {exit_codes.OK} ok; {exit_codes.FAILED} the work ran and "
    f"failed (a check failed, a run trained nothing); {exit_codes.BAD_INPUT} refused before any work (a bad "
    f"option, path or file; one line on stderr names it); {exit_codes.INTERRUPTED} stopped by Ctrl-C or "
    "SIGTERM, after keeping what was already written. No command replaces a file it did not make "
    "without --force."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="camdrive: a camera-based driving simulator, its driving policies and tools.",
        epilog=EXIT_CODES_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.set_defaults(run=None)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def command_name(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The words that name the command in messages: "camdrive train bc" for argv ["train", "bc", ...]."""
    words = [PROG]
    for token in argv:
        children = {
            name: sub
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()
        }
        if token not in children:
            break
        words.append(token)
        parser = children[token]
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `camdrive` console script. Returns the exit code (`training.exit_codes`).

    Ctrl-C and SIGTERM end every command the same way: what it already wrote is kept (the commands'
    own handlers say what), and one line `camdrive CMD: interrupted...` replaces the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    name = command_name(parser, argv)
    with sigterm_as_ctrl_c():
        try:
            args = parser.parse_args(argv)
            if args.run is None:
                parser.print_help(sys.stderr)
                return exit_codes.BAD_INPUT
            module_name, function_name = args.run.split(":")
            run = getattr(importlib.import_module(module_name), function_name)
            code = run(args)
        except BaseException as error:
            stop = interruption(error)
            if stop is None:
                raise
            detail = f"; {stop}" if str(stop) else ""
            print(f"{name}: interrupted{detail}", file=sys.stderr, flush=True)
            return exit_codes.INTERRUPTED
    return exit_codes.OK if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
