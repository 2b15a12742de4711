"""What a DQN's convolutional features can read from its frames (a dev script for issue-sized questions).

    python -m training.evaluation.perception --width 100 --height 36 --speedometer
    python -m training.evaluation.perception --state runs/x/dqn_safe.train.safetensors

A driver safe without the safety system must read, from a window of frames, how fast it closes on the
car ahead and whether a car is beside it. This measures how well it can: the privileged teacher
(`dqn_safe`'s: `Expert(headway_s=0.6, sigma_delta=False, speed_band=1.0)`) drives Traffic-v0 without
the safety system, half of its actions replaced by random ones so that the states vary; every
window of frames is recorded with the auxiliary targets of `training.dqn.affordances`.

- Without `--state`: the Q-network's convolutions (`agent.qnet.QNet`) and an `AffordanceHead` are fit
  to those targets alone by Adam, on drives from seed 4,100,000, and scored on other drives from
  seed 4,000,000. This is what the trunk can learn to see with that camera and window at best.
- With `--state`: the head a DQN run trained with `--set aux_weight=W` is scored as it is (its camera
  and window come from the run's config), on the drives from seed 4,000,000.

Printed (and written with `--json`): R^2 of every target on the held-out drives (1 is perfect, 0 is
no better than the mean, negative is worse), and the AUC with which the predicted gap and closing
speed pick out the states closing on a car ahead (under 30 m, over 3 m/s). Seeds 4,000,000 and up
are apart from training (< 1,000,000), the test runs (1,000,000 on) and validation (2,000,000 on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import sim  # noqa: F401  (registers the envs)
from agent.expert import Expert
from agent.frame_window import window_span
from agent.qnet import QNet
from sim.envs.base import unwrap
from training.dqn.affordances import (
    AFFORDANCES,
    CLOSING_MPS,
    GAP_AHEAD_M,
    AffordanceHead,
    affordance_loss,
    affordances,
)
from training.dqn.config import TRAFFIC_ID, DQNConfig
from training.dqn.state import read_state_meta, weights_under

HELD_OUT_SEED = 4_000_000
FIT_SEED = 4_100_000
CLOSE_GAP_M = 30.0
"""A state closes on the car ahead when the gap is under this and ..."""
CLOSE_MPS = 3.0
"""... the car closes faster than this (m/s)."""


def make_env(cfg: DQNConfig, episode_seconds: float) -> gym.Env:
    """Traffic-v0 with the camera and frames a DQN run of `cfg` sees, without the safety system."""
    return gym.make(TRAFFIC_ID, **cfg.env_options(), safety=False, episode_seconds=episode_seconds)


def record(
    cfg: DQNConfig, first_seed: int, drives: int, seconds: float = 45.0
) -> tuple[np.ndarray, np.ndarray]:
    """(windows (N, frames, H, W) uint8, targets (N, len(AFFORDANCES)) float32) of `drives` drives by the
    teacher with half its actions random; each window is labelled with its newest frame's world."""
    env = make_env(cfg, seconds)
    rng = np.random.default_rng(first_seed)
    span = window_span(cfg.frames, cfg.frame_stride)
    windows, targets = [], []
    for drive in range(drives):
        obs, _ = env.reset(seed=first_seed + drive)
        teacher = Expert(headway_s=0.6, sigma_delta=False, speed_band=1.0)
        teacher.reset(env)
        history = [obs[:, :, 0]] * span  # the first frame repeated, as the DQN's windows start
        while True:
            windows.append(np.stack(history[:: cfg.frame_stride]))
            targets.append(affordances(unwrap(env).world))
            action = teacher.act() if rng.random() < 0.5 else int(rng.integers(5))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
            history = [*history[1:], obs[:, :, 0]]
    env.close()
    return np.stack(windows), np.stack(targets)


def networks(cfg: DQNConfig) -> tuple[QNet, AffordanceHead]:
    """A fresh Q-network for `cfg`'s frames (Traffic-v0's 5 actions) and an auxiliary head on it."""
    q = QNet(5, cfg.frames, cfg.camera_height, cfg.camera_width, cfg.hidden, cfg.dueling, cfg.frame_stride)
    return q, AffordanceHead(q.n_features, cfg.hidden)


def fit(
    cfg: DQNConfig, windows: np.ndarray, targets: np.ndarray, epochs: int, seed: int = 0
) -> tuple[QNet, AffordanceHead]:
    """The QNet trunk and a head fit to the targets by Adam (lr 5e-4, batch 64) for `epochs` passes."""
    torch.manual_seed(seed)
    q, head = networks(cfg)
    opt = torch.optim.Adam([*q.features.parameters(), *head.parameters()], lr=5e-4)
    x, y = torch.from_numpy(windows), torch.from_numpy(targets)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x) - 63, 64):
            batch = order[start : start + 64]
            loss = affordance_loss(head(q.features(QNet.scale(x[batch]))), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return q, head


def predict(q: QNet, head: AffordanceHead, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        parts = [
            head(q.features(QNet.scale(torch.from_numpy(windows[k : k + 512])))).numpy()
            for k in range(0, len(windows), 512)
        ]
    return np.concatenate(parts)


def r_squared(predicted: np.ndarray, actual: np.ndarray) -> float:
    """1 - mean squared error / variance of `actual` (nan when it does not vary)."""
    variance = float(actual.var())
    return float("nan") if variance == 0 else 1.0 - float(np.mean((predicted - actual) ** 2)) / variance


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive state scores above a negative one (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def score(predicted: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """R^2 per target and the closing AUC (see the module docstring)."""
    gap, closing = AFFORDANCES.index("band_gap_ahead"), AFFORDANCES.index("band_closing")
    gaps_m = targets[:, gap] * GAP_AHEAD_M[1]
    positive = (gaps_m < CLOSE_GAP_M) & (targets[:, closing] * CLOSING_MPS > CLOSE_MPS)
    return {
        "r2": {
            name: round(r_squared(predicted[:, k], targets[:, k]), 3) for k, name in enumerate(AFFORDANCES)
        },
        "closing_auc": round(auc((1.0 - predicted[:, gap]) * predicted[:, closing], positive), 3),
        "closing_share": round(float(positive.mean()), 4),
        "states": len(targets),
    }


def load_run(state: Path) -> tuple[DQNConfig, QNet, AffordanceHead]:
    """The settings, Q-network and auxiliary head of a DQN run's training state (ValueError if it is
    unreadable, or the run had no head: it was not trained with aux_weight)."""
    from safetensors.torch import load_file

    try:
        saved = read_state_meta(state)["config"]
        tensors = load_file(str(state))
    except Exception as e:  # safetensors raises its own errors for a missing or corrupt file
        raise ValueError(f"{state}: not a readable training state ({e})") from None
    if not saved.get("aux_weight"):
        raise ValueError(f"{state}: the run had no auxiliary head (aux_weight 0)")
    cfg = DQNConfig(**{k: v for k, v in saved.items() if k in DQNConfig.__dataclass_fields__})
    q, head = networks(cfg)
    q.load_state_dict(weights_under(tensors, "q"))
    head.load_state_dict(weights_under(tensors, "aux"))
    return cfg, q.eval(), head.eval()


def probe(args: argparse.Namespace) -> dict[str, Any]:
    """The measurement `main` prints: fit (or load) and score."""
    torch.set_num_threads(1)
    started = time.time()
    if args.state:
        cfg, q, head = load_run(Path(args.state))
    else:
        cfg = DQNConfig(
            camera_width=args.width, camera_height=args.height, camera_hfov_deg=args.hfov,
            speedometer=args.speedometer, frames=args.frames, frame_stride=args.frame_stride,
        ).validate()  # fmt: skip
        q, head = fit(cfg, *record(cfg, FIT_SEED, args.fit_drives, args.seconds), args.epochs)
    windows, targets = record(cfg, HELD_OUT_SEED, args.test_drives, args.seconds)
    result = score(predict(q, head, windows), targets)
    camera = ("camera_width", "camera_height", "camera_hfov_deg", "speedometer", "frames", "frame_stride")
    result["camera"] = {k: getattr(cfg, k) for k in camera}
    result["source"] = args.state or f"fit on {args.fit_drives} drives, {args.epochs} epochs"
    result["seconds"] = round(time.time() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--state", help="a DQN run's .train.safetensors (trained with aux_weight): score its head"
    )
    parser.add_argument("--width", type=int, default=100, help="camera width (without --state)")
    parser.add_argument("--height", type=int, default=33, help="camera height (without --state)")
    parser.add_argument("--hfov", type=float, default=80.0, help="camera field of view, degrees")
    parser.add_argument("--speedometer", action="store_true", help="frames with the speed bar")
    parser.add_argument("--frames", type=int, default=4, help="frames in the window")
    parser.add_argument("--frame-stride", type=int, default=6, help="steps between the window's frames")
    parser.add_argument("--fit-drives", type=int, default=80, help="drives to fit on")
    parser.add_argument("--test-drives", type=int, default=20, help="held-out drives to score on")
    parser.add_argument("--epochs", type=int, default=6, help="passes over the fitting drives")
    parser.add_argument("--seconds", type=float, default=45.0, help="length of a drive, s")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    try:
        result = probe(args)
    except (ValueError, OSError) as exc:
        print(f"perception: {exc}", file=sys.stderr)
        return 2
    r2 = " ".join(f"{name}={value}" for name, value in result["r2"].items())
    print(f"{result['source']}, {result['states']} held-out states: closing AUC {result['closing_auc']}")
    print(f"R^2: {r2}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
