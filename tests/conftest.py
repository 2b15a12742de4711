"""Shared test setup: a headless pygame, the camdrive environments registered, env factories that close."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

import sim  # noqa: E402, F401  (registers camdrive/LaneKeep-v0 and camdrive/Traffic-v0)


@pytest.fixture
def make_env():
    """`make_env(id, **options)`: gymnasium.make, closed again at the end of the test."""
    envs: list[gym.Env] = []

    def make(env_id: str, **options):
        env = gym.make(env_id, **options)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


@pytest.fixture
def tensorboard_scalars():
    """`tensorboard_scalars(DIR)`: {tag: [(step, value), ...]} of the event files in DIR, read back the
    way TensorBoard reads them (a resumed run's purge applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read(logdir) -> dict[str, list[tuple[int, float]]]:
        events = EventAccumulator(str(logdir))
        events.Reload()
        return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    return read


UNUSABLE_TRAINER_OPTIONS = {
    "cuda": (["--device", "cuda"], "--device cuda: torch "),
    "file": (["--tensorboard", "FILE"], "is an existing file, not a directory"),
    "under-a-file": (["--tensorboard", "FILE/runs"], "is an existing file, not a directory"),
    "no-package": (
        ["--tensorboard", "DIR"],
        "--tensorboard needs the tensorboard package, which is not installed: pip install tensorboard",
    ),
}


@pytest.fixture(params=UNUSABLE_TRAINER_OPTIONS.values(), ids=UNUSABLE_TRAINER_OPTIONS)
def unusable_trainer_option(request, tmp_path, monkeypatch) -> tuple[list[str], str]:
    """(arguments, message): a --device or --tensorboard every trainer must refuse before any work, on
    a machine arranged for it (no GPU; tmp_path/FILE a file; the tensorboard package missing for DIR),
    paths under tmp_path."""
    import sys

    import torch

    option, message = request.param
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if option[1] == "DIR":  # the package missing: its import fails
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    (tmp_path / "FILE").write_text("not a directory")
    return [str(tmp_path / a) if "FILE" in a or a == "DIR" else a for a in option], message
