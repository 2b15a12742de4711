"""`camdrive train dqn`: its options, made from DQNConfig's fields (config.py); the work is in train.py."""

from __future__ import annotations

import argparse

from agent.device import DEVICES
from training.common.arguments import Subparsers, key_value
from training.common.config_cli import add_config_options
from training.dqn.config import ACTION_MODES, VECTORS, DQNConfig

OPTIONS = (
    "env", "steps", "out", "envs", "vector", "resume", "force", "action_mode", "seed", "eval_every",
    "threads", "device", "tensorboard",
)  # fmt: skip
"""The DQNConfig fields that have an option of their own; `--set KEY=VALUE` reaches every other one."""


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
    add_config_options(
        dqn,
        DQNConfig,
        OPTIONS,
        metavars={"out": "MODEL", "envs": "K", "seed": "S", "eval_every": "N", "tensorboard": "DIR"},
        choices={"env": ["traffic"], "vector": VECTORS, "action_mode": ACTION_MODES, "device": DEVICES},
        required=["out"],
    )
    dqn.add_argument(
        "--set",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="any other DQNConfig field (training/dqn/config.py), e.g. lr=1e-4 (repeatable)",
    )
    dqn.add_argument("--quiet", action="store_true", help="no progress bar")
    dqn.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.dqn.train import main

    return main(args)
