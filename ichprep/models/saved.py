"""model.pt files: what they hold, how they load without running code, and the single models an ensemble names.

Every model.pt carries everything `predict` needs so that it never has to guess: the timm arch and
tag, where its starting weights came from, the trained weights, input channels, how slices are
stacked, image size, per-channel normalisation and the conversion settings (``train.network``
writes it). A fold ensemble's names other model.pt files; a two-stage one holds its fold CNNs and
the sequence model (``series.network``). They hold only tensors and plain values, so they load
with ``torch.load(weights_only=True)``: opening a model file never runs code from it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ichprep import LABELS, __version__
from ichprep.errors import IchprepError
from ichprep.models.pretrained import RANDOM, Start, build

MODEL_FORMAT = "ichprep-model/2"
"""The marker every model.pt carries; anything else is refused before it is used (/1 held the
hand-written networks that timm's replaced)."""

ENSEMBLE_FORMAT = "ichprep-ensemble/1"
"""The marker of a model.pt that names other model.pt files (a fold ensemble) instead of holding weights."""

SERIES_FORMAT = "ichprep-series/1"
"""The marker of a two-stage model.pt (``cnns``: fold CNN records; ``series``: the sequence model)."""


def load_plain(path: str | Path, refusal: str, marker: str | None = None) -> Any:
    """A torch file of tensors and plain values, loaded without running code from it.

    Anything else (a foreign pickle, a damaged or older file, a file without ``marker``) is an
    ``IchprepError``: ``refusal`` says what the file should have been, the reason follows it.
    """
    try:
        with warnings.catch_warnings():  # a foreign file's pickle-protocol warning is noise: the refusal says it all
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a foreign, damaged or older file in many exception types
        raise IchprepError(f"{refusal} ({type(err).__name__})") from None
    if marker is not None and (not isinstance(loaded, dict) or loaded.get("format") != marker):
        raise IchprepError(f"{refusal} (no {marker} marker)")
    return loaded


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
