"""The report of `camdrive bench`: the table a person reads, and the JSON document a script keeps.

The text says what each number means next to the numbers (how many steps, how the resets were timed),
so a pasted report stands on its own; the JSON adds the camdrive version, the time and the machine
(CPU, Python, numpy, Gymnasium), without which a speed cannot be compared with another.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from training.common.version import package_version


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def json_document(report: dict[str, Any]) -> str:
    """The `--json` file: the report with the camdrive version, the time it was made and the machine."""
    document = {
        "camdrive": package_version(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **report,
    }
    return json.dumps(document, indent=2, default=repr) + "\n"


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _times(ratio: float | None) -> str:
    return _number(ratio, ".2f") + ("x" if ratio is not None else "")


def _times_over_rounds(row: dict[str, Any], reference: str) -> str:
    """The ratio to the reference, with its range over the rounds when there were several (not for the
    reference's own row, always 1)."""
    text = _times(row["ratio_vs_reference"])
    low_high = row.get("ratio_vs_reference_range")
    if low_high is not None and len(row.get("rounds", ())) > 1 and row["env_id"] != reference:
        text += f" ({low_high[0]:.1f}-{low_high[1]:.1f})"
    return text


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])
        for row in [header, *rows]
    ]


def _vector_table(report: dict[str, Any]) -> list[str]:
    """The native vector envs' rows (none without --vector)."""
    rows = [
        (
            r["env_id"],
            str(r["num_envs"]),
            str(r["workers"]),
            _number(r.get("threads"), "d"),
            _number(r["steps_per_s"], ".1f"),
            _times_over_rounds(r, report["reference"]),
            _times(r["ratio_vs_single_env"]),
        )
        for r in report["vector_results"]
    ]
    if not rows:
        return []
    reference = f"vs {report['reference']}"
    header = ("vector env", "N", "workers", "threads", "env-steps/s", reference, "vs single env")
    return ["", *_table(header, rows)]


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report: each env's configuration, the table, and what the numbers mean."""
    lines = []
    for r in report["results"]:
        cfg = r["config"]
        lines.append(
            f"{r['env_id']}: kwargs {cfg['kwargs']}, max_episode_steps {cfg['max_episode_steps']}, "
            f"observation {r['observation_space']}, action {r['action_space']}"
        )
    if lines:
        lines.append("")
    header = ("env", "steps/s", f"vs {report['reference']}", "render fps", "reset ms", "median")
    rows = [
        (
            r["env_id"],
            _number(r["steps_per_s"], ".1f"),
            _times_over_rounds(r, report["reference"]),
            _number(r["render_fps"], ".1f"),
            _number(r["reset_ms"], ".2f"),
            _number(r["reset_ms_median"], ".2f"),
        )
        for r in report["results"]
    ]
    lines += _table(header, rows)
    lines += _vector_table(report)
    for s in report["skipped"]:
        lines.append(f"skipped {s['env_id']}: {s['reason']}")
    settings = report["settings"]
    lines += [
        "",
        f"steps/s: {settings['steps']} random-action steps after {settings['warmup_steps']} untimed ones;",
        "  episodes that end are reset inside the timed loop, as in a training loop (included).",
        f"render fps: env.unwrapped.observe() called {settings['steps']} times without stepping.",
        f"reset ms: mean and median of {settings['resets']} env.reset(seed=...) calls with different seeds.",
    ]
    if settings["rounds"] > 1:
        lines.append(
            f"rounds: {settings['rounds']}; each figure is its median over the rounds, each ratio the median "
            "of the ratios within each round (in brackets their lowest and highest)."
        )
    first = report["first_step"]
    if first is not None:
        lines.append(
            f"first step of {first['env_id']} in a new process: {first['cold_cache_s']:.2f} s with an empty "
            f"numba cache (compiling the kernels), {first['warm_cache_s']:.2f} s with a warm one."
        )
    if report["vector_results"]:
        lines += [
            f"vector: gymnasium.make_vec(env_id, num_envs=N), about {settings['steps']} env-steps in calls "
            f"of N random actions (at least {settings['vector_min_calls']} calls), and more calls up to "
            f"{settings['vector_seconds']:g} s (--vector-seconds);",
            "  sub-envs autoreset on their next step, inside the timed loop. vs single env: steps/s above.",
            "  workers: processes stepping it (--workers; the vector env's default: one per core where",
            "  processes fork); threads: threads drawing its frames in one process (--threads; 1 in each",
            "  worker).",
        ]
    return "\n".join(lines)
