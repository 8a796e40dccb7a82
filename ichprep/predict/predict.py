"""`ichprep predict`: trained model.pt files applied to converted images or DICOMs, their probabilities averaged.

A model trained on a rebalanced sample learned that sample's positive rates; its probabilities
are corrected to the true rates it recorded (``metrics.prior_correct``) unless asked not to, and
the prediction says so in a note. A two-stage model learned the true rates itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ichprep import LABELS, layout
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.metrics import prior_correct
from ichprep.models.apply import check_data, check_views, default_batch, predict_ids
from ichprep.models.device import pick_device
from ichprep.models.saved import CnnModel, Single, TwoStage, members, rates
from ichprep.paths import is_local
from ichprep.predict.dicoms import convert_dicoms, scratch_folder, temporary_folder
from ichprep.predict.two_stage import predict_series
from ichprep.settings import Settings
from ichprep.store import Converted, open_converted


@dataclass
class Predictions:
    """Probabilities (N, 6) in LABELS order for the image ids, as predicted, and what was done to them; ``as_learned``
    the same average before any correction to the true rates (what calibration changed, next to it)."""

    ids: list[str]
    probs: np.ndarray
    notes: list[str] = field(default_factory=list)
    as_learned: np.ndarray | None = None


def cnns_of(record: Single) -> list[CnnModel]:
    """The CNNs a model runs: itself, or a two-stage model's fold CNNs."""
    return record.cnns if isinstance(record, TwoStage) else [record]


def check_models(singles: list[tuple[Path, Single]], tta: Sequence[str]) -> None:
    """Refuse, before any work, TTA views a model's training never drew (a two-stage model: its own views by default)."""
    for path, record in singles:
        views = tuple(tta) or (tuple(record.tta) if isinstance(record, TwoStage) else ())
        for cnn in cnns_of(record):
            check_views(cnn, views, path)


def correction_note(singles: list[tuple[Path, Single]], corrected: bool) -> str | None:
    """The one line that says how the probabilities relate to the true positive rates; None where nothing differs."""
    moved = [(p, *rates(r)) for p, r in singles if not np.allclose(*rates(r))]
    if not moved:
        return None
    path, learned, true = moved[0]
    if not corrected:
        return f"probabilities kept at the rates {path} learned (any {learned[0]:.1%}), not the true ones (any {true[0]:.1%})"
    return (f"probabilities corrected from the rates {path} learned (any {learned[0]:.1%}) to the true ones (any {true[0]:.1%}); "
            "--no-prior-correction: as learned")


def _single(record: Single, converted: Converted, chosen: list[str], dev: torch.device, tta: Sequence[str], batch: int,
            workers: int, prefetch: int | None, quiet: bool) -> np.ndarray:
    """One model's probabilities of ``chosen``, as it learned them."""
    if isinstance(record, TwoStage):
        return predict_series(record, converted, chosen, dev, tta, batch, workers, prefetch, quiet)
    return predict_ids(record, converted, chosen, dev, tta, batch, workers, prefetch, quiet)


def predict(
    models: str | Path | Sequence[str | Path],
    data: str | Path,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str = "auto",
    tta: Sequence[str] = (),
    prior_correction: bool = True,
    quiet: bool = False,
    headers: tuple[str, ...] = (),
    ids: Sequence[str] | None = None,
    scratch: Path | None = None,
) -> Predictions:
    """Probabilities for every image of DATA (or its ``ids``), averaged over every model given.

    ``models`` are model.pt files; a fold ensemble's model.pt stands for its folds, a two-stage one
    (`train-series`) predicts series by series (``two_stage``), and models of different archs,
    sizes or stacks average alike, one network in memory at a time. DATA is convert's output, or
    DICOMs (a path, a zip's URL with ``headers``, ``kaggle://COMPETITION`` or ``-``) rendered with
    the first model's settings into a temporary folder in ``scratch_folder(scratch)``, which every
    exit removes. ``tta`` names test-time views (``models.tta.VIEWS``), each one the models'
    training drew. ``prior_correction`` moves each model's probabilities from the positive rates
    it learned to the true ones. ``batch_size`` and ``workers`` default by device.
    """
    dev = pick_device(device)
    paths = [models] if isinstance(models, (str, Path)) else list(models)
    singles = [single for path in paths for single in members(path)]
    check_models(singles, tta)
    with ExitStack() as stack:
        if is_local(data) and layout.is_converted(Path(data)):
            folder = Path(data)
        else:
            tmp = temporary_folder(stack, scratch_folder(scratch))
            folder = convert_dicoms(data, tmp, Settings.from_dict(cnns_of(singles[0][1])[0].settings), quiet, headers)
        converted = open_converted(folder)
        for path, record in singles:
            for cnn in cnns_of(record):
                check_data(cnn, converted, path)
        chosen = list(converted.images.ids) if ids is None else list(ids)
        num_workers, prefetch = loader_workers(workers, dev, 1, usable_cores())
        total, learned_total = np.zeros((len(chosen), len(LABELS))), np.zeros((len(chosen), len(LABELS)))
        for _, record in singles:
            probs = _single(record, converted, chosen, dev, tta, batch_size or default_batch(dev), num_workers, prefetch, quiet)
            learned_total += probs
            if prior_correction:
                learned, true = rates(record)
                probs = prior_correct(probs, true, learned)
            total += probs
    note = correction_note(singles, prior_correction)
    return Predictions(chosen, total / len(singles), [note] if note else [], learned_total / len(singles))
