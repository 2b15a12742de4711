"""PilotNet, its model files and its driver: NVIDIA's shapes, files that round-trip, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agent.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from agent.driver import Driver
from agent.pilotnet import ARCH, INPUT_SHAPE, PilotNet, PilotNetDriver, load_pilotnet, param_count

PILOTNET_PARAMS = 252_219
"""NVIDIA's PilotNet: 24/36/48 5x5 and 64/64 3x3 convolutions, FC 1152-100-50-10-1."""


def frames(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(
        np.random.default_rng(seed).integers(0, 256, (batch, *INPUT_SHAPE), dtype=np.uint8)
    )


def metadata() -> dict:
    return {"architecture": ARCH, "observation": {"shape": list(INPUT_SHAPE), "color_space": "rgb"}}


def test_output_shape_and_parameter_count():
    torch.manual_seed(0)
    model = PilotNet().eval()
    with torch.inference_mode():
        out = model(frames(3))
    assert out.shape == (3, 1)
    assert torch.isfinite(out).all()
    assert param_count(model) == PILOTNET_PARAMS
    # The flattened feature map is the paper's 64 x 1 x 18.
    with torch.inference_mode():
        assert model.features(model.normalise(frames(1))).shape == (1, 64, 1, 18)


def test_yuv_variant_has_the_same_parameters():
    assert param_count(PilotNet("yuv")) == PILOTNET_PARAMS
    with pytest.raises(ValueError, match="color_space"):
        PilotNet("hsv")


def test_checkpoint_round_trip_gives_equal_outputs(tmp_path):
    torch.manual_seed(1)
    model = PilotNet().eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {**metadata(), "training": {"seed": 7}})
    loaded, meta = load_pilotnet(path)
    x = frames(4, seed=2)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert meta["architecture"] == ARCH and meta["param_count"] == PILOTNET_PARAMS
    assert meta["training"] == {"seed": 7} and meta["format_version"] == 1
    assert read_metadata(path, expected_arch=ARCH) == meta
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file must be renamed away"


def test_corrupt_file_raises_checkpoint_error_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", PilotNet(), metadata())
    raw = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_pilotnet(bad)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_pilotnet(garbage)
    with pytest.raises(CheckpointError, match="no such file"):
        load_pilotnet(tmp_path / "missing.safetensors")


def test_wrong_or_missing_architecture_and_shape_mismatch_raise(tmp_path):
    from safetensors.torch import save_file

    wrong = save_checkpoint(tmp_path / "dqn.safetensors", PilotNet(), {**metadata(), "architecture": "dqn"})
    with pytest.raises(CheckpointError, match="architecture is 'dqn', expected 'pilotnet'"):
        load_pilotnet(wrong)

    tensors = {k: v.contiguous() for k, v in PilotNet().state_dict().items()}
    bare = tmp_path / "bare.safetensors"
    save_file(tensors, str(bare))
    with pytest.raises(CheckpointError, match="not a camdrive model file"):
        load_pilotnet(bare)

    meta = {"format": "camdrive-model", "format_version": 1, "architecture": ARCH}
    no_arch = tmp_path / "no_arch.safetensors"
    save_file(tensors, str(no_arch), metadata={"camdrive": json.dumps({**meta, "architecture": ""})})
    with pytest.raises(CheckpointError, match="names no architecture"):
        load_pilotnet(no_arch)

    # gymnasium.make would import the module `this` for such an env id: refused on reading.
    foreign_env = tmp_path / "foreign_env.safetensors"
    save_file(tensors, str(foreign_env), metadata={"camdrive": json.dumps({**meta, "env_id": "this:Env-v0"})})
    with pytest.raises(CheckpointError, match="'this:Env-v0' is not a registered environment"):
        read_metadata(foreign_env)

    shaped = dict(tensors)
    shaped["head.1.weight"] = torch.zeros(100, 1000)
    mismatch = tmp_path / "mismatch.safetensors"
    save_file(shaped, str(mismatch), metadata={"camdrive": json.dumps(meta)})
    with pytest.raises(
        CheckpointError, match=r"mismatch.safetensors: tensor 'head.1.weight' has shape \(100, 1000\)"
    ):
        load_pilotnet(mismatch)

    missing = {k: v for k, v in tensors.items() if k != "head.7.bias"}
    save_file(missing, str(mismatch), metadata={"camdrive": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="missing"):
        load_pilotnet(mismatch)

    future = tmp_path / "future.safetensors"
    save_file(tensors, str(future), metadata={"camdrive": json.dumps({**meta, "format_version": 99})})
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(future)


def test_driver_acts_with_a_finite_action_in_the_space(make_env):
    env = make_env("camdrive/LaneKeep-v0", traffic_cars=2)
    driver = PilotNetDriver(PilotNet())
    assert isinstance(driver, Driver) and driver.name == "pilotnet"
    obs, info = env.reset(seed=1_000_000)
    driver.reset(env)
    for _ in range(3):
        action = driver.act(obs, info)
        assert action.dtype == np.float32 and action.shape == (1,)
        assert np.all(np.isfinite(action)) and env.action_space.contains(action)
        obs, _, _, _, info = env.step(action)


def test_driver_loads_from_a_model_file_and_refuses_other_frame_sizes(tmp_path, make_env):
    path = save_checkpoint(tmp_path / "m.safetensors", PilotNet(), metadata())
    driver = PilotNetDriver.from_checkpoint(path)
    assert driver.metadata["architecture"] == ARCH
    with pytest.raises(ValueError, match="66, 200, 3"):
        driver.reset(make_env("camdrive/LaneKeep-v0", camera_width=64, camera_height=32))
