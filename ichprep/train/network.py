"""The network of a run: built fresh (or from user weights) on a device, saved to and loaded from model.pt.

`model.pt` carries everything `predict` needs so that it never has to guess: the architecture,
weights, input channels, neighbours, image size, normalisation and the conversion settings. It
holds only tensors and plain values, so it loads with ``torch.load(weights_only=True)``: opening a
model file never runs code from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ichprep import LABELS, __version__
from ichprep.settings import Settings
from ichprep.train.checkpoint import load_plain, seed_everything
from ichprep.train.config import TrainConfig
from ichprep.train.models import build, load_pretrained
from ichprep.train.trainset import TrainSet


def build_model(cfg: TrainConfig, in_channels: int, device: torch.device) -> nn.Module:
    """The network of `cfg.arch`, with the user's pretrained weights when given, on `device`."""
    seed_everything(cfg.seed)
    model = build(cfg.arch, num_classes=len(LABELS), in_channels=in_channels)
    if cfg.weights is not None:
        load_pretrained(model, cfg.weights)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


MODEL_FORMAT = "ichprep-model/1"
"""The marker every model.pt carries; anything else is refused before it is used."""


def model_record(cfg: TrainConfig, state: dict, ts: TrainSet, in_channels: int, size: int) -> dict:
    """Everything `ichprep predict` needs, and nothing it has to guess."""
    return {
        "format": MODEL_FORMAT,
        "arch": cfg.arch,
        "state_dict": state,
        "in_channels": in_channels,
        "neighbours": cfg.neighbours,
        "size": size,
        "settings": settings.to_dict() if (settings := Settings.load(cfg.data)) is not None else {},
        "mean": cfg.mean,
        "std": cfg.std,
        "labels": list(LABELS),
        "train_pos_rate": ts.train_rate.tolist(),
        "true_pos_rate": ts.true_rate.tolist(),
        "ichprep_version": __version__,
    }


def load_record(path: str | Path) -> dict:
    """The record of an ichprep model.pt, loaded without unpickling arbitrary objects."""
    return load_plain(path, f"MODEL {path} is not a model.pt written by `ichprep train`", MODEL_FORMAT)


def load_model(path: str | Path, device: torch.device) -> tuple[nn.Module, dict]:
    """The network and the record `ichprep train` saved in model.pt, on ``device`` in eval mode."""
    record = load_record(path)
    model = build(record["arch"], num_classes=len(record["labels"]), in_channels=record["in_channels"])
    model.load_state_dict(record["state_dict"])
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, record
