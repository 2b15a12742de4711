"""Saved driving policies: one entry point that opens any camdrive model file as a `Driver`.

A model file (see `agent.checkpoint`) names its architecture in its metadata; dispatching on it means
`camdrive eval --model FILE` works for every kind of model without being told which one it is.
Each architecture's module is imported only when a file of that kind is opened.

A model drives the env its metadata names (`env_id`, LaneKeep-v0 when absent) made with its
`env_options`. Opening a model checks that this env can be made and that the network fits it: the
frames it gives are the ones the network takes (and the observation shape the metadata declares), and
its action space is the one the network acts in. A model that does not fit is refused when it is
loaded, as a CheckpointError naming the file, not once driving has started.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from agent.driver import Driver

if TYPE_CHECKING:
    from agent.pilotnet import PilotNetDriver
    from agent.qnet import DQNDriver
    from agent.rllib_policy import RLlibDriver

TRAINING_ONLY_OPTIONS = ("randomize", "episode_seconds")
DEFAULT_ENV_ID = "camdrive/LaneKeep-v0"
"""The env of a model file that names none (the first PilotNet files did not): `eval` and `watch` agree."""


def load_policy_driver(path: str | os.PathLike[str]) -> Driver:
    """The driver for a model file, chosen by the "architecture" in its metadata, checked against its env."""
    from agent.checkpoint import CheckpointError, read_metadata

    meta = read_metadata(path)
    observation_space, action_space = model_spaces(path, meta)
    driver = _open_driver(path, meta["architecture"])
    try:
        driver.check_spaces(observation_space, action_space)
    except ValueError as e:
        env_id = meta.get("env_id", DEFAULT_ENV_ID)
        raise CheckpointError(path, f"does not fit {env_id} made with its env_options: {e}") from None
    return driver


def _open_driver(path: str | os.PathLike[str], arch: str) -> DQNDriver | PilotNetDriver | RLlibDriver:
    from agent.checkpoint import CheckpointError

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


def model_spaces(path: str | os.PathLike[str], meta: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of the env a model's metadata names, made with its env_options;
    CheckpointError when that env cannot be made or does not give the observation shape the metadata
    declares."""
    from agent.checkpoint import CheckpointError
    from agent.env_spec import env_spaces

    env_id = meta.get("env_id", DEFAULT_ENV_ID)
    try:
        observation_space, action_space = env_spaces(env_id, meta.get("env_options", {}))
    except ValueError as e:
        raise CheckpointError(path, f"{env_id} cannot be made with its env_options: {e}") from None
    declared = meta.get("observation", {}).get("shape")
    shape = tuple(observation_space.shape or ())
    if declared is not None and shape[: len(declared)] != tuple(declared):
        raise CheckpointError(
            path, f"its metadata declares {declared} frames, its env_options make {env_id} give {shape}"
        )
    return observation_space, action_space


def policy_env_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Env options the model needs (camera size, grayscale, action mode), from its metadata, checked:
    CheckpointError when its env cannot be made with them (see `model_spaces`).

    How the training roads looked (`randomize`) and how long its episodes were are left out: those
    are the evaluation's choice, not part of the model's observation or action spec.
    """
    from agent.checkpoint import read_metadata

    meta = read_metadata(path)
    model_spaces(path, meta)
    options = dict(meta.get("env_options", {}))
    for key in TRAINING_ONLY_OPTIONS:
        options.pop(key, None)
    return options
