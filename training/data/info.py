"""`camdrive data info`: what a demonstration directory holds, and which of its files cannot be used.

Totals come from the episodes' headers and arrays other than the frames (unless asked to verify them),
so that a summary of a large dataset is quick; bad, partial, stale and temporary files are listed so
that a dataset's problems show before a training run finds them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from training.data.demo_reader import iter_episodes, list_files
from training.data.demos import DemoError


def summarize(directory: str | os.PathLike[str], *, verify: bool = False) -> dict[str, Any]:
    """Totals of a demo directory: episodes, frames, steps, hours (frames / control_hz), kilometres (sum of
    each episode's final distance), drivers and env ids (counts), and the partial, bad, stale and temp
    files (see Listing).

    verify=True reads every frame too (slower; finds corruption inside frame data).
    """
    bad: list[DemoError] = []
    partial: list[Path] = []
    drivers: Counter[str] = Counter()
    env_ids: Counter[str] = Counter()
    episodes = frames = steps = 0
    seconds = kilometres = 0.0
    for episode in iter_episodes(directory, on_error=bad.append, on_partial=partial.append, frames=verify):
        episodes += 1
        frames += episode.num_frames
        steps += episode.steps
        seconds += episode.steps / episode.control_hz  # as `camdrive record` counts the time driven
        kilometres += episode.kilometres
        drivers[episode.driver] += 1
        env_ids[str(episode.meta["env_id"])] += 1
    leftovers = list_files(directory)
    return {
        "directory": str(directory),
        "episodes": episodes,
        "frames": frames,
        "steps": steps,
        "hours": seconds / 3600.0,
        "kilometres": kilometres,
        "drivers": dict(sorted(drivers.items())),
        "env_ids": dict(sorted(env_ids.items())),
        "partial": [str(p) for p in partial],
        "bad": [{"path": str(e.path), "error": e.what} for e in bad],
        "stale": [str(p) for p in leftovers.stale],
        "temp": [str(p) for p in leftovers.temp],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The text `camdrive data info` prints. Steps first, as `camdrive record` reports them; frames are
    one more per episode (the reset's observation), which read as a different count when alone."""

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    lines = [
        f"directory   {summary['directory']}",
        f"episodes    {summary['episodes']}",
        f"steps       {summary['steps']}",
        f"frames      {summary['frames']} (one per step, and each episode's first)",
        f"hours       {summary['hours']:.3f}",
        f"kilometres  {summary['kilometres']:.2f}",
        f"drivers     {counts(summary['drivers'])}",
        f"envs        {counts(summary['env_ids'])}",
        f"partial     {len(summary['partial'])}",
    ]
    lines += [f"  {p}  (unfinished recording: skipped)" for p in summary["partial"]]
    lines.append(f"bad         {len(summary['bad'])}")
    lines += [f"  {b['path']}: {b['error']}" for b in summary["bad"]]
    if summary["stale"]:
        lines.append(f"stale       {len(summary['stale'])} partial file(s) of finished episodes (ignored)")
    if summary["temp"]:
        lines.append(f"temp        {len(summary['temp'])} leftover temporary file(s) (ignored)")
    return "\n".join(lines)


def info_main(args: argparse.Namespace) -> int:
    """`camdrive data info DIR` (exit codes of `common.exit_codes`): 0 when the directory holds readable
    episodes and no bad file, 1 when a file is bad (each named on stderr, in one line) or no episode is
    readable, 2 when DIR itself cannot be read."""
    from training.common import exit_codes

    prog = "camdrive data info"
    try:
        summary = summarize(args.directory, verify=args.verify)
    except DemoError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    for bad in summary["bad"]:
        print(f"{prog}: error: {bad['path']}: {bad['error']}", file=sys.stderr)
    if summary["episodes"] == 0:
        print(f"{prog}: no readable episodes in {args.directory}", file=sys.stderr)
        return exit_codes.FAILED
    return exit_codes.FAILED if summary["bad"] else exit_codes.OK
