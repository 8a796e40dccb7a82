"""timm backbones by name, and their layer groups for discriminative learning rates."""

import pytest
import timm

from ichprep.errors import IchprepError
from ichprep.models.backbones import CURATED, check_arch, create, layer_groups, split_arch


def test_every_curated_arch_is_a_timm_model_with_pretrained_weights():
    for backbone in CURATED:
        name, tag = split_arch(backbone.arch)
        assert timm.is_model(name), backbone.arch
        assert timm.list_pretrained(backbone.arch if tag else f"{name}.*"), backbone.arch
        assert check_arch(backbone.arch) == backbone.arch


def test_name_and_tag_split_at_the_first_dot():
    assert split_arch("resnext101_32x8d.fb_wsl_ig1b_ft_in1k") == ("resnext101_32x8d", "fb_wsl_ig1b_ft_in1k")
    assert split_arch("resnet34") == ("resnet34", None)


@pytest.mark.parametrize("arch, says", [("resnet18x", "timm has no model 'resnet18x'"),
                                        ("resnet18.no_such_tag", "no pretrained tag 'no_such_tag'")])
def test_an_unknown_arch_or_tag_is_refused_in_one_line(arch, says):
    with pytest.raises(IchprepError, match=says) as refusal:
        check_arch(arch)
    assert "\n" not in str(refusal.value)


def test_the_network_has_six_outputs_and_the_asked_inputs():
    import torch

    model = create("resnet18", 9)
    assert model.conv1.in_channels == 9
    assert model(torch.zeros(2, 9, 32, 32)).shape == (2, 6)


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "efficientnet_b0"])
def test_layer_groups_ramp_the_rate_from_stem_to_head_and_spare_norms_the_decay(arch):
    model = create(arch, 3)
    groups = layer_groups(model, weight_decay=0.01, lr_mult=100)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: g["lr_scale"] for g in groups for p in g["params"]}
    assert sorted(scale) == sorted(names.values())  # every parameter exactly once
    first = next(iter(names.values()))
    assert scale[first] == pytest.approx(0.01) and max(scale.values()) == 1.0
    order = [scale[n] for n in names.values()]
    assert order == sorted(order)  # never faster nearer the input (parameters are listed stem to head)
    head = {n for g in groups if g["head"] for p in g["params"] for n in [names[id(p)]]}
    classifier = model.pretrained_cfg["classifier"]
    assert {f"{classifier}.weight", f"{classifier}.bias"} <= head
    assert all(g["weight_decay"] == 0.0 for g in groups for p in g["params"] if p.ndim == 1)
    assert all(g["weight_decay"] == 0.01 for g in groups for p in g["params"] if p.ndim > 1)


def test_from_random_weights_every_group_learns_at_the_full_rate():
    groups = layer_groups(create("resnet18", 3), weight_decay=0.01, lr_mult=1)
    assert {g["lr_scale"] for g in groups} == {1.0} and any(g["head"] for g in groups)


def test_the_training_page_lists_the_curated_archs_in_order():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "train.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in readme.splitlines()
            if line.startswith("| `") and line.count("|") == 6 and "img/s" not in line]
    listed = [r for r in rows if split_arch(r)[0] in {split_arch(b.arch)[0] for b in CURATED}]
    assert listed == [b.arch for b in CURATED]
