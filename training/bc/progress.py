"""Progress bars of a behaviour-cloning run (episodes collected, batches trained), on stderr.

Why a module: collection, training and DAgger all show one, and `--quiet` turns them all off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress(items: Iterable[Any], enabled: bool, desc: str) -> Iterable[Any]:
    """`items`, with a tqdm bar named `desc` on stderr when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
