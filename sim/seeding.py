"""The named random streams: every seeded generator in camdrive is `stream(seed, STREAM, *index)`.

Each purpose draws from a generator of its own, derived from a seed and the purpose's stream number by
numpy's SeedSequence (`default_rng([seed, stream, ...])`). So drawing more numbers for one purpose never
shifts another's (an episode's look does not change when its traffic draws more), and every module that
draws a purpose's numbers gets the same ones by naming the same stream. The numbers are part of the
recorded results (golden hashes, shipped models' training data): a stream's number never changes.

stream                  seeded by     feeds
TRAFFIC (1)             episode seed  the traffic: placement, desired speeds, lane changes, respawns
EPISODE_LOOK (2)        episode seed  the episode's randomised palette (option `randomize`)
BC_RUN (3)              run seed      train bc: the validation split, the frames' order in each epoch
RECORD_NOISE (7)        reset seed    record: the noise added to the recorded driver's actions
BC_EXPERT_EPISODE (11)  episode seed  train bc: an expert episode's steering noise and extra views
BC_RECORDED_VIEWS (12)  reset seed    train bc: the extra views of a recorded episode, re-simulated
BC_DAGGER_EPISODE (13)  episode seed  train bc: a DAgger episode's extra views
BC_EXPERT_LOOKS (14)    episode seed  train bc: the training look of each frame of an expert episode
BC_RECORDED_LOOKS (15)  reset seed    train bc: the training look of each frame of a recorded episode
BC_DAGGER_LOOKS (16)    episode seed  train bc: the training look of each frame of a DAgger episode
TRAINING_LOOKS (29)     run seed, i   train bc: training palette i; [seed, 29, i, 1] its paint wear
IMPERFECT_DRIVER (31)   episode seed  `agent.imperfect`: the driver's reaction delay and lapses

Training looks (29) and the env's looks (2) are different streams, so the looks a model is evaluated
in (seeds >= 1,000,000) are other draws of the same kinds, never the ones it was trained in.
"""

from __future__ import annotations

from typing import Final

import numpy as np

TRAFFIC: Final = 1
EPISODE_LOOK: Final = 2
BC_RUN: Final = 3
RECORD_NOISE: Final = 7
BC_EXPERT_EPISODE: Final = 11
BC_RECORDED_VIEWS: Final = 12
BC_DAGGER_EPISODE: Final = 13
BC_EXPERT_LOOKS: Final = 14
BC_RECORDED_LOOKS: Final = 15
BC_DAGGER_LOOKS: Final = 16
TRAINING_LOOKS: Final = 29
IMPERFECT_DRIVER: Final = 31


def stream(seed: int, stream_id: int, *index: int) -> np.random.Generator:
    """The generator of stream `stream_id` (one of this module's constants) for `seed`, and `index`
    within it where a stream has several (training look i): `default_rng([seed, stream_id, *index])`."""
    return np.random.default_rng([seed, stream_id, *index])


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """`rng.uniform(low, high)` for one number, bit for bit and advancing `rng` the same, at a third of
    its cost: numpy's draw is low + (high - low) * the next double, which `rng.random()` is. For the
    scalar draws made per curve of a new road and per respawned car; `low <= high` is the caller's to
    keep (numpy would raise)."""
    return low + (high - low) * rng.random()
