"""What a person reads off the viewer and the env's render(): who works the pedal, the ego marker on
every minimap, evenly spaced text, the help key's box and the video's time rate."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pygame
import pytest

from agent.human import HumanInput
from sim.render.topdown import EGO_BORDER_RGB, EGO_RGB
from sim.text import HudFont, hud_font
from sim.viewer import Viewer


def glyph_gaps(surface: pygame.Surface) -> list[int]:
    """Widths of the empty column runs between the first and the last inked column of rendered text."""
    ink = pygame.surfarray.array_alpha(surface).max(axis=1) >= 40
    cols = np.nonzero(ink)[0]
    runs, run = [], 0
    for inked in ink[cols[0] : cols[-1] + 1]:
        if not inked:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs


def test_hud_text_runs_are_evenly_spaced():
    """pygame.font's kerning set "thrott le", "l ane" and "H z" 3 px apart where other letters are 2."""
    pygame.font.init()
    for word in ("throttle", "lane", "Hz", "km/h"):
        assert max(glyph_gaps(hud_font(20).render(word, (255, 255, 255)))) <= 2, word
    width, height = hud_font(20).size("throttle 0.20")
    assert hud_font(20).render("throttle 0.20", (255, 255, 255)).get_size() == (width, height)
    assert hud_font(10).render("seed 1736560", (255, 255, 255)).get_height() == hud_font(10).height


def border_and_body(minimap: np.ndarray) -> tuple[int, int]:
    """Pixels of the ego's red border and of its white body on a minimap picture."""
    red = (minimap == EGO_BORDER_RGB).all(axis=-1).sum()
    white = (minimap == EGO_RGB).all(axis=-1).sum()
    return int(red), int(white)


def test_env_render_marks_the_ego_as_the_viewer_does(make_env):
    env = make_env("camdrive/Traffic-v0", render_mode="rgb_array")
    env.reset(seed=3)
    frame = env.render()
    view = env.unwrapped._view
    mh, mw = view.minimap_size
    red, white = border_and_body(frame[8 : 8 + mh, -8 - mw : -8])
    assert red > 30 and white > 10, "a white car in a red border on render()'s minimap"

    viewer = Viewer(env, HumanInput(env.action_space), size=(480, 300), fps=0, seed=3)
    try:
        viewer.run(max_frames=1)
        mini = viewer.view.minimap
        world = env.unwrapped.world
        e = world.ego
        picture = mini.render(world.road, e.x, e.y, e.yaw, world.s, world.cars(), world.ego_box())
    finally:
        viewer.close()
    red, white = border_and_body(picture)
    assert red > 30 and white > 10, "the viewer's minimap draws the same marker"


def drive_until_the_safety_brake(viewer: Viewer, steps: int = 400) -> bool:
    viewer.open()
    viewer.reset()
    for _ in range(steps):
        viewer.step()
        if viewer.braking:
            return True
    return False


def test_pedal_says_who_works_it(make_env):
    """Traffic-v0 with no key pressed: the cruise control holds the speed the person set, and when the
    safety system brakes, the HUD shows its brake, not the cruise control's throttle."""
    env = make_env("camdrive/Traffic-v0", traffic_cars=40)
    viewer = Viewer(env, HumanInput(env.action_space), size=(480, 300), fps=0, seed=11)
    try:
        viewer.open()
        viewer.reset()
        viewer.step()
        who, pedal = viewer.hud.pedal()
        assert who == "cruise" and viewer.hud.cruise_speed() is not None
        assert drive_until_the_safety_brake(viewer), "a dense road makes the safety system brake"
        who, pedal = viewer.hud.pedal()
        assert who == "safety" and pedal < 0
        applied = env.unwrapped.world.applied_accel
        assert applied < 0 and pedal == max(-1.0, applied / env.unwrapped.world.ego.params.max_brake)
        viewer.draw()
    finally:
        viewer.close()


def test_the_drivers_own_pedal_has_no_cruise(make_env):
    env = make_env("camdrive/LaneKeep-v0", action_type="steer_throttle")
    viewer = Viewer(env, HumanInput(env.action_space), size=(480, 300), fps=0, seed=2)
    try:
        viewer.run(max_frames=2)
        assert viewer.hud.cruise_speed() is None and viewer.hud.pedal()[0] == ""
    finally:
        viewer.close()


def test_help_key_is_boxed_beside_the_badge(make_env):
    env = make_env("camdrive/LaneKeep-v0")
    viewer = Viewer(env, HumanInput(env.action_space), size=(960, 600), fps=0, seed=2)
    try:
        viewer.run(max_frames=1)
        shown = viewer.frame_rgb().astype(int)
        viewer.show_help = True
        viewer.draw()
        without = viewer.frame_rgb().astype(int)
    finally:
        viewer.close()
    # Right of the badge (top centre), in the top row that the HUD and the minimap leave free.
    box = (slice(10, 45), slice(500, 700))
    amber = (np.abs(shown[box] - (255, 180, 40)).sum(axis=-1) < 60).sum()
    assert amber > 5, "the H in amber"
    assert (shown[box].sum(axis=-1) < 250).mean() > 0.15, "on a dark box (the sky is light)"
    assert not np.array_equal(shown[box], without[box]), "gone while the help itself shows"


def test_a_video_shows_the_time_rate_not_the_render_rate(make_env):
    env = make_env("camdrive/Traffic-v0")
    viewer = Viewer(env, HumanInput(env.action_space), size=(480, 300), fps=0, seed=2, video_fps=10.0)
    try:
        viewer.run(max_frames=2)
        line = viewer.hud.lines()[-1]
    finally:
        viewer.close()
    assert line.startswith("1.0x real time") and "fps" not in line


TEXT = "seed 1736 560  throttle 0.20  lane 2"


def _draw_for_a_while(fonts: list[HudFont], seconds: float) -> None:
    """Text in every font, new glyphs each time (a forked vector env worker's render())."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for font in fonts:
            font.render(f"{TEXT[::-1]} {time.monotonic():.6f}", (255, 255, 255))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_text_drawn_in_a_forked_process_leaves_both_processes_fonts_intact():
    """Fonts opened before a fork and used on both sides: FreeType read the font from a file whose offset
    the two processes shared, and text failed ("Failed to resize font: unknown file format") or came
    out wrong in either process (seen with a vector env's workers rendering beside the viewer)."""
    sizes = range(8, 72, 3)
    expected = {
        size: pygame.surfarray.array_alpha(HudFont(size).render(TEXT, (255, 255, 255))) for size in sizes
    }
    fonts = [HudFont(size) for size in sizes]  # opened before the fork, no glyph loaded yet
    child = multiprocessing.get_context("fork").Process(target=_draw_for_a_while, args=(fonts, 2.0))
    child.start()
    try:
        for size, font in zip(sizes, fonts, strict=True):
            time.sleep(0.05)  # while the child draws
            drawn = pygame.surfarray.array_alpha(font.render(TEXT, (255, 255, 255)))
            assert np.array_equal(drawn, expected[size]), f"size {size}"
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0  # its text drew without an error too
