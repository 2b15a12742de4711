"""`camdrive train bc`: its options; the work is in train.py."""

from __future__ import annotations

import argparse

from training.common.arguments import (
    Subparsers,
    add_device_and_tensorboard,
    add_force,
    non_negative_float,
    non_negative_int,
    positive_int,
)


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
    bc.add_argument(
        "--expert-episodes",
        type=positive_int,
        default=24,
        metavar="N",
        help="expert episodes (60 s each) to collect when no --data (default: %(default)s)",
    )
    bc.add_argument(
        "--augment",
        type=non_negative_int,
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
        default=0.9,  # training.bc.augment.RETURN_S (a test holds them equal; --help stays light)
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
        type=non_negative_int,
        default=0,
        metavar="S",
        help="run seed: expert episode i drives env seed S*10000 + i (DAgger from S*10000 + 5000); it "
        "also seeds torch, the noise and the randomised looks; below 100, so training stays under the "
        "evaluation seeds (default: %(default)s)",
    )
    bc.add_argument(
        "--dagger",
        type=non_negative_int,
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
        type=non_negative_int,
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
    add_device_and_tensorboard(
        bc, "network, batches and optimiser", "train and validation loss, learning rate, DAgger rounds"
    )
    bc.add_argument("--quiet", action="store_true", help="no progress bars")
    bc.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    """Imported when the command runs, so that `camdrive --help` never imports torch."""
    from training.bc.train import main

    return main(args)
