"""`camdrive train dqn`: its options; the work is in train.py."""

from __future__ import annotations

import argparse

from training.common.arguments import (
    Subparsers,
    add_device_and_tensorboard,
    key_value,
    non_negative_int,
    positive_int,
)


def add_train_dqn(train_commands: Subparsers) -> None:
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
        type=non_negative_int,
        default=0,
        metavar="S",
        help="seeds torch, numpy and the training envs (env seeds from S*10000, kept < 1000000) "
        "(default: %(default)s)",
    )
    dqn.add_argument(
        "--eval-every",
        type=non_negative_int,
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
        help="any other DQNConfig field (training/dqn/train.py), e.g. lr=1e-4 (repeatable)",
    )
    add_device_and_tensorboard(
        dqn,
        "networks, sampled batches and optimiser (the replay buffer stays in CPU memory)",
        "TD loss, mean Q, epsilon, training and validation scores, env steps/s",
    )
    dqn.add_argument("--quiet", action="store_true", help="no progress bar")
    dqn.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.dqn.train import main

    return main(args)
