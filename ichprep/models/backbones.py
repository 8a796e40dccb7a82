"""timm backbones by name: `resnet34`, or `name.tag` for one of its pretrained tags.

Every network ends in a six-label head (``timm.create_model(num_classes=6)``) and takes
``in_chans`` inputs: 3 windows, or 3 x (2K + 1) with K neighbouring slices on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ichprep import LABELS
from ichprep.errors import IchprepError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Backbone:
    """One of the curated architectures, and who used it in the 2019 competition."""

    arch: str
    used_by: str


CURATED: tuple[Backbone, ...] = (
    Backbone("resnet18", "fastai notebooks (Jeremy Howard's starter kernels)"),
    Backbone("resnet34", "fastai notebooks; many public kernels"),
    Backbone("resnet50", "fastai notebooks; public kernels"),
    Backbone("densenet121", "1st place (SeuTao et al.), 2.5D stage-1 CNN"),
    Backbone("densenet169", "1st place (SeuTao et al.), 2.5D stage-1 CNN"),
    Backbone("efficientnet_b0", "several top-placed 2019 ensembles"),
    Backbone("efficientnet_b1", "several top-placed 2019 ensembles"),
    Backbone("efficientnet_b2", "several top-placed 2019 ensembles"),
    Backbone("efficientnet_b3", "several top-placed 2019 ensembles"),
    Backbone("seresnext50_32x4d", "1st place (SE-ResNeXt50/101 stage-1 CNNs)"),
    Backbone("resnext101_32x8d.fb_wsl_ig1b_ft_in1k", "2nd place (NoBrainer team), ResNeXt101 32x8d WSL"),
    Backbone("convnext_tiny", "none (2022): a modern baseline at about resnet50's cost"),
)
"""The short list `--help` and the README show; the README's table adds each one's parameters and
CPU speed, measured by ``benchmarks/train_speed.py --curated``."""


def split_arch(arch: str) -> tuple[str, str | None]:
    """(model name, pretrained tag or None) of ``name`` or ``name.tag``."""
    name, _, tag = arch.partition(".")
    return name, tag or None


def check_arch(arch: str) -> str:
    """``arch`` itself when timm knows the model (and the tag, when one is given); else the one-line refusal."""
    import timm

    name, tag = split_arch(arch)
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5] if name else []
        hint = f" (close: {', '.join(close)})" if close else ""
        raise IchprepError(f"--arch {arch!r}: timm has no model {name!r}{hint}; see `ichprep train --help` for the curated list")
    if tag is not None and arch not in timm.list_pretrained(name):
        tags = [t.partition(".")[2] for t in timm.list_pretrained(name)]
        raise IchprepError(f"--arch {arch!r}: {name} has no pretrained tag {tag!r}; its tags: {', '.join(tags) or 'none'}")
    return arch


def create(arch: str, in_chans: int, **pretrained: object) -> nn.Module:
    """timm's ``arch`` with a six-label head and ``in_chans`` inputs; ``pretrained`` is passed to timm as is."""
    import timm

    return timm.create_model(arch, num_classes=len(LABELS), in_chans=in_chans, **pretrained)


def layer_groups(model: nn.Module, weight_decay: float, lr_mult: float) -> list[dict]:
    """Optimizer parameter groups, stem to head, each with its ``lr_scale`` and ``weight_decay``.

    Discriminative learning rates as fastai's ``slice(lr / lr_mult, lr)``: the head learns at the
    full rate, the stem at 1 / lr_mult, the blocks between on a geometric ramp. timm's own grouping
    orders the blocks (``param_groups_layer_decay``, the BEiT layer decay, with the decay that puts
    the stem at 1 / lr_mult); norms and biases take no weight decay, as in timm's optimizers.
    ``head`` marks the top group, the one that trains while the body is frozen.
    """
    from timm.models import group_parameters
    from timm.optim import param_groups_layer_decay
    from timm.optim._param_groups import auto_group_layers

    if hasattr(model, "group_matcher"):
        layers = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    else:
        layers = auto_group_layers(model)
    depth = max(layers.values())
    # Without a ramp (lr_mult 1) any decay below 1 still tells the head's group apart; the scales are then reset to 1.
    decay = lr_mult ** (-1.0 / depth) if depth and lr_mult > 1 else 0.5
    groups = param_groups_layer_decay(model, weight_decay=weight_decay, layer_decay=decay)
    top = max(g["lr_scale"] for g in groups)
    for g in groups:
        g["head"] = g["lr_scale"] == top
        if lr_mult <= 1:
            g["lr_scale"] = 1.0
    return groups
