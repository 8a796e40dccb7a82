"""Starting weights through timm's own loading: the prefilled Hugging Face cache, local files, and the refusals.

The suite's cache (``conftest.pytest_configure``) holds known weights for resnet18.a1_in1k and the
suite runs offline, so a near-zero learning rate must leave exactly those kernels in model.pt.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import ichprep
from hub_cache import REVISION, repo_folder
from ich_fixtures import labelled_folder
from safetensors.numpy import load_file

from ichprep.errors import IchprepError
from ichprep.models.pretrained import resolve
from ichprep.models.saved import CnnModel, load_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FROZEN = ("--lr", "1e-30", "--epochs", "1", "-b", "8", "--workers", "0", "-q", "--no-augment")
"""A run whose updates vanish in float32: every trained weight must come out exactly as it went in."""


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    labelled_folder(root, 32, seed=7, size=16)
    return root


def cached_weights() -> dict[str, np.ndarray]:
    """What the suite's cache holds for resnet18.a1_in1k, read straight from the file huggingface_hub would find."""
    snapshot = repo_folder(Path(os.environ["HF_HOME"]), "timm/resnet18.a1_in1k") / "snapshots" / REVISION
    return load_file(snapshot / "model.safetensors")


def kernels(state: dict) -> dict[str, np.ndarray]:
    """The convolution kernels of a state dict, as numpy arrays."""
    return {k: np.asarray(v) for k, v in state.items() if np.asarray(v).ndim == 4}


def trained(run: Path) -> CnnModel:
    return load_cnn(run / "model.pt")


def test_the_default_run_starts_from_the_cached_imagenet_weights_and_keeps_their_exact_kernels(blobs, tmp_path):
    done = ichprep("train", blobs / "img", "--out", tmp_path / "run", *FROZEN)
    assert done.exit_code == 0, done.output
    record = trained(tmp_path / "run")
    assert record.arch == "resnet18.a1_in1k"
    assert record.weights == {"arch": "resnet18.a1_in1k", "kind": "hub", "source": "timm/resnet18.a1_in1k"}
    expected, got = kernels(cached_weights()), kernels(record.state_dict)
    assert expected.keys() == got.keys() and len(got) == 20
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key
    assert record.mean == pytest.approx([0.485, 0.456, 0.406]) and record.std == pytest.approx([0.229, 0.224, 0.225])


def test_stacked_slices_get_the_rgb_stem_tiled_and_scaled_and_2_5d_keeps_it_exact(blobs, tmp_path):
    rgb = cached_weights()["conv1.weight"]
    done = ichprep("train", blobs / "img", "--out", tmp_path / "nine", "--neighbours", "1", *FROZEN)
    assert done.exit_code == 0, done.output
    nine = trained(tmp_path / "nine")
    stem = np.asarray(nine.state_dict["conv1.weight"])
    assert stem.shape == (64, 9, 7, 7) and nine.in_channels == 9
    assert np.allclose(stem, np.concatenate([rgb] * 3, axis=1) / 3, rtol=1e-6, atol=0)
    assert nine.mean == pytest.approx([0.485, 0.456, 0.406] * 3)
    done = ichprep("train", blobs / "img", "--out", tmp_path / "flat", "--stack", "2.5d", *FROZEN)
    assert done.exit_code == 0, done.output
    flat = trained(tmp_path / "flat")
    assert flat.in_channels == 3 and flat.stack == "2.5d"
    assert np.array_equal(np.asarray(flat.state_dict["conv1.weight"]), rgb)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_from_a_file_load_into_an_arch_the_old_trainer_never_had(blobs, tmp_path, suffix):
    import timm

    torch.manual_seed(11)
    state = timm.create_model("efficientnet_b0").state_dict()
    path = tmp_path / f"effnet{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)
    else:
        from safetensors.torch import save_file

        save_file(state, path)
    done = ichprep("train", blobs / "img", "--out", tmp_path / "run", "--arch", "efficientnet_b0", "--weights", path, *FROZEN)
    assert done.exit_code == 0, done.output
    record = trained(tmp_path / "run")
    assert record.weights == {"arch": "efficientnet_b0", "kind": "file", "source": str(path)}
    expected, got = kernels({k: v.numpy() for k, v in state.items()}), kernels(record.state_dict)
    assert expected.keys() == got.keys()
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key


def test_weights_of_another_arch_are_refused_naming_the_tensors(tmp_path):
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet18").state_dict(), tmp_path / "r18.safetensors")
    with pytest.raises(IchprepError) as refusal:
        resolve("resnet34", tmp_path / "r18.safetensors", True)
    message = str(refusal.value)
    assert message.startswith(f"--weights {tmp_path / 'r18.safetensors'} does not fit resnet34: 80 missing (layer1.2.conv1.weight")
    assert "\n" not in message


def test_a_file_with_another_head_or_none_still_fits(tmp_path):
    import timm

    state = {k: v for k, v in timm.create_model("resnet18").state_dict().items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "headless.pth")
    torch.save({**state, "fc.weight": torch.zeros(6, 512), "fc.bias": torch.zeros(6)}, tmp_path / "six.pth")
    for name in ("headless.pth", "six.pth"):
        assert resolve("resnet18", tmp_path / name, True).kind == "file"


def test_weights_neither_cached_nor_reachable_name_both_ways_out():
    with pytest.raises(IchprepError) as refusal:
        resolve("efficientnet_b0", None, True)
    message = str(refusal.value)
    assert "neither in the Hugging Face cache nor reachable (HF_HUB_OFFLINE is set)" in message
    assert "--weights FILE" in message and "--no-pretrained" in message


def test_no_pretrained_asks_nothing_of_the_cache():
    start = resolve("efficientnet_b0", None, False)
    assert (start.kind, start.file) == ("random", "")
