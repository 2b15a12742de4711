"""`camdrive train bc`: its options, made from `BCConfig`'s fields; the work is in train.py.

Each option that sets a config field is generated from the field (`training.common.config_cli`): its
type, default and help (the field's docstring) are written once, in training/bc/config.py. The few
that are no field, or not a plain value (the paths, --force, --quiet), are written here.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from agent.device import DEVICES
from training.bc.config import VIEW_LABELS, BCConfig, ViewConfig
from training.common.arguments import Subparsers, add_force, add_tensorboard
from training.common.config_cli import add_config_options, config_from_args

VIEW_PREFIX = "view_"
"""`--view-labels` and `--view-return-s` set `BCConfig.views.labels` and `.return_s`."""


def add_train_bc(train_commands: Subparsers) -> None:
    """`camdrive train bc`: PilotNet by behaviour cloning of the expert in LaneKeep-v0."""
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
    add_force(bc, "MODEL and its .csv, .png and .metrics.json")
    bc.add_argument("--data", metavar="DIR", help="train on demonstrations recorded by `camdrive record`")
    add_config_options(
        bc, BCConfig, ["expert_episodes", "augment"], metavars={"expert_episodes": "N", "augment": "K"}
    )
    add_config_options(
        bc,
        ViewConfig,
        ["labels", "return_s"],
        prefix=VIEW_PREFIX,
        choices={"labels": VIEW_LABELS},
        metavars={"return_s": "T"},
    )
    add_config_options(
        bc,
        BCConfig,
        [
            "epochs", "batch_size", "seed", "dagger", "dagger_episodes", "dagger_epochs", "lr", "patience",
            "noise", "color_space", "precision", "threads", "max_minutes", "randomize", "looks",
            "default_look", "device",
        ],
        metavars={
            "epochs": "E", "batch_size": "B", "seed": "S", "dagger": "K", "dagger_episodes": "N",
            "dagger_epochs": "E", "patience": "E", "noise": "SIGMA", "max_minutes": "M", "looks": "N",
            "default_look": "P",
        },
        choices={"color_space": ("rgb", "yuv"), "precision": ("bf16", "fp32"), "device": DEVICES},
        names={"color_space": "--color"},
    )  # fmt: skip
    add_tensorboard(bc, "train and validation loss, learning rate, DAgger rounds")
    bc.add_argument("--quiet", action="store_true", help="no progress bars")
    bc.set_defaults(run=run)


def config(args: argparse.Namespace) -> BCConfig:
    """The run's config from the parsed options: the generated ones by name, the rest converted here."""
    return config_from_args(
        BCConfig,
        args,
        out=Path(args.out),
        data=None if args.data is None else Path(args.data),
        max_minutes=args.max_minutes or None,  # 0: no cap
        tensorboard=None if args.tensorboard is None else Path(args.tensorboard),
        progress=not args.quiet,
        command=shlex.join(["camdrive", *sys.argv[1:]]),
        views=config_from_args(ViewConfig, args, prefix=VIEW_PREFIX),
    )


def run(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.bc.train import main

    return main(config(args))
