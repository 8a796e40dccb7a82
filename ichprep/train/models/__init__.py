"""Image classifiers in plain torch whose parameter names equal torchvision's.

`build(arch)` makes a fresh network with a `num_classes` head and `in_channels` inputs;
`load_pretrained(model, path)` loads a user-supplied torchvision state dict into it, dropping the
ImageNet head and adapting the first convolution to the input channel count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ichprep.errors import IchprepError
from ichprep.train.models.alexnet import alexnet
from ichprep.train.models.densenet import densenet121
from ichprep.train.models.resnet import resnet18, resnet34, resnet50, resnet101

ARCHS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "densenet121": densenet121,
    "alexnet": alexnet,
}
"""Architecture name -> constructor(num_classes, in_channels)."""

_FIRST_CONV: dict[str, str] = {"resnet": "conv1.weight", "densenet": "features.conv0.weight", "alexnet": "features.0.weight"}
_HEAD: dict[str, tuple[str, ...]] = {
    "resnet": ("fc.weight", "fc.bias"),
    "densenet": ("classifier.weight", "classifier.bias"),
    "alexnet": ("classifier.6.weight", "classifier.6.bias"),
}


def _family(model: nn.Module) -> str:
    """Which layout `model` has, told by the name of its first convolution."""
    keys = model.state_dict()
    return next(f for f, key in _FIRST_CONV.items() if key in keys)


def build(arch: str, num_classes: int = 6, in_channels: int = 3) -> nn.Module:
    """A freshly initialised `arch` with a `num_classes` output and `in_channels` input channels."""
    if arch not in ARCHS:
        raise IchprepError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch](num_classes=num_classes, in_channels=in_channels)


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Map an RGB first-conv kernel (O, 3, k, k) to `in_channels` inputs.

    Why this way: for a multiple of 3 (stacked slices, 3 windows each) the RGB kernel is tiled and
    scaled by 3 / in_channels, so a stack of identical slices gives exactly the pretrained activation;
    otherwise every channel gets the RGB mean scaled the same way (one channel = the sum).
    """
    cin = weight.shape[1]
    if in_channels == cin:
        return weight
    if in_channels % cin == 0:
        tiled = weight.repeat(1, in_channels // cin, 1, 1)
    else:
        tiled = weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)
    return tiled * (cin / in_channels)


def load_pretrained(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a torchvision-style state dict from `path` into `model`, minus its classification head.

    Every other key must match (strict apart from the head), so a wrong file fails loudly instead
    of silently training from a half-loaded network.
    """
    from ichprep.train.checkpoint import load_plain

    state = load_plain(path, f"--weights {path} is not a torch state dict")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise IchprepError(f"--weights {path} holds a {type(state).__name__}, not a state dict")
    family = _family(model)
    head = _HEAD[family]
    state = {k: v for k, v in state.items() if k not in head}
    conv_key = _FIRST_CONV[family]
    in_channels = model.state_dict()[conv_key].shape[1]
    if conv_key in state:
        state[conv_key] = adapt_first_conv(state[conv_key], in_channels)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - set(head) or unexpected:
        raise IchprepError(
            f"{path}: not a {type(model).__name__} state dict (missing {sorted(set(missing) - set(head))[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    return model
