"""A loader's uint8 batch as the network's input: normalised per channel, resized on the device like OpenCV would."""

import numpy as np
import pytest
import torch
from ich_fixtures import area_resized, fabricate

from ichprep.data.batches import normalise, resize_batch
from ichprep.data.dataset import MEAN, STD


def normalised(img: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x / 255 - mean) / std of every channel, in float64 numpy, cast at the end."""
    x = img.transpose(2, 0, 1).astype(np.float64) / 255
    return torch.from_numpy((x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]).float()


@pytest.mark.parametrize("mean, std", [((MEAN,) * 3, (STD,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_normalise_turns_uint8_batches_into_the_models_float_input_channel_by_channel(mean, std):
    _, images, _, _ = fabricate(12, seed=1, size=16)
    batch = torch.stack([torch.from_numpy(i.transpose(2, 0, 1).copy()) for i in images[:4]])
    expected = torch.stack([normalised(i, mean, std) for i in images[:4]])
    assert torch.allclose(normalise(batch, mean, std), expected, atol=1e-5)
    assert batch.dtype == torch.uint8


@pytest.mark.parametrize("stored, size, max_grey, mean_grey", [(32, 16, 0.5, 0.5), (24, 16, 64.0, 4.0)])
def test_device_resize_agrees_with_opencvs_area_resize(stored, size, max_grey, mean_grey):
    """Exact for whole-number ratios (up to OpenCV's rounding to uint8); close, not equal, for others,
    where OpenCV weighs partly covered pixels by area and torch's adaptive pooling takes them whole."""
    _, images, _, _ = fabricate(8, seed=2, size=stored)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    on_device = resize_batch(batch, size).permute(0, 2, 3, 1).numpy()
    diff = np.abs(on_device - area_resized(images, size))
    assert diff.max() <= max_grey and diff.mean() <= mean_grey
