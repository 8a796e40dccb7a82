"""The device of a run: a chosen GPU becomes the current one; an unusable --device is one line."""

import pytest
import torch
from cli_run import ichprep

from ichprep.errors import IchprepError
from ichprep.train.distributed import pick_device


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
