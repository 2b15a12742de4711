"""`camdrive train rllib`: PPO, APPO or DQN from Ray RLlib (new API stack) on the camdrive envs.

Needs the `rllib` extra (`pip install -e '.[rllib]'`, best in its own venv: Ray pins an older
gymnasium). `ray` is imported inside the functions, so `camdrive --help` and every other command work
without it; without it this command prints one line and exits 2.

What makes the camdrive envs work in RLlib (each was a failure a new user hit with the plain env id):

- Registration in every worker: RLlib builds its envs in Ray worker processes, where nobody imported
  `sim`, so `camdrive/LaneKeep-v0` is unknown there (NamespaceNotFound). The env is registered under
  `ENV_NAME` with `make_env`, a creator that imports `sim` itself, wherever it runs.
- Float frames in [0, 1]: RLlib's CNN encoder feeds the observation to its float convolutions as
  it comes; uint8 frames fail inside the env runners ("Input type (unsigned char) and bias type
  (float)"). `ScaledFrames`, an observation wrapper inside `make_env`, divides by 255 and declares a
  float32 Box(0, 1). It costs memory (4 bytes a channel in sample and replay buffers instead of 1): a
  66x200x3 frame is 158 kB, so PPO's default batch of 4000 steps holds about 0.6 GB of frames.
- A CNN that fits the frames: RLlib has no default filters for 66x200 ("No default CNN
  configuration"). `SMALL_CONV_FILTERS` are the camdrive DQN's two strided convolutions (`agent.qnet`),
  `CONV_FILTERS` add a third for 66x200 frames; all "valid" padding, so an exported network needs no
  padding layers. Both reach 32x2x11 = 704 features, from LaneKeep's 66x200x3 frames and from the
  33x100x1 grayscale frames Traffic-v0 is trained on here (the camdrive DQN's camera,
  `TRAFFIC_OPTIONS`; one frame, no stack); then one 256-unit layer per head.
- Worker failures are errors: an env runner that crashes is not restarted (RLlib's default restarts
  it and `train()` returns a result without metrics); each result must hold env-runner metrics with
  finite numbers, or the command stops with one line and exit code 1.

Output, in --out: `checkpoint/` (RLlib's `algo.save`, replaced after every iteration; `--resume`
continues from it), `state.json` (iteration and env steps reached), `metrics.jsonl` (one line per
iteration) and, at the end, `policy.safetensors`: the action part of the trained RLlib module exported
to a camdrive model file (`agent.rllib_policy`), verified to give the module's outputs, which
`camdrive eval --model DIR/policy.safetensors` and `camdrive watch --model ...` drive without Ray.
RLlib checkpoints contain pickles: resume only from a --out you wrote yourself.

On a Ray cluster (several machines): install camdrive with the extra in the same Python on every node
(`pip install -e '.[rllib]'`), start the head (`ray start --head --port=6379`) and each other node
(`ray start --address=HEAD_IP:6379`), then run the same command on the head with `--address auto` (or
from elsewhere with `--address HEAD_IP:6379`) and as many `--workers` as the cluster has CPUs to spare:
the env runners spread over the nodes; the learner (and --out) stay with this process. Ray 2.60
enables token authentication: every node and this command need the cluster's token (Ray's docs,
ray-security/token-auth). Tried here only with a one-machine "cluster" (`ray start --head` and
`--address 127.0.0.1:PORT`).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

from training.common import exit_codes
from training.common.interrupts import saying_what_is_kept
from training.common.outputs import OutputError, check_output_dir, remove_stale_temps, write_text
from training.common.tensorboard_log import TensorBoardLog, check_tensorboard

PROG = "camdrive train rllib"
MISSING_RAY = f"{PROG}: Ray RLlib is not installed: pip install -e '.[rllib]'"
ARG_ERROR, RUN_ERROR = exit_codes.BAD_INPUT, exit_codes.FAILED
ENV_NAME = "camdrive-rllib"
"""Name the envs are registered under with Ray (one creator for both, the env id in its env_config)."""
TRAFFIC_OPTIONS: dict[str, Any] = {"camera_width": 100, "camera_height": 33, "grayscale": True}
"""Traffic-v0's frames for every algorithm: the camdrive DQN's, a twelfth of the bytes (agent/qnet.py)."""
CONV_FILTERS = [[16, [8, 8], [4, 4], "valid"], [32, [4, 4], [2, 2], "valid"], [32, [3, 3], [2, 2], "valid"]]
"""[channels, kernel, stride, padding] of each convolution, for 66x200 frames: 704 features."""
SMALL_CONV_FILTERS = CONV_FILTERS[:2]
"""The same for 33x100 frames, where a third convolution would see 2 rows: also 704 features."""
HEAD_HIDDEN = [256]
OUT_FILES = ("checkpoint", "state.json", "metrics.jsonl", "policy.safetensors")


class ArgError(Exception):
    """A bad argument or --out, found before any work: one line, exit code 2."""


class RunError(Exception):
    """Training failed (a worker's error, a result without metrics): one line, exit code 1."""


class ScaledFrames(gym.ObservationWrapper):
    """uint8 frames -> float32 in [0, 1], the dtype RLlib's convolutions take (see the module docstring)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0.0, 1.0, env.observation_space.shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation.astype(np.float32) * np.float32(1.0 / 255.0)


def make_env(env_config: dict[str, Any]) -> gym.Env:
    """RLlib's env creator: imports `sim` (registering the camdrive ids in this worker) and builds
    `env_config["env_id"]` with `env_config["options"]`, its frames scaled to [0, 1]."""
    import sim

    env_id = sim.check_env_id(env_config["env_id"])
    return ScaledFrames(gym.make(env_id, **env_config.get("options", {})))


def env_options(args: argparse.Namespace) -> dict[str, Any]:
    """The env options of a run: Traffic-v0's small grayscale camera, then the user's --option."""
    base = dict(TRAFFIC_OPTIONS) if args.env == "traffic" else {}
    return {**base, **dict(args.option or [])}


def check_args(args: argparse.Namespace) -> None:
    """Refuse what cannot work before Ray starts: the wrong action space, --out, bad env options."""
    if args.algo == "DQN" and args.env == "lane":
        raise ArgError("DQN needs discrete actions; LaneKeep-v0 steers continuously: use PPO or APPO")
    try:
        check_tensorboard(args.tensorboard)
    except ValueError as e:
        raise ArgError(str(e)) from None
    if args.resume and args.force:
        raise ArgError("--resume continues the run in --out, --force replaces it: give one")
    try:
        out = check_output_dir(args.out, "--out")
    except OutputError as e:
        raise ArgError(str(e)) from None
    if args.resume:
        state = read_state(out)
        for key in ("algo", "env"):
            if state.get(key) != getattr(args, key):
                raise ArgError(f"--resume: {out} holds a {state.get('algo')} run on {state.get('env')}")
        if state.get("options") != env_options(args):  # the network was trained on those frames
            raise ArgError(f"--resume: {out} was trained with env options {state.get('options')}: give them")
    elif out.is_dir() and any(out.iterdir()) and not args.force:
        raise ArgError(f"--out {out} is not empty: continue it with --resume or replace it with --force")
    from sim import ENV_IDS

    try:  # the env owns its options: built once here, a bad one is not an error in every worker
        make_env({"env_id": ENV_IDS[args.env], "options": env_options(args)}).close()
    except (TypeError, ValueError) as e:
        raise ArgError(f"--option: {e}") from None


def read_state(out: Path) -> dict[str, Any]:
    """state.json of a run in `out` (what --resume continues); ArgError when there is none."""
    path = out / "state.json"
    if not (path.is_file() and (out / "checkpoint").is_dir()):
        raise ArgError(f"--resume: no checkpoint in {out} (state.json and checkpoint/)")
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArgError(f"--resume: {path} is unreadable ({e})") from None
    if not isinstance(state, dict):
        raise ArgError(f"--resume: {path} is not a JSON object")
    return state


def build_config(args: argparse.Namespace, num_gpus: int) -> Any:
    """The RLlib AlgorithmConfig of a run (see the module docstring for every choice made here)."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import get_trainable_cls

    from sim import ENV_IDS

    options = env_options(args)
    small = options.get("camera_height", 66) < 60
    model = DefaultModelConfig(
        conv_filters=SMALL_CONV_FILTERS if small else CONV_FILTERS,
        conv_activation="relu",
        head_fcnet_hiddens=HEAD_HIDDEN,
        head_fcnet_activation="relu",
        vf_share_layers=True,
    )
    config: AlgorithmConfig = (
        get_trainable_cls(args.algo)
        .get_default_config()
        .environment(ENV_NAME, env_config={"env_id": ENV_IDS[args.env], "options": options})
        .framework("torch")
        .env_runners(num_env_runners=args.workers, num_cpus_per_env_runner=1)
        .learners(num_learners=0, num_gpus_per_learner=num_gpus)
        .rl_module(model_config=model)
        .fault_tolerance(restart_failed_env_runners=False, ignore_env_runner_failures=False)
        .debugging(seed=args.seed)
    )
    if args.algo == "DQN":
        # Float frames: keep the replay buffer's memory bounded (33x100x1 float32 = 13 kB a step).
        config.training(replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 50_000})
    if args.set:
        try:
            config.training(**dict(args.set))
        except (TypeError, ValueError, AttributeError) as e:
            raise ArgError(f"--set: {e}") from None
    return config


def iteration_metrics(result: dict[str, Any], steps_before: int, seconds: float) -> dict[str, Any]:
    """Env steps, episode return mean and steps/s of one `train()` result; RunError if they are missing
    or not finite (how a failed env runner shows up when its error did not reach us)."""
    from ray.rllib.utils import metrics as names

    runners = result.get(names.ENV_RUNNER_RESULTS)
    if not isinstance(runners, dict) or names.NUM_ENV_STEPS_SAMPLED_LIFETIME not in runners:
        raise RunError(f"iteration {result.get('training_iteration')}: the result has no env-runner metrics")
    steps = runners[names.NUM_ENV_STEPS_SAMPLED_LIFETIME]
    if not (isinstance(steps, int | float) and math.isfinite(steps)) or steps <= steps_before:
        raise RunError(f"iteration {result.get('training_iteration')}: no env steps sampled ({steps!r})")
    episode_return = runners.get(names.EPISODE_RETURN_MEAN)
    if episode_return is not None and not math.isfinite(episode_return):
        raise RunError(f"iteration {result.get('training_iteration')}: episode return mean {episode_return}")
    return {
        "env_steps": int(steps),
        "episode_return_mean": None if episode_return is None else float(episode_return),
        "env_steps_per_s": (steps - steps_before) / max(seconds, 1e-9),
        "seconds": seconds,
    }


def save_checkpoint(algo: Any, out: Path, state: dict[str, Any]) -> None:
    """algo.save into out/checkpoint.new, then swapped in, so a crash mid-save keeps the last one."""
    new, current, old = out / "checkpoint.new", out / "checkpoint", out / "checkpoint.old"
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    algo.save(str(new.resolve()))
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)
    write_text(out / "state.json", json.dumps(state, indent=2) + "\n")


def export_policy(algo: Any, args: argparse.Namespace, path: Path, env_steps: int) -> Path:
    """Write the trained action network to a camdrive model file (`agent.rllib_policy`).

    The learner's latest weights go into a copy of the module; its convolutions and the action head's
    linear layers are copied in order into an `RLlibPolicyNet`, which is then checked against the
    module's own outputs on random frames, so a change in RLlib's layout is an error here, never a
    file that drives differently from what was trained.
    """
    import ray
    import torch
    from ray.rllib.core import DEFAULT_MODULE_ID
    from torch import nn

    from agent.checkpoint import save_checkpoint as save_model
    from agent.rllib_policy import ARCH, RLlibPolicyNet
    from sim import ENV_IDS

    module = algo.get_module(DEFAULT_MODULE_ID)
    module.set_state(algo.learner_group.get_weights()[DEFAULT_MODULE_ID])
    module = module.to("cpu").eval()
    if args.algo == "DQN":
        encoder, head = module.encoder, module.af
    else:
        encoder, head = module.encoder.encoder, module.pi
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    space = module.observation_space
    action_space = module.action_space
    net = RLlibPolicyNet(
        input_shape=list(space.shape),
        conv=[
            {"out": c.out_channels, "kernel": list(c.kernel_size), "stride": list(c.stride)} for c in convs
        ],
        hidden=[lin.out_features for lin in linears[:-1]],
        outputs=linears[-1].out_features,
        flatten="hwc",
    )
    mine = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        for target, source in zip(mine, cast(list[nn.Conv2d | nn.Linear], convs + linears), strict=True):
            target.weight.copy_(source.weight)
            assert target.bias is not None and source.bias is not None  # every layer here has a bias
            target.bias.copy_(source.bias)
        frames = torch.rand(4, *space.shape)
        got = net.forward_scaled(frames)
        if args.algo == "DQN":  # Q = V + A - mean(A): compare A - mean(A), which decides the argmax
            expected = module.compute_q_values({"obs": frames})["qf_preds"]
            expected = expected - expected.mean(dim=1, keepdim=True)
            got = got - got.mean(dim=1, keepdim=True)
        else:
            expected = module.forward_inference({"obs": frames})["action_dist_inputs"]
    if expected.shape != got.shape or not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
        raise RunError(
            f"the exported network does not reproduce the RLlib module's outputs ({ray.__version__})"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        action: dict[str, Any] = {"type": "discrete", "n": int(action_space.n)}
    else:
        action = {"type": "continuous", "low": action_space.low.tolist(), "high": action_space.high.tolist()}
    metadata = {
        "architecture": ARCH,
        "env_id": ENV_IDS[args.env],
        "env_options": env_options(args),
        "observation": {"shape": list(space.shape), "dtype": "uint8", "scaled": "x / 255 inside the network"},
        "action": action,
        "network": net.config(),
        "training": {
            "library": f"ray[rllib] {ray.__version__}",
            "algorithm": args.algo,
            "command": shlex.join(["camdrive", *sys.argv[1:]]),
            "seed": args.seed,
            "env_steps": env_steps,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    return save_model(path, net, metadata)


def train(args: argparse.Namespace) -> int:
    """Start (or join) Ray, train until --iterations or --stop-steps, checkpoint every iteration, export."""
    import ray
    from ray.tune.registry import register_env

    out = Path(args.out)
    if args.force:
        for name in OUT_FILES:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    state = (
        read_state(out)
        if args.resume
        else {"algo": args.algo, "env": args.env, "options": env_options(args), "iteration": 0}
    )
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out / "state.json")  # a killed run's half-written state
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        # A new Ray of our own ("local": never a cluster some earlier `ray start` left running), with one
        # logical CPU per env runner (the learner runs in this process): all of them fit.
        ray.init(address="local", num_cpus=max(2, args.workers), include_dashboard=False, log_to_driver=False)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if args.device == "cuda" and gpus == 0:
            raise ArgError("--device cuda: the Ray cluster has no GPU; use --device cpu or auto")
        register_env(ENV_NAME, make_env)
        algo = build_config(args, 1 if args.device != "cpu" and gpus else 0).build_algo()
        if args.resume:
            algo.restore(str((out / "checkpoint").resolve()))
        steps = int(state.get("env_steps", 0))
        purge = steps if args.resume else None  # a resumed run drops what the killed one logged after
        with (
            (out / "metrics.jsonl").open("a") as log,
            TensorBoardLog(args.tensorboard, purge) as board,
            saying_what_is_kept(lambda: _kept(out)),
        ):
            while not done(args, state["iteration"], steps):
                start = time.perf_counter()
                result = algo.train()
                metrics = iteration_metrics(result, steps, time.perf_counter() - start)
                steps = metrics["env_steps"]
                state.update(iteration=state["iteration"] + 1, env_steps=steps)
                metrics = {"iteration": state["iteration"], **metrics}
                print(format_metrics(metrics), flush=True)
                board.scalars(
                    {
                        "rllib/episode_return_mean": metrics["episode_return_mean"],
                        "perf/env_steps_per_s": metrics["env_steps_per_s"],
                    },
                    steps,
                )
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                save_checkpoint(algo, out, state)
        path = export_policy(algo, args, out / "policy.safetensors", steps)
        print(f"{PROG}: wrote {path} (camdrive eval --env {args.env} --model {path})")
        algo.stop()
    finally:
        ray.shutdown()
    return 0


def _kept(out: Path) -> str:
    """What an interrupted run leaves for --resume: the iteration of the state.json on disk, which is
    written after its checkpoint."""
    try:
        iteration = json.loads((out / "state.json").read_text())["iteration"]
    except (OSError, ValueError, KeyError, TypeError):
        iteration = None
    if not iteration:
        return "no iteration completed, no checkpoint written"
    return f"--resume continues from the checkpoint of iteration {iteration} in {out}"


def done(args: argparse.Namespace, iteration: int, env_steps: int) -> bool:
    if args.iterations is not None:
        return iteration >= args.iterations
    return env_steps >= args.stop_steps


def format_metrics(m: dict[str, Any]) -> str:
    ret = "-" if m["episode_return_mean"] is None else f"{m['episode_return_mean']:.3f}"
    return (
        f"iter {m['iteration']:>4}  env_steps {m['env_steps']:>8}  episode_return_mean {ret:>9}  "
        f"env_steps/s {m['env_steps_per_s']:8.1f}"
    )


def main(args: argparse.Namespace) -> int:
    """`camdrive train rllib`: exit 2 for a bad argument (checked first, so the message says what is
    wrong even without Ray) or a missing Ray, 1 for a failed run; one line on stderr either way."""
    try:
        check_args(args)
        import ray  # noqa: F401  (here only to tell a missing extra from a failure inside Ray)
    except ImportError:
        print(MISSING_RAY, file=sys.stderr)
        return ARG_ERROR
    except ArgError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return ARG_ERROR
    try:
        return train(args)
    except ArgError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return ARG_ERROR
    except RunError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return RUN_ERROR
    except Exception as e:  # a worker's error arrives as a Ray exception with a long remote traceback
        lines = str(e).strip().splitlines()  # the remote error itself is the last line
        print(f"{PROG}: error: {type(e).__name__}: {lines[-1] if lines else ''}", file=sys.stderr)
        return RUN_ERROR
