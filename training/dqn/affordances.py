"""Auxiliary targets for the DQN: what a driver must read from its frames, taken from the true state.

Why: the TD loss and a teacher's action labels tell a Q-network only which action was worth more,
once per state, and a car closing on a slower one ahead covers a few pixels of a 33x100 frame. A
network so taught brakes everywhere or nowhere (assets/dqn/MODEL_CARD.md). Asking the same features
to also predict the distances and closing speeds that decide when to brake and where to change lane,
in every replayed state, is the "direct perception" of Chen et al. 2015 (DeepDriving) and Sauer et
al. 2018 (conditional affordance learning), used here as an auxiliary loss (Jaderberg et al. 2017):
the network still acts from frames alone, and the head is dropped with the training state.

The targets (`AFFORDANCES`, each scaled to about [-1, 1]) are read from the world whose frame they
label: the car's speed and offset from its lane's centre; in the band the car's body covers, the
gap to the car ahead and how fast the car closes on it; and for the lane to the left, the car's lane
and the lane to the right, the gap to the nearest car ahead and behind (from the car's centre, so a
car alongside shows as a negative gap) and the closing speed on the car ahead. A lane that does not
exist reads as blocked: both gaps at their smallest and the closing speed at its largest.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.expert import band_half_width, clip, gap_ahead
from sim.world import World

LANES = ("left", "own", "right")
"""The lanes whose traffic is read: the car's own and its neighbours."""
AFFORDANCES = (
    "speed",
    "lane_offset",
    "band_gap_ahead",
    "band_closing",
    *(f"{lane}_{what}" for lane in LANES for what in ("gap_ahead", "gap_behind", "closing")),
)
"""Names of the targets, in the order `affordances` returns them."""
SPEED_SCALE = 35.0
"""m/s that read as 1 (80 mph, the speed limit, is 35.8)."""
GAP_AHEAD_M = (-10.0, 60.0)
"""Gaps ahead are clipped to this range and divided by its top: beyond 60 m a car does not yet matter
at the closing speeds of Traffic-v0 (its cars drive 16-24 m/s, the limit is 35.8)."""
GAP_BEHIND_M = (-10.0, 30.0)
"""Gaps behind, likewise: traffic is slower than a fast ego, so what matters behind is close."""
CLOSING_MPS = 15.0
"""Closing speeds are clipped to [0, CLOSING_MPS] and divided by it."""


def affordances(world: World) -> np.ndarray:
    """The targets of `AFFORDANCES` for the world's present state, float32."""
    traffic, road = world.traffic, world.road
    assert traffic is not None and road is not None, "affordances need a world with traffic"
    state = world.state()
    speed, half_length = world.ego.speed, 0.5 * world.ego.params.length
    gap, lead_speed = gap_ahead(world, world.d)
    values = [speed / SPEED_SCALE, state.lateral_offset / world.road_config.lane_width]
    values += [_ahead(gap), _closing(speed, gap, lead_speed)]
    for lane in (state.lane - 1, state.lane, state.lane + 1):
        if not 0 <= lane < world.road_config.lanes:
            values += [_ahead(-math.inf), _behind(-math.inf), 1.0]
            continue
        d = float(road.lane_centre(lane))
        ahead, ahead_speed = gap_ahead(world, d)
        behind, _ = traffic.follower(world.s, d, band_half_width(world), anticipate=True)
        values += [_ahead(ahead), _behind(behind - half_length), _closing(speed, ahead, ahead_speed)]
    return np.array(values, dtype=np.float32)


def _ahead(gap: float) -> float:
    return clip(gap, *GAP_AHEAD_M) / GAP_AHEAD_M[1]


def _behind(gap: float) -> float:
    return clip(gap, *GAP_BEHIND_M) / GAP_BEHIND_M[1]


def _closing(speed: float, gap: float, lead_speed: float) -> float:
    """How fast the car closes on a leader `gap` metres ahead (0 when none is within range)."""
    if not math.isfinite(gap) or gap > GAP_AHEAD_M[1]:
        return 0.0
    return clip(speed - lead_speed, 0.0, CLOSING_MPS) / CLOSING_MPS


class AffordanceHead(nn.Module):
    """Predicts `AFFORDANCES` from the Q-network's convolutional features (`QNet.features`)."""

    def __init__(self, n_features: int, hidden: int = 256) -> None:
        super().__init__()
        outputs = len(AFFORDANCES)
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def affordance_loss(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Huber loss summed over the targets, averaged over states: each target counts alike."""
    return F.smooth_l1_loss(predicted, targets, reduction="none").sum(dim=1).mean()
