"""What `camdrive play`, `replay` and `watch` share around the viewer's window: whether a window can
open here, the window size, the --screenshot and --record checks made before it opens, the screenshot
saved when it closes and the closing line.

One place for them, so that the three commands refuse the same arguments with the same words and
a missing display is explained the same way everywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from training.common.outputs import check_output_dir, check_output_file, remove_stale_temps, replacing

MIN_SIZE = (320, 200)
"""Smallest window (width, height) the HUD fits in."""


def display_problem(command: str = "camdrive play") -> str | None:
    """Why no window can be opened here, or None if it is worth trying (set_mode may still fail)."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return None  # the user picked an SDL video driver (dummy for headless runs, x11, wayland...)
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return (
            "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset). Run it in a desktop "
            f'session, under a virtual X server (xvfb-run -s "-screen 0 1280x800x24" {command}), or '
            "with SDL_VIDEODRIVER=dummy for a run without a visible window."
        )
    return None


def open_window(viewer: Any, prog: str) -> bool:
    """Open the viewer's window; False, having said why on stderr, when no display can show one."""
    from sim.viewer import DisplayUnavailableError

    try:
        viewer.open()
    except DisplayUnavailableError as e:
        print(f"{prog}: {e}. {display_problem(prog) or 'Is a display available?'}", file=sys.stderr)
        return False
    return True


def window_size_problem(width: int, height: int) -> str | None:
    """Why a window of `width` x `height` cannot show the HUD, or None."""
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        return f"the window must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, got {width}x{height}"
    return None


def check_view_args(args: argparse.Namespace) -> str | None:
    """Why the window size or --fps cannot be used, or None."""
    size_problem = window_size_problem(args.width, args.height)
    if size_problem:
        return size_problem
    if args.fps < 0:
        return f"--fps must be >= 0 (0 = unpaced), got {args.fps}"
    return None


def run_viewer(viewer: Any, args: argparse.Namespace, prog: str) -> int:
    """Open the window, run until quit, save the screenshot; 1 with a message when there is no display."""
    if not open_window(viewer, prog):
        return 1
    stats = viewer.run(max_frames=args.frames, max_seconds=args.seconds)
    save_screenshot(viewer, args)
    print_stats(stats, args)
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """OutputError for a --screenshot or --record that cannot be written, or an existing screenshot
    without --force: found before the window opens, not when the person quits after a drive."""
    if args.screenshot:
        check_output_file(args.screenshot, "--screenshot", force=args.force)
        remove_stale_temps(args.screenshot)
    if getattr(args, "record", None):
        check_output_dir(args.record, "--record")


def save_screenshot(viewer: Any, args: argparse.Namespace) -> None:
    """--screenshot: save what the window shows now, atomically (a stop half-way keeps the old file)."""
    if args.screenshot:
        with replacing(args.screenshot) as tmp:
            viewer.save_screenshot(tmp)
        print(f"screenshot saved to {args.screenshot}")


def print_stats(stats: Any, args: argparse.Namespace) -> None:
    """The closing line of a viewer session: frames, frame rate, env steps, episodes."""
    size = f"{args.width}x{args.height}"
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps at {size}), "
        f"{stats.steps} env steps, {stats.episodes} episode(s)"
    )
