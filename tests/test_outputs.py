"""Output paths, overwriting and stopping, across every command: hostile --out/--json/--video/... paths are
refused in one line before any work, nothing a user has is replaced without --force, SIGTERM is Ctrl-C
(exit code 130, what was written kept, one line), and temporary files of killed runs are cleaned up."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import pytest
from cli_runner import run_cli
from numba.core import event as numba_event

from training import cli
from training.common import exit_codes, outputs
from training.data.demo_reader import list_files, load_episode

REPO = Path(__file__).resolve().parents[1]
PRECIOUS = b"a file the user made\n"


def must_not_run(*_: object, **__: object) -> None:
    raise AssertionError("the work started although an output path was bad")


# ----------------------------------------------------------------------------------- hostile paths
@pytest.fixture
def place(tmp_path) -> Path:
    """A folder holding what hostile paths point at: a user's file, a directory, a named pipe and a
    link to nothing, each also with the suffixes the commands want (.safetensors, .json, .mp4, .png)."""
    for suffix in ("", ".safetensors", ".json", ".mp4", ".png"):
        (tmp_path / f"file{suffix}").write_bytes(PRECIOUS)
        (tmp_path / f"dir{suffix}").mkdir()
        os.mkfifo(tmp_path / f"fifo{suffix}")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    return tmp_path


def hostile_files(place: Path, suffix: str) -> dict[str, str]:
    """Paths no command may write a FILE to (without --force), by what is wrong with them."""
    return {
        "parent in /proc": f"/proc/camdrive-no-such/out{suffix}",
        "under /proc": f"/proc/out{suffix}",
        "parent is a file": f"{place}/file{suffix}/out{suffix}",
        "parent is a link to nothing": f"{place}/link/out{suffix}",
        "a directory": f"{place}/dir{suffix}",
        "a named pipe": f"{place}/fifo{suffix}",
        "a device": "/dev/null",
        "an existing file": f"{place}/file{suffix}",
    }


def hostile_dirs(place: Path) -> dict[str, str]:
    """Paths no command may create files in, as its output DIRECTORY."""
    return {
        "in /proc": "/proc/camdrive-no-such",
        "under a file": f"{place}/file/sub",
        "a file": f"{place}/file",
        "a named pipe": f"{place}/fifo",
        "a device": "/dev/null",
        "a link to nothing": f"{place}/link",
    }


WATCH = ["watch", "--model", "expert", "--frames", "1"]
REPLAY = ["replay", "episode.npz", "--frames", "1"]  # the screenshot is checked before the file is read
FILE_OUTPUTS = {
    # command words, the option, the suffix, the work that must not start
    "train bc": (["train", "bc", "--quiet"], "--out", ".safetensors", "training.bc.train.train_bc"),
    "train dqn": (["train", "dqn", "--quiet"], "--out", ".safetensors", "training.dqn.train.train"),
    "eval": (
        ["eval", "--quiet", "--episodes", "1"],
        "--json",
        ".json",
        "training.evaluation.evaluate.evaluate_lane",
    ),
    "bench": (
        ["bench", "--steps", "1", "--no-carracing"],
        "--json",
        ".json",
        "training.evaluation.bench.run_bench",
    ),
    "watch --video": (WATCH, "--video", ".mp4", "sim.viewer.Viewer"),
    "watch --screenshot": (WATCH, "--screenshot", ".png", "sim.viewer.Viewer"),
    "play --screenshot": (["play", "--frames", "1"], "--screenshot", ".png", "sim.viewer.Viewer"),
    "replay --screenshot": (REPLAY, "--screenshot", ".png", "sim.viewer.Viewer"),
}
DIR_OUTPUTS = {
    "record": (["record", "--quiet"], "--out", "training.data.record.record"),
    "watch --record": (WATCH, "--record", "sim.viewer.Viewer"),
    "play --record": (["play", "--frames", "1"], "--record", "sim.viewer.Viewer"),
    "export --root": (
        ["export", "DEMOS", "--minari", "a/b-v0"],
        "--root",
        "training.data.export.export_minari",
    ),
    "train rllib": (["train", "rllib", "--iterations", "1"], "--out", "training.rllib.train.train"),
}


def assert_refused_in_one_line(argv: list[str], path: str, what: str, capsys, place: Path) -> None:
    """Exit code 2, exactly one stderr line naming `path`, no traceback, the user's files untouched."""
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == exit_codes.BAD_INPUT, (what, code, err)
    assert len(err.splitlines()) == 1 and path in err and "Traceback" not in err, (what, err)
    for suffix in ("", ".safetensors", ".json", ".mp4", ".png"):
        assert (place / f"file{suffix}").read_bytes() == PRECIOUS
        assert not list((place / f"dir{suffix}").iterdir())


@pytest.mark.parametrize("command", FILE_OUTPUTS)
@pytest.mark.slow
def test_every_hostile_output_file_is_refused_in_one_line_before_any_work(
    command, place, capsys, monkeypatch
):
    words, option, suffix, work = FILE_OUTPUTS[command]
    monkeypatch.setattr(work, must_not_run)
    for what, path in hostile_files(place, suffix).items():
        assert_refused_in_one_line([*words, option, path], path, what, capsys, place)


@pytest.mark.parametrize("command", DIR_OUTPUTS)
@pytest.mark.slow
def test_every_hostile_output_directory_is_refused_in_one_line_before_any_work(
    command, place, capsys, monkeypatch
):
    words, option, work = DIR_OUTPUTS[command]
    monkeypatch.setattr(work, must_not_run)
    (place / "demos").mkdir()
    words = [str(place / "demos") if w == "DEMOS" else w for w in words]
    for what, path in hostile_dirs(place).items():
        assert_refused_in_one_line([*words, option, path], path, what, capsys, place)


def test_a_missing_parent_is_fine_and_the_check_creates_nothing(tmp_path):
    """A path under folders that do not exist yet is writable (the command creates them), and asking
    must not create them: a refused or failed run leaves no trace."""
    assert outputs.check_output_file(tmp_path / "a" / "b" / "m.safetensors", "--out") == (
        tmp_path / "a" / "b" / "m.safetensors"
    )
    assert outputs.check_output_dir(tmp_path / "c" / "d", "--out") == tmp_path / "c" / "d"
    assert list(tmp_path.iterdir()) == []


def test_force_allows_replacing_a_regular_file_only(place):
    assert outputs.check_output_file(place / "file.json", "--json", force=True) == place / "file.json"
    for path in (place / "dir.json", place / "fifo.json", Path("/dev/null"), place / "file" / "x.json"):
        with pytest.raises(outputs.OutputError, match=f"--json {path}"):
            outputs.check_output_file(path, "--json", force=True)


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path):
    with pytest.raises(outputs.OutputError, match="too long"):
        outputs.check_output_file(tmp_path / ("m" * 300 + ".json"), "--json")
    with pytest.raises(outputs.OutputError, match="too long"):
        outputs.check_output_dir(tmp_path / ("d" * 300), "--out")


# ------------------------------------------------------------------------------------ atomic writes
def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "m.json"
    target.write_bytes(PRECIOUS)
    with pytest.raises(KeyboardInterrupt), outputs.replacing(target) as tmp:
        tmp.write_text("half of the new")
        raise KeyboardInterrupt
    assert target.read_bytes() == PRECIOUS and [p.name for p in tmp_path.iterdir()] == ["m.json"]
    outputs.write_text(target, "new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_stale_temporary_files_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "m.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    stale = [
        tmp_path / f".m.safetensors.{dead_pid}.0123abcd.tmp",  # training.common.outputs.temp_path
        tmp_path / f".m.safetensors.{dead_pid}.0123abcd.tmp.safetensors",
        tmp_path / ".m.safetensors.k2j4h5g6.tmp",  # agent.checkpoint's former mkstemp name
        tmp_path / "m.safetensors.tmp",  # the DQN log writer's former name
    ]
    live = tmp_path / f".m.safetensors.{os.getppid()}.0123abcd.tmp"  # a running process is writing it
    others = [tmp_path / ".n.safetensors.k2j4h5g6.tmp", tmp_path / "m.safetensors"]
    for path in [*stale, live, *others]:
        path.write_bytes(PRECIOUS)
    assert sorted(outputs.remove_stale_temps(target)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted([live, *others])


def test_a_model_being_written_survives_the_start_of_another_run(tmp_path, monkeypatch):
    """A model file's temporary file carries its writer's process id, as every atomic write's does: a
    run starting meanwhile (here a second process cleaning the model's leftovers, as train bc and
    train dqn do at their start) removes dead runs' files only, never the one being written."""
    import safetensors.torch
    import torch

    from agent.checkpoint import save_atomically

    target = tmp_path / "m.safetensors"
    save_file = safetensors.torch.save_file
    written: list[str] = []

    def save_while_another_run_starts(tensors, filename, metadata=None):
        save_file(tensors, filename, metadata=metadata)
        written.append(Path(filename).name)
        clean = f"from training.common.outputs import remove_stale_temps; remove_stale_temps({str(target)!r})"
        subprocess.run([sys.executable, "-c", clean], cwd=REPO, check=True)

    monkeypatch.setattr(safetensors.torch, "save_file", save_while_another_run_starts)
    save_atomically(target, {"w": torch.ones(2)}, {"k": "v"})
    (name,) = written
    assert name.startswith(f".m.safetensors.{os.getpid()}.") and name.endswith(".tmp")
    assert safetensors.torch.load_file(target)["w"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_model_files_get_the_umask_permissions_and_training_state_stays_private(tmp_path):
    import torch

    from agent.checkpoint import save_atomically

    umask = os.umask(0o022)
    try:
        save_atomically(tmp_path / "m.safetensors", {"w": torch.ones(2)}, {})
        save_atomically(tmp_path / "m.train.safetensors", {"w": torch.ones(2)}, {}, private=True)
    finally:
        os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.train.safetensors").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------- exit-code convention
def test_help_states_the_exit_codes_and_force():
    text = " ".join(cli.build_parser().format_help().split())
    for code in (exit_codes.OK, exit_codes.FAILED, exit_codes.BAD_INPUT, exit_codes.INTERRUPTED):
        assert f"{code} " in text.split("exit codes", 1)[1]
    assert "SIGTERM" in text and "--force" in text


# ------------------------------------------------------------------------------------------ SIGTERM
def sigterm_self(*_: object, **__: object) -> None:
    """Stands in for a command's work: a SIGTERM arrives while it runs (as `kill PID` sends it)."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler interrupts this at once
    raise AssertionError("SIGTERM did not stop the command")


LONG_COMMANDS = {
    "record": (["record", "--quiet", "--out", "OUT"], "training.data.record.record"),
    "train bc": (["train", "bc", "--quiet", "--out", "OUT/m.safetensors"], "training.bc.train.train_bc"),
    "train dqn": (["train", "dqn", "--quiet", "--out", "OUT/m.safetensors"], "training.dqn.train.train"),
    "eval": (["eval", "--quiet", "--episodes", "1"], "training.evaluation.evaluate.evaluate_lane"),
    "watch": (["watch", "--model", "expert", "--video", "OUT/v.mp4"], "sim.viewer.Viewer.run"),
    "export": (["export", "OUT", "--minari", "a/b-v0"], "training.data.export.export_minari"),
    "bench": (["bench", "--steps", "1", "--no-carracing"], "training.evaluation.bench.run_bench"),
}


@pytest.mark.parametrize("command", LONG_COMMANDS)
def test_sigterm_stops_every_long_command_like_ctrl_c(command, tmp_path, capsys, monkeypatch):
    words, work = LONG_COMMANDS[command]
    monkeypatch.setattr(work, sigterm_self)
    if command == "export":
        monkeypatch.setattr("training.data.export.check_ready", lambda args: None)  # Minari not needed
    before = signal.getsignal(signal.SIGTERM)
    assert run_cli([w.replace("OUT", str(tmp_path)) for w in words]) == exit_codes.INTERRUPTED
    err = capsys.readouterr().err
    assert err.startswith(f"camdrive {command}: interrupted") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before, "the handler is the command's only"


def test_an_interrupt_wrapped_by_a_c_extension_is_still_an_interrupt(capsys, monkeypatch):
    """numba's dispatcher can hand a KeyboardInterrupt back as the cause of a SystemError (see
    training.common.interrupts); that is a stop like any other, not a crash with a traceback."""

    def wrapped_interrupt(*_: object, **__: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise SystemError("CPUDispatcher(<function f>) returned a result with an exception set") from stop

    monkeypatch.setattr("training.evaluation.evaluate.evaluate_lane", wrapped_interrupt)
    assert run_cli(["eval", "--quiet", "--episodes", "1"]) == exit_codes.INTERRUPTED
    assert capsys.readouterr().err == "camdrive eval: interrupted\n"
    monkeypatch.setattr("training.evaluation.evaluate.evaluate_lane", lambda *_, **__: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_cli(["eval", "--quiet", "--episodes", "1"])  # a real error stays one


class SignalAtCompileStart(numba_event.Listener):
    """Sends `signum` to this process as numba starts compiling: a stop during the first compilation,
    as after an install, when the numba cache is empty."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_start(self, event: numba_event.Event) -> None:
        os.kill(os.getpid(), self.signum)

    def on_end(self, event: numba_event.Event) -> None:
        pass


@pytest.fixture
def ctrl_c_as_in_a_terminal():
    """SIGINT raising KeyboardInterrupt during the test, as in a terminal: a shell's background job (a CI
    runner's, say) starts with SIGINT ignored, and then `sigterm_as_ctrl_c` rightly leaves it ignored."""
    at_start = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, at_start)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_during_numba_compilation_waits_until_the_compiler_is_done(signum, ctrl_c_as_in_a_terminal):
    """Raised inside the compiler, the interrupt is swallowed by llvmlite and numba fails later with a
    traceback (training.common.interrupts); it must stop the command once the compiled call returns."""

    @numba.njit  # not cached: compiled here, while the signal arrives
    def add_one(x: int) -> int:
        return x + 1

    before = signal.getsignal(signum)
    result = None
    signal_at_compile = numba_event.install_listener("numba:compile", SignalAtCompileStart(signum))
    with pytest.raises(KeyboardInterrupt), cli.sigterm_as_ctrl_c(), signal_at_compile:
        result = add_one(41)
        time.sleep(5)  # the stop, retried, interrupts this at once
    assert result == 42
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "the retry timer is off after the block"
    assert signal.getsignal(signum) is before and signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


def sleep_until_killed() -> None:
    time.sleep(30)


def test_a_worker_forked_by_a_command_still_ends_on_sigterm():
    """Forked worker processes (vector envs) inherit the handler; SIGTERM must end them, not raise
    KeyboardInterrupt in a loop that ignores it."""
    with cli.sigterm_as_ctrl_c():
        worker = multiprocessing.get_context("fork").Process(target=sleep_until_killed)
        worker.start()
    time.sleep(0.3)
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(10)
    assert worker.exitcode == -signal.SIGTERM


@pytest.mark.slow
def test_sigterm_to_record_keeps_the_episode_so_far_and_says_so(tmp_path):
    """The real process: `kill PID` while it records. Exit code 130, one line, the partial episode kept
    and readable, no temporary file left."""
    out = tmp_path / "demos"
    argv = ["record", "--quiet", "--out", str(out), "--checkpoint-seconds", "0.2"]
    argv += ["--option", "episode_seconds=36000"]  # an episode that outlasts the test
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONFAULTHANDLER": "1"}  # a crash shows its stack
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", *argv], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("*.partial.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # a few checkpoints of driving
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.INTERRUPTED, err
    (partial,) = list_files(out).partial
    episode = load_episode(partial)
    assert err.strip() == (
        f"camdrive record: interrupted; kept 0 finished episode(s) and the episode so far "
        f"({episode.steps} steps) as {partial}"
    )
    assert episode.steps > 10 and not episode.complete
    assert not list_files(out).temp and not list_files(out).episodes


@pytest.mark.parametrize("finished", [0, 1])
def test_a_stop_between_episodes_says_what_record_kept(finished, tmp_path, capsys, monkeypatch):
    """Ctrl-C while an episode is being set up (its reset): the episodes finished so far are named with
    their directory; with none, the line says nothing was written, naming no directory (none exists)."""
    from sim.envs.base import CamDriveEnv

    resets = 0
    original_reset = CamDriveEnv.reset

    def reset_then_stop(self, **kwargs):
        nonlocal resets
        resets += 1
        if resets > finished:
            raise KeyboardInterrupt
        return original_reset(self, **kwargs)

    monkeypatch.setattr(CamDriveEnv, "reset", reset_then_stop)
    out = tmp_path / "demos"
    argv = ["record", "--quiet", "--out", str(out), "--episodes", "2", "--steps-per-episode", "5"]
    assert run_cli(argv) == exit_codes.INTERRUPTED
    err = capsys.readouterr().err
    if finished:
        assert err == f"camdrive record: interrupted; kept 1 finished episode(s) in {out}\n"
        assert len(list_files(out).episodes) == 1
    else:
        assert err == "camdrive record: interrupted; no episode was finished; nothing was written\n"
        assert not out.exists()


def test_record_removes_what_killed_recorders_left(tmp_path):
    """At its next start: temporary files of dead recorders and partial files of finished episodes go;
    a running recorder's temporary file and an unfinished partial episode stay."""
    out = tmp_path / "demos"
    record = ["record", "--quiet", "--out", str(out), "--steps-per-episode", "3"]
    assert run_cli(record) == 0
    (episode,) = list_files(out).episodes
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = [
        out / f".episode_1_20260101T000000.{int(dead.stdout)}.0123abcd.tmp",
        out / episode.name.replace(".npz", ".partial.npz"),
    ]
    kept = [
        out / f".episode_2_20260101T000000.{os.getppid()}.0123abcd.tmp",
        out / "episode_3_20260101T000000.partial.npz",
    ]
    for path in [*stale, *kept]:
        path.write_bytes(PRECIOUS)
    assert run_cli([*record, "--seed", "1"]) == 0
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == PRECIOUS for path in kept)
    assert len(list_files(out).episodes) == 2
