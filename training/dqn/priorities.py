"""Prioritised replay's bookkeeping (Schaul et al. 2016): a sum tree over the replay's slots.

Why: without the safety system the transitions that teach a DQN to brake, the last seconds before a
crash, are a fraction of a percent of the replay, and uniform sampling shows the network one of them
every few hundred batches. Sampling each transition in proportion to its last TD error (to the power
alpha) shows it the surprises, a crash's large one above all, until it has learned them.

`SumTree` holds one non-negative priority per leaf; a parent holds the sum of its two children, so the
root is the total, a leaf's share is its priority over the root, and a draw in [0, total) descends to
its leaf in log2(leaves) steps. Every operation takes arrays of leaves at once (numpy, one pass per
tree level), since the replay updates a batch of priorities per gradient step.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Priorities of `leaves` slots (all zero at first: a zero leaf is never drawn)."""

    def __init__(self, leaves: int) -> None:
        if leaves < 1:
            raise ValueError(f"a sum tree needs at least one leaf, got {leaves}")
        self.width = 1 << max(0, (leaves - 1).bit_length())
        """Leaves rounded up to a power of two: leaf i is node width + i (node 1 is the root)."""
        self.depth = self.width.bit_length() - 1
        self.nodes = np.zeros(2 * self.width, dtype=np.float64)

    @property
    def total(self) -> float:
        """The sum of all priorities."""
        return float(self.nodes[1])

    def get(self, leaf: np.ndarray) -> np.ndarray:
        """The priorities of `leaf` (an int array)."""
        return self.nodes[self.width + np.asarray(leaf)]

    def set(self, leaf: np.ndarray, priority: np.ndarray | float) -> None:
        """Set the priorities of `leaf` (an int array; a repeated leaf takes its last value) and
        re-add every sum above them."""
        node = self.width + np.asarray(leaf, dtype=np.int64)
        self.nodes[node] = priority
        for _ in range(self.depth):
            node = np.unique(node >> 1)
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """The leaf each value of `mass` (in [0, total)) falls in, counting priorities from leaf 0:
        leaf i takes the values in [sum of leaves < i, that sum + priority i). A zero leaf takes none."""
        mass = np.array(mass, dtype=np.float64)
        node = np.ones(mass.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            right = mass >= left_sum
            # Rounding can leave a draw near the total past the last non-zero leaf: go left then.
            right &= self.nodes[left + 1] > 0
            mass = np.where(right, mass - left_sum, mass)
            node = np.where(right, left + 1, left)
        return node - self.width
