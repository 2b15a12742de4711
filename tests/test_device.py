"""--device: what each choice selects (the GPU path too, without a GPU); model files loaded onto a device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.device import select_device
from agent.pilotnet import PilotNet, load_pilotnet
from agent.qnet import DQNDriver, QNet, load_qnet
from training.bc.config import BCConfig
from training.bc.train import training_device


def test_auto_is_the_cpu_when_torch_sees_no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device() == select_device("auto") == select_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_is_refused_in_one_line_naming_the_option(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^--device cuda: torch .* sees no CUDA GPU") as caught:
        select_device("cuda")
    assert "--device cpu" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="--device must be one of auto, cpu, cuda, got 'gpu'"):
        select_device("gpu")


def test_auto_and_cuda_select_the_gpu_when_torch_sees_one(monkeypatch):
    """The CUDA path as far as it goes without a GPU: the selection only (a torch.device is a name,
    nothing is allocated)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == select_device("cuda") == torch.device("cuda")
    assert select_device("cpu") == torch.device("cpu")
    # Behaviour cloning's bf16 autocast needs a GPU with bfloat16: refused before any work otherwise.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match=r"^--precision bf16: .* use --precision fp32$"):
        training_device(BCConfig(out=Path("m.safetensors")))
    assert training_device(BCConfig(out=Path("m.safetensors"), precision="fp32")) == torch.device("cuda")


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_model_files_load_onto_the_device_asked_for(tmp_path, device):
    """map_location: the weights land on `device` (a file holds no device: it is always written from CPU
    tensors, so what a GPU run saved loads on a machine without one), and the drivers run there."""
    torch.manual_seed(0)
    qnet = QNet(5, 4, 24, 40, 16)
    save_checkpoint(tmp_path / "q.safetensors", qnet, {"architecture": "dqn", "network": qnet.config()})
    tensors, _ = load_checkpoint(tmp_path / "q.safetensors", device=device)
    assert {t.device for t in tensors.values()} == {torch.device(device)}
    loaded, _ = load_qnet(tmp_path / "q.safetensors", device=device)
    assert {p.device for p in loaded.parameters()} == {torch.device(device)}
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in qnet.state_dict().items())
    driver = DQNDriver(loaded, threads=None)
    assert driver.device == torch.device(device)
    driver.act(np.full((24, 40, 1), 100, dtype=np.uint8))
    assert driver.q_values is not None and driver.q_values.shape == (5,)

    pilotnet = PilotNet("yuv")  # its colour transform follows the frames to the model's device
    save_checkpoint(
        tmp_path / "p.safetensors",
        pilotnet,
        {"architecture": "pilotnet", "observation": {"color_space": "yuv"}},
    )
    model, _ = load_pilotnet(tmp_path / "p.safetensors", device=device)
    frames = torch.randint(0, 256, (2, 66, 200, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model(frames), pilotnet.eval()(frames))
