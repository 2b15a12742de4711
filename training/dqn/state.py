"""What a DQN run reads and writes besides its logs: the checks before it starts, the training state
that `--resume` continues from, and the model file.

Kept out of the training loop so that the loop reads as the algorithm: everything a run can be
refused for is checked here before anything is built (`check_ready`), and the state is written and
read back as one safetensors file (no pickle), always from CPU copies so that a run resumes on any
device.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.device import select_device
from agent.qnet import ARCH, QNet
from training.common.outputs import OutputError, check_output_file, refuse_existing
from training.common.tensorboard_log import check_tensorboard
from training.dqn.config import DQNConfig


def new_counters() -> dict[str, Any]:
    """The counters of a new run, saved with the training state (JSON) and restored on --resume."""
    return {
        "global_step": 0,
        "updates": 0,
        "episodes": 0,
        "best_score": -math.inf,
        "best_failures": math.inf,
        "resumes": 0,
        "train_seconds": 0.0,
    }


def check_ready(cfg: DQNConfig) -> torch.device:
    """`cfg.validate()`, a device and TensorBoard directory this machine can use and an --out it may
    write (ValueError; `check_outputs`), and with `cfg.resume` the training state it continues from
    (FileNotFoundError when there is none): everything a run can be refused for before it starts.
    Returns the device the run trains on.

    Why a missing state is an error: `--resume` means "continue the run that was killed". Starting from
    scratch instead would silently train again from step 0 (and overwrite MODEL), e.g. after a typo in
    --out.
    """
    cfg.validate()
    device = select_device(cfg.device)
    check_tensorboard(cfg.tensorboard)
    check_outputs(cfg)
    if cfg.init_from and not cfg.resume:
        load_init_from(cfg)
    return device


def load_init_from(cfg: DQNConfig) -> QNet:
    """The network of `cfg.init_from`; ValueError naming the file if it is unreadable or its window,
    layers or (on Traffic-v0, whose camera the run sets) frame size are not the ones this run builds.
    The frame size of another env and the action count are only known once the env is made:
    `initial_weights` checks the whole network then."""
    from agent.checkpoint import CheckpointError
    from agent.qnet import load_qnet

    try:
        start, _ = load_qnet(cfg.init_from)
    except CheckpointError as e:
        raise ValueError(f"init_from: {e}") from None
    wanted: dict[str, Any] = {
        "frames": cfg.frames, "frame_stride": cfg.frame_stride, "hidden": cfg.hidden, "dueling": cfg.dueling,
    }  # fmt: skip
    if cfg.env == "traffic":
        wanted.update(height=cfg.camera_height, width=cfg.camera_width)
    found = {k: start.config()[k] for k in wanted}
    if found != wanted:
        raise ValueError(f"init_from: {cfg.init_from} has the network {found}, this run builds {wanted}")
    return start


def check_outputs(cfg: DQNConfig) -> None:
    """Refuse an --out whose files cannot be written, or that holds a run `cfg` would replace silently.

    Why a training state is special: it is what a 20,000-step run can be resumed from, and a new
    1,000-step run would overwrite it within minutes. Without --resume or --force, any file of an
    earlier run (model, state, logs) is refused; --resume needs the state; the two are exclusive.
    """
    model, state, *logs = cfg.output_paths()
    if cfg.resume and cfg.force:
        raise ValueError("--resume continues the run in --out, --force replaces it: give one")
    check_output_file(model, "--out", force=True)
    for path in (state, *logs):
        check_output_file(path, f"--out {model}, file", force=True)
    if cfg.resume and not state.is_file():
        raise FileNotFoundError(
            f"cannot resume: no training state {state} (a run writes it every checkpoint_every env "
            "steps beside its model); start without --resume (resume=False) for a new run"
        )
    if cfg.resume:
        _check_resume_config(state, cfg)
        return
    if not cfg.force and state.exists():
        raise OutputError(
            f"--out {model}: {state} holds the training state of an earlier run; continue it with "
            "--resume or replace it with --force"
        )
    if not cfg.force:
        refuse_existing([model, *logs], "--out", model)
    if cfg.learning_starts >= cfg.steps:
        raise ValueError(
            f"no gradient step would run: learning_starts ({cfg.learning_starts}) collection steps come "
            f"first, and the run has {cfg.steps} steps; give more --steps or --set learning_starts=N"
        )


def _atomic_save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from agent.checkpoint import save_atomically

    save_atomically(path, tensors, {"camdrive_train": json.dumps(meta)}, private=True)


def save_training_state(
    path: Path,
    q: QNet,
    target: QNet,
    opt: torch.optim.Optimizer,
    counters: dict[str, Any],
    cfg: DQNConfig,
    rng: np.random.Generator,
    aux_head: torch.nn.Module | None = None,
) -> None:
    """Networks (the auxiliary head's too, with `cfg.aux_weight`), Adam state, counters, RNG states and
    config in one safetensors file (no pickle).

    Always CPU copies, whatever device the run trains on, so the file resumes on any machine.
    """

    def cpu_copy(value: Any) -> torch.Tensor:
        return torch.as_tensor(value).detach().to("cpu", copy=True).contiguous()

    tensors = {f"q.{k}": cpu_copy(v) for k, v in q.state_dict().items()}
    tensors.update({f"target.{k}": cpu_copy(v) for k, v in target.state_dict().items()})
    if aux_head is not None:
        tensors.update({f"aux.{k}": cpu_copy(v) for k, v in aux_head.state_dict().items()})
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"opt.{i}.{key}"] = cpu_copy(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"counters": counters, "config": asdict(cfg), "numpy_rng": rng.bit_generator.state}
    _atomic_save(path, tensors, meta)


def read_state_meta(path: Path) -> dict[str, Any]:
    """What `save_training_state` wrote beside the tensors: counters, config and numpy RNG state."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["camdrive_train"])


def weights_under(tensors: dict[str, torch.Tensor], network: str) -> dict[str, torch.Tensor]:
    """The state dict `save_training_state` stored under `network.` ("q", "target" or "aux")."""
    prefix = network + "."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_training_state(
    path: Path,
    q: QNet,
    target: QNet,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    aux_head: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Restore what `save_training_state` wrote into fresh objects; returns the counters.

    The tensors are read onto the CPU (map_location) and copied to the devices of `q`, `target` and
    `opt`'s parameters by `load_state_dict`, so a state written on one device resumes on another.
    """
    from safetensors.torch import load_file

    tensors = load_file(str(path), device="cpu")
    meta = read_state_meta(path)
    q.load_state_dict(weights_under(tensors, "q"))
    target.load_state_dict(weights_under(tensors, "target"))
    if aux_head is not None:
        aux_head.load_state_dict(weights_under(tensors, "aux"))
    opt_state = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, i, key = name.split(".", 2)
            state.setdefault(int(i), {})[key] = value
    opt_state["state"] = state
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
    return meta["counters"]


RESUME_MUST_MATCH = (
    "env", "action_mode", "camera_width", "camera_height", "camera_hfov_deg", "speedometer", "frames",
    "frame_stride", "hidden", "dueling", "safety", "crash_penalty", "safety_penalty", "danger_penalty",
    "select_without_safety", "accel_step", "steer_amount", "aux_weight",
)  # fmt: skip


def initial_weights(cfg: DQNConfig, q: QNet) -> dict[str, torch.Tensor]:
    """The Q-network weights of `cfg.init_from`, checked to fit `q`, its action count included
    (ValueError naming the file)."""
    start = load_init_from(cfg)
    if start.config() != q.config():
        raise ValueError(
            f"init_from: {cfg.init_from} has the network {start.config()}, this run builds {q.config()}"
        )
    return start.state_dict()


def _check_resume_config(path: Path, cfg: DQNConfig) -> None:
    """Refuse to resume a run with a different task or network (it would silently train something else)."""
    try:
        saved = read_state_meta(path)["config"]
    except Exception as e:  # safetensors raises its own errors for a corrupt file
        raise ValueError(f"{path}: cannot resume: not a readable training state ({e})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: cannot resume: its config is not a JSON object")
    defaults = DQNConfig()  # a state written before a setting existed ran with its default
    diff = [
        f"{k}: saved {saved.get(k, getattr(defaults, k))!r}, now {getattr(cfg, k)!r}"
        for k in RESUME_MUST_MATCH
        if saved.get(k, getattr(defaults, k)) != getattr(cfg, k)
    ]
    if diff:
        raise ValueError(f"{path}: cannot resume with different settings ({'; '.join(diff)})")


def save_model(cfg: DQNConfig, q: QNet, path: Path, extra: dict[str, Any]) -> None:
    from agent.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        q,
        {
            "architecture": ARCH,
            "network": q.config(),
            "env_id": cfg.env_id(),
            "env_options": cfg.env_options(),
            "observation": {
                "frames": cfg.frames,
                "frame_stride": cfg.frame_stride,
                "shape": [cfg.camera_height, cfg.camera_width],
                "color_space": "gray",
                "episode_start": "first frame repeated",
            },
            "action_mode": cfg.action_mode,
            "training": {"algorithm": "double dqn", "config": asdict(cfg), **extra},
        },
    )
