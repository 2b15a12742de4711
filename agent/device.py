"""Which torch device a trainer runs on (`camdrive train bc|dqn --device`).

One function so both trainers agree on what "auto" means and refuse an unusable choice the same way,
before any data is collected or any env is made: asking for CUDA on a machine without it fails at once
with a message naming --device, instead of a CUDA error minutes into the run.

torch is imported inside `select_device`, so the command line can import `DEVICES` for its --help
without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
"""--device choices. "auto": CUDA when torch sees a GPU, else the CPU."""


def select_device(name: str = "auto") -> torch.device:
    """The torch.device for `name` (one of `DEVICES`); ValueError naming --device when it cannot be used."""
    import torch

    if name not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise ValueError(
            f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine; "
            "use --device cpu or --device auto"
        )
    return torch.device("cpu")
