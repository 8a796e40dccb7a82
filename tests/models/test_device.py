"""The device a network runs on: a chosen GPU becomes the current one, an unusable --device is one line, and the
precision follows the GPU's tensor cores."""

import pytest
import torch
from cli_run import ichprep

from ichprep.errors import IchprepError
from ichprep.models.device import amp_dtype, pick_device, precision, precision_name


@pytest.fixture
def two_gpus(monkeypatch) -> list[torch.device]:
    """torch.cuda answering as a machine with two GPUs, GPU 0 current; returns the devices made current."""
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


def test_the_chosen_gpu_becomes_the_current_one(two_gpus):
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 0)


def test_a_cpu_stays_as_it_is(two_gpus):
    assert pick_device("cpu") == torch.device("cpu") and two_gpus == []


@pytest.mark.parametrize("name, message", [("cuda:2", "there are 2 CUDA devices"), ("gpu", "expected auto, cpu, cuda")])
def test_a_device_that_is_not_there_is_refused(two_gpus, name, message):
    with pytest.raises(IchprepError, match=message):
        pick_device(name)


def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "data").mkdir()
    done = ichprep("train", tmp_path / "data", "--out", tmp_path / "run", "--device", "cuda:1")
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == ["ichprep: error: --device cuda:1: no CUDA device is available here"]


@pytest.mark.parametrize("gpu, capability, native, expected", [
    ("P100", (6, 0), False, None),
    ("V100", (7, 0), False, torch.float16),
    ("T4", (7, 5), False, torch.float16),
    ("A100", (8, 0), True, torch.bfloat16),
    ("H100", (9, 0), True, torch.bfloat16),
    ("A100 under an old CUDA without bf16", (8, 0), False, torch.float16),
])
def test_precision_follows_the_tensor_cores(gpu, capability, native, expected):
    assert precision(capability, native) == expected, gpu


def fake_gpu(monkeypatch, capability: tuple[int, int], native_bf16: bool) -> None:
    """torch.cuda answering as that GPU does: bf16 'supported' by emulation on every GPU unless asked for native only."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or native_bf16)


def test_a_t4_gets_fp16_although_torch_says_it_supports_bf16(monkeypatch):
    fake_gpu(monkeypatch, (7, 5), native_bf16=False)
    assert torch.cuda.is_bf16_supported()  # the default answer counts emulation
    assert amp_dtype(torch.device("cuda", 0)) == torch.float16
    fake_gpu(monkeypatch, (8, 0), native_bf16=True)
    assert amp_dtype(torch.device("cuda", 0)) == torch.bfloat16
    fake_gpu(monkeypatch, (8, 0), native_bf16=False)  # only native support counts, whatever the capability
    assert amp_dtype(torch.device("cuda", 0)) == torch.float16
    assert amp_dtype(torch.device("cpu")) is None


def test_precision_names_say_whether_the_loss_is_scaled():
    names = [precision_name(d) for d in (torch.bfloat16, torch.float16, None)]
    assert names == ["bf16 autocast", "fp16 autocast with loss scaling", "fp32"]
