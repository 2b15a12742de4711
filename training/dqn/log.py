"""What a DQN run reports: the CSV log (rewritten at every row, so a killed run keeps it), the same
figures as TensorBoard scalars, the progress bar, the learning curve, the metrics summary and the
line `camdrive train dqn` prints at the end.

A log row is built in one place (`log_row`, from the running figures in `Recent`) and written in one
place (`append_row`), for the rows of the loop and the final one alike.
"""

from __future__ import annotations

import csv
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.common.outputs import replacing
from training.common.tensorboard_log import TensorBoardLog
from training.dqn.config import VALIDATION_SEED_START, DQNConfig
from training.dqn.selection import score_of

TENSORBOARD_TAGS = {
    "loss": "train/td_loss",
    "mean_q": "train/mean_q",
    "expert_agreement": "train/expert_agreement",
    "aux_loss": "train/aux_loss",
    "epsilon": "train/epsilon",
    "train_score": "train/episode_score",
    "steps_per_s": "perf/env_steps_per_s",
    "eval_score": "eval/score",
    "eval_collisions": "eval/collisions",
    "eval_offroad": "eval/offroad",
}
"""The CSV columns also written to TensorBoard (`--tensorboard`), and their tags. The learning rate is
constant in a DQN run, so it is not logged."""


@dataclass
class Recent:
    """The running figures a log row averages."""

    td_loss: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """TD loss of the last 100 gradient steps."""
    mean_q: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """Mean Q of the actions taken, in the last 100 batches."""
    expert_agreement: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """Share of the last 100 batches' states where the greedy action is the teacher's."""
    aux_loss: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """Auxiliary loss (`training.dqn.affordances`) of the last 100 gradient steps."""
    score: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    """DeepTraffic scores (mph; the return for other envs) of the last 20 training episodes."""


def log_row(
    step: int,
    wall_s: float,
    steps_per_s: float,
    eps: float,
    counters: dict[str, Any],
    recent: Recent,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """One row of the CSV log; `evaluation` is the evaluation made at this step ({}: none), empty
    cells are figures not measured yet."""

    def mean(values: deque[float], digits: int) -> float | str:
        return round(float(np.mean(values)), digits) if values else ""

    return {
        "step": step,
        "wall_s": round(wall_s, 1),
        "steps_per_s": round(steps_per_s, 1),
        "epsilon": round(eps, 4),
        "updates": counters["updates"],
        "episodes": counters["episodes"],
        "loss": mean(recent.td_loss, 5),
        "mean_q": mean(recent.mean_q, 4),
        "expert_agreement": mean(recent.expert_agreement, 4),
        "aux_loss": mean(recent.aux_loss, 5),
        "train_score": mean(recent.score, 3),
        "eval_score": round(score_of(evaluation), 3) if evaluation else "",
        "eval_collisions": evaluation.get("collisions", ""),
        "eval_offroad": evaluation.get("offroad", ""),
    }


def _log_to_tensorboard(tb: TensorBoardLog, row: dict[str, Any]) -> None:
    """A CSV row's values as TensorBoard scalars at its step (empty cells, not measured yet, skipped)."""
    tb.scalars({tag: row[column] for column, tag in TENSORBOARD_TAGS.items()}, row["step"])


def _number(text: str) -> float | int | str:
    """A CSV cell read back: int when integral, float otherwise, "" for empty."""
    if text == "":
        return ""
    value = float(text)
    return int(value) if value.is_integer() else value


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The log so far, rewritten atomically (`training.common.outputs.replacing`) at every row."""
    keys = list(rows[0].keys())
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def append_row(cfg: DQNConfig, tb: TensorBoardLog, rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Add `row` to the log: the CSV rewritten with it, its figures written to TensorBoard."""
    rows.append(row)
    write_csv(cfg.path(".csv"), rows)
    _log_to_tensorboard(tb, row)


def read_log(cfg: DQNConfig, resumed_from: int | None) -> list[dict[str, Any]]:
    """The CSV rows a resumed run continues (those up to the step its training state was written at;
    later ones were lost with the killed run); none for a new run."""
    if resumed_from is None or not cfg.path(".csv").exists():
        return []
    with open(cfg.path(".csv")) as f:
        return [
            {k: _number(v) for k, v in r.items()}
            for r in csv.DictReader(f)
            if float(r["step"]) <= resumed_from
        ]


def show_progress(
    bar: Any, step: int, steps_per_s: float, eps: float, recent: Recent, last_eval: dict[str, Any]
) -> None:
    """The tqdm bar at `step`, with the speed, epsilon, training score and last validation score."""
    bar.update(step - bar.n)
    bar.set_postfix(
        sps=f"{steps_per_s:.0f}",
        eps=f"{eps:.2f}",
        train=f"{np.mean(recent.score):.1f}" if recent.score else "-",
        score=f"{score_of(last_eval):.1f}" if last_eval else "-",
        refresh=False,
    )


def plot_curve(cfg: DQNConfig, rows: list[dict[str, Any]], baselines: dict[str, float]) -> None:
    """Held-out score and training episode speed against env steps, with noop/expert lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ev = [r for r in rows if r.get("eval_score") not in ("", None)]
    ax.plot([r["step"] for r in ev], [r["eval_score"] for r in ev], "o-", label="validation score")
    tr = [r for r in rows if r.get("train_score") not in ("", None)]
    ax.plot([r["step"] for r in tr], [r["train_score"] for r in tr], alpha=0.6, label="training episodes")
    for name, value in baselines.items():
        ax.axhline(value, ls="--", lw=1, color="grey" if name == "noop" else "green", label=name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mph (median of run mean speeds)" if cfg.env == "traffic" else "return")
    ax.set_title(f"DQN {cfg.env} {cfg.action_mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with replacing(cfg.path(".png")) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def run_summary(
    cfg: DQNConfig,
    counters: dict[str, Any],
    final: dict[str, Any],
    baselines: dict[str, float],
    resumed_from: int | None,
    session: dict[str, Any],
) -> dict[str, Any]:
    """What `train` returns and writes to the metrics JSON; `session` holds this session's env
    steps/s, device and the network's parameter count."""
    return {
        "out": str(cfg.out),
        "global_step": counters["global_step"],
        "updates": counters["updates"],
        "episodes": counters["episodes"],
        "best_score": counters["best_score"],
        "best_failures": counters.get("best_failures"),
        "best_step": counters.get("best_step"),
        "selection": "fewest collisions + off-road exits in the periodic evaluation, then highest score",
        "final_eval": final,
        "baselines_on_validation_seeds": baselines,
        "validation_seeds_start": VALIDATION_SEED_START,
        "resumed_from": resumed_from,
        "resumes": counters["resumes"],
        "steps_per_s_this_session": session["steps_per_s"],
        "device_this_session": session["device"],
        "train_seconds_total": counters["train_seconds"],
        "param_count": session["param_count"],
        "config": asdict(cfg),
    }


def describe_run(summary: dict[str, Any]) -> str:
    """What a finished run made, in words: the model written, its steps, the best evaluation score
    (periodic or final: the model kept) and the final evaluation (the metrics file holds the rest as
    JSON)."""
    final = summary.get("final_eval") or {}
    unit = " mph" if "score_mph" in final else ""
    parts = [f"score {score_of(final):.2f}{unit}"] if final else []
    for key, words in (("collisions", "collision(s)"), ("offroad", "off-road exit(s)")):
        if key in final:
            parts.append(f"{final[key]} {words}")
    runs = f" over {final['runs']} runs" if "runs" in final else ""
    best = summary.get("best_score")
    best_text = f"{best:.2f}" if isinstance(best, int | float) else "-"
    return (
        f"wrote {summary.get('out')}: {summary.get('global_step')} steps, the best evaluation score "
        f"{best_text}; final evaluation{runs}: {', '.join(parts) or 'none'}"
    )
