"""`camdrive bench --first-step`: how long a new process takes to its first env step.

What a user waits for before anything happens: imports, env construction, and numba compiling the
renderer's kernels (or loading them from its cache). Each measurement runs in its own interpreter, so
nothing this process has imported or compiled counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

from training.evaluation.bench_measure import CAMDRIVE_ENV_IDS

FIRST_STEP_SCRIPT = """
import time
start = time.perf_counter()
import gymnasium, sim
env = gymnasium.make({env_id!r})
env.reset(seed=0)
env.step(env.action_space.sample())
print(time.perf_counter() - start)
"""
"""A new process's first step: imports, env construction, and numba compiling or loading the kernels."""


def measure_first_step(env_id: str = CAMDRIVE_ENV_IDS[0]) -> dict[str, Any]:
    """Seconds to a new process's first step of `env_id`, with an empty compiled-code cache (numba
    compiles the renderer's kernels) and again with the cache that run left (what every later process
    pays). Each runs in its own interpreter with NUMBA_CACHE_DIR pointing at a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="camdrive-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        script = FIRST_STEP_SCRIPT.format(env_id=env_id)
        seconds = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            )
            seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return {"env_id": env_id, "cold_cache_s": seconds[0], "warm_cache_s": seconds[1]}
