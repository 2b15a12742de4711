"""`camdrive watch`: a trained car drives in the viewer, a person can take over, and you can see what
its CNN sees. Without a screen (or with `--video`) the same picture goes to an mp4 or GIF file.

Who drives. `--model bc` (the default) is the shipped PilotNet in LaneKeep-v0; `dqn` the shipped
DeepTraffic-style DQN in Traffic-v0; `expert` the privileged expert; anything else a model file. The
env is the one the model was trained in, with the model's camera and action options.

Control rate. A memoryless driver (PilotNet, the expert) runs at 30 steps per second so the picture
moves smoothly; a DQN runs at the rate it was trained at, since its window of past frames spans a fixed
stretch of time. `--hz` overrides both.

Takeover (`agent.takeover.TakeoverDriver`). Any drive key or gamepad input hands the car to the person
at once and counts an intervention; the car goes back to the model after two quiet seconds or Enter.
The HUD shows the interventions and NVIDIA's autonomy, (1 - interventions * 6 s / elapsed s) * 100,
with elapsed the simulated time watched. With `--record DIR` every stretch the person drove is saved as
a demonstration file (the frames the person saw and the person's actions; `camdrive train bc --data DIR`
learns from them; `recorders.TakeoverRecorder`).

What the CNN sees. V overlays guided-backprop saliency on the camera view, F shows the feature maps of
every convolution layer; a DQN shows its Q-values as bars (`cnn_view.CnnView`).

Video. `--video FILE` renders without a window (SDL's dummy driver) and writes every displayed frame,
overlays included: one env step per frame, so the video plays in real time at the control rate (the
HUD says "1.0x real time" where a window shows its frame rate). The file appears only when complete
(`video.VideoWriter`); an existing one is replaced only with `--force`, and without a screen and without
`--video` the video gets a name no file has. Ctrl-C or SIGTERM ends the video early: the frames so far
are kept as FILE.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim import ENV_IDS  # importing sim registers the camdrive environments
from training.apps.cnn_view import CnnView
from training.apps.recorders import TakeoverRecorder
from training.apps.video import VideoWriter
from training.apps.viewer_session import display_problem, open_window, save_screenshot, window_size_problem
from training.common import exit_codes
from training.common.interrupts import interruption
from training.common.outputs import OutputError, check_output_dir, check_output_file
from training.evaluation.evaluate import autonomy_pct, env_option_problem

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED = {
    "bc": ASSETS / "pilotnet" / "pilotnet.safetensors",
    "dqn": ASSETS / "dqn" / "dqn_lane.safetensors",
}
"""The models `--model bc` and `--model dqn` name."""
SMOOTH_HZ = 30.0
"""Control rate for memoryless drivers: a picture that changes 10 times a second looks jerky."""
FRESH_SEEDS = (1_000_000, 2_000_000)
"""Default seeds are drawn from here: training uses seeds below 1,000,000, so the road is new to the model."""
DEFAULT_VIDEO = "camdrive-watch.mp4"
DEFAULT_VIDEO_SECONDS = 30.0
VIDEO_SUFFIXES = (".mp4", ".gif")


class WatchError(Exception):
    """A bad argument or missing file, reported as `camdrive watch: error: ...`."""


# ------------------------------------------------------------------------------------------ set-up
def resolve_model(spec: str) -> str:
    """`bc` / `dqn` -> the shipped model file; `expert` stays; anything else must be a regular file."""
    if spec in SHIPPED:
        path = SHIPPED[spec]
        if not path.is_file():
            raise WatchError(
                f"the shipped model {path} is missing: the models live in the source tree's assets/ "
                "folder, so install camdrive from a clone (pip install -e .) or pass --model PATH"
            )
        return str(path)
    if spec == "expert":
        return spec
    from agent.checkpoint import CheckpointError, check_regular_file

    try:  # a directory or a named pipe is named as such, not as a missing file
        check_regular_file(Path(spec))
    except CheckpointError as e:
        hint = " (or use bc, dqn or expert)" if e.what == "no such file" else ""
        raise WatchError(f"--model {e}{hint}") from None
    return spec


def model_env(spec: str, env_name: str | None) -> tuple[str, dict[str, Any], bool]:
    """(env id, env options, has memory) for a resolved model spec; `env_name` must agree with a model."""
    if spec == "expert":
        return ENV_IDS[env_name or "lane"], {}, False
    from agent.checkpoint import CheckpointError, read_metadata
    from agent.policies import policy_env_options

    try:  # a corrupt or foreign file is the user's mistake, reported like any other bad --model
        meta = read_metadata(spec)
        options = policy_env_options(spec)
    except CheckpointError as e:
        raise WatchError(str(e)) from None
    env_id = str(meta.get("env_id", ENV_IDS["lane"]))
    if env_name is not None and ENV_IDS[env_name] != env_id:
        raise WatchError(f"{spec} drives {env_id}, not --env {env_name}")
    return env_id, options, meta.get("architecture") == "dqn"


# ------------------------------------------------------------------------------------------ command
def check_args(args: argparse.Namespace) -> None:
    """Refuse arguments watch cannot use, before a model is loaded or a window opened.

    argparse only checks that they are numbers; left alone, a bad one ends in a traceback from deep
    inside the viewer, the env or the takeover driver, which names an internal parameter, not the flag.
    """
    size_problem = window_size_problem(args.width, args.height)
    if size_problem:
        raise WatchError(size_problem)
    if args.video and Path(args.video).suffix.lower() not in VIDEO_SUFFIXES:
        raise WatchError(f"--video must end in {' or '.join(VIDEO_SUFFIXES)}, got {args.video!r}")
    if args.hz is not None and not args.hz > 0:
        raise WatchError(f"--hz must be > 0, got {args.hz}")
    if args.hz is not None:
        problem = env_option_problem("control_hz", args.hz)
        if problem:
            raise WatchError(f"--hz {args.hz:g}: {problem}")
    if not args.quiet > 0:  # also refuses NaN
        raise WatchError(
            f"--quiet must be > 0 seconds (the pause before the model drives again), got {args.quiet}"
        )
    if args.seed is not None and args.seed < 0:
        raise WatchError(f"--seed must be >= 0 (gymnasium seeds are non-negative), got {args.seed}")
    if args.seconds is not None and not args.seconds > 0:
        raise WatchError(f"--seconds must be > 0, got {args.seconds}")
    check_outputs(args)


def check_outputs(args: argparse.Namespace) -> None:
    """OutputError for a --video, --screenshot or --record that cannot be written, or for an existing
    video or screenshot without --force: found before a model is loaded, not after the drive."""
    force = getattr(args, "force", False)
    if args.video:
        check_output_file(args.video, "--video", force=force)
    if args.screenshot:
        check_output_file(args.screenshot, "--screenshot", force=force)
    if args.record:
        check_output_dir(args.record, "--record")


def default_video(force: bool) -> str:
    """The video to write when there is no screen and no --video: DEFAULT_VIDEO, or with a number
    added when that name is taken (replaced only with --force: the user never named that file)."""
    path = Path(DEFAULT_VIDEO)
    n = 1
    while not force and (path.exists() or path.is_symlink()):
        n += 1
        path = Path(f"{Path(DEFAULT_VIDEO).stem}-{n}{Path(DEFAULT_VIDEO).suffix}")
    check_output_file(path, "the video", force=force)
    return str(path)


def watch_main(args: argparse.Namespace, *, script: Any = ()) -> int:
    """`camdrive watch`. `script` ((frame, pygame event) pairs) drives it from code: tests, demos."""
    prog = "camdrive watch"
    try:
        check_args(args)
        spec = resolve_model(args.model)
        env_id, options, has_memory = model_env(spec, args.env)
        video = args.video
        if video is None:
            problem = display_problem("camdrive watch")
            if problem:
                video = default_video(getattr(args, "force", False))
                print(f"{prog}: {problem}\n{prog}: writing a video to {video} instead", file=sys.stderr)
    except (WatchError, OutputError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    if video is not None:
        os.environ["SDL_VIDEODRIVER"] = "dummy"  # render off screen; nothing is shown

    from agent.baselines import load_driver
    from agent.checkpoint import CheckpointError
    from agent.human import HumanInput
    from agent.takeover import TakeoverDriver
    from sim.viewer import Viewer

    hz = (
        args.hz
        if args.hz is not None
        else (float(options.get("control_hz", 10.0)) if has_memory else SMOOTH_HZ)
    )
    try:
        model = load_driver(spec)
        safety = getattr(args, "safety", "on") == "on"
        env = gym.make(env_id, **{**options, "control_hz": hz, "safety": safety})
    except (CheckpointError, ValueError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    human = HumanInput(env.action_space)
    driver = TakeoverDriver(model, human, quiet_seconds=args.quiet)
    learned = model if hasattr(model, "model") else None
    model_name = Path(spec).name if spec != "expert" else "expert"
    period = 1.0 / hz

    viewer: Viewer | None = None
    cnn = CnnView(
        lambda: viewer.observation if viewer is not None else None, learned, args.saliency, args.features
    )

    def hud_extra() -> list[str]:
        seconds = driver.steps * period
        lines = [f"model {model_name}: {describe_action(driver.model_action)}"]
        lines.append(f"safety system {'on' if safety else 'OFF'}")
        autonomy = autonomy_pct(driver.interventions, seconds)
        lines.append(f"interventions {driver.interventions}   autonomy {autonomy:.1f} %")
        return lines

    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(*FRESH_SEEDS))
    if args.seed is None:
        print(f"seed {seed} (--seed {seed} shows this road again)")
    recorder = TakeoverRecorder(args.record, driver, model_name, hz) if args.record else None
    if args.record:
        from training.data.record import remove_leftovers

        remove_leftovers(Path(args.record))  # what a killed `watch --record` or recorder left there
    viewer = Viewer(
        env,
        driver,
        size=(args.width, args.height),
        fps=0.0 if video else args.fps,
        seed=seed,
        sink=recorder,
        script=script,
        title=f"camdrive watch - {model_name} in {env_id}",
        hud_extra=hud_extra,
        overlays=[cnn],
        video_fps=hz if video is not None else None,
        help_rows=[
            ("any drive key / pad", "take over (counts an intervention)"),
            ("Enter / Tab", "give the car back to the model"),
            ("V", "saliency: its most salient tenth (guided backprop)"),
            ("F", "feature maps of every convolution layer"),
        ],
    )
    writer: VideoWriter | None = None
    try:
        if not open_window(viewer, prog):
            return exit_codes.FAILED
        max_frames = args.frames
        try:
            if video is not None:
                writer = VideoWriter(video, hz)
                seconds = args.seconds if args.seconds is not None else DEFAULT_VIDEO_SECONDS
                max_frames = max_frames or max(1, int(round(seconds * hz)))
                stats = viewer.run(max_frames=max_frames, after_frame=lambda v: writer.add(v.frame_rgb()))
                writer.close()
            else:
                stats = viewer.run(max_frames=max_frames, max_seconds=args.seconds)
        except BaseException as error:
            if interruption(error) is not None:
                raise KeyboardInterrupt(_keep_partial(writer, recorder)) from None
            if writer is not None:
                writer.discard()
            raise
        save_screenshot(viewer, args)
    finally:
        viewer.close()
        env.close()
    print(summary(stats, driver, period, video, f"{args.width}x{args.height}", safety))
    if recorder is not None:
        print(f"{len(recorder.saved)} takeover(s) recorded in {args.record}")
    return 0


def summary(stats: Any, driver: Any, period: float, video: str | None, size: str, safety: bool = True) -> str:
    """The one line that says what the run did: the video written (its frames, played at the control
    rate, are the driving: one env step each) or the frames shown in the window, then the episodes, the
    interventions and whether the safety system was on. A video's render rate is left out: it says
    nothing about the file."""
    seconds = driver.steps * period
    if video is not None:
        driving = f"{stats.frames * period:.1f} s of driving, {size}"
        frames = f"{stats.frames} frames at {1.0 / period:g} fps ({driving})"
        head = f"wrote {video} in {stats.seconds:.1f} s: {frames}"
    else:
        shown = f"{stats.fps:.1f} fps at {size}"
        head = f"{stats.frames} frames in {stats.seconds:.1f} s ({shown}), {stats.steps} steps"
    autonomy = autonomy_pct(driver.interventions, seconds)
    return (
        f"{head}; {stats.episodes} episode(s), {driver.interventions} intervention(s) in {seconds:.1f} s "
        f"driven, autonomy {autonomy:.1f} %, safety system {'on' if safety else 'off'}"
    )


def _keep_partial(writer: VideoWriter | None, recorder: TakeoverRecorder | None) -> str:
    """Ctrl-C or SIGTERM during the drive: keep the video so far and the stretch being driven; the
    words say what was kept, for the one line `camdrive` prints."""
    kept = []
    if writer is not None:
        kept.append(writer.keep_partial())
    if recorder is not None:
        recorder.interrupted()
        kept.append(f"{len(recorder.saved)} takeover(s) recorded in {recorder.directory}")
    return "; ".join(kept)


def describe_action(action: Any) -> str:
    """The model's last action in words: its steering for continuous actions, the name for discrete."""
    if action is None:
        return "-"
    a = np.asarray(action)
    if a.ndim == 0:
        from sim.actions import DISCRETE_ACTION_NAMES

        i = int(a)
        return DISCRETE_ACTION_NAMES[i] if 0 <= i < len(DISCRETE_ACTION_NAMES) else str(i)
    return f"steer {float(a.reshape(-1)[0]):+.2f}"
