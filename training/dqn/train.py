"""`camdrive train dqn`: Double DQN on Traffic-v0 from camera frames, the loop CleanRL-style.

`_train` reads top to bottom: set up the networks, optimiser, envs and replay, then loop: 1. act
epsilon-greedy in K envs, 2. store the transitions in the replay buffer, 3. learn: every `train_every`
env steps one Adam step on the Huber loss against the Double-DQN target (online net picks the next
action, target net values it) on a uniform or prioritised draw (then the drawn transitions' priorities
follow their new TD errors), and every `target_update` env steps copy the online net into the
target net, 4. evaluate every `eval_every` steps (the best network so far becomes MODEL), log and
checkpoint. The parts live in the modules beside this one: the settings in config.py, the parts of
the algorithm in learn.py, the training state and model file in state.py, the evaluations that choose
MODEL in selection.py, the CSV, TensorBoard, curve and summary in log.py.

Files written (MODEL = --out):
- MODEL: the best network by validation runs (held-out seeds from VALIDATION_SEED_START, apart from
  the test seeds; see `selection_key`: fewest collisions and off-road exits first, then the highest
  score; the final one when no evaluation ran), a camdrive model file (`agent.checkpoint`) whose
  metadata holds the env options, so `camdrive eval --model MODEL` recreates the same small grayscale
  camera and action mode.
- MODEL stem + `.train.safetensors`: the training state (online and target networks, Adam state,
  counters, numpy and torch RNG states, config) written atomically every `checkpoint_every` steps;
  `--resume` continues from it after a kill (and refuses to run without it). The replay buffer is
  NOT saved (it would be hundreds of MB): on resume it is refilled with `learning_starts` fresh
  epsilon-greedy steps before updates restart. Envs restart from new episodes (seeds advanced by
  the resume count).
- MODEL stem + `.csv` (log), `.png` (learning curve), `.metrics.json` (summary), as
  `training.common.outputs.sidecar` names them for every trainer.
- With `--tensorboard DIR`: the CSV's losses, epsilon, scores and steps/s as TensorBoard scalars
  (`TENSORBOARD_TAGS`), at each CSV row.

An --out that holds any of these is refused unless `--resume` continues its run or `--force` starts a
new one over it (removing the old files first, so no old training state can be resumed into the new
run). A run whose settings allow no gradient step (`learning_starts` >= `steps`) is refused before it
starts; one that still made none fails (exit code 1) and writes no model. Ctrl-C or SIGTERM stops it with
what was written kept: the best model so far and the last training state, which `--resume` continues.

Device (`--device`, default auto: CUDA when torch sees a GPU): the networks, Adam's state and each
sampled batch live there; the replay buffer stays in CPU memory (numpy) and the training state is
always written from CPU copies, so a run can resume on another device.

Seeds: training env seeds are SEED * 10000 + 100 * resume + i (< 1_000_000); evaluation uses seeds
from 1_000_000 (never used in training), with the DeepTraffic score (median of per-run mean speed,
mph) from `training.evaluation.evaluate`.

Speed: the loop is bound by the gradient step, not the simulator (the measurements are in
assets/dqn/MODEL_CARD.md). What keeps the step cheap, each explained where it is done: fused Adam
(`make_optimizer`), denormals flushed to zero (`DQNConfig.flush_denormal`), channels-last training
windows (`ReplayBuffer.window`), next windows scaled once for both networks (`QNet.scale`), no acting
forward when every env explores. `SyncVectorEnv` is the default: the simulator steps in about a
millisecond, so AsyncVectorEnv's pipes cost about what its processes save on two cores.
`python -m training.evaluation.sb3_compare` runs Stable-Baselines3's DQN on the same env, network and
budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from agent.qnet import param_count
from training.common import exit_codes
from training.common.config_cli import config_from_args
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import remove_stale_temps, write_text
from training.common.tensorboard_log import TensorBoardLog
from training.dqn.affordances import AFFORDANCES
from training.dqn.config import EVAL_SEED_START, SEED_STRIDE, DQNConfig, apply_settings
from training.dqn.learn import (
    build_networks,
    endangered_envs,
    epsilon,
    gradient_step,
    make_aux_head,
    make_optimizer,
    make_teachers,
    make_vector_env,
    priority_beta,
    world_affordances,
)
from training.dqn.log import (
    Recent,
    append_row,
    describe_run,
    log_row,
    plot_curve,
    read_log,
    run_summary,
    show_progress,
)
from training.dqn.replay import ReplayBuffer
from training.dqn.selection import baseline_scores, evaluate, is_better, keep_as_model
from training.dqn.state import check_ready, load_training_state, new_counters, save_training_state
from training.evaluation.evaluate import MPH  # a training episode's score is its mean speed in mph

if TYPE_CHECKING:
    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv


class NothingTrainedError(RuntimeError):
    """The run made no gradient step: no model was written. Exit code 1."""


def train(cfg: DQNConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run DQN as configured; returns the summary also written to the metrics JSON.

    `on_step(global_step)` is called after every vector step (tests use it to simulate a kill).
    Raises ValueError for a bad setting (or a device, TensorBoard directory or --out this machine cannot
    use, or an --out holding an earlier run) and FileNotFoundError when `cfg.resume` finds no training
    state (`check_ready`), both before anything is built or written; NothingTrainedError when no
    gradient step ran (no model is written then). The TensorBoard writer and the envs are closed however
    the run ends; a KeyboardInterrupt propagates with a message saying what it kept.
    """
    device = check_ready(cfg)
    for path in cfg.output_paths():
        remove_stale_temps(path)
        if cfg.force:  # a new run: nothing of the old one may be resumed into it or mistaken for it
            path.unlink(missing_ok=True)
    progress: dict[str, Any] = {"step": 0, "state_step": None}
    with contextlib.ExitStack() as closing, saying_what_is_kept(lambda: _kept(cfg, progress)):
        return _train(cfg, device, closing, on_step, progress)


def _kept(cfg: DQNConfig, progress: dict[str, Any]) -> str:
    """What an interrupted run leaves behind, for the one line `camdrive` prints."""
    model = f"the best model so far is in {cfg.out}" if Path(cfg.out).exists() else "no model written yet"
    if progress["state_step"] is None:
        return f"at step {progress['step']}; {model}; no training state written yet, nothing to resume"
    return (
        f"at step {progress['step']}; {model}; --resume continues from step {progress['state_step']} "
        f"({cfg.path('.train.safetensors')})"
    )


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step`: when a periodic task falls due next."""
    return (step // every + 1) * every


def _train(
    cfg: DQNConfig,
    device: torch.device,
    closing: contextlib.ExitStack,
    on_step: Callable[[int], None] | None,
    progress: dict[str, Any],
) -> dict[str, Any]:
    """`train` once the run is accepted; what needs closing at any exit goes on `closing`. `progress`
    tells the caller the step reached and the step of the last training state written."""
    # Setup: torch, seeds, networks, optimiser, and the state a resumed run continues from.
    torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    closing.callback(torch.set_flush_denormal, False)  # process-wide: give the caller IEEE floats back
    state_path = cfg.path(".train.safetensors")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    q, target = build_networks(cfg, device)
    aux_head = make_aux_head(cfg, q, device)
    opt = make_optimizer(cfg, [*q.parameters(), *(aux_head.parameters() if aux_head else ())])
    counters, resumed_from = new_counters(), None
    if cfg.resume:  # the state file exists and matches cfg: checked by check_ready
        counters = load_training_state(state_path, q, target, opt, rng, aux_head)
        counters["resumes"] += 1
        resumed_from = progress["state_step"] = counters["global_step"]
    rows = read_log(cfg, resumed_from)
    # A resumed run hides what the killed one logged after its checkpoint, as the CSV drops those rows.
    purge = None if resumed_from is None else resumed_from + 1
    tb = closing.enter_context(TensorBoardLog(cfg.tensorboard, purge_step=purge))

    # Envs and replay. Training seeds stay below EVAL_SEED_START (evaluation's range).
    envs = make_vector_env(cfg)
    closing.callback(envs.close)  # also when Ctrl-C or SIGTERM stops the run: no worker left behind
    buffer = ReplayBuffer(
        cfg.buffer_size,
        (q.height, q.width),
        cfg.envs,
        cfg.frames,
        cfg.n_step,
        cfg.gamma,
        seed=cfg.seed + counters["resumes"],
        frame_stride=cfg.frame_stride,
        priority_alpha=cfg.priority_alpha,
        aux_dim=len(AFFORDANCES) if aux_head else 0,
    )
    first_seed = (cfg.seed * SEED_STRIDE + 100 * counters["resumes"]) % EVAL_SEED_START
    # make_vector_env's Sync or AsyncVectorEnv takes a seed per env (VectorEnv.reset is typed for one).
    obs, _ = cast("SyncVectorEnv | AsyncVectorEnv", envs).reset(
        seed=[first_seed + i for i in range(cfg.envs)]
    )
    aux = world_affordances(cfg, envs)
    for e in range(cfg.envs):
        buffer.start_episode(e, obs[e, :, :, 0], aux[e])
    teachers = make_teachers(cfg, envs)
    every_env = np.arange(cfg.envs)
    needs_start = np.zeros(cfg.envs, dtype=bool)  # the env's next frame starts an episode
    episode_speed: list[list[float]] = [[] for _ in range(cfg.envs)]
    episode_return = np.zeros(cfg.envs)
    overrides = np.zeros(cfg.envs)  # the safety system's overrides so far in each env's episode
    recent = Recent()
    baselines = baseline_scores(cfg, cfg.eval_runs) if resumed_from is None else counters.get("baselines", {})
    counters["baselines"] = baselines
    collected_since_start = 0
    last_eval: dict[str, Any] = {}

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=counters["global_step"], unit="step", dynamic_ncols=True)
    t0, step0 = time.time(), counters["global_step"]
    next_log = _next_multiple(step0, cfg.log_every)
    next_eval = _next_multiple(step0, cfg.eval_every) if cfg.eval_every else None
    next_ckpt = _next_multiple(step0, cfg.checkpoint_every)
    next_target = _next_multiple(step0, cfg.target_update)
    next_train = step0 + cfg.train_every
    session_start = time.time()  # training seconds are counted per session, banked at each checkpoint

    def train_seconds() -> float:
        return counters["train_seconds"] + time.time() - session_start

    def checkpoint() -> None:
        nonlocal session_start
        counters["train_seconds"], session_start = train_seconds(), time.time()
        save_training_state(state_path, q, target, opt, counters, cfg, rng, aux_head)
        progress["state_step"] = counters["global_step"]

    def steps_per_s(step: int) -> float:
        return (step - step0) / max(time.time() - t0, 1e-9)

    while counters["global_step"] < cfg.steps:
        step = counters["global_step"]
        # 1. Act: epsilon-greedy on each env's window; no forward at all when every env explores.
        eps = epsilon(cfg, step)
        explore = rng.random(cfg.envs) < eps
        actions = rng.integers(0, q.n_actions, cfg.envs)
        labels = np.array([t.act() for t in teachers], dtype=np.int64) if teachers else None
        if labels is not None and cfg.expert_explore:
            actions = np.where(rng.random(cfg.envs) < cfg.expert_explore, labels, actions)
        if not explore.all():
            with torch.inference_mode():
                window = buffer.window(every_env, buffer.count - 1)  # each env's newest window
                greedy = q(torch.from_numpy(window).to(device)).argmax(dim=1).cpu().numpy()
            actions = np.where(explore, actions, greedy)
        next_obs, rewards, terms, truncs, infos = envs.step(actions)
        overrode = np.zeros(cfg.envs)  # the steps' overrides: each costs cfg.safety_penalty
        if cfg.safety_penalty and "safety_brakes" in infos:
            now = infos["safety_brakes"] + infos["safety_refusals"]
            overrode, overrides = now - overrides, now.astype(float)
        endangered = endangered_envs(cfg, envs)  # each costs cfg.danger_penalty
        aux = world_affordances(cfg, envs)  # what the new frames show, for the auxiliary loss

        # 2. Store: a NEXT_STEP autoreset step (after an episode ended) only brings the new first frame.
        for e in range(cfg.envs):
            frame = next_obs[e, :, :, 0]
            if needs_start[e]:
                buffer.start_episode(e, frame, aux[e])
                if teachers:
                    teachers[e].reset(cast("SyncVectorEnv", envs).envs[e])  # teachers need vector sync
                needs_start[e] = False
                continue
            reward = float(rewards[e]) - (cfg.crash_penalty if terms[e] else 0.0)
            reward -= cfg.safety_penalty * float(overrode[e]) + cfg.danger_penalty * float(endangered[e])
            label = -1 if labels is None else int(labels[e])
            buffer.add_step(e, int(actions[e]), reward, bool(terms[e]), bool(truncs[e]), frame, label, aux[e])
            episode_return[e] += rewards[e]
            if "speed" in infos:
                episode_speed[e].append(float(infos["speed"][e]))
            if terms[e] or truncs[e]:
                needs_start[e] = True
                counters["episodes"] += 1
                speeds = episode_speed[e]
                recent.score.append(float(np.mean(speeds)) * MPH if speeds else float(episode_return[e]))
                episode_speed[e], episode_return[e] = [], 0.0
            counters["global_step"] += 1
            collected_since_start += 1
        step = progress["step"] = counters["global_step"]

        # 3. Learn: a gradient step every train_every env steps once the replay holds learning_starts;
        # the target net follows the online net every target_update env steps.
        while step >= next_train:
            next_train += cfg.train_every
            if collected_since_start >= cfg.learning_starts:
                labels = buffer.label_counts(q.n_actions) if cfg.expert_balance else None
                batch = buffer.sample(cfg.batch_size, priority_beta(cfg, step))
                td_errors = gradient_step(cfg, batch, q, target, opt, device, recent, labels, aux_head)
                if td_errors is not None and batch.env is not None and batch.pos is not None:  # prioritised
                    buffer.update_priorities(batch.env, batch.pos, td_errors)
                counters["updates"] += 1
        if step >= next_target:
            next_target += cfg.target_update
            target.load_state_dict(q.state_dict())

        # 4. Evaluate (the best network so far becomes MODEL; an untrained one never), log, checkpoint.
        evaluated = next_eval is not None and step >= next_eval
        if evaluated:
            assert next_eval is not None  # evaluated says so
            next_eval += cfg.eval_every
            last_eval = evaluate(cfg, q, cfg.eval_runs)
            if counters["updates"] and is_better(last_eval, counters):
                keep_as_model(cfg, q, last_eval, step, counters, device)
        if step >= next_log or evaluated:
            next_log = max(next_log, _next_multiple(step, cfg.log_every))
            row = log_row(
                step,
                train_seconds(),
                steps_per_s(step),
                eps,
                counters,
                recent,
                last_eval if evaluated else {},
            )
            append_row(cfg, tb, rows, row)
        if step >= next_ckpt:
            next_ckpt += cfg.checkpoint_every
            checkpoint()
        if bar is not None:
            show_progress(bar, step, steps_per_s(step), eps, recent, last_eval)
        if on_step is not None:
            on_step(step)

    # Env steps/s of the loop above (periodic evaluations included), stopped before the final
    # evaluation, plot and files, like SB3's learn() in `training.evaluation.sb3_compare`.
    step = counters["global_step"]
    loop_steps_per_s = steps_per_s(step)
    if not counters["updates"]:
        raise NothingTrainedError(
            f"no gradient step ran in {step} env steps (learning_starts {cfg.learning_starts}, "
            f"train_every {cfg.train_every}); no model written"
        )

    # After the loop: the final evaluation, model, training state, log row, curve and metrics.
    if bar is not None:  # the bar stands at 100 %: say what the next seconds are spent on
        bar.close()
        print(
            f"final evaluation: {cfg.eval_runs} runs on the validation roads...", file=sys.stderr, flush=True
        )
    final = evaluate(cfg, q, cfg.eval_runs)
    if is_better(final, counters) or not Path(cfg.out).exists():
        keep_as_model(cfg, q, final, step, counters, device)
    checkpoint()
    append_row(
        cfg,
        tb,
        rows,
        log_row(step, train_seconds(), loop_steps_per_s, epsilon(cfg, step), counters, recent, final),
    )
    envs.close()
    try:
        plot_curve(cfg, rows, baselines)
    except Exception as exc:  # a missing matplotlib must not lose a finished run
        print(f"learning curve not written: {exc}", file=sys.stderr)
    session = {"steps_per_s": loop_steps_per_s, "device": str(device), "param_count": param_count(q)}
    summary = run_summary(cfg, counters, final, baselines, resumed_from, session)
    write_text(cfg.path(".metrics.json"), json.dumps(summary, indent=2, default=str))
    return summary


def main(args: argparse.Namespace) -> int:
    """`camdrive train dqn`.

    Settings are applied and checked before anything runs: a bad value, an unknown key, an --out that
    cannot be written or holds an earlier run, or --resume with no training state prints one line to
    stderr and exits 2 (argparse's code for bad usage), without a traceback and before the minutes-long
    baseline evaluation. A run that made no gradient step exits 1.
    """
    cfg = config_from_args(
        DQNConfig, args, progress=not args.quiet, command=shlex.join(["camdrive", *sys.argv[1:]])
    )
    try:
        apply_settings(cfg, getattr(args, "set", None) or [])
        check_ready(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"camdrive train dqn: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    try:
        summary = train(cfg)
    except NothingTrainedError as exc:
        print(f"camdrive train dqn: error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    print(describe_run(summary))
    return exit_codes.OK
