"""`camdrive train bc`: behaviour cloning of the expert into PilotNet, from nothing to a model in minutes.

The pipeline, one module a step, so that tests and notebooks can run pieces of it:

1. Data (`training.bc.data`, `training.bc.from_demos`): the noisy expert's driving in LaneKeep-v0 on
   the run's training seeds, or the demonstrations in `--data`.
2. Viewpoint augmentation and training looks (`training.bc.augment`): for every visited state,
   `--augment K` extra frames rendered from the car displaced sideways and turned, labelled to steer
   back (by the expert's controller, or geometrically without it); every frame drawn in a look of
   its own. The env itself stays in the default look: one look per episode would give the network
   only as many looks as episodes, which it memorises instead of generalising (the PilotNet model
   card has the measurements).
3. Training (`training.bc.trainer`): episodes split into train / validation, Adam on the steering MSE
   with photometric jitter, the best model on validation kept and written as soon as found.
4. DAgger (`training.bc.dagger`, `--dagger K`): the learner drives, the expert labels, retrain.

Outputs beside the model, named after it as the DQN trainer names its own (`m.safetensors` ->
`m.csv`, the losses per epoch; `m.png`, their plot; `m.metrics.json`: command line, seed, data size,
timings, losses, DAgger rounds, device), the model card's raw numbers; two models in one folder keep
their own. With `--tensorboard DIR` the same per-epoch losses and learning rate, and the DAgger rounds,
also go to TensorBoard event files. Existing files are never replaced without `--force`; a run that
completes no epoch fails and writes nothing; Ctrl-C or SIGTERM keeps the best model saved so far.

Device (`--device`, default auto: CUDA when torch sees a GPU): the network, each batch and the
optimiser live there; the data set stays in CPU memory, and the initial weights and the jitter are
drawn on the CPU from the run seed, so only the arithmetic differs between devices. `--max-minutes`
caps a run on an overloaded machine; the defaults' timings and held-out results are in the PilotNet
model card.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agent.checkpoint import save_checkpoint
from agent.device import select_device
from agent.pilotnet import ARCH, INPUT_SHAPE, PilotNet, param_count
from sim import seeding
from training.bc.augment import LookPool
from training.bc.config import ENV_ID, BCConfig, check_limits, seed_ranges
from training.bc.dagger import run_dagger
from training.bc.data import Dataset, collect_expert, data_summary
from training.bc.from_demos import NoUsableDemosError, data_problem, load_demos
from training.bc.trainer import EpochLog, Trainer, plot_losses, split_episodes, write_loss_csv
from training.common import exit_codes
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import (
    check_output_file,
    refuse_existing,
    remove_stale_temps,
    sidecar,
    write_text,
)
from training.common.tensorboard_log import TensorBoardLog, check_tensorboard

SIDECARS = (".csv", ".png", ".metrics.json")
"""What each run writes beside its model, named after it (`training.common.outputs.sidecar`)."""


class NothingTrainedError(RuntimeError):
    """The run completed no epoch (its time cap ran out first): no model was written. Exit code 1."""


def training_device(cfg: BCConfig) -> torch.device:
    """`cfg.device` as a torch.device; ValueError naming the option when this machine cannot train so.

    Why bf16 is checked here: autocast refuses bfloat16 on a GPU without it, which would otherwise fail
    at the first batch, after the minutes of data collection.
    """
    device = select_device(cfg.device)
    if device.type == "cuda" and cfg.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16: this GPU has no bfloat16 arithmetic; use --precision fp32")
    return device


def check_ready(cfg: BCConfig) -> torch.device:
    """The device to train on; ValueError naming the option when `cfg.device`, `cfg.tensorboard` or
    `cfg.out` cannot be used here (the command line calls it before its other work, `train_bc` again).

    Why `cfg.out` here: a model that cannot be written, or one that would silently replace a file the
    user has (another model, its logs), is found before the minutes of data collection, not after.
    """
    device = training_device(cfg)
    check_tensorboard(cfg.tensorboard)
    check_outputs(cfg)
    return device


def output_paths(cfg: BCConfig) -> list[Path]:
    """The model and its sidecars, the files a run writes."""
    return [Path(cfg.out), *(sidecar(cfg.out, suffix) for suffix in SIDECARS)]


def check_outputs(cfg: BCConfig) -> None:
    """OutputError when a file of the run cannot be written, or exists and `cfg.force` is off."""
    model, *logs = output_paths(cfg)
    check_output_file(model, "--out", force=cfg.force)
    for path in logs:
        check_output_file(path, f"--out {model}, log", force=True)
    if not cfg.force:
        refuse_existing(logs, "--out", model)


def train_bc(cfg: BCConfig, log: Any = print) -> dict[str, Any]:
    """The whole pipeline (module docstring); returns the metrics also written to MODEL.metrics.json.

    Raises ValueError before any work when `cfg.device`, `cfg.tensorboard` or `cfg.out` cannot be
    used here (OutputError, a ValueError, for the last), NoUsableDemosError (a ValueError too) when
    `cfg.data` holds no usable episode, NothingTrainedError when no epoch completed.
    A KeyboardInterrupt propagates with a message saying what it kept.
    """
    device = check_ready(cfg)
    for path in output_paths(cfg):
        remove_stale_temps(path)
    saved: list[float] = []  # validation losses of the models written so far
    with TensorBoardLog(cfg.tensorboard) as tb, saying_what_is_kept(lambda: _kept(cfg.out, saved)):
        return _train_bc(cfg, log, device, tb, saved)


def _train_bc(
    cfg: BCConfig, log: Any, device: torch.device, tb: TensorBoardLog, saved: list[float]
) -> dict[str, Any]:
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = seeding.stream(cfg.seed, seeding.BC_RUN)
    out = Path(cfg.out)
    data, looks = _collect(cfg, log)
    collect_s = time.perf_counter() - t_start
    out.parent.mkdir(parents=True, exist_ok=True)  # only now: --data refused leaves no trace

    val_mask = split_episodes(data.episodes, cfg.val_fraction, rng)
    model = PilotNet(cfg.color_space).to(device)  # initialised on the CPU: the same weights on any device
    metrics = _run_metrics(cfg, model, device)

    def save(trainer: Trainer) -> None:
        if not saved and cfg.force:
            for path in output_paths(cfg)[1:]:  # the replaced model's logs would describe the wrong model
                path.unlink(missing_ok=True)
        _save_model(out, trainer.model, cfg, metrics, data, time.perf_counter() - t_start, trainer.best_val)
        saved.append(trainer.best_val)

    def log_epoch(h: EpochLog) -> None:
        losses = {"loss/train": h.train_loss, "loss/validation": h.val_loss}
        tb.scalars({**losses, "train/lr": h.lr, "perf/epoch_seconds": h.seconds}, h.epoch)

    trainer = Trainer(model, cfg, on_best=save, on_epoch=log_epoch)
    if cfg.max_minutes is not None:
        trainer.deadline = t_start + 60.0 * cfg.max_minutes
    t_train = time.perf_counter()
    frames, labels, episode = data.arrays()
    train_idx = np.flatnonzero(~val_mask[episode])
    val_idx = np.flatnonzero(val_mask[episode])
    metrics["data"] = data_summary(data, val_mask, train_idx, val_idx)
    log(f"training on {len(train_idx)} frames, validating on {len(val_idx)} ({int(val_mask.sum())} episodes)")
    trainer.fit(frames, labels, train_idx, val_idx, cfg.epochs, "bc", rng)
    if not trainer.history:
        raise NothingTrainedError(
            f"no epoch completed: --max-minutes {cfg.max_minutes or 0:g} ran out after {collect_s:.0f} s of "
            "data collection; no model written"
        )
    log(f"behaviour cloning: best validation MSE {trainer.best_val:.5f}")

    if cfg.dagger:
        del frames, labels, episode  # each DAgger round concatenates the grown data set anew
        run_dagger(cfg, trainer, data, val_mask, looks, rng, tb, metrics, log)

    train_s = time.perf_counter() - t_train
    total_s = time.perf_counter() - t_start
    metrics.update(
        collect_seconds=collect_s,
        train_seconds=train_s,
        total_seconds=total_s,
        epochs_run=len(trainer.history),
        stopped_by_time_cap=trainer.stopped_by_time_cap,
        best_val_loss=trainer.best_val,
        final_val_loss=trainer.history[-1].val_loss,
        final_train_loss=trainer.history[-1].train_loss,
        model_file=out.name,
    )
    _write_outputs(cfg, trainer, metrics, data, total_s)
    log(f"wrote {out} ({total_s:.0f} s total: {collect_s:.0f} s data, {train_s:.0f} s training)")
    return metrics


def _collect(cfg: BCConfig, log: Any) -> tuple[Dataset, LookPool]:
    """The run's data (the demos in `cfg.data`, else the expert's driving) and its training looks."""
    data = Dataset()
    env = gym.make(ENV_ID, **cfg.env_options())
    looks = LookPool(env, cfg.look_config(), cfg.seed)
    env.close()
    if cfg.data is not None:
        load_demos(cfg, data, log, looks)
    else:
        collect_expert(cfg, data, log, looks)
    return data, looks


def _run_metrics(cfg: BCConfig, model: PilotNet, device: torch.device) -> dict[str, Any]:
    """What MODEL.metrics.json says of the run before it trains; the losses and timings come later."""
    return {
        "command": cfg.command,
        "seed": cfg.seed,
        "config": _config_dict(cfg),
        "architecture": ARCH,
        "param_count": param_count(model),
        "env_id": ENV_ID,
        "env_options": cfg.env_options(),
        "training_env_seeds": seed_ranges(cfg),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": cfg.threads,
            "cpu": platform.processor() or platform.machine(),
            "device": str(device),
        },
        "dagger_rounds": [],
        "looks": _looks_dict(cfg),
    }


def _write_outputs(
    cfg: BCConfig, trainer: Trainer, metrics: dict[str, Any], data: Dataset, seconds: float
) -> None:
    """The final model (the best weights, now in `trainer.model`) and its logs beside it."""
    _save_model(Path(cfg.out), trainer.model, cfg, metrics, data, seconds, trainer.best_val)
    losses_csv, losses_png, metrics_json = output_paths(cfg)[1:]
    write_loss_csv(losses_csv, trainer.history)
    plot_losses(losses_png, trainer.history)
    write_text(metrics_json, json.dumps(_jsonable(metrics), indent=2) + "\n")


def _kept(out: Path | str, saved: Sequence[float]) -> str:
    """What an interrupted run leaves: the last model it saved (the best so far), or nothing."""
    if not saved:
        return "no epoch completed, no model written"
    return f"the best model so far (validation MSE {saved[-1]:.5f}) is in {out}, without its logs"


def _save_model(
    out: Path,
    model: PilotNet,
    cfg: BCConfig,
    metrics: dict[str, Any],
    data: Dataset,
    seconds: float,
    val_loss: float,
) -> None:
    save_checkpoint(
        out,
        model,
        {
            "architecture": ARCH,
            "observation": {
                "shape": list(INPUT_SHAPE),
                "dtype": "uint8",
                "layout": "HWC",
                "color_space": cfg.color_space,
                "env_color": "rgb",
            },
            "action": {
                "shape": [1],
                "dtype": "float32",
                "low": -1.0,
                "high": 1.0,
                "meaning": "steering, -1 full left .. +1 full right",
            },
            "preprocessing": "raw env frame in; inside the model: "
            + ("RGB -> YUV (BT.601), then " if cfg.color_space == "yuv" else "")
            + "x / 127.5 - 1",
            "env_id": ENV_ID,
            "env_options": {},
            "training": {
                "method": "behaviour cloning" + (f" + DAgger x{cfg.dagger}" if cfg.dagger else ""),
                "view_labels": cfg.views.labels if cfg.augment else "none",
                "command": cfg.command,
                "seed": cfg.seed,
                "env_seeds": metrics["training_env_seeds"],
                "data_states": data.states,
                "data_frames": data.size,
                "data_episodes": data.episodes,
                "seconds": round(seconds, 1),
                "val_loss": val_loss,
                "device": metrics["machine"]["device"],
            },
        },
    )


def _looks_dict(cfg: BCConfig) -> dict[str, Any]:
    if not cfg.look_config().enabled:
        return {"randomised": 0, "default_fraction": 1.0}
    return {
        "randomised": cfg.looks,
        "strength": cfg.randomize,
        "default_fraction": cfg.default_look,
        "palette_seeds": f"numpy default_rng([{cfg.seed}, {seeding.TRAINING_LOOKS}, i]), i < {cfg.looks}",
    }


def _config_dict(cfg: BCConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    d["data"] = None if cfg.data is None else str(cfg.data)
    d["tensorboard"] = None if cfg.tensorboard is None else str(cfg.tensorboard)
    return d


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x


def main(cfg: BCConfig) -> int:
    """`camdrive train bc` with the config its options make (`training.bc.command`): refuses a run
    that cannot finish in one line with exit code 2 before any work, then trains."""
    problem = check_limits(cfg)
    if problem is None and cfg.data is not None:
        problem = data_problem(cfg.data)
    if problem is None:
        try:
            check_ready(cfg)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"camdrive train bc: error: {problem}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    try:
        train_bc(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except NoUsableDemosError as exc:
        print(f"camdrive train bc: error: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except NothingTrainedError as exc:
        print(f"camdrive train bc: error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    return exit_codes.OK
