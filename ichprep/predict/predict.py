"""`ichprep predict`: trained model.pt files applied to converted images or DICOMs, their probabilities averaged."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ichprep import LABELS, layout
from ichprep.data.dataset import make_dataset
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.errors import IchprepError
from ichprep.metrics import prior_correct
from ichprep.models.device import pick_device
from ichprep.models.saved import labels_order, load_model, members
from ichprep.paths import is_local
from ichprep.predict.dicoms import convert_dicoms, scratch_folder, temporary_folder
from ichprep.predict.inference import predict_loader
from ichprep.settings import Settings
from ichprep.store import Converted, open_converted


@dataclass
class Predictions:
    """Probabilities (N, 6) in LABELS order for the image ids, as predicted."""

    ids: list[str]
    probs: np.ndarray


def check_data(record: dict, data: Converted, model: Path | None = None) -> None:
    """Refuse DATA whose images were made differently from the model's training images.

    A model applied to other windows, another size or crop, or another encoding would still
    print probabilities, and a wrong submission that exits 0 is the worst outcome there is.
    """
    trained = Settings.from_dict(record["settings"])
    made = data.settings
    if made is None:
        raise IchprepError(f"DATA {data.folder} has no {layout.SETTINGS}, so how its images were made is unknown; "
                           "give predict the DICOMs (they are converted with the model's settings)")
    changed = trained.pixel_differences(made)
    if changed:
        raise IchprepError(f"DATA {data.folder} was converted with other settings than the model's training data "
                           f"({'; '.join(changed)}); give predict the DICOMs, or convert them with the model's settings")
    side = 1 if record["stack"] == "2.5d" else record["neighbours"]
    if side and data.series is None:
        raise IchprepError(f"the model {model or ''} stacks {side} neighbouring slice(s) on each side, but DATA {data.folder} "
                           f"has no {layout.MANIFEST} with series positions")


CPU_BATCH: int = 64
CUDA_BATCH: int = 256
"""Default images per batch of predict (with --tta, each view adds as many to one forward pass). Inference
holds the activations of a layer or two at a time, where training holds every layer's for the
backward pass, so a GPU that trains batches of 64 predicts larger ones; lower --batch-size if not."""


def predict(
    models: str | Path | Sequence[str | Path],
    data: str | Path,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str = "auto",
    tta: Sequence[str] = (),
    prior_correction: bool = False,
    quiet: bool = False,
    headers: tuple[str, ...] = (),
    ids: Sequence[str] | None = None,
    scratch: Path | None = None,
) -> Predictions:
    """Probabilities for every image of DATA (or its ``ids``), averaged over every model given.

    ``models`` are model.pt files; a fold ensemble's model.pt stands for its folds, a two-stage one
    (`train-series`) predicts series by series (``series.predict``), and models of
    different archs, sizes or stacks average alike, one network in memory at a time. DATA is
    convert's output, or DICOMs (a path, a zip's URL with ``headers``, ``kaggle://COMPETITION`` or
    ``-``) rendered with the first model's settings into a temporary folder in
    ``scratch_folder(scratch)``, which every exit removes. ``tta`` names test-time views
    (``tta.TTA``). A model trained at another size than its images were stored (``--sizes``)
    gets its batches resized on the device as training resized them. ``batch_size`` and
    ``workers`` default by device (CPU_BATCH or CUDA_BATCH; ``data.workers.loader_workers``).
    """
    dev = pick_device(device)
    paths = [models] if isinstance(models, (str, Path)) else list(models)
    singles = [single for path in paths for single in members(path)]
    with ExitStack() as stack:
        if is_local(data) and layout.is_converted(Path(data)):
            folder = Path(data)
        else:
            tmp = temporary_folder(stack, scratch_folder(scratch))
            folder = convert_dicoms(data, tmp, Settings.from_dict(singles[0][1]["settings"]), quiet, headers)
        converted = open_converted(folder)
        for path, record in singles:
            for cnn in record.get("cnns", [record]):
                check_data(cnn, converted, path)
        chosen = list(converted.images.ids) if ids is None else list(ids)
        batch = batch_size or (CUDA_BATCH if dev.type == "cuda" else CPU_BATCH)
        num_workers, prefetch = loader_workers(workers, dev, 1, usable_cores())
        total = np.zeros((len(chosen), len(LABELS)))
        for _, record in singles:
            if "cnns" in record:
                from ichprep.series.predict import predict_series

                probs = predict_series(record, converted, chosen, dev, tta, batch, num_workers, prefetch, quiet)
            else:
                loader = model_loader(record, converted, chosen, batch, num_workers, prefetch, dev)
                model = load_model(record, dev)
                probs = predict_loader(model, loader, dev, record["size"], record["mean"], record["std"], tta, quiet)
                probs = probs[:, labels_order(record)]
                del model
            if prior_correction:
                probs = prior_correct(probs, np.asarray(record["true_pos_rate"]), np.asarray(record["train_pos_rate"]))
            total += probs
    return Predictions(chosen, total / len(singles))


def model_loader(record: dict, data: Converted, ids: list[str], batch: int, workers: int, prefetch: int | None,
                 device: torch.device) -> DataLoader:
    """The images ``ids`` of DATA, in that order, as the model of a model.pt ``record`` reads them (its stack and
    neighbours: only a model that stacks slices reads the manifest's series)."""
    stacks = record["stack"] == "2.5d" or record["neighbours"]
    ds = make_dataset(data.images, ids, None, data.series if stacks else None, record["neighbours"], record["stack"])
    return DataLoader(ds, batch_size=batch, num_workers=workers, prefetch_factor=prefetch, pin_memory=device.type == "cuda")
