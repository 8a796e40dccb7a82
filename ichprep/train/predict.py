"""`ichprep predict` and `ichprep evaluate`: a trained model.pt applied to converted images or DICOMs.

A submission has six rows per image, `ID_<image>_<subtype>,<probability>` in the competition's
subtype order. Probabilities are clipped to [CLIP, 1 - CLIP] with CLIP = 1e-4: a confidently
wrong prediction then costs at most -ln(1e-4) = 9.2 instead of ~16-35, while a confidently right
one still costs only 1e-4, about 0.2 % of the winning scores (0.044).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ichprep import LABELS, SUBTYPES, layout
from ichprep.errors import BudgetError, IchprepError
from ichprep.paths import is_local
from ichprep.settings import Settings
from ichprep.store import Store, open_store
from ichprep.train.dataset import load_labels, make_dataset, series_table
from ichprep.train.distributed import pick_device
from ichprep.train.inference import predict_loader
from ichprep.train.loaders import loader_workers, usable_cores
from ichprep.train.metrics import prior_correct
from ichprep.train.network import labels_order, load_model, members

CLIP: float = 1e-4
"""Submission probabilities are kept in [CLIP, 1 - CLIP] (see the module docstring for why)."""
TEMP_PREFIX = ".ichprep-predict-"
"""Raw DICOMs are converted into ``<TEMP_PREFIX><pid>-<random>``; a later predict removes one whose process is dead."""
STALE_TEMP = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-")


@dataclass
class Predictions:
    """Probabilities (N, 6) in LABELS order for the image ids, as predicted."""

    ids: list[str]
    probs: np.ndarray


def convert_dicoms(src: str | Path, out: Path, settings: Settings, quiet: bool = True, headers: tuple[str, ...] = ()) -> Path:
    """Render DICOMs (a path, a zip's URL with ``headers``, ``kaggle://`` or ``-``) into ``out`` with the model's own settings.

    The settings carry their resolved channels, so the fastai preset reuses the training data's
    histogram breakpoints instead of estimating new ones from the test images.
    """
    from ichprep.convert import Options, convert

    try:
        result = convert(src, out, settings, Options(quiet=quiet, headers=headers))
    except BudgetError as err:
        if err.estimate is None:
            raise
        raise IchprepError(f"DATA's DICOMs are converted into a temporary folder in {out.parent} first and would not fit there "
                           f"({err.estimate.describe()}); set TMPDIR to a folder with more room, or convert them with "
                           "'ichprep convert' and give predict that folder") from None
    if not result.converted:
        raise IchprepError(f"DATA {src}: none of its DICOMs could be converted")
    return out


def scratch_folder(near: Path | None = None) -> Path:
    """Where predict converts raw DICOMs: ``$TMPDIR`` when set, else beside the submission (``near``), else the system's temporary folder.

    Beside the submission is on a disk the user chose for output; the system's temporary folder
    is often a small RAM disk, too small for a test set.
    """
    if os.environ.get("TMPDIR") or near is None:
        return Path(tempfile.gettempdir())
    return Path(near)


def temporary_folder(stack: ExitStack, where: Path) -> Path:
    """A new folder in ``where``, removed when ``stack`` closes however it closes; dead runs' ones are removed first."""
    from ichprep.convert.run.parallel import clear_stale

    clear_stale([where], STALE_TEMP)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=where))
    stack.callback(shutil.rmtree, tmp, True)
    return tmp


def check_data(record: dict, data: Path, series: pd.DataFrame | None, model: Path | None = None) -> None:
    """Refuse DATA whose images were made differently from the model's training images.

    A model applied to other windows, another size or crop, or another encoding would still
    print probabilities, and a wrong submission that exits 0 is the worst outcome there is.
    """
    trained = Settings.from_dict(record["settings"])
    made = Settings.load(data)
    if made is None:
        raise IchprepError(f"DATA {data} has no {layout.SETTINGS}, so how its images were made is unknown; "
                           "give predict the DICOMs (they are converted with the model's settings)")
    changed = trained.pixel_differences(made)
    if changed:
        raise IchprepError(f"DATA {data} was converted with other settings than the model's training data "
                           f"({'; '.join(changed)}); give predict the DICOMs, or convert them with the model's settings")
    side = 1 if record["stack"] == "2.5d" else record["neighbours"]
    if side and series is None:
        raise IchprepError(f"the model {model or ''} stacks {side} neighbouring slice(s) on each side, but DATA {data} "
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
    (``inference.TTA``). A model trained at another size than its images were stored (``--sizes``)
    gets its batches resized on the device as training resized them. ``batch_size`` and
    ``workers`` default by device (CPU_BATCH or CUDA_BATCH; ``loaders.loader_workers``).
    """
    dev = pick_device(device)
    paths = [models] if isinstance(models, (str, Path)) else list(models)
    singles = [single for path in paths for single in members(path)]
    with ExitStack() as stack:
        if is_local(data) and layout.is_converted(Path(data)):
            data = Path(data)
        else:
            tmp = temporary_folder(stack, scratch_folder(scratch))
            data = convert_dicoms(data, tmp, Settings.from_dict(singles[0][1]["settings"]), quiet, headers)
        series = series_table(data)
        for path, record in singles:
            for cnn in record.get("cnns", [record]):
                check_data(cnn, data, series, path)
        store = open_store(data)
        chosen = list(store.ids) if ids is None else list(ids)
        batch = batch_size or (CUDA_BATCH if dev.type == "cuda" else CPU_BATCH)
        num_workers, prefetch = loader_workers(workers, dev, 1, usable_cores())
        total = np.zeros((len(chosen), len(LABELS)))
        for _, record in singles:
            if "cnns" in record:
                from ichprep.series.predict import predict_series

                probs = predict_series(record, store, data, chosen, dev, tta, batch, num_workers, prefetch, quiet)
            else:
                loader = model_loader(record, store, chosen, series, batch, num_workers, prefetch, dev)
                model = load_model(record, dev)
                probs = predict_loader(model, loader, dev, record["size"], record["mean"], record["std"], tta, quiet)
                probs = probs[:, labels_order(record)]
                del model
            if prior_correction:
                probs = prior_correct(probs, np.asarray(record["true_pos_rate"]), np.asarray(record["train_pos_rate"]))
            total += probs
    return Predictions(chosen, total / len(singles))


def model_loader(record: dict, store: Store, ids: list[str], series: pd.DataFrame | None, batch: int, workers: int,
                 prefetch: int | None, device: torch.device) -> DataLoader:
    """The images ``ids``, in that order, as the model of a model.pt ``record`` reads them (its stack and neighbours)."""
    ds = make_dataset(store, ids, None, series, record["neighbours"], record["stack"])
    return DataLoader(ds, batch_size=batch, num_workers=workers, prefetch_factor=prefetch, pin_memory=device.type == "cuda")


def submission(pred: Predictions, clip: float = CLIP) -> pd.DataFrame:
    """The competition CSV table: `ID` = ID_<image>_<subtype> (SUBTYPES order per image), `Label`."""
    probs = np.clip(pred.probs, clip, 1 - clip)
    order = [LABELS.index(s) for s in SUBTYPES]
    names = [i if i.startswith("ID_") else f"ID_{i}" for i in pred.ids]
    return pd.DataFrame({
        "ID": [f"{name}_{s}" for name in names for s in SUBTYPES],
        "Label": probs[:, order].reshape(-1),
    })


def evaluate(pred: Predictions, labels: str | Path | pd.DataFrame) -> tuple[dict, int]:
    """Metric summary of the predicted images that have labels, and how many were left out for lack of one.

    ``labels`` is a labels file or a table already read with ``load_labels``.
    """
    from ichprep.train.metrics import summary

    table = labels if isinstance(labels, pd.DataFrame) else load_labels(labels)
    known = [k for k, i in enumerate(pred.ids) if i in table.index]
    if not known:
        raise IchprepError(f"none of the {len(pred.ids)} predicted images has a label")
    y = table.loc[[pred.ids[k] for k in known], list(LABELS)].to_numpy(dtype=np.float64)
    return summary(y, pred.probs[known]), len(pred.ids) - len(known)
