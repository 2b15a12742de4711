"""Model files: weights in safetensors, everything needed to use them as JSON in the same file.

Why this format:

- safetensors holds raw tensors and a JSON header, nothing executable, so opening a model file found
  anywhere never runs code (a pickled `torch.save` file would). There is no pickle anywhere here.
- One self-describing file: the safetensors header's free-form metadata (string -> string) carries one
  key, "camdrive", whose value is a JSON document: architecture, parameter count, observation and
  action spec, preprocessing, how it was trained (command, seed, data size, time) and a format version.
  `camdrive eval` and the drivers read what they need from there instead of from a side file that can
  go missing or out of date.
- Written to a temporary file in the same directory and renamed over the target, so an interrupted
  save leaves the previous model intact.

Loading never trusts the file: any problem (not a safetensors file, no or unreadable metadata, another
format version, the wrong architecture, missing, extra or mis-shaped tensors) is a `CheckpointError`
whose message names the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sim import check_env_id

METADATA_KEY = "camdrive"
FORMAT = "camdrive-model"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})


class CheckpointError(Exception):
    """A model file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.what = what
        super().__init__(f"{self.path}: {what}")


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any]) -> Path:
    """Write `model`'s weights and `metadata` (JSON-serialisable; must name "architecture") atomically.

    `format`, `format_version` and `param_count` are filled in here so no caller can forget them.
    """

    path = Path(path)
    if "architecture" not in metadata:
        raise ValueError("checkpoint metadata must name the architecture")
    meta = dict(metadata)
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta["param_count"] = sum(p.numel() for p in model.parameters())
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_atomically(path, tensors, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return path


def save_atomically(path: Path, tensors: dict, metadata: dict[str, str], private: bool = False) -> None:
    """Write a safetensors file via a temporary file and a rename, so a crash never leaves half a file.

    `private` keeps mkstemp's owner-only permissions (training state); otherwise the file gets the
    ordinary permissions of the umask, like any model file.
    """
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | os.PathLike[str], expected_arch: str | None = None) -> dict[str, Any]:
    """The JSON metadata of a model file, checked (format, version, architecture); no weights are read."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for every kind of corruption
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from None
    return _check_metadata(path, raw, expected_arch)


def _check_metadata(path: Path, raw: dict[str, str], expected_arch: str | None) -> dict[str, Any]:
    if METADATA_KEY not in raw:
        raise CheckpointError(path, f"no '{METADATA_KEY}' metadata: not a camdrive model file")
    try:
        meta = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, f"metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(path, "metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(path, f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            path,
            f"format_version {meta.get('format_version')!r} is not one this camdrive reads "
            f"({sorted(SUPPORTED_VERSIONS)})",
        )
    arch = meta.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise CheckpointError(path, "metadata names no architecture")
    if expected_arch is not None and arch != expected_arch:
        raise CheckpointError(path, f"architecture is {arch!r}, expected {expected_arch!r}")
    if "env_id" in meta:
        try:
            check_env_id(meta["env_id"])  # it is passed to gymnasium.make, which could import a module
        except ValueError as e:
            raise CheckpointError(path, str(e)) from None
    return meta


def load_checkpoint(
    path: str | os.PathLike[str], expected_arch: str | None = None, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, metadata) of a model file, with the metadata checked as `read_metadata` does.

    The tensors are put on `device` (safetensors' equivalent of torch.load's map_location). A file
    records no device: `save_checkpoint` always writes CPU tensors, so a model trained on a GPU loads
    on a machine without one.
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path, expected_arch)
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(path, f"weights cannot be read ({exc})") from None
    return tensors, meta


def load_into(path: str | os.PathLike[str], model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` into `model`, requiring exactly its parameter names and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            path, f"tensor names do not match the model: missing {missing}, unexpected {extra}"
        )
    for name, value in expected.items():
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise CheckpointError(
                path,
                f"tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"the model needs {tuple(value.shape)}",
            )
        if not torch.isfinite(tensors[name]).all():
            raise CheckpointError(path, f"tensor {name!r} holds non-finite values")
    model.load_state_dict(tensors, strict=True)


def load_model(
    path: str | os.PathLike[str],
    expected_arch: str,
    build: Callable[[dict[str, Any]], nn.Module],
    device: str | torch.device = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """The network `build(metadata)` makes (eval mode, on `device`), loaded with the file's weights,
    and the metadata; CheckpointError on any mismatch. `build` may raise KeyError, TypeError or
    ValueError for a description it cannot use: the file's metadata is data, never code."""
    tensors, meta = load_checkpoint(path, expected_arch=expected_arch, device=device)
    try:
        model = build(meta)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"network config unusable ({exc})") from None
    model.to(device)
    load_into(path, model, tensors)
    return model.eval(), meta


def load_pilotnet(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """A PilotNet (eval mode, on `device`: see `load_checkpoint`) and its metadata from a model file;
    CheckpointError on any mismatch."""
    from agent.pilotnet import ARCH, PilotNet

    def build(meta: dict[str, Any]) -> nn.Module:
        return PilotNet(color_space=meta.get("observation", {}).get("color_space", "rgb"))

    return load_model(path, ARCH, build, device)
