"""The network of a run: built from its starting weights on a device, saved to and loaded from model.pt.

`model.pt` carries everything `predict` needs so that it never has to guess: the timm arch and
tag, where its starting weights came from, the trained weights, input channels, how slices are
stacked, image size, per-channel normalisation and the conversion settings. It holds only tensors
and plain values, so it loads with ``torch.load(weights_only=True)``: opening a model file never
runs code from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ichprep import LABELS, __version__
from ichprep.errors import IchprepError
from ichprep.models.pretrained import RANDOM, Start, build, resolve
from ichprep.series.network import SERIES_FORMAT
from ichprep.settings import Settings
from ichprep.train.checkpoint import load_plain, seed_everything
from ichprep.train.config import TrainConfig
from ichprep.train.dataset import MEAN, STD
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


MODEL_FORMAT = "ichprep-model/2"
"""The marker every model.pt carries; anything else is refused before it is used (/1 held the
hand-written networks that timm's replaced)."""


def model_record(cfg: TrainConfig, state: dict, ts: TrainSet, in_channels: int, size: int, start: Start) -> dict:
    """Everything `ichprep predict` needs, and nothing it has to guess."""
    return {
        "format": MODEL_FORMAT,
        "arch": start.arch,
        "weights": start.record(),
        "state_dict": state,
        "in_channels": in_channels,
        "neighbours": cfg.neighbours,
        "stack": cfg.stack,
        "size": size,
        "settings": settings.to_dict() if (settings := Settings.load(cfg.data)) is not None else {},
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "labels": list(LABELS),
        "train_pos_rate": ts.train_rate.tolist(),
        "true_pos_rate": ts.true_rate.tolist(),
        "fold": cfg.fold,
        "ichprep_version": __version__,
    }


def load_record(path: str | Path) -> dict:
    """The record of an ichprep model.pt, loaded without unpickling arbitrary objects."""
    record = load_plain(path, f"MODEL {path} is not a model.pt written by `ichprep train`")
    if not isinstance(record, dict) or record.get("format") not in (MODEL_FORMAT, ENSEMBLE_FORMAT, SERIES_FORMAT):
        older = isinstance(record, dict) and str(record.get("format", "")).startswith("ichprep-model/")
        raise IchprepError(f"MODEL {path} is not a model.pt this ichprep can use"
                           + ("; it was made by an older ichprep: train it again" if older else f" (no {MODEL_FORMAT} marker)"))
    return record


def labels_order(record: dict) -> list[int]:
    """Columns that put the outputs of a model.pt ``record`` (its ``labels`` order) in LABELS order."""
    return [list(record["labels"]).index(label) for label in LABELS]


def load_model(record: dict, device: torch.device) -> nn.Module:
    """The network of a model.pt ``record`` on ``device`` in eval mode."""
    model = build(Start(record["arch"], RANDOM), record["in_channels"])
    model.load_state_dict(record["state_dict"])
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


ENSEMBLE_FORMAT = "ichprep-ensemble/1"
"""The marker of a model.pt that names other model.pt files (a fold ensemble) instead of holding weights."""


def ensemble_record(members: list[str]) -> dict:
    """A model.pt averaging ``members`` (paths relative to the file's folder, so the run folder moves whole)."""
    return {"format": ENSEMBLE_FORMAT, "members": list(members), "ichprep_version": __version__}


def members(path: str | Path) -> list[tuple[Path, dict]]:
    """The single models of a model.pt, (path, record) each: itself, or an ensemble's members (nested ones too).

    A two-stage model (``SERIES_FORMAT``) is one member: its CNNs only make sense with its sequence model.
    """
    path = Path(path)
    record = load_record(path)
    if record["format"] in (MODEL_FORMAT, SERIES_FORMAT):
        return [(path, record)]
    out = []
    for name in record["members"]:
        member = path.parent / name
        if not member.is_file():
            raise IchprepError(f"MODEL {path} averages {name}, which is missing beside it; copy the whole run folder")
        out += members(member)
    return out
