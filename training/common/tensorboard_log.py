"""Optional TensorBoard scalars of a training run (`camdrive train bc|dqn --tensorboard DIR`).

The CSV, PNG and JSON files every run writes stay the record of a run; TensorBoard is for watching a
long run live, and comparing runs side by side, without opening files. It needs the optional
`tensorboard` package (`pip install tensorboard`, or the project's `tensorboard` extra), so:

- `check_tensorboard` refuses an unusable DIR (the package missing, or DIR an existing file) with one
  line naming --tensorboard; the trainers call it before any work, so a typo costs no training time.
- `TensorBoardLog` without a DIR writes nothing and imports nothing, so the trainers call it
  unconditionally; as a context manager it closes the writer (flushing the last events) however the
  run ends: normally, Ctrl-C or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType


def check_tensorboard(logdir: str | os.PathLike[str] | None) -> None:
    """Raise ValueError (one line naming --tensorboard) when scalars cannot be written to `logdir`.

    None (no --tensorboard) always passes. The package is checked by importing what `TensorBoardLog`
    imports, so a broken install is caught here too, not at the writer's first event.
    """
    if logdir is None:
        return
    path = Path(logdir)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--tensorboard {logdir}: {existing} is an existing file, not a directory")
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ValueError(
            "--tensorboard needs the tensorboard package, which is not installed: pip install tensorboard"
        ) from None


class TensorBoardLog:
    """Scalars to a `SummaryWriter` in `logdir`, or nothing at all when `logdir` is None.

    `purge_step`: a resumed run passes the step it continues from, so TensorBoard drops the events the
    killed run wrote after its last checkpoint instead of drawing them twice.
    """

    def __init__(self, logdir: str | os.PathLike[str] | None, purge_step: int | None = None) -> None:
        self.writer = None
        if logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(logdir), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float | int | str | None], step: int) -> None:
        """One point per tag at `step`; empty values ("" or None: not measured yet) are skipped."""
        if self.writer is None:
            return
        for tag, value in values.items():
            if value is not None and not isinstance(value, str):
                self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
