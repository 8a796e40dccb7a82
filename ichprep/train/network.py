"""The network of a run: built fresh (or from user weights) on a device, and the model.pt record.

`model.pt` carries everything `predict` needs so that it never has to guess: the architecture,
weights, input channels, neighbours, image size, normalisation and the conversion settings.
"""

from __future__ import annotations

import torch
from torch import nn

from ichprep import LABELS, __version__
from ichprep.settings import load_settings
from ichprep.train.checkpoint import seed_everything
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


def model_record(cfg: TrainConfig, state: dict, ts: TrainSet, in_channels: int, size: int) -> dict:
    """Everything `ichprep predict` needs, and nothing it has to guess."""
    return {
        "arch": cfg.arch,
        "state_dict": state,
        "in_channels": in_channels,
        "neighbours": cfg.neighbours,
        "size": size,
        "settings": load_settings(cfg.data),
        "mean": cfg.mean,
        "std": cfg.std,
        "labels": list(LABELS),
        "train_pos_rate": ts.train_rate.tolist(),
        "true_pos_rate": ts.true_rate.tolist(),
        "ichprep_version": __version__,
    }
