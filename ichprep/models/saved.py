"""model.pt files: one typed record per kind, and the one place they are saved, loaded and versioned.

Three kinds, each a dataclass:

- ``CnnModel``: one trained CNN and everything `predict` needs so that it never has to guess: the
  timm arch and tag, where its starting weights came from, the trained weights, input channels,
  how slices are stacked, image size, per-channel normalisation, the conversion settings, the
  positive rates it learned and the true ones, and the views its training augmentation drew.
- ``FoldEnsemble``: a ``train --folds`` run's model.pt, naming its fold models (relative paths).
- ``TwoStage``: ``train-series``' model.pt, holding its fold CNNs and the sequence model, so it is
  the whole model wherever it is copied.

Each file carries its kind's marker with a version; a file of another version, or not an ichprep
model at all, is refused in one line before it is used. They hold only tensors and plain values,
so they load with ``torch.load(weights_only=True)``: opening a model file never runs code from it.
Nothing else in ichprep reads a model.pt or indexes what one holds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ichprep import LABELS, __version__, atomic
from ichprep.errors import IchprepError
from ichprep.models.pretrained import RANDOM, Start, build
from ichprep.models.series_net import SeriesModel, SeriesShape


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


def save_plain(values: dict, path: Path) -> None:
    """torch.save under a temporary name, renamed onto PATH when complete: a crash leaves the old file whole."""
    with atomic.replacing(path) as tmp:
        torch.save(values, tmp)


def as_plain(record: Any) -> dict:
    """A record's fields as plain values (nested records too), without copying the tensors (``asdict`` would)."""
    out = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, list) and value and hasattr(value[0], "__dataclass_fields__"):
            value = [as_plain(v) for v in value]
        elif hasattr(value, "__dataclass_fields__"):
            value = as_plain(value)
        out[f.name] = value
    return out


@dataclass
class CnnModel:
    """One trained CNN (``train``; each fold of ``train --folds``)."""

    FORMAT: ClassVar[str] = "ichprep-model/3"
    arch: str
    weights: dict
    state_dict: dict
    in_channels: int
    neighbours: int
    stack: str
    size: int
    settings: dict
    mean: list[float]
    std: list[float]
    train_pos_rate: list[float]
    true_pos_rate: list[float]
    views: list[str]
    """The views training drew (``models.tta.VIEWS``): the only ones TTA may average over."""
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    fold: int | None = None
    epoch: int = 0
    """The epoch (1-based) these weights are from."""
    trained: str = ""
    """The identity of the training run (kept across resumes): with ``epoch``, which weights these are."""
    ichprep_version: str = __version__

    @property
    def identity(self) -> str:
        """Which weights these are: the run and the epoch (what a cache of their outputs is keyed by)."""
        return f"{self.trained}@{self.epoch}"

    @property
    def order(self) -> list[int]:
        """Columns that put the network's outputs (its ``labels`` order) in LABELS order."""
        return [list(self.labels).index(label) for label in LABELS]

    @property
    def stacks_slices(self) -> bool:
        """Whether an input holds neighbouring slices, which needs the data's series positions."""
        return self.stack == "2.5d" or self.neighbours > 0

    def network(self, device: torch.device) -> nn.Module:
        """The network on ``device`` in eval mode (channels_last on CUDA, as it trained)."""
        model = build(Start(self.arch, RANDOM), self.in_channels)
        model.load_state_dict(self.state_dict)
        model = model.to(device).eval()
        return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


@dataclass
class FoldEnsemble:
    """A ``--folds`` run's model.pt: its fold models by path relative to the file, averaged."""

    FORMAT: ClassVar[str] = "ichprep-ensemble/1"
    members: list[str]
    ichprep_version: str = __version__


@dataclass
class SeriesNet:
    """A trained sequence model: its shape and one weight set per bagged epoch (their predictions are averaged)."""

    shape: dict
    states: list[dict]

    @property
    def series_shape(self) -> SeriesShape:
        return SeriesShape.from_plain(self.shape)

    def networks(self, device: torch.device) -> list[SeriesModel]:
        """The bag's networks on ``device`` in eval mode."""
        out = []
        for state in self.states:
            model = SeriesModel(self.series_shape)
            model.load_state_dict(state)
            out.append(model.to(device).eval())
        return out


@dataclass
class SeriesPart:
    """Fold CNNs (one CNN epoch of them) and the sequence model trained on their out-of-fold embeddings."""

    cnns: list[CnnModel]
    series: SeriesNet


@dataclass
class TwoStage:
    """``train-series``' model.pt: parts (one per CNN epoch embedded), averaged; ``tta`` the embeddings' views."""

    FORMAT: ClassVar[str] = "ichprep-series/2"
    parts: list[SeriesPart]
    tta: list[str]
    reverse: bool
    train_pos_rate: list[float]
    true_pos_rate: list[float]
    scores: dict
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    ichprep_version: str = __version__

    @property
    def cnns(self) -> list[CnnModel]:
        """Every CNN of every part."""
        return [cnn for part in self.parts for cnn in part.cnns]

    @property
    def settings(self) -> dict:
        """The conversion settings of its CNNs' images (every CNN of a run shares them)."""
        return self.parts[0].cnns[0].settings


Single = CnnModel | TwoStage
"""What predicts by itself: a CNN, or a two-stage model (its CNNs only make sense with its sequence model)."""
KINDS: dict[str, type] = {CnnModel.FORMAT: CnnModel, FoldEnsemble.FORMAT: FoldEnsemble, TwoStage.FORMAT: TwoStage}


def _cnn(values: dict) -> CnnModel:
    return CnnModel(**{k: v for k, v in values.items() if k != "format"})


def _two_stage(values: dict) -> TwoStage:
    parts = [SeriesPart([_cnn(c) for c in p["cnns"]], SeriesNet(**p["series"])) for p in values["parts"]]
    return TwoStage(**{**{k: v for k, v in values.items() if k != "format"}, "parts": parts})


def save(record: CnnModel | FoldEnsemble | TwoStage, path: Path) -> None:
    """``record`` as a model.pt at ``path``, written atomically, with its kind's marker."""
    save_plain({"format": record.FORMAT, **as_plain(record)}, path)


def load(path: str | Path) -> CnnModel | FoldEnsemble | TwoStage:
    """The record of an ichprep model.pt; anything else, or a file of another version, is refused in one line."""
    values = load_plain(path, f"MODEL {path} is not a model.pt written by `ichprep train`")
    kind = values.get("format") if isinstance(values, dict) else None
    if kind not in KINDS:
        made_here = isinstance(kind, str) and kind.startswith(("ichprep-model/", "ichprep-ensemble/", "ichprep-series/"))
        raise IchprepError(f"MODEL {path} is not a model.pt this ichprep can use"
                           + (f"; it was made by another version of ichprep ({kind}): train it again" if made_here
                              else f" (no {CnnModel.FORMAT} marker)"))
    try:
        if kind == TwoStage.FORMAT:
            return _two_stage(values)
        return _cnn(values) if kind == CnnModel.FORMAT else FoldEnsemble(**{k: v for k, v in values.items() if k != "format"})
    except (TypeError, KeyError) as err:
        raise IchprepError(f"MODEL {path} is a damaged {kind} file ({err})") from None


def load_cnn(path: str | Path) -> CnnModel:
    """A single CNN's model.pt (a fold's), refused in one line when it is another kind."""
    record = load(path)
    if not isinstance(record, CnnModel):
        raise IchprepError(f"MODEL {path} is not a single CNN's model.pt (it is a {type(record).__name__})")
    return record


def members(path: str | Path) -> list[tuple[Path, Single]]:
    """The models that predict by themselves in a model.pt, (path, record) each: itself, or an ensemble's
    members (nested ones too)."""
    path = Path(path)
    record = load(path)
    if not isinstance(record, FoldEnsemble):
        return [(path, record)]
    out = []
    for name in record.members:
        member = path.parent / name
        if not member.is_file():
            raise IchprepError(f"MODEL {path} averages {name}, which is missing beside it; copy the whole run folder")
        out += members(member)
    return out


def rates(record: Single) -> tuple[np.ndarray, np.ndarray]:
    """(the positive rates a model learned, the true ones): what a prediction is corrected by."""
    return np.asarray(record.train_pos_rate, dtype=np.float64), np.asarray(record.true_pos_rate, dtype=np.float64)
