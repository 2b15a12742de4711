"""Hostile model files and demonstration files (issue 14): through the real commands, each one is refused
before any work, in exactly one line on stderr naming the file, with the exit code of the convention
(`training.common.exit_codes`), never a traceback, a hang or a huge allocation; the good files beside it still
load. Then property-based tests: mutated valid files either load or raise CheckpointError / DemoError,
and a demonstration that loads also replays without an exception.

The corpus is built once per module by tests/hostile_files.py; each file is named after what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from hostile_files import (
    HostileFile,
    demo_corpus,
    good_models,
    marker_path,
    model_corpus,
    read_demo,
    read_raw_model,
    write_demo,
    write_raw_model,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.checkpoint import CheckpointError
from agent.policies import load_policy_driver, policy_env_options
from training.apps.replay_verify import verify_episode
from training.bc.config import BCConfig
from training.bc.data import Dataset
from training.bc.from_demos import load_demos
from training.common import exit_codes
from training.data import demo_checks
from training.data.demo_reader import load_episode
from training.data.demos import DemoError

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def run_unblocking(fifo: Path, call: Callable[[], int], timeout: float = 30.0) -> int:
    """`call()` in a thread; if it is still running after `timeout` it is blocked on the named pipe
    `fifo`: open the pipe's write end so it can finish, then fail the test."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # an end-of-file for the blocked reader
        thread.join(timeout)
        pytest.fail(f"blocked on the named pipe {fifo}")
    return result[0]


def call(file: HostileFile, argv: list[str]) -> int:
    return run_unblocking(file.path, lambda: run_cli(argv)) if file.fifo else run_cli(argv)


def one_line_naming(err: str, path: Path) -> str:
    """The single non-empty stderr line, which must name `path` (and no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert path.name in lines[0], lines[0]
    return lines[0]


# -------------------------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, HostileFile]:
    return model_corpus(tmp_path_factory.mktemp("models"))


def model_commands(file: HostileFile) -> dict[str, list[str]]:
    """eval and watch of a model file, kept short in case one were not refused."""
    return {
        "eval": [
            "eval",
            "--model",
            str(file.path),
            "--env",
            file.env,
            "--episodes",
            "1",
            "--quiet",
            "--no-baselines",
            "--run-seconds",
            "1",
            "--km",
            "0.01",
        ],  # fmt: skip
        "watch": ["watch", "--model", str(file.path), "--frames", "2", "--fps", "0"],
    }


@pytest.mark.slow
def test_every_hostile_model_is_refused_in_one_line_by_eval_and_watch(models, capsys):
    failures = {}
    for name, file in models.items():
        for command, argv in model_commands(file).items():
            code = call(file, argv)
            err = capsys.readouterr().err
            try:
                assert code == exit_codes.BAD_INPUT
                one_line_naming(err, file.path)
            except AssertionError as e:
                failures[f"{command} {name}"] = f"exit {code}: {err.strip()[-300:]} ({e})"
    assert not failures, json.dumps(failures, indent=1)
    assert not marker_path(next(iter(models.values())).path.parent).exists()  # nothing was unpickled


def test_the_issues_model_cases_are_refused_for_what_is_wrong(models):
    expected = {
        "env_options_is_a_string": "metadata field 'env_options' must be a JSON object",
        "env_options_is_a_list": "metadata field 'env_options' must be a JSON object",
        "observation_is_a_string": "metadata field 'observation' must be a JSON object",
        "dqn_env_options_camera_width_64": "make camdrive/Traffic-v0 give (33, 64, 1)",
        "dqn_network_width_64_env_100": "this DQN needs 33x64 frames, the env gives (33, 100, 1)",
        "network_hidden_10_to_the_9": "'value.0.weight' has shape (8, 704), the model needs (1000000000,",
        "tensor_float64": "'features.0.weight' is torch.float64, the model needs torch.float32",
        "named_pipe": "not a regular file (a named pipe)",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_policy_driver(models[name].path)


def test_good_models_load_and_evaluate(tmp_path, capsys):
    good = good_models(tmp_path)
    for file in good.values():
        assert load_policy_driver(file.path).name in ("pilotnet", "dqn", "rllib")
    assert policy_env_options(good["dqn"].path)["camera_width"] == 100
    argv = ["eval", "--model", str(good["dqn"].path), "--env", "traffic", "--episodes", "1", "--quiet",
            "--no-baselines", "--run-seconds", "1"]  # fmt: skip
    assert run_cli(argv) == exit_codes.OK, capsys.readouterr().err


# --------------------------------------------------------------------------------------------- demos
@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> tuple[dict[str, HostileFile], Path]:
    """The hostile demos and a good LaneKeep-v0 episode; each hostile file in its own directory with a
    copy of the good one (so `data info` and `train bc --data` must report the one and load the other)."""
    root = tmp_path_factory.mktemp("demos")
    corpus = demo_corpus(root / "corpus")
    good = next((root / "corpus" / "good" / "lane").glob("*.npz"))
    moved = {}
    for name, file in corpus.items():
        directory = root / "dirs" / name
        directory.mkdir(parents=True)
        shutil.copy(good, directory / good.name)
        target = directory / file.path.name
        os.rename(file.path, target)
        moved[name] = HostileFile(target, file.env, file.fifo)
    return moved, good


@pytest.mark.slow
def test_every_hostile_demo_is_refused_in_one_line_by_replay_verify(demo_files, capsys):
    failures = {}
    for name, file in demo_files[0].items():
        code = call(file, ["replay", "--verify", str(file.path)])
        out, err = capsys.readouterr()
        try:
            assert code == exit_codes.BAD_INPUT and out == ""
            one_line_naming(err, file.path)
        except AssertionError as e:
            failures[name] = f"exit {code}: {err.strip()[-300:]} ({e})"
    assert not failures, json.dumps(failures, indent=1)


@pytest.mark.slow
def test_data_info_names_every_hostile_demo_in_one_line_and_counts_the_good_one(demo_files, capsys):
    failures = {}
    for name, file in demo_files[0].items():
        code = call(file, ["data", "info", "--verify", str(file.path.parent)])
        out, err = capsys.readouterr()
        try:
            assert code == exit_codes.FAILED
            one_line_naming(err, file.path)
            assert "episodes    1" in out and "bad         1" in out
        except AssertionError as e:
            failures[name] = f"exit {code}: {err.strip()[-300:]} ({e})"
    assert not failures, json.dumps(failures, indent=1)
    assert not marker_path(demo_files[1].parent.parent.parent).exists()  # nothing was unpickled


def test_train_bc_data_skips_every_hostile_demo_in_one_line_and_loads_the_good_one(demo_files, capsys):
    failures = {}
    for name, file in demo_files[0].items():
        cfg = BCConfig(out=file.path.parent / "m.safetensors", data=file.path.parent, augment=0,
                       randomize=0.0, progress=False)  # fmt: skip
        data = Dataset()
        if file.fifo:
            run_unblocking(file.path, lambda cfg=cfg, data=data: load_demos(cfg, data, log=print) or 0)
        else:
            load_demos(cfg, data, log=lambda _: None)
        lines = capsys.readouterr().err.splitlines()
        naming = [line for line in lines if file.path.name in line]
        if len(lines) != 1 or len(naming) != 1 or data.episodes != 1:
            failures[name] = f"{data.episodes} episodes, stderr {lines}"
    assert not failures, json.dumps(failures, indent=1)


def test_the_issues_demo_cases_are_refused_for_what_is_wrong(demo_files):
    files = demo_files[0]
    expected = {
        "frames_header_declares_40GB": "'frames' declares uint8 (1000000, 66, 200, 3) (39600000000 bytes)",
        "reset_seed_abc": "meta field 'reset_seed' must be an integer >= 0 or null, got 'abc'",
        "actions_with_7_columns": "'actions' must have shape (1,) per step",
        "named_pipe": "not a regular file (a named pipe)",
        "zip_entry_claims_4GB_from_1KB": "more than zip compression can give",
        "actions_object_dtype_pickle": "holds Python objects, which only pickle could load",
    }
    for name, message in expected.items():
        with pytest.raises(DemoError, match=re.escape(message)):
            load_episode(files[name].path)


def test_good_demos_still_verify(demo_files, capsys):
    good = demo_files[1]
    traffic = next((good.parent.parent / "traffic").glob("*.npz"))
    assert run_cli(["replay", "--verify", str(good), str(traffic)]) == exit_codes.OK
    assert "2 files: 2 OK" in capsys.readouterr().out


def test_an_episode_larger_than_the_memory_is_refused_before_reading(demo_files, monkeypatch):
    """A real deflate bomb has honest sizes (1000:1 is what deflate gives for a run of one byte value):
    what decides is whether the arrays fit in this machine's memory, here a machine of 100 kB."""
    good = demo_files[1]
    monkeypatch.setattr(demo_checks, "_memory_bytes", lambda: 100_000)
    with pytest.raises(DemoError, match=r"its arrays would take 0\.2 MB, more than this machine's 0\.1 MB"):
        load_episode(good)
    assert load_episode(good, frames=False).frames is None  # a summary does not read the frames


# ------------------------------------------------------------------------------------ property tests
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
"""Any JSON value Python's json module writes (NaN and Infinity included, as it allows them)."""


def mutate_json(document: dict, data: st.DataObject) -> dict:
    """A copy of `document` with one field (top level or one level down) replaced, removed or added."""
    document = json.loads(json.dumps(document))
    target = document
    nested = [key for key, value in document.items() if isinstance(value, dict) and value]
    if nested and data.draw(st.booleans(), label="nested"):
        target = document[data.draw(st.sampled_from(sorted(nested)), label="in")]
    action = data.draw(st.sampled_from(["replace", "remove", "add"]), label="action")
    if action == "add":
        target[data.draw(st.text(max_size=12), label="new key")] = data.draw(JSON, label="value")
    else:
        key = data.draw(st.sampled_from(sorted(target)), label="key")
        if action == "remove":
            del target[key]
        else:
            target[key] = data.draw(JSON, label="value")
    return document


@pytest.fixture(scope="module")
def good_model_parts(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    good = good_models(tmp_path_factory.mktemp("good_models"))
    return {name: read_raw_model(file.path) for name, file in good.items()}


TENSOR_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_model_files_load_or_raise_checkpoint_error(good_model_parts, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(good_model_parts)), label="model")
    tensors, meta = good_model_parts[name]
    tensors = dict(tensors)
    if data.draw(st.booleans(), label="mutate metadata"):
        meta = mutate_json(meta, data)
    else:
        tensor = data.draw(st.sampled_from(sorted(tensors)), label="tensor")
        shape = data.draw(st.lists(st.integers(0, 4), max_size=3), label="shape")
        dtype = data.draw(st.sampled_from(TENSOR_DTYPES), label="dtype")
        fill = data.draw(st.sampled_from([0.0, float("nan"), float("inf")]), label="fill")
        tensors[tensor] = (
            torch.full(shape, fill).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
        )
    path = write_raw_model(tmp_path / "mutated.safetensors", tensors, json.dumps(meta))
    try:
        load_policy_driver(path)
        policy_env_options(path)
    except CheckpointError as e:
        assert e.path == path and "\n" not in str(e)


@pytest.fixture(scope="module")
def good_demo_parts(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    from hostile_files import good_demos

    good = good_demos(tmp_path_factory.mktemp("good_demos"))
    return {name: read_demo(path) for name, path in good.items()}


ARRAY_DTYPES = ["uint8", "int64", "float32", "float64", "bool", "<U3", "complex64"]


def mutated_demo_bytes(parts: tuple[dict, dict], data: st.DataObject, path: Path) -> None:
    """Write a mutation of an episode to `path`: its meta, one array, or its bytes."""
    arrays, meta = parts
    arrays = dict(arrays)
    what = data.draw(st.sampled_from(["meta", "array", "remove array", "bytes"]), label="mutate")
    if what == "meta":
        meta = mutate_json(meta, data)
    elif what == "array":
        name = data.draw(st.sampled_from(sorted(arrays)), label="array")
        shape = tuple(data.draw(st.lists(st.integers(0, 7), max_size=3), label="shape"))
        dtype = data.draw(st.sampled_from(ARRAY_DTYPES), label="dtype")
        arrays[name] = np.full(shape, data.draw(st.sampled_from([0, 1, 9, -1]), label="value")).astype(dtype)
    elif what == "remove array":
        del arrays[data.draw(st.sampled_from(sorted(arrays)), label="array")]
    write_demo(path, arrays, None if what == "remove array" and "meta" not in arrays else meta)
    if what == "bytes":
        raw = bytearray(path.read_bytes())
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        if data.draw(st.booleans(), label="cut"):
            del raw[at:]
        else:
            raw[at] ^= data.draw(st.integers(1, 255), label="xor")
        path.write_bytes(bytes(raw))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_demo_files_load_or_raise_demo_error_and_what_loads_replays(good_demo_parts, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(good_demo_parts)), label="episode")
    path = tmp_path / "mutated.npz"
    mutated_demo_bytes(good_demo_parts[name], data, path)
    try:
        load_episode(path, frames=False)
        episode = load_episode(path)
    except DemoError as e:
        assert e.path == path and "\n" not in str(e)
        return
    try:
        verify_episode(episode)  # what loads can be re-simulated: its env and actions are usable
    except DemoError as e:
        assert "cannot make" in str(e)  # an env this camdrive cannot make: reported, not a crash
