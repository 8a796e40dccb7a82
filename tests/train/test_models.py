"""The plain-torch networks carry torchvision's parameter names, shapes and counts."""

import pytest
import torch

from ichprep.errors import IchprepError
from ichprep.train.models import ARCHS, adapt_first_conv, build, load_pretrained

TORCHVISION_PARAMS_1000 = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "densenet121": 7_978_856,
    "alexnet": 61_100_840,
}
"""torchvision's documented parameter counts with the 1000-class ImageNet head."""

KNOWN_KEYS = {
    "resnet18": {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.bn1.running_mean": (64,),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "fc.weight": (1000, 512),
    },
    "resnet50": {"layer1.0.conv3.weight": (256, 64, 1, 1), "layer4.2.bn3.weight": (2048,), "fc.weight": (1000, 2048)},
    "densenet121": {
        "features.conv0.weight": (64, 3, 7, 7),
        "features.denseblock1.denselayer1.norm1.weight": (64,),
        "features.transition1.conv.weight": (128, 256, 1, 1),
        "features.norm5.weight": (1024,),
        "classifier.weight": (1000, 1024),
    },
    "alexnet": {"features.0.weight": (64, 3, 11, 11), "classifier.6.weight": (1000, 4096)},
}


@pytest.mark.parametrize("arch", list(TORCHVISION_PARAMS_1000))
def test_parameter_count_equals_torchvision(arch):
    model = build(arch, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS_1000[arch]


@pytest.mark.parametrize("arch", list(KNOWN_KEYS))
def test_state_dict_keys_and_shapes_equal_torchvision(arch):
    state = build(arch, num_classes=1000).state_dict()
    for key, shape in KNOWN_KEYS[arch].items():
        assert tuple(state[key].shape) == shape, key


def test_every_arch_maps_a_batch_to_six_logits():
    for arch in ARCHS:
        out = build(arch, in_channels=9).eval()(torch.zeros(2, 9, 64, 64))
        assert out.shape == (2, 6), arch


def test_unknown_arch_is_refused():
    with pytest.raises(IchprepError, match="unknown arch"):
        build("vgg16")


def test_load_pretrained_takes_everything_but_the_head(tmp_path):
    source = build("resnet18", num_classes=1000)
    path = tmp_path / "imagenet.pth"
    torch.save(source.state_dict(), path)
    model = load_pretrained(build("resnet18"), path)
    assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.fc.weight.shape == (6, 512)


def test_load_pretrained_adapts_the_first_conv_to_stacked_slices(tmp_path):
    source = build("densenet121", num_classes=1000)
    path = tmp_path / "dn.pth"
    torch.save(source.state_dict(), path)
    model = load_pretrained(build("densenet121", in_channels=9), path)
    w = model.features.conv0.weight
    assert w.shape == (64, 9, 7, 7)
    # Three identical slices (9 channels) must reproduce the RGB response of one slice.
    x = torch.randn(1, 3, 16, 16)
    rgb = torch.nn.functional.conv2d(x, source.features.conv0.weight)
    stacked = torch.nn.functional.conv2d(x.repeat(1, 3, 1, 1), w)
    assert torch.allclose(rgb, stacked, atol=1e-5)


def test_adapt_first_conv_to_one_channel_sums_rgb():
    w = torch.randn(4, 3, 3, 3)
    assert torch.allclose(adapt_first_conv(w, 1), w.sum(dim=1, keepdim=True), atol=1e-6)


def test_load_pretrained_refuses_another_architecture(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(build("resnet34").state_dict(), path)
    with pytest.raises(IchprepError, match="not a ResNet state dict"):
        load_pretrained(build("resnet18"), path)
