"""The two-stage model.pt: the fold CNNs' records and the sequence model, in one file of plain values.

It holds the CNNs rather than naming them, so SRUN/model.pt is the whole model wherever it is
copied; like every model.pt it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import torch

from ichprep import LABELS, __version__
from ichprep.models.saved import SERIES_FORMAT
from ichprep.series.model import SeriesModel

HPARAMS: tuple[str, ...] = ("features", "hidden", "layers", "cell", "conv", "dropout")


def series_record(cnns: list[dict], state: dict, hparams: dict, tta: list[str], scores: dict) -> dict:
    """The two-stage model.pt; ``settings`` (the CNNs' conversion) at the top too, where predict looks for it."""
    return {
        "format": SERIES_FORMAT,
        "cnns": cnns,
        "series": {"state_dict": state, **{k: hparams[k] for k in HPARAMS}},
        "tta": list(tta),
        "settings": cnns[0]["settings"],
        "labels": list(LABELS),
        "train_pos_rate": cnns[0]["train_pos_rate"],
        "true_pos_rate": cnns[0]["true_pos_rate"],
        "scores": scores,
        "ichprep_version": __version__,
    }


def build(hparams: dict) -> SeriesModel:
    """A sequence model of ``hparams`` (``HPARAMS``), its weights as initialised."""
    return SeriesModel(hparams["features"], hparams["hidden"], hparams["layers"], hparams["cell"], hparams["conv"], hparams["dropout"])


def load_series_model(record: dict, device: torch.device) -> SeriesModel:
    """The sequence model of a two-stage ``record`` on ``device`` in eval mode."""
    model = build(record["series"])
    model.load_state_dict(record["series"]["state_dict"])
    return model.to(device).eval()
