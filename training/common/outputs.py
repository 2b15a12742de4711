"""Output paths of the `camdrive` commands: checked before any work, written atomically, never replaced
without `--force`.

Why checked first: a command that learns only at the end that it cannot write its result (a directory
under a file, /proc, a device) has wasted the whole run, and the OSError it dies of is a traceback that
names an internal path. Every command therefore calls `check_output_file` or `check_output_dir` for each
output before its work starts; they raise `OutputError`, one line naming the option and the path, which
the command prints and exits with `exit_codes.BAD_INPUT`.

Why a probe instead of `os.access`: root passes every permission check, yet cannot create a file in
/proc or on a read-only mount. The nearest existing directory is asked the real question: a temporary
file is created in it and removed at once.

Atomic writes (`replacing`, `write_text`): the new content goes to a hidden temporary file beside the
target (`.NAME.PID.HEX.tmp` plus the target's suffix, which tools like matplotlib and imageio read
the format from) and is renamed over the target, so a reader or a killed run sees the old file or the
new one, never half of one. A run killed with SIGKILL can leave such a file: `remove_stale_temps` removes
those of dead processes when the next run starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

TEMP_MARK = ".tmp"
"""Every temporary file of an output ends in this (before the target's own suffix, if it keeps one)."""


class OutputError(ValueError):
    """An output path refused before any work; the message names the option and the path."""


# ------------------------------------------------------------------------------------------ checks
def check_output_file(path: str | os.PathLike[str], option: str, *, force: bool = False) -> Path:
    """`path` as a Path if a command may write a file there, else OutputError.

    Refused: a directory, anything that is not a regular file (a device, pipe or socket: writing to one
    would hang or feed it data), an existing file unless `force`, and a parent directory that is not a
    directory or that cannot be created or written in.
    """
    path = Path(path)
    label = f"{option} {path}"
    kind = "dir" if path.name in ("", ".", "..") else _kind(path, label)
    if kind == "dir":
        raise OutputError(f"{label}: is a directory, not a file")
    if kind == "other":
        raise OutputError(f"{label}: is not a regular file (a device, pipe or socket)")
    if kind != "missing" and not force:
        raise OutputError(f"{label}: already exists; pass --force to replace it")
    _check_writable_place(path.parent, label)
    _check_name_length(path, label)
    return path


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """`path` as a Path if a command may create files in it (existing or creatable), else OutputError."""
    path = Path(path)
    label = f"{option} {path}"
    kind = _kind(path, label)
    if kind in ("file", "other"):
        raise OutputError(f"{label}: is not a directory")
    if kind == "dangling":
        raise OutputError(f"{label}: is a symbolic link to nothing")
    _check_writable_place(path, label)
    if kind == "missing":
        _check_name_length(path, label)
    return path


def refuse_existing(paths: Iterable[Path], option: str, target: Path) -> None:
    """OutputError naming the first of `paths` that exists: files a run would replace (a model's
    sidecars), refused unless the command was given --force."""
    for path in paths:
        if _kind(path, f"{option} {target}") != "missing":
            which = "" if path == target else f" {path}"
            raise OutputError(f"{option} {target}:{which} already exists; pass --force to replace it")


def _kind(path: Path, label: str) -> str:
    """What is at `path`: "missing", "dir", "file", "other" (device, pipe, socket) or "dangling" (a link).

    Path.exists() and is_dir() raise for a name too long or a loop of links; those are refused here.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "dangling" if os.path.islink(path) else "missing"
    except OSError as e:
        raise OutputError(f"{label}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _check_writable_place(directory: Path, label: str) -> None:
    """OutputError unless `directory` is, or can be created as, a directory this process can write in."""
    existing = directory
    while (kind := _kind(existing, label)) in ("missing", "dangling"):
        if kind == "dangling":
            raise OutputError(f"{label}: {existing} is a symbolic link to nothing")
        existing = existing.parent
    if kind != "dir":
        raise OutputError(f"{label}: {existing} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".camdrive-probe-", suffix=TEMP_MARK, dir=existing)
    except OSError as e:
        what = "write in" if existing == directory else f"create {directory} in"
        raise OutputError(f"{label}: cannot {what} {existing} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)


def _check_name_length(path: Path, label: str) -> None:
    """OutputError for a name longer than the file system takes (checked where the path will be)."""
    directory = path.parent
    while _kind(directory, label) == "missing":
        directory = directory.parent
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return  # the file system does not say: the write itself will tell
    # The temporary file of an atomic write adds about 30 characters to the name.
    for part in path.parts[len(directory.parts) :]:
        if len(os.fsencode(part)) + 30 > limit:
            raise OutputError(f"{label}: the name {part[:20]}... is too long for this file system")


# ------------------------------------------------------------------------------------------ names
def sidecar(model: str | os.PathLike[str], suffix: str) -> Path:
    """A file beside a model, named after it: `runs/m.safetensors` + ".metrics.json" ->
    `runs/m.metrics.json`. One rule for every trainer, so two models in one folder never share a log."""
    model = Path(model)
    return model.with_name(model.name.removesuffix(".safetensors") + suffix)


def temp_path(target: Path) -> Path:
    """A new hidden name beside `target` for its atomic write (see the module docstring)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_MARK}{target.suffix}")


# ------------------------------------------------------------------------------------------ writing
@contextlib.contextmanager
def replacing(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write `target`'s new content to; it replaces `target` when the block
    ends normally and is removed when it raises (Ctrl-C included)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` atomically."""
    with replacing(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); silently impossible on some platforms."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed run left beside `target`; returns them.

    Matches `.NAME.*.tmp` and `.NAME.*.tmp.*`: this module's names and the model writer's
    (`agent.checkpoint.save_atomically`, `.NAME.PID.HEX.tmp`), plus the former ones without a process
    id (the model writer's `.NAME.RANDOM.tmp`, the old `NAME.tmp`). A file whose name holds the id of a
    live process is kept: that run may still be writing it.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for path in target.parent.iterdir():
        if _is_temp_of(path.name, target.name) and not temp_writer_alive(path.name, target.name):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _is_temp_of(name: str, target: str) -> bool:
    if name == f"{target}{TEMP_MARK}":
        return True
    if not name.startswith(f".{target}."):
        return False
    rest = name[len(target) + 2 :]
    return rest.endswith(TEMP_MARK) or f"{TEMP_MARK}." in rest


def temp_writer_alive(name: str, target: str) -> bool:
    """Whether the process id in the name of a temporary file of `target` (`.NAME.PID.HEX.tmp`, see
    `temp_path`) is running: then that process may still be writing it."""
    pid_text = name[len(target) + 2 :].split(".", 1)[0]
    return pid_text.isdigit() and process_alive(int(pid_text))


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs, other than this one (a temporary file named with this process's id
    is a former run's whose id was reused: this process is only starting)."""
    if pid <= 0 or pid == os.getpid():
        return False  # 0 and negative ids name process groups, not a process
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's live process
    return True
