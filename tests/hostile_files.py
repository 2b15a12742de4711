"""A fixed corpus of hostile model files and demonstration files, for the tests of what loading refuses.

Every file is named after what is wrong with it, so a failing test names the case. Each is built from
a valid file (a small PilotNet, DQN or RLlib-export model; a short recorded LaneKeep-v0 or Traffic-v0
episode) by one change: a lying header, a field of the wrong type, a shape the env cannot take, a file
that is not a regular file at all... Loading any of them must end in one line naming the file, never
a traceback, a hang or a huge allocation; the valid files must still load.

`model_corpus(dir)` and `demo_corpus(dir)` return {name: HostileFile}; `good_models(dir)` and
`good_demos(dir)` the valid files they start from (also the seeds of the property-based tests).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import sim  # noqa: F401  (registers the camdrive envs)
from agent.checkpoint import METADATA_KEY, save_checkpoint
from agent.pilotnet import INPUT_SHAPE, PilotNet
from agent.qnet import QNet
from agent.rllib_policy import RLlibPolicyNet
from training.data.demo_writer import EpisodeWriter

LANE_ID = "camdrive/LaneKeep-v0"
TRAFFIC_ID = "camdrive/Traffic-v0"
SMALL_TRAFFIC = {"camera_width": 100, "camera_height": 33, "grayscale": True}
"""The DQN's and the RLlib exports' Traffic-v0 frames (training/dqn/config.py, training/rllib/train.py)."""
DEMO_STEPS = 5


@dataclass(frozen=True)
class HostileFile:
    """One corpus entry: where it is, the --env of the task it claims, and whether it is a named pipe
    (opening one for reading blocks until a writer comes: tests open it in a thread they can unblock)."""

    path: Path
    env: str = "lane"
    fifo: bool = False


class Payload:
    """Unpickling this creates `marker`: a file holding it proves that loading never unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def marker_path(directory: Path) -> Path:
    """The file a pickle payload of the corpus would create in `directory` if it were ever unpickled."""
    return directory / "UNPICKLED"


# -------------------------------------------------------------------------------------------- models
def pilotnet_meta() -> dict[str, Any]:
    """Metadata as `camdrive train bc` writes it (training/bc/train.py)."""
    return {
        "architecture": "pilotnet",
        "observation": {"shape": list(INPUT_SHAPE), "dtype": "uint8", "layout": "HWC", "color_space": "rgb"},
        "action": {"shape": [1], "dtype": "float32", "low": -1.0, "high": 1.0},
        "env_id": LANE_ID,
        "env_options": {},
    }


def dqn_net(**changes: Any) -> QNet:
    """A DQN as `camdrive train dqn` builds it, with a small hidden layer to keep the files small."""
    return QNet(**{"hidden": 8, **changes})


def dqn_meta(net: QNet, **changes: Any) -> dict[str, Any]:
    """Metadata as `camdrive train dqn` writes it (training/dqn/state.py)."""
    meta = {
        "architecture": "dqn",
        "network": net.config(),
        "env_id": TRAFFIC_ID,
        "env_options": {**SMALL_TRAFFIC, "action_mode": "steer"},
        "observation": {"frames": net.frames, "shape": [net.height, net.width], "color_space": "gray"},
        "action_mode": "steer",
    }
    meta.update(changes)
    return meta


def rllib_net(**changes: Any) -> RLlibPolicyNet:
    """An exported RLlib policy for Traffic-v0's small grayscale frames (five discrete actions)."""
    spec = {
        "input_shape": [33, 100, 1],
        "conv": [{"out": 4, "kernel": [8, 8], "stride": [4, 4]}],
        "hidden": [8],
        "outputs": 5,
    }
    return RLlibPolicyNet(**{**spec, **changes})


def rllib_meta(net: RLlibPolicyNet, **changes: Any) -> dict[str, Any]:
    """Metadata as `camdrive train rllib` writes it (training/rllib/train.py)."""
    meta = {
        "architecture": "rllib-cnn",
        "env_id": TRAFFIC_ID,
        "env_options": dict(SMALL_TRAFFIC),
        "observation": {"shape": net.input_shape, "dtype": "uint8"},
        "action": {"type": "discrete", "n": 5},
        "network": net.config(),
    }
    meta.update(changes)
    return meta


def good_models(directory: Path) -> dict[str, HostileFile]:
    """Valid model files of the three architectures: the starting points of the hostile ones."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dqn, rllib = dqn_net(), rllib_net()
    return {
        "pilotnet": HostileFile(
            save_checkpoint(directory / "pilotnet.safetensors", PilotNet(), pilotnet_meta())
        ),
        "dqn": HostileFile(save_checkpoint(directory / "dqn.safetensors", dqn, dqn_meta(dqn)), "traffic"),
        "rllib": HostileFile(
            save_checkpoint(directory / "rllib.safetensors", rllib, rllib_meta(rllib)), "traffic"
        ),
    }


def write_raw_model(path: Path, tensors: dict[str, torch.Tensor], metadata_value: str | None) -> Path:
    """A safetensors file whose camdrive metadata is `metadata_value` exactly (None: no camdrive key)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=None if metadata_value is None else {METADATA_KEY: metadata_value})
    return path


def read_raw_model(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and parsed camdrive metadata of a valid model file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    return load_file(str(path)), meta


def _variant(
    good: Path,
    path: Path,
    meta_change: Callable[[dict], Any] | None = None,
    tensor_change: Callable[[dict], Any] | None = None,
) -> Path:
    """A copy of model `good` at `path` with its metadata and/or tensors changed in place by the callables."""
    tensors, meta = read_raw_model(good)
    if meta_change is not None:
        meta_change(meta)
    if tensor_change is not None:
        tensor_change(tensors)
    return write_raw_model(path, tensors, json.dumps(meta))


def _setter(**fields: Any) -> Callable[[dict], None]:
    return lambda meta: meta.update(fields)


def _raw_header_model(path: Path, header: bytes, body: bytes = b"") -> Path:
    """A file in safetensors' layout (8-byte little-endian header length, header, data) with any header."""
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return path


def _lying_header_length(path: Path, length: int) -> Path:
    """A small safetensors file whose 8-byte header length says `length`."""
    _raw_header_model(path, b'{"__metadata__":{}}')
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", length) + data[8:])
    return path


def model_corpus(directory: Path) -> dict[str, HostileFile]:
    """The hostile model files, written to `directory`; {name: file}, the name saying what is wrong."""
    directory.mkdir(parents=True, exist_ok=True)
    good = good_models(directory / "good")
    pilot, dqn, rllib = good["pilotnet"].path, good["dqn"].path, good["rllib"].path
    files: dict[str, HostileFile] = {}

    def add(name: str, make: Callable[[Path], Any], env: str = "lane", fifo: bool = False) -> None:
        path = directory / f"{name}.safetensors"
        make(path)
        files[name] = HostileFile(path, env, fifo)

    def variant(
        name: str, base: Path, env: str, meta: Callable | None = None, tensors: Callable | None = None
    ):
        add(name, lambda p: _variant(base, p, meta, tensors), env)

    def cut(fraction: float) -> Callable[[Path], Any]:
        data = pilot.read_bytes()
        return lambda p: p.write_bytes(data[: int(len(data) * fraction)])

    # The metadata's own fields, of the wrong type or inconsistent with each other.
    variant("env_options_is_a_string", dqn, "traffic", _setter(env_options="camera_width=64"))
    variant("env_options_is_a_list", dqn, "traffic", _setter(env_options=[["camera_width", 64]]))
    variant("observation_is_a_string", pilot, "lane", _setter(observation="66x200 rgb"))
    variant(
        "dqn_env_options_camera_width_64", dqn, "traffic", lambda m: m["env_options"].update(camera_width=64)
    )
    variant("env_options_unknown_option", dqn, "traffic", lambda m: m["env_options"].update(warp_drive=True))
    variant(
        "env_options_camera_width_10_to_the_9",
        dqn,
        "traffic",
        lambda m: m["env_options"].update(camera_width=10**9),
    )
    variant("env_options_render_mode_3", pilot, "lane", _setter(env_options={"render_mode": 3}))
    variant("env_options_render_mode_human", pilot, "lane", _setter(env_options={"render_mode": "human"}))
    variant("env_options_max_episode_steps_x", pilot, "lane", _setter(env_options={"max_episode_steps": "x"}))
    variant(
        "pilotnet_with_steer_throttle_actions",
        pilot,
        "lane",
        _setter(env_options={"action_type": "steer_throttle"}),
    )
    variant("observation_shape_10x10", pilot, "lane", lambda m: m["observation"].update(shape=[10, 10, 3]))
    variant("observation_shape_is_a_string", pilot, "lane", lambda m: m["observation"].update(shape="66x200"))
    variant("pilotnet_color_space_cmyk", pilot, "lane", lambda m: m["observation"].update(color_space="cmyk"))
    variant("dqn_in_lane_keep", dqn, "lane", _setter(env_id=LANE_ID, env_options={}))
    variant("architecture_unknown", pilot, "lane", _setter(architecture="resnet"))
    variant("architecture_is_a_list", pilot, "lane", _setter(architecture=["pilotnet"]))
    variant("format_version_is_a_string", pilot, "lane", _setter(format_version="1"))
    variant("format_version_is_true", pilot, "lane", _setter(format_version=True))
    variant("format_version_99", pilot, "lane", _setter(format_version=99))
    variant("format_missing", pilot, "lane", lambda m: m.pop("format"))
    variant("env_id_names_a_module", pilot, "lane", _setter(env_id="os:getcwd"))
    variant("env_id_is_a_number", pilot, "lane", _setter(env_id=5))
    variant("network_is_a_string", dqn, "traffic", _setter(network="QNet()"))
    variant("network_hidden_10_to_the_9", dqn, "traffic", lambda m: m["network"].update(hidden=10**9))
    variant("network_frames_negative", dqn, "traffic", lambda m: m["network"].update(frames=-4))
    variant(
        "network_height_10_to_the_6", dqn, "traffic", lambda m: m["network"].update(height=10**6, width=10**6)
    )
    variant(
        "rllib_conv_out_infinity",
        rllib,
        "traffic",
        lambda m: m["network"]["conv"][0].update(out=float("inf")),
    )
    variant("rllib_conv_stride_0", rllib, "traffic", lambda m: m["network"]["conv"][0].update(stride=[0, 0]))
    variant(
        "rllib_100000_conv_layers",
        rllib,
        "traffic",
        lambda m: m["network"].update(conv=m["network"]["conv"] * 100_000),
    )
    variant(
        "rllib_input_shape_100000_square",
        rllib,
        "traffic",
        lambda m: m["network"].update(input_shape=[100_000, 100_000, 1]),
    )
    variant("rllib_action_is_a_string", rllib, "traffic", _setter(action="discrete"))
    variant("rllib_action_without_n", rllib, "traffic", _setter(action={"type": "discrete"}))
    variant("rllib_action_n_7_env_has_5", rllib, "traffic", _setter(action={"type": "discrete", "n": 7}))
    variant(
        "rllib_continuous_in_traffic",
        rllib,
        "traffic",
        _setter(action={"type": "continuous", "low": [-1.0], "high": [1.0]}),
    )
    # Networks that are whole and valid but do not fit the env their metadata names.
    obs = dqn_meta(dqn_net())["observation"]  # 33x100, as the env options make it
    add(
        "dqn_network_width_64_env_100",
        lambda p: save_checkpoint(p, dqn_net(width=64), dqn_meta(dqn_net(width=64), observation=obs)),
        "traffic",
    )
    add(
        "dqn_7_actions_env_has_5",
        lambda p: save_checkpoint(p, dqn_net(n_actions=7), dqn_meta(dqn_net(n_actions=7))),
        "traffic",
    )
    # The tensors.
    first = "features.0.weight"
    variant("nan_weights", pilot, "lane", tensors=lambda t: t[first].fill_(float("nan")))
    variant("inf_weights", pilot, "lane", tensors=lambda t: t[first].fill_(float("inf")))
    variant("tensor_wrong_shape", pilot, "lane", tensors=lambda t: t.update({first: torch.zeros(3, 3)}))
    variant("tensor_float64", pilot, "lane", tensors=lambda t: t.update({first: t[first].double()}))
    variant("tensor_int64", pilot, "lane", tensors=lambda t: t.update({first: t[first].long()}))
    variant("tensor_float16", pilot, "lane", tensors=lambda t: t.update({first: t[first].half()}))
    variant("tensor_missing", pilot, "lane", tensors=lambda t: t.pop(first))
    variant("tensor_extra", pilot, "lane", tensors=lambda t: t.update(extra=torch.zeros(2)))
    variant("no_tensors_at_all", pilot, "lane", tensors=lambda t: t.clear())
    # The file's bytes.
    add("truncated_in_the_tensors", cut(0.6))
    add("truncated_in_the_header", cut(0.00002))
    add("header_length_2_to_the_60", lambda p: _lying_header_length(p, 2**60))
    add("header_length_beyond_the_file", lambda p: _lying_header_length(p, 10**6))
    add("header_not_utf8", lambda p: _raw_header_model(p, b'{"__metadata__":{"camdrive":"\xff\xfe{}"}}'))
    add("header_is_a_json_list", lambda p: _raw_header_model(p, b"[1, 2, 3]"))
    add(
        "tensor_offsets_beyond_the_file",
        lambda p: _raw_header_model(
            p, b'{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}'
        ),
    )
    add("metadata_is_a_json_list", lambda p: write_raw_model(p, {}, "[1, 2]"))
    add("metadata_is_not_json", lambda p: write_raw_model(p, {}, "{architecture: pilotnet"))
    add("metadata_nested_100000_deep", lambda p: write_raw_model(p, {}, "[" * 100_000 + "]" * 100_000))
    add(
        "metadata_number_of_100000_digits",
        lambda p: write_raw_model(p, {}, '{"format_version": 1' + "0" * 100_000 + "}"),
    )
    add("no_camdrive_metadata", lambda p: write_raw_model(p, {"w": torch.zeros(2)}, None))
    add("empty_file", lambda p: p.write_bytes(b""))
    add("text_file", lambda p: p.write_text("architecture: pilotnet\n"))
    add("pickle_with_a_payload", lambda p: p.write_bytes(pickle.dumps(Payload(marker_path(directory)))))
    add("torch_save_zip_renamed", lambda p: torch.save({"w": Payload(marker_path(directory))}, p))
    # Not regular files.
    add("directory", lambda p: p.mkdir())
    add("symlink_loop", lambda p: os.symlink(p.name, p))
    add("symlink_to_dev_zero", lambda p: os.symlink("/dev/zero", p))
    add("named_pipe", lambda p: os.mkfifo(p), fifo=True)
    return files


# --------------------------------------------------------------------------------------------- demos
def record_demo(directory: Path, env_id: str, actions: list[Any], seed: int = 3) -> Path:
    """A real recorded episode of `env_id` driven by `actions` (so `replay --verify` passes it)."""
    env = gym.make(env_id)
    try:
        writer = EpisodeWriter(directory, env_id, {}, seed, "scripted", checkpoint_seconds=None)
        obs, info = env.reset(seed=seed)
        writer.start(obs, info)
        terminated = truncated = False
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            writer.add(obs, action, action, float(reward), info)
        return writer.close(terminated, truncated)
    finally:
        env.close()


def good_demos(directory: Path) -> dict[str, Path]:
    """Two valid short episodes: LaneKeep-v0 (steering in -1..1, labelled) and Traffic-v0 (discrete)."""
    steering = [np.array([0.1 * (t % 3 - 1)], np.float32) for t in range(DEMO_STEPS)]
    return {
        "lane": record_demo(directory / "lane", LANE_ID, steering),
        "traffic": record_demo(directory / "traffic", TRAFFIC_ID, [t % 5 for t in range(DEMO_STEPS)]),
    }


def read_demo(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and parsed meta of a valid episode file."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return arrays, json.loads(str(arrays["meta"][()]))


def write_demo(path: Path, arrays: dict[str, Any], meta: dict[str, Any] | str | None = None) -> Path:
    """An npz with `arrays` and, unless None, `meta` (a dict is dumped to JSON); pickles what needs it."""
    arrays = dict(arrays)
    if meta is not None:
        arrays["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def _npy_bytes(array: np.ndarray, shape: tuple[int, ...] | None = None, descr: str | None = None) -> bytes:
    """`array` in .npy format, with the header's shape and dtype replaced by `shape` and `descr` if given."""
    out = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    if descr is not None:
        header["descr"] = descr
    np.lib.format.write_array_header_1_0(out, header)
    out.write(array.tobytes())
    return out.getvalue()


def _zip_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def _members(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {name: _npy_bytes(array) for name, array in arrays.items()}


def _patch_zip(path: Path, member: str, patch: Callable[[bytearray, int, int], None]) -> Path:
    """Apply `patch(data, local_header_offset, central_header_offset)` to the raw bytes of the zip."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{member}.npy")
    name = info.filename.encode()
    central = data.find(b"PK\x01\x02")
    while central >= 0 and data[central + 46 : central + 46 + len(name)] != name:
        central = data.find(b"PK\x01\x02", central + 4)
    patch(data, info.header_offset, central)
    path.write_bytes(bytes(data))
    return path


def _claim_size(size: int) -> Callable[[bytearray, int, int], None]:
    """A zip patch: the member's uncompressed size (local and central headers) says `size`."""

    def patch(data: bytearray, local: int, central: int) -> None:
        struct.pack_into("<I", data, local + 22, size)
        struct.pack_into("<I", data, central + 24, size)

    return patch


def _set_flag_and_method(flag: int, method: int | None) -> Callable[[bytearray, int, int], None]:
    """A zip patch: OR `flag` into the member's flag bits and set its compression method."""

    def patch(data: bytearray, local: int, central: int) -> None:
        for offset, at in ((local, 6), (central, 8)):
            (bits,) = struct.unpack_from("<H", data, offset + at)
            struct.pack_into("<H", data, offset + at, bits | flag)
            if method is not None:
                struct.pack_into("<H", data, offset + at + 2, method)

    return patch


def demo_corpus(directory: Path) -> dict[str, HostileFile]:
    """The hostile demo files, written to `directory`; {name: file}, the name saying what is wrong."""
    directory.mkdir(parents=True, exist_ok=True)
    good = good_demos(directory / "good")
    lane, lane_meta = read_demo(good["lane"])
    traffic, traffic_meta = read_demo(good["traffic"])
    files: dict[str, HostileFile] = {}
    marker = marker_path(directory)

    def add(name: str, make: Callable[[Path], Any], fifo: bool = False) -> None:
        path = directory / f"{name}.npz"
        make(path)
        files[name] = HostileFile(path, fifo=fifo)

    def meta(name: str, base: str = "lane", **fields: Any) -> None:
        arrays, m = (lane, lane_meta) if base == "lane" else (traffic, traffic_meta)
        add(name, lambda p: write_demo(p, arrays, {**m, **fields}))

    def arrays(name: str, base: str = "lane", **changes: Any) -> None:
        source, m = (lane, lane_meta) if base == "lane" else (traffic, traffic_meta)
        add(name, lambda p: write_demo(p, {**source, **changes}, m))

    def raw(name: str, member: str, **npy: Any) -> None:
        members = _members(lane)
        members[member] = _npy_bytes(lane[member], **npy)
        add(name, lambda p: _zip_members(p, members))

    steps = DEMO_STEPS
    # The cases.
    raw("frames_header_declares_40GB", "frames", shape=(1_000_000, 66, 200, 3))
    meta("reset_seed_abc", reset_seed="abc")
    arrays("actions_with_7_columns", actions=np.zeros((steps, 7), np.float32))
    add("named_pipe", lambda p: os.mkfifo(p), fifo=True)
    # Sizes that lie, or that would not fit in memory.
    raw("actions_header_declares_10_to_the_30_rows", "actions", shape=(10**30, 1))
    raw("actions_header_declares_a_negative_shape", "actions", shape=(-5, 1))
    raw("state_speed_zero_size_dtype_of_10_to_the_18_rows", "state_speed", shape=(10**18,), descr="|V0")
    raw("rewards_header_declares_fewer_bytes_than_it_holds", "rewards", shape=(1,))
    add(
        "zip_entry_claims_4GB_from_1KB",
        lambda p: _patch_zip(_zip_members(p, _members(lane)), "actions", _claim_size(4_000_000_000)),
    )
    add(
        "zip_entry_stored_claims_more_than_it_holds",
        lambda p: _patch_zip(
            _zip_members(p, _members(lane), zipfile.ZIP_STORED), "actions", _claim_size(10**6)
        ),
    )
    add(
        "zip_entry_encrypted",
        lambda p: _patch_zip(_zip_members(p, _members(lane)), "actions", _set_flag_and_method(0x1, None)),
    )
    add(
        "zip_entry_compression_method_99",
        lambda p: _patch_zip(_zip_members(p, _members(lane)), "actions", _set_flag_and_method(0, 99)),
    )
    add("npy_bad_magic", lambda p: _zip_members(p, {**_members(lane), "actions": b"NOTNUMPY" + b"\0" * 120}))
    # Pickles: must never be unpickled.
    add(
        "actions_object_dtype_pickle",
        lambda p: write_demo(
            p, {**lane, "actions": np.array([Payload(marker)] * steps, dtype=object)}, lane_meta
        ),
    )
    add(
        "meta_object_dtype_pickle",
        lambda p: write_demo(p, {**lane, "meta": np.array(Payload(marker), dtype=object)}),
    )
    # meta fields of the wrong type or out of range.
    meta("reset_seed_negative", reset_seed=-1)
    meta("reset_seed_fractional", reset_seed=1.5)
    meta("reset_seed_true", reset_seed=True)
    meta("steps_negative", steps=-1)
    meta("steps_10_to_the_18", steps=10**18)
    meta("noise_sigma_nan", noise_sigma=float("nan"))
    meta("noise_sigma_negative", noise_sigma=-1.0)
    meta("control_hz_infinity", control_hz=float("inf"))
    meta("created_is_a_number", created=20240101)
    meta("env_options_is_a_string", env_options="lanes=3")
    meta("env_options_render_mode_3", env_options={"render_mode": 3})
    meta("env_options_render_mode_human", env_options={"render_mode": "human"})
    meta("env_options_max_episode_steps_x", env_options={"max_episode_steps": "x"})
    meta("env_id_names_a_module", env_id="os:getcwd")
    meta("format_version_is_true", format_version=True)
    add("meta_is_not_json", lambda p: write_demo(p, lane, "{format: camdrive-demo"))
    add("meta_is_a_json_list", lambda p: write_demo(p, lane, "[1, 2, 3]"))
    add("meta_nested_100000_deep", lambda p: write_demo(p, lane, "[" * 100_000 + "]" * 100_000))
    add("meta_number_of_100000_digits", lambda p: write_demo(p, lane, '{"steps": 1' + "0" * 100_000 + "}"))
    # Arrays the env cannot take.
    arrays("actions_without_an_action_axis", actions=np.zeros(steps, np.float32))
    arrays("actions_nan", actions=np.full((steps, 1), np.nan, np.float32))
    arrays("actions_strings", actions=np.array(["left"] * steps))
    arrays("labels_with_7_columns", labels=np.zeros((steps, 7), np.float32))
    arrays("traffic_action_9", "traffic", actions=np.full(steps, 9, np.int64))
    arrays("traffic_action_negative", "traffic", actions=np.full(steps, -1, np.int64))
    arrays("traffic_actions_fractional", "traffic", actions=np.full(steps, 1.5, np.float32))
    arrays("frames_float32", frames=lane["frames"].astype(np.float32))
    arrays("frames_without_a_channel_axis", frames=lane["frames"][..., 0])
    arrays("rewards_strings", rewards=np.array(["1.0"] * steps))
    # The file's bytes.
    data = good["lane"].read_bytes()
    add("truncated", lambda p: p.write_bytes(data[: len(data) // 2]))
    add("empty_file", lambda p: p.write_bytes(b""))
    add("text_file", lambda p: p.write_text("frames,actions\n1,2\n"))
    add("missing_meta", lambda p: write_demo(p, {k: v for k, v in lane.items() if k != "meta"}))
    # Not regular files.
    add("directory", lambda p: p.mkdir())
    add("symlink_loop", lambda p: os.symlink(p.name, p))
    add("symlink_to_dev_zero", lambda p: os.symlink("/dev/zero", p))
    return files
