"""Which network a DQN run keeps as MODEL: greedy evaluations on the validation seeds, ranked by
`selection_key` (fewest collisions and off-road exits, then the highest score).

The validation seeds (from VALIDATION_SEED_START) are held out from training and apart from the test
seeds `camdrive eval` reports, so the choice of a network does not make its test score optimistic.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agent.qnet import DQNDriver, QNet
from training.dqn.config import TRAFFIC_ID, VALIDATION_SEED_START, DQNConfig
from training.dqn.state import save_model


def evaluate(cfg: DQNConfig, net: QNet, runs: int, seed: int = VALIDATION_SEED_START) -> dict[str, Any]:
    """Greedy policy on held-out seeds (by default the validation seeds): the DeepTraffic score on
    Traffic-v0, mean return otherwise."""
    driver = DQNDriver(net, threads=None)
    if cfg.env == "traffic":
        from training.evaluation.evaluate import evaluate_traffic

        env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.selection_env_options())
        result = evaluate_traffic(driver, env, runs, seed)
        env.close()
        return result
    env = gym.make(cfg.env_id())
    returns = []
    for run in range(runs):
        obs, info = env.reset(seed=seed + run)
        driver.reset(env)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(driver.act(obs, info))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return {"score": float(np.mean(returns)), "runs": runs}


def score_of(result: dict[str, Any]) -> float:
    return float(result.get("score_mph", result.get("score", math.nan)))


def failures_of(result: dict[str, Any]) -> int:
    """Collisions plus off-road exits in an evaluation (0 for envs that do not report them)."""
    return int(result.get("collisions", 0) or 0) + int(result.get("offroad", 0) or 0)


def selection_key(result: dict[str, Any]) -> tuple[float, float]:
    """How checkpoints are ranked for MODEL: larger is better, compared as a tuple.

    First the number of collisions and off-road exits (fewer is better, so it enters negated), then
    the score. A checkpoint with a crash never wins over one without, whatever its speed: the
    DeepTraffic score ignores crashes (a crashed run is averaged up to the crash), so selecting on
    score alone favours aggressive policies. Among crash-free evaluations this is plain score.
    """
    score = score_of(result)
    return (-float(failures_of(result)), score if math.isfinite(score) else -math.inf)


def baseline_scores(cfg: DQNConfig, runs: int) -> dict[str, float]:
    """noop and expert scores on the validation seeds, as reference lines in the learning curve."""
    if cfg.env != "traffic":
        return {}
    from agent.baselines import load_driver
    from training.evaluation.evaluate import evaluate_traffic

    out = {}
    for name in ("noop", "expert"):
        env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.selection_env_options())
        out[name] = evaluate_traffic(load_driver(name), env, runs, VALIDATION_SEED_START)["score_mph"]
        env.close()
    return out


def is_better(result: dict[str, Any], counters: dict[str, Any]) -> bool:
    """Whether an evaluation beats the best so far by `selection_key`."""
    best = (-float(counters.get("best_failures", math.inf)), float(counters["best_score"]))
    return selection_key(result) > best


def keep_as_model(
    cfg: DQNConfig, q: QNet, result: dict[str, Any], step: int, counters: dict[str, Any], device: torch.device
) -> None:
    """Write `q` as MODEL, evaluated at `step` with `result`, and remember it as the best so far."""
    counters["best_score"] = score_of(result)
    counters["best_failures"] = failures_of(result)
    counters["best_step"] = step
    save_model(cfg, q, Path(cfg.out), {"best_step": step, "eval": result, "device": str(device)})
