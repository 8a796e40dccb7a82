"""The input normalisation a run picks and stores: the pretrained config's, the data's, or as asked."""

from pathlib import Path

import pytest

from ichprep.models.pretrained import FILE, RANDOM, Start
from ichprep.train import TrainConfig
from ichprep.train.network import normalisation

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""resnet18's pretrained config, as timm states it."""


def config(norm: str) -> TrainConfig:
    return TrainConfig(data=Path("."), out=Path("."), norm=norm)


@pytest.mark.parametrize("norm, kind, expected", [
    ("auto", FILE, IMAGENET),
    ("auto", RANDOM, ((0.6,) * 3, (0.25,) * 3)),
    ("pretrained", RANDOM, IMAGENET),
    ("data", FILE, ((0.6,) * 3, (0.25,) * 3)),
])
def test_norm_picks_the_pretrained_configs_values_or_the_datas(norm, kind, expected):
    mean, std = normalisation(config(norm), Start("resnet18", kind), 3)
    assert mean == pytest.approx(expected[0]) and std == pytest.approx(expected[1])


def test_stacked_slices_repeat_the_rgb_values_and_other_counts_take_their_mean():
    start = Start("resnet18", FILE)
    mean, std = normalisation(config("auto"), start, 9)
    assert mean == pytest.approx(IMAGENET[0] * 3) and std == pytest.approx(IMAGENET[1] * 3)
    mean, std = normalisation(config("auto"), start, 2)
    assert mean == pytest.approx((sum(IMAGENET[0]) / 3,) * 2) and std == pytest.approx((sum(IMAGENET[1]) / 3,) * 2)
