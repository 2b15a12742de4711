"""Saved driving policies: one entry point that opens any camdrive model file as a `Driver`.

A model file (see `agent.checkpoint`) names its architecture in its metadata; dispatching on it means
`camdrive eval --model FILE` works for every kind of model without being told which one it is.
Each architecture's module is imported only when a file of that kind is opened.
"""

from __future__ import annotations

import os
from typing import Any

from agent.driver import Driver

TRAINING_ONLY_OPTIONS = ("randomize", "episode_seconds")


def load_policy_driver(path: str | os.PathLike[str]) -> Driver:
    """The driver for a model file, chosen by the "architecture" in its metadata."""
    from agent.checkpoint import CheckpointError, read_metadata

    arch = read_metadata(path)["architecture"]
    if arch == "dqn":
        from agent.qnet import DQNDriver

        return DQNDriver.from_checkpoint(path)
    if arch == "pilotnet":
        from agent.pilotnet import PilotNetDriver

        return PilotNetDriver.from_checkpoint(path)
    if arch == "rllib-cnn":
        from agent.rllib_policy import RLlibDriver

        return RLlibDriver.from_checkpoint(path)
    raise CheckpointError(path, f"architecture {arch!r} has no driver (known: dqn, pilotnet, rllib-cnn)")


def policy_env_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Env options the model needs (camera size, grayscale, action mode), from its metadata.

    How the training roads looked (`randomize`) and how long its episodes were are left out: those
    are the evaluation's choice, not part of the model's observation or action spec.
    """
    from agent.checkpoint import read_metadata

    options = dict(read_metadata(path).get("env_options", {}))
    for key in TRAINING_ONLY_OPTIONS:
        options.pop(key, None)
    return options
