"""numba's on-disk cache keys a compiled function by the text of its own file, not of the files whose
compiled functions it calls and contains. Each kernel that calls across files keeps a digest of those
files, so that editing one of them changes the caller's file too; these tests keep the digests
current (a stale digest means a stale cached kernel could be loaded after such an edit)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

import pytest

import sim
from sim import world_step
from sim.render import ground_kernels, kernels
from sim.traffic import idm, lane_changes, recycling, step_kernel

SIM = Path(sim.__file__).parent


@pytest.mark.parametrize(
    ("caller", "callees"),
    [
        (kernels, ["render/ground_kernels.py"]),
        (ground_kernels, ["road.py"]),
        (idm, ["py_semantics.py"]),
        (lane_changes, ["traffic/idm.py"]),
        (recycling, ["traffic/idm.py", "traffic/step_kernel.py", "py_semantics.py"]),
        (step_kernel, ["traffic/idm.py", "traffic/lane_changes.py"]),
        (
            world_step,
            [
                "collision.py",
                "road.py",
                "safety.py",
                "traffic/step_kernel.py",
                "vehicle.py",
                "world_kernels.py",
            ],  # fmt: skip
        ),
    ],
    ids=[
        "frame kernel",
        "row frames",
        "one-car IDM",
        "lane changes",
        "recycling",
        "traffic step",
        "world step",
    ],
)
def test_caller_keeps_the_digest_of_the_files_it_calls(caller: ModuleType, callees: list[str]) -> None:
    digest = hashlib.sha256()
    for name in callees:
        digest.update((SIM / name).read_bytes())
    expected = digest.hexdigest()
    assert expected == caller.CALLEE_SOURCES_SHA256, (
        f"after editing {callees}, set {caller.__name__}.CALLEE_SOURCES_SHA256 = {expected!r}"
    )
