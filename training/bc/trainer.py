"""Training PilotNet on a `Dataset`: Adam on the steering MSE, and the per-epoch losses it logs.

Photometric jitter on training batches (`training.bc.augment.photometric_jitter`), the best model on
validation loss kept (and handed to `on_best` as soon as found, so an interrupted run keeps it), the
learning rate halved when validation stalls, early stopping after `patience` epochs without improvement.
Seeded: the same data and config give identical weights (torch.manual_seed, numpy Generators, fixed
data order, fixed thread count). The data set stays in CPU memory and each batch is jittered there
with the seeded CPU generator, so only the arithmetic differs between devices.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agent.pilotnet import PilotNet
from training.bc.augment import photometric_jitter
from training.bc.config import BCConfig
from training.bc.progress import progress
from training.common.outputs import replacing


@dataclass
class EpochLog:
    epoch: int
    stage: str
    train_loss: float
    val_loss: float
    seconds: float
    lr: float


@dataclass
class Trainer:
    """Adam on MSE with jitter, best-on-validation tracking, LR halving and early stopping.

    Trains on the device the model is on: frames and labels stay in CPU memory (numpy) and each batch
    is jittered there, with the seeded CPU generator (so a run's numbers do not depend on the device's
    random numbers), then moved to the device.
    """

    model: PilotNet
    cfg: BCConfig
    history: list[EpochLog] = field(default_factory=list)
    best_val: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    on_best: Any = None
    on_epoch: Callable[[EpochLog], None] | None = None
    """Called with each epoch's log as soon as it is known (TensorBoard scalars)."""
    deadline: float = math.inf
    """time.perf_counter() value after which no new epoch starts (BCConfig.max_minutes)."""
    stopped_by_time_cap: bool = False

    def __post_init__(self) -> None:
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.device = next(self.model.parameters()).device

    def fit(
        self,
        frames: np.ndarray,
        labels: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        epochs: int,
        stage: str,
        rng: np.random.Generator,
    ) -> None:
        """Train up to `epochs` epochs; ends with the stage's best weights loaded into the model."""
        stage_best, stalled = math.inf, 0
        last_epoch_s = 0.0
        for _ in range(epochs):
            t0 = time.perf_counter()
            if t0 + last_epoch_s > self.deadline:
                self.stopped_by_time_cap = True
                break
            train_loss = self._epoch(frames, labels, rng.permutation(train_idx), stage)
            val_loss = evaluate_loss(self.model, frames, labels, val_idx)
            seconds = last_epoch_s = time.perf_counter() - t0
            lr = self.opt.param_groups[0]["lr"]
            self.history.append(EpochLog(len(self.history) + 1, stage, train_loss, val_loss, seconds, lr))
            if self.on_epoch is not None:
                self.on_epoch(self.history[-1])
            score = val_loss if math.isfinite(val_loss) else train_loss  # no validation episodes: train loss
            if score < stage_best:
                stage_best, stalled = score, 0
                self.best_val = score
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.on_best is not None:
                    self.on_best(self)
            else:
                stalled += 1
                for group in self.opt.param_groups:
                    group["lr"] *= 0.5
                if stalled >= self.cfg.patience:
                    break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def _epoch(self, frames: np.ndarray, labels: np.ndarray, order: np.ndarray, stage: str) -> float:
        self.model.train()
        bs = self.cfg.batch_size
        n_batches = max(1, len(order) // bs)  # drop the ragged last batch: equal-weight steps
        total = 0.0
        bar = progress(range(n_batches), self.cfg.progress, f"{stage} epoch {len(self.history) + 1}")
        for b in bar:
            idx = np.sort(order[b * bs : (b + 1) * bs])
            x = photometric_jitter(torch.from_numpy(frames[idx]), self.gen, self.cfg.jitter).to(self.device)
            y = torch.from_numpy(labels[idx])[:, None].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
                out = self.model(x)
            loss = F.mse_loss(out.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.item()
        return total / n_batches


def evaluate_loss(
    model: PilotNet, frames: np.ndarray, labels: np.ndarray, idx: np.ndarray, batch: int = 256
) -> float:
    """Mean squared steering error over `idx`, in full precision and without jitter, on the model's device."""
    if len(idx) == 0:
        return math.nan
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(idx), batch):
            part = idx[start : start + batch]
            out = model(torch.from_numpy(frames[part]).to(device))[:, 0]
            total += float(((out - torch.from_numpy(labels[part]).to(device)) ** 2).sum())
    return total / len(idx)


def split_episodes(n_episodes: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over episodes: True for validation (at least one, and never all when there are two+)."""
    n_val = min(max(1, round(n_episodes * val_fraction)), max(n_episodes - 1, 1))
    mask = np.zeros(n_episodes, dtype=bool)
    if n_episodes > 1:
        mask[rng.choice(n_episodes, n_val, replace=False)] = True
    return mask


def write_loss_csv(path: Path, history: Sequence[EpochLog]) -> None:
    """The losses per epoch as CSV, written atomically (`training.common.outputs.replacing`)."""
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "stage", "train_loss", "val_loss", "seconds", "lr"])
        for h in history:
            w.writerow(
                [
                    h.epoch,
                    h.stage,
                    f"{h.train_loss:.6g}",
                    f"{h.val_loss:.6g}",
                    f"{h.seconds:.1f}",
                    f"{h.lr:.3g}",
                ]
            )


def plot_losses(path: Path, history: Sequence[EpochLog]) -> None:
    """Training and validation MSE per epoch (log scale); DAgger rounds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [h.epoch for h in history]
    ax.plot(epochs, [h.train_loss for h in history], "o-", label="train (with jitter)")
    ax.plot(epochs, [h.val_loss for h in history], "s-", label="validation")
    for prev, h in zip(history, history[1:], strict=False):
        if h.stage != prev.stage:
            ax.axvline(h.epoch - 0.5, color="grey", ls=":", lw=1)
            ax.text(h.epoch - 0.45, ax.get_ylim()[1], h.stage, va="top", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("steering MSE")
    ax.set_title("PilotNet behaviour cloning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
