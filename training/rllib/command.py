"""`camdrive train rllib`: its options; the work is in train.py."""

from __future__ import annotations

import argparse

from agent.device import DEVICES
from training.common.arguments import (
    Subparsers,
    add_tensorboard,
    key_value,
    non_negative_int,
    positive_int,
)


def add_train_rllib(train_commands: Subparsers) -> None:
    """`camdrive train rllib`: PPO, APPO or DQN from Ray RLlib, on one machine or a Ray cluster."""
    rllib = train_commands.add_parser(
        "rllib",
        help="PPO, APPO or DQN from Ray RLlib, on this machine or a Ray cluster (pip install -e '.[rllib]')",
        description="Train with Ray RLlib (new API stack) on camdrive/LaneKeep-v0 (PPO, APPO) or "
        "camdrive/Traffic-v0 (PPO, APPO, DQN; 33x100 grayscale frames) with N env runners, printing env "
        "steps, episode return mean and env steps/s each iteration and saving an RLlib checkpoint in DIR "
        "after each. At the end DIR/policy.safetensors holds the trained policy as a camdrive model file "
        "for camdrive eval and watch. Needs the rllib extra; see training/rllib/train.py for running on a "
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
        "--seed", type=non_negative_int, default=0, help="seed of RLlib, torch and the envs (default: 0)"
    )
    rllib.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="device of the learner: auto = a GPU when the Ray cluster has one, else the CPU; cuda "
        "without one is refused (default: %(default)s)",
    )
    add_tensorboard(rllib, "episode return mean, env steps/s")
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
    rllib.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.rllib.train import main

    return main(args)
