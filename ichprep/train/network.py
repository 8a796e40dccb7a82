"""The network of a run: its input normalisation, built from its starting weights on a device, and its model.pt record.

What a model.pt holds, and how it loads again, is ``models.saved``: predict reads it without
importing training.
"""

from __future__ import annotations

import torch
from torch import nn

from ichprep.data.dataset import MEAN, STD
from ichprep.models.pretrained import RANDOM, Start, build, resolve
from ichprep.models.saved import CnnModel
from ichprep.train.checkpoint import seed_everything
from ichprep.train.config import TrainConfig
from ichprep.train.trainset import TrainSet


def start_of(cfg: TrainConfig) -> Start:
    """The run's starting weights: the ones resolved before any work, else resolved now."""
    return cfg.start if cfg.start is not None else resolve(cfg.arch, cfg.weights, cfg.pretrained)


def normalisation(cfg: TrainConfig, start: Start, in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of the network's input, by ``cfg.norm`` (``models.inputs.NORMS``).

    The pretrained config's three values follow the stem: tiled when the channels are stacked
    slices (3 per slice), their average on every channel otherwise, as timm adapts the stem itself.
    """
    use_pretrained = cfg.norm == "pretrained" or (cfg.norm == "auto" and start.kind != RANDOM)
    if not use_pretrained:
        return (MEAN,) * in_channels, (STD,) * in_channels
    import timm

    pcfg = timm.models.get_pretrained_cfg(start.arch)
    mean, std = (tuple(pcfg.mean), tuple(pcfg.std)) if pcfg is not None else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if in_channels % len(mean) == 0:
        return mean * (in_channels // len(mean)), std * (in_channels // len(std))
    return (sum(mean) / len(mean),) * in_channels, (sum(std) / len(std),) * in_channels


def build_model(cfg: TrainConfig, in_channels: int, device: torch.device, start: Start) -> nn.Module:
    """The network of ``start`` with ``in_channels`` inputs on ``device``, its new head seeded by ``cfg.seed``."""
    seed_everything(cfg.seed)
    model = build(start, in_channels).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def model_record(cfg: TrainConfig, state: dict, ts: TrainSet, in_channels: int, size: int, start: Start, epoch: int,
                 run: str) -> CnnModel:
    """Everything `ichprep predict` needs, and nothing it has to guess: the weights of epoch ``epoch`` (0-based) of run ``run``."""
    return CnnModel(
        arch=start.arch, weights=start.record(), state_dict=state, in_channels=in_channels, neighbours=cfg.neighbours,
        stack=cfg.stack, size=size, settings=ts.data.settings.to_dict() if ts.data.settings is not None else {},
        mean=list(cfg.mean), std=list(cfg.std), train_pos_rate=ts.train_rate.tolist(), true_pos_rate=ts.true_rate.tolist(),
        views=cfg.views(), fold=cfg.fold, epoch=epoch + 1, trained=run,
    )
