"""Published 2019 configurations by name, for `train --recipe` and `train-series --recipe`.

A recipe sets the options its source published; the rest keep ichprep's defaults and are shown
as such. Options given on the command line win over the recipe. ``--scale tiny`` swaps in a tiny
network from random weights, small images, two folds and short runs, so the whole two-stage
pipeline of a recipe runs on phantoms in a minute or two on a CPU; ``full`` is the published scale.
The conversion a recipe expects (windows, size) is printed as advice: it is decided by `convert`.
"""

from __future__ import annotations

from typing import Any

import typer

from ichprep.errors import IchprepError

RECIPES: dict[str, dict[str, Any]] = {
    "nobrainer-2019": {
        "about": "2nd place, RSNA 2019 (team NoBrainer): ResNeXt101 32x8d WSL embeddings into a 2-layer bidirectional LSTM",
        "source": "https://github.com/darraghdog/rsna",
        "convert": "ichprep convert DICOMS OUT --size 512 --windows 40/80,80/200,40/380",
        "train": {"arch": "resnext101_32x8d.fb_wsl_ig1b_ft_in1k", "sizes": "480", "folds": 5, "stack": "windows"},
        "series": {"cell": "lstm", "layers": 2, "conv": 0, "tta": "hflip,transpose"},
    },
    "seutao-2019": {
        "about": "1st place, RSNA 2019 (SeuTao): DenseNet121 / SE-ResNeXt on 3-slice 2.5D input, then GRU plus 1-D convolution",
        "source": "https://github.com/SeuTao/RSNA2019_Intracranial-Hemorrhage-Detection",
        "convert": "ichprep convert DICOMS OUT --size 256 (the brain window of three slices is the 2.5D input)",
        "train": {"arch": "densenet121", "sizes": "256", "folds": 5, "stack": "2.5d"},
        "series": {"cell": "gru", "layers": 2, "conv": 3},
    },
    "fastai-2019": {
        "about": "the fastai notebooks of the competition: a resnet, progressive resizing, freeze then unfreeze",
        "source": "Jeremy Howard's fastai notebooks for the competition on Kaggle",
        "convert": "ichprep convert DICOMS OUT --windows fastai",
        "train": {"arch": "resnet34", "sizes": "128,192,256", "freeze_epochs": 1, "folds": 5},
        "series": {"cell": "gru", "layers": 2},
    },
}

TINY: dict[str, dict[str, Any]] = {
    "train": {"arch": "test_resnet", "pretrained": False, "folds": 2, "epochs": 2, "batch_size": 16, "workers": 0},
    "series": {"hidden": 16, "epochs": 3, "batch_size": 4},
}
"""What ``--scale tiny`` changes: a tiny timm test network from random weights, two folds, two epochs."""
TINY_SIZES = {"480": "32", "256": "32", "128,192,256": "16,24,32"}
SCALES = ("full", "tiny")


def recipe(name: str, scale: str = "full") -> dict[str, Any]:
    """The recipe ``name``, refused with the choices when unknown."""
    if name not in RECIPES:
        raise IchprepError(f"--recipe {name!r}: choose {', '.join(RECIPES)}")
    if scale not in SCALES:
        raise IchprepError(f"--scale {scale!r}: choose full or tiny")
    return RECIPES[name]


def settings(name: str, stage: str, scale: str = "full") -> dict[str, Any]:
    """The options recipe ``name`` sets for ``stage`` (``train`` or ``series``) at ``scale``."""
    values = dict(recipe(name, scale)[stage])
    if scale == "tiny":
        values.update(TINY[stage])
        if "sizes" in values:
            values["sizes"] = TINY_SIZES.get(values["sizes"], "32")
    return values


def apply(ctx: typer.Context, name: str, stage: str, options: dict[str, Any], scale: str = "full") -> dict[str, Any]:
    """``options`` with the recipe's values wherever the user left the option at its default."""
    out = dict(options)
    for key, value in settings(name, stage, scale).items():
        source = ctx.get_parameter_source(key)  # Typer's own copy of click's ParameterSource: compared by name
        if source is None or source.name == "DEFAULT":
            out[key] = value
    return out


def show(name: str, stage: str, options: dict[str, Any], scale: str = "full") -> str:
    """The recipe in full, as printed before the run: its source, the conversion it expects, every option."""
    info, set_here = recipe(name, scale), settings(name, stage, scale)
    lines = [f"recipe {name} ({scale} scale): {info['about']}", f"  source: {info['source']}", f"  data: {info['convert']}"]
    for key, value in options.items():
        lines.append(f"  --{key.replace('_', '-')} {value}" + ("" if key in set_here else "  (ichprep default)"))
    return "\n".join(lines)
