"""How far back a stacked frame window reaches, without torch.

The DQN's window is shared by three readers: the network's driver (`agent.qnet`), the replay buffer
(`training.dqn.replay`) and the trainer's config check (`training.dqn.config`), which `camdrive train
dqn --help` imports. Kept apart from the network so that sizing a window never imports torch.
"""

from __future__ import annotations


def window_span(frames: int, frame_stride: int) -> int:
    """Observations a window of `frames` frames, one every `frame_stride` steps, reaches back over."""
    return (frames - 1) * frame_stride + 1
