"""`camdrive play`, `replay`, `watch`: their options; the work is in play.py, replay_episode.py, watch.py."""

from __future__ import annotations

import argparse

from training.common.arguments import (
    Subparsers,
    add_force,
    add_parser,
    add_view_arguments,
    non_negative_float,
)


def add_play(subparsers: Subparsers) -> None:
    parser = add_parser(
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
    add_view_arguments(parser)
    add_force(parser, "--screenshot PNG")
    parser.add_argument(
        "--hz",
        type=non_negative_float,
        default=30.0,
        help="control rate of the env, steps per second (default: %(default)s; camdrive record uses 10)",
    )
    parser.set_defaults(run=run_play)


def add_replay(subparsers: Subparsers) -> None:
    parser = add_parser(
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
    add_view_arguments(parser)
    add_force(parser, "--screenshot PNG")
    parser.set_defaults(run=run_replay)


def add_watch(subparsers: Subparsers) -> None:
    parser = add_parser(
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
    add_force(parser, "--video FILE and --screenshot PNG")
    add_view_arguments(
        parser, seconds_help="stop after S seconds (wall clock; of driving with --video, default 30)"
    )
    parser.set_defaults(run=run_watch)


def run_play(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.apps.play import play_main

    return play_main(args)


def run_replay(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.apps.replay_episode import replay_main

    return replay_main(args)


def run_watch(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.apps.watch import watch_main

    return watch_main(args)
