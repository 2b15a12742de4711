"""`camdrive play`: drive yourself in the viewer, optionally recording demonstrations.

The lane task uses `action_type="steer_throttle"` so the person controls speed too; the traffic task
keeps Traffic-v0's Discrete(5) actions. The env runs at `--hz` (30 by default, not the training default
of 10) because a camera picture that changes only 10 times a second is hard to steer by; the
recording's meta stores its control_hz, so a dataset can tell the rates apart (use `--hz 10` to record
at the rate `camdrive record` uses). Episode i is reset with seed + i, as in `camdrive record`, so every
file names the seed that rebuilds its road and traffic. `--record DIR` saves every episode through
`recorders.Recorder`, which writes off the display thread.

Outputs. `--record DIR` and `--screenshot PNG` are checked before the window opens (`viewer_session`):
a drive of minutes must not end in an error about a path. An existing screenshot is replaced only with
`--force`, and the picture is written atomically, so a stop half-way keeps the old file. A new
`--record` start removes what killed recorders left in DIR (`training.data.record.remove_leftovers`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym

import sim  # noqa: F401  (registers the camdrive environments)
from training.apps.recorders import Recorder
from training.apps.viewer_session import check_outputs, check_view_args, display_problem, run_viewer
from training.common import exit_codes
from training.common.outputs import OutputError

ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "lane": ("camdrive/LaneKeep-v0", {"action_type": "steer_throttle"}),
    "traffic": ("camdrive/Traffic-v0", {}),
}


def play_main(args: argparse.Namespace, *, script: Iterable[tuple[int, Any]] = ()) -> int:
    """`camdrive play`. `script` ((frame, pygame event) pairs) drives it from code: tests, demos."""
    prog = "camdrive play"
    problem = check_view_args(args)
    if problem is None:
        try:
            check_outputs(args)
        except OutputError as e:
            problem = str(e)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    problem = display_problem()
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1
    from agent.human import HumanInput
    from sim.viewer import Viewer

    env_id, base_options = ENVS[args.env]
    options = {**base_options, "control_hz": float(args.hz)}
    try:
        env = gym.make(env_id, **options)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    driver = HumanInput(env.action_space)
    recorder = None
    if args.record:
        from training.data.record import remove_leftovers

        remove_leftovers(Path(args.record))  # what a killed `play --record` or recorder left there
        recorder = Recorder(args.record, env_id, options, driver.name, float(args.hz))
    viewer = Viewer(
        env,
        driver,
        size=(args.width, args.height),
        fps=args.fps,
        seed=args.seed,
        sink=recorder,
        script=script,
        title=f"camdrive play - {env_id}",
    )
    try:
        code = run_viewer(viewer, args, prog)
    finally:
        viewer.close()
        saved = recorder.close() if recorder is not None else []
        env.close()
    if recorder is not None:
        print(f"{len(saved)} episode(s) recorded in {args.record}")
    return code
