"""The precision a GPU trains in, and the network inside its DDP and torch.compile wrappers."""

import pytest
import torch

from ichprep.models.backbones import create
from ichprep.train.inference import amp_dtype, precision, precision_name, unwrap


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


def test_a_compiled_network_unwraps_to_itself():
    model = create("resnet18", 3)
    compiled = torch.compile(model, backend="eager")
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    assert unwrap(compiled) is model and unwrap(model) is model
