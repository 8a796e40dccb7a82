"""Shared inference: a GPU that runs out of memory gets halved batches with the same results, and TTA stays in distribution."""

import pytest
import torch

from ichprep.errors import IchprepError
from ichprep.models.apply import Halving, check_views
from ichprep.models.saved import CnnModel


class Limited:
    """A function of a batch that runs out of (GPU) memory above ``most`` images, as a 16 GB card does."""

    def __init__(self, most: int) -> None:
        self.most, self.sizes = most, []

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.sizes.append(len(x))
        if len(x) > self.most:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x * 2, x.sum(dim=1)


def test_a_batch_too_large_for_the_device_is_halved_until_it_fits_with_the_same_results_and_said_once():
    said: list[str] = []
    halving, run = Halving(say=said.append), Limited(most=20)
    x = torch.arange(64 * 3, dtype=torch.float32).reshape(64, 3)
    doubled, sums = halving(run, x)
    assert torch.equal(doubled, x * 2) and torch.equal(sums, x.sum(dim=1))
    assert run.sizes[:3] == [64, 32, 16] and set(run.sizes[3:]) == {16}
    assert said == ["out of GPU memory at 64 images a batch: going on with 32 (--batch-size sets it)",
                    "out of GPU memory at 32 images a batch: going on with 16 (--batch-size sets it)"]
    halving(run, x[:40])  # the next batch starts at the size that fitted
    assert set(run.sizes[-3:]) == {16, 8} and len(said) == 2


def test_one_image_that_does_not_fit_is_the_error_it_was():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Halving(say=lambda _m: None)(Limited(most=0), torch.ones(4, 3))


def test_tta_views_the_training_never_drew_are_refused_naming_what_it_drew():
    record = CnnModel(arch="test_resnet", weights={}, state_dict={}, in_channels=3, neighbours=0, stack="windows", size=16,
                      settings={}, mean=[0.6] * 3, std=[0.25] * 3, train_pos_rate=[0.1] * 6, true_pos_rate=[0.1] * 6,
                      views=["hflip", "vflip"])
    check_views(record, ("hflip", "vflip"))
    with pytest.raises(IchprepError, match=r"--tta transpose: the model m.pt never saw that view in training \(its "
                                           r"augmentation drew hflip, vflip\)"):
        check_views(record, ("hflip", "transpose"), "m.pt")
