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

Loading never trusts the file: any problem (not a regular file, not a safetensors file, no or unreadable
metadata, fields of the wrong type, another format version, the wrong architecture, missing, extra,
mis-shaped, mistyped or non-finite tensors) is a `CheckpointError` whose message names the file and the
problem. The network a file describes is first built on torch's "meta" device, which allocates nothing,
and compared with the file's tensors: a description asking for billions of parameters is refused before
any memory is spent on it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
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
MAX_METADATA_CHARS = 1_000_000
"""A model's metadata is a few kB; parsing megabytes of JSON (every command reads it several times)
takes seconds and serves no model."""


class CheckpointError(Exception):
    """A model file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.what = " ".join(what.splitlines())  # one line, even when it quotes a multi-line message
        super().__init__(f"{self.path}: {self.what}")


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

    The temporary file is `.NAME.PID.HEX.tmp`, named like every atomic write's in `training.common.outputs`:
    the writer's process id tells a killed run's leftover, which `training.common.outputs.remove_stale_temps`
    removes when the next run starts, from a file a live run is still writing, which it keeps.
    `private` makes it owner-only (training state); otherwise it gets the ordinary permissions of the
    umask, like any model file.
    """
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, _file_mode(private))  # safetensors writes every file owner-only
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _file_mode(private: bool) -> int:
    """0o600 for a private file, else the mode the umask gives a new file (os.umask alone reads it)."""
    if private:
        return 0o600
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_metadata(path: str | os.PathLike[str], expected_arch: str | None = None) -> dict[str, Any]:
    """The JSON metadata of a model file, checked (format, version, architecture); no weights are read."""
    from safetensors import safe_open

    path = Path(path)
    check_regular_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for every kind of corruption
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from None
    return _check_metadata(path, raw, expected_arch)


def check_regular_file(path: Path) -> None:
    """CheckpointError unless `path` is a regular file (following symlinks).

    Only regular files are opened: a named pipe would block the reader until someone writes to it, and
    a device such as /dev/zero never ends.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as e:  # a symlink loop, a permission denied on the way...
        raise CheckpointError(path, f"cannot read the file ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "a device"
        raise CheckpointError(path, f"not a regular file ({kind})")


def _parse_json(path: Path, text: str) -> dict[str, Any]:
    """The metadata document: a JSON object, or CheckpointError.

    Besides malformed JSON, Python's parser raises ValueError for a number of more than 4300 digits and
    RecursionError for arrays nested thousands deep: both are just bad metadata.
    """
    if len(text) > MAX_METADATA_CHARS:
        raise CheckpointError(
            path, f"metadata is {len(text)} characters long, more than {MAX_METADATA_CHARS}"
        )
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(
            path, f"metadata is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(path, "metadata is not a JSON object")
    return meta


def _check_fields(path: Path, meta: dict[str, Any]) -> None:
    """The fields readers use are of the types they expect: a wrong type is refused here, naming the
    field, instead of failing later wherever the field is first used."""
    from agent.env_spec import check_env_options

    for key in ("observation", "action", "network", "env_options"):
        if key in meta and not isinstance(meta[key], dict):
            raise CheckpointError(
                path, f"metadata field {key!r} must be a JSON object, got {meta[key]!r:.80}"
            )
    try:
        check_env_options(meta.get("env_options", {}))
    except ValueError as e:
        raise CheckpointError(path, str(e)) from None
    shape = meta.get("observation", {}).get("shape")
    if shape is not None and not (
        isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        raise CheckpointError(path, f"metadata observation shape must be a list of sizes, got {shape!r:.80}")


def _check_metadata(path: Path, raw: dict[str, str], expected_arch: str | None) -> dict[str, Any]:
    if METADATA_KEY not in raw:
        raise CheckpointError(path, f"no '{METADATA_KEY}' metadata: not a camdrive model file")
    meta = _parse_json(path, raw[METADATA_KEY])
    if meta.get("format") != FORMAT:
        raise CheckpointError(path, f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
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
    _check_fields(path, meta)
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


def check_tensors(
    path: str | os.PathLike[str], expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]
) -> None:
    """CheckpointError unless `tensors` has exactly the names, shapes and dtypes of `expected` (a state
    dict, possibly on the meta device) and only finite values.

    The dtype too: load_state_dict would silently cast float64 or integer weights, so a file that is not
    what its metadata says would still load.
    """
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            path, f"tensor names do not match the model: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, value in expected.items():
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise CheckpointError(
                path,
                f"tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"the model needs {tuple(value.shape)}",
            )
        if tensors[name].dtype != value.dtype:
            raise CheckpointError(
                path, f"tensor {name!r} is {tensors[name].dtype}, the model needs {value.dtype}"
            )
        if not torch.isfinite(tensors[name]).all():
            raise CheckpointError(path, f"tensor {name!r} holds non-finite values")


def load_into(path: str | os.PathLike[str], model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` into `model`, requiring exactly its parameter names, shapes and dtypes."""
    check_tensors(path, model.state_dict(), tensors)
    model.load_state_dict(tensors, strict=True)


BUILD_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AttributeError, IndexError)
"""What building a network from a bad description can raise (`int(inf)` is an OverflowError, a list
where a dict belongs an AttributeError or TypeError, a kernel larger than the frame a RuntimeError)."""


def _build(path: Path, build: Callable[[dict[str, Any]], nn.Module], meta: dict[str, Any]) -> nn.Module:
    try:
        return build(meta)
    except BUILD_ERRORS as exc:
        raise CheckpointError(
            path, f"network config unusable ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def load_model(
    path: str | os.PathLike[str],
    expected_arch: str,
    build: Callable[[dict[str, Any]], nn.Module],
    device: str | torch.device = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """The network `build(metadata)` makes (eval mode, on `device`), loaded with the file's weights,
    and the metadata; CheckpointError on any mismatch. `build` may raise any of BUILD_ERRORS for a
    description it cannot use: the file's metadata is data, never code.

    The network is built twice: first on the meta device (shapes without memory) to check the file's
    tensors against it, then for real once they match, so its size is bounded by the file's.
    """
    path = Path(path)
    tensors, meta = load_checkpoint(path, expected_arch=expected_arch, device=device)
    with torch.device("meta"):
        skeleton = _build(path, build, meta)
    check_tensors(path, skeleton.state_dict(), tensors)
    model = _build(path, build, meta).to(device)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), meta
