"""Stable-Baselines3's DQN next to camdrive's on the same env, network and budget (dev-only script).

    pip install -e '.[sb3]'   # an optional extra; not a camdrive dependency
    python -m training.evaluation.sb3_compare --steps 20000 --action-mode lane

Both learners get: Traffic-v0 with 33x100 grayscale frames, 4 stacked frames, 4 envs, the same
convolutional trunk (`agent.qnet.QNet`'s, plugged into SB3 as a features extractor: SB3's NatureCNN
cannot take 33-pixel-high frames) with a 256-unit head, the same replay size, batch, learning rate,
gamma, target-update period, exploration schedule and one gradient step per 4 env steps. SB3's DQN
is Nature DQN (no Double-DQN target, no dueling, 1-step); ours is Double + dueling + 3-step, so the
scores compare the two recipes, and the env steps/s compare the two implementations' overheads.
Prints env steps/s and the DeepTraffic score of each on the same held-out seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import sim  # noqa: F401  (registers the envs)
from training.dqn.config import EVAL_SEED_START, TRAFFIC_ID, DQNConfig
from training.dqn.train import train
from training.evaluation.evaluate import evaluate_traffic


def sb3_run(cfg: DQNConfig, eval_runs: int) -> dict[str, Any]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    class Trunk(BaseFeaturesExtractor):
        """QNet's two convolutions; SB3 hands channel-first float frames already divided by 255."""

        def __init__(self, observation_space: gym.Space) -> None:
            assert observation_space.shape is not None  # a Box of frames
            c, h, w = observation_space.shape
            convs = nn.Sequential(
                nn.Conv2d(c, 16, 8, 4), nn.ReLU(), nn.Conv2d(16, 32, 4, 2), nn.ReLU(), nn.Flatten()
            )
            with torch.no_grad():
                n = int(convs(torch.zeros(1, c, h, w)).shape[1])
            super().__init__(observation_space, n)
            self.convs = convs

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.convs(x)

    options = {**cfg.env_options(), "episode_seconds": cfg.episode_seconds}
    venv = make_vec_env(
        lambda: gym.make(TRAFFIC_ID, **options), n_envs=cfg.envs, seed=cfg.seed, vec_env_cls=DummyVecEnv
    )
    venv = VecFrameStack(venv, cfg.frames, channels_order="last")
    model = DQN(
        "CnnPolicy",
        venv,
        learning_rate=cfg.lr,
        buffer_size=cfg.buffer_size // cfg.frames,  # SB3 stores stacked obs twice; keep memory comparable
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        gamma=cfg.gamma,
        train_freq=max(1, cfg.train_every // cfg.envs),
        gradient_steps=1,
        target_update_interval=cfg.target_update,
        exploration_fraction=cfg.eps_fraction,
        exploration_initial_eps=cfg.eps_start,
        exploration_final_eps=cfg.eps_end,
        max_grad_norm=cfg.grad_clip,
        policy_kwargs={"features_extractor_class": Trunk, "net_arch": [cfg.hidden]},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    start = time.time()
    model.learn(total_timesteps=cfg.steps)
    sps = cfg.steps / (time.time() - start)

    class SB3Driver:
        name = "sb3-dqn"

        def __init__(self) -> None:
            self.window: list[np.ndarray] = []

        def reset(self, env: gym.Env) -> None:
            self.window = []

        def act(self, obs: Any, info: dict[str, Any]) -> int:
            # SB3's VecFrameStack zero-fills the window at an episode start; do the same here.
            if not self.window:
                self.window = [np.zeros_like(obs)] * (cfg.frames - 1) + [obs]
            else:
                self.window = self.window[1:] + [obs]
            action, _ = model.predict(np.concatenate(self.window, axis=2), deterministic=True)
            return int(action)

    env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.env_options())
    result = evaluate_traffic(SB3Driver(), env, eval_runs, EVAL_SEED_START)
    env.close()
    return {"steps_per_s": sps, **result}


def ours_run(cfg: DQNConfig, eval_runs: int) -> dict[str, Any]:
    from agent.qnet import DQNDriver

    summary = train(cfg)
    sps = summary["steps_per_s_this_session"]  # the training loop only, as SB3's learn()
    driver = DQNDriver.from_checkpoint(cfg.path(".safetensors"))
    env = gym.make(TRAFFIC_ID, episode_seconds=cfg.eval_seconds, **cfg.env_options())
    result = evaluate_traffic(driver, env, eval_runs, EVAL_SEED_START)
    env.close()
    return {"steps_per_s": sps, **result}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--action-mode", choices=["steer", "lane"], default="lane")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-runs", type=int, default=10)
    args = parser.parse_args()
    # Both learners run in this process with the same torch settings: one thread and denormals
    # flushed to zero (ours sets both from DQNConfig anyway; set here so SB3 gets them in any order).
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DQNConfig(
            out=str(Path(tmp) / "ours.safetensors"),
            action_mode=args.action_mode,
            steps=args.steps,
            seed=args.seed,
            eval_every=0,
            eval_runs=1,
            progress=False,
        )
        rows = {"camdrive": ours_run(cfg, args.eval_runs), "sb3": sb3_run(cfg, args.eval_runs)}
    print(f"{'learner':<10} {'env steps/s':>12} {'score_mph':>10} {'collisions':>10} {'offroad':>8}")
    for name, r in rows.items():
        cells = f"{r['steps_per_s']:>12.1f} {r['score_mph']:>10.2f} {r['collisions']:>10} {r['offroad']:>8}"
        print(f"{name:<10} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
