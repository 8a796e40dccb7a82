"""The options of `ichprep train-series`, one to one with the command's flags, checked before torch loads, and the run they read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ichprep import layout
from ichprep.errors import IchprepError
from ichprep.models.inputs import CELLS, views
from ichprep.paths import existing, output_folder
from ichprep.train.options import choice, integers, names
from ichprep.train.schedule import OPTIMIZERS, Schedule

if TYPE_CHECKING:
    from ichprep.models.series_net import SeriesShape

RESUME_KEYS: tuple[str, ...] = (
    "run", "tta", "cell", "hidden", "layers", "conv", "dilations", "features", "deltas", "spacing", "epochs", "batch_size", "lr",
    "wd", "dropout", "optimizer", "schedule", "bags", "seq_aug", "crop", "val_frac", "seed",
)
"""Settings a resumed run must share with the run it continues."""
SEQ_AUGMENTS: tuple[str, ...] = ("reverse", "skip")
"""Sequence augmentations: a series read backwards, or every other slice of it (each with probability 0.5)."""


@dataclass
class SeriesConfig:
    """The options of `ichprep train-series`, one to one.

    ``bags`` N averages the predictions of the last N epochs' weights (the 2nd place's epoch
    bagging); 1 keeps the best epoch's. ``seq_aug`` and ``crop`` augment the training series (the
    1st place's: read backwards, every other slice, windows of ``crop`` slices); ``reverse`` averages
    every prediction with that of the series read backwards. ``cnn_epochs`` trains one sequence
    model per CNN epoch listed (the folds' ``--snapshots``), their predictions averaged.
    """

    run: Path
    out: Path
    tta: tuple[str, ...] = ()
    cell: str = "gru"
    hidden: int = 64
    layers: int = 2
    conv: int = 0
    dilations: tuple[int, ...] = (1,)
    features: bool = True
    deltas: bool = False
    spacing: bool = False
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    wd: float = 1e-2
    dropout: float = 0.2
    optimizer: str = "adamw"
    schedule: str = "one-cycle"
    bags: int = 1
    seq_aug: tuple[str, ...] = ()
    crop: int = 0
    reverse: bool = False
    cnn_epochs: tuple[int, ...] = ()
    val_frac: float = 0.2
    seed: int = 42
    device: str = "auto"
    workers: int | None = None
    embed_batch: int | None = None
    quiet: bool = False
    resume: bool = False
    stop_after: int | None = None

    def parts(self) -> list[tuple[int | None, Path]]:
        """(CNN epoch, folder) of each sequence model: SRUN itself, or SRUN/cnn-epoch<N>/ for each of ``cnn_epochs``."""
        if not self.cnn_epochs:
            return [(None, self.out)]
        return [(epoch, self.out / layout.CNN_EPOCH_DIR.format(epoch)) for epoch in self.cnn_epochs]

    def shape(self, width: int) -> SeriesShape:
        """The sequence model's shape from the options and the CNNs' feature width."""
        from ichprep.models.series_net import SeriesShape

        return SeriesShape(width if self.features else 0, self.hidden, self.layers, self.cell, self.conv, self.dilations,
                           self.dropout, self.deltas, self.spacing)


@dataclass(frozen=True)
class FoldRun:
    """A finished ``train --folds`` run as train-series reads it: its trained folds and the options they had."""

    folder: Path
    folds: list[int]
    config: dict

    @property
    def data(self) -> Path:
        return Path(self.config["data"])


def fold_run(run: Path) -> FoldRun:
    """The finished `--folds` run in RUN (its model.pt a fold ensemble, its oof.csv written); refuses anything else."""
    from ichprep.models.saved import FoldEnsemble, load
    from ichprep.train.checkpoint import load_checkpoint

    model = run / layout.MODEL
    if not model.is_file() or not (run / layout.OOF).exists():
        raise IchprepError(f"RUN {run} is not a finished `ichprep train --folds` run (no model.pt and oof.csv in it)")
    record = load(model)
    if not isinstance(record, FoldEnsemble):
        raise IchprepError(f"RUN {run} is not a finished `ichprep train --folds` run (its model.pt is a single model)")
    folds = [int(Path(member).parent.name.removeprefix(layout.FOLD_DIR.format(""))) for member in record.members]
    return FoldRun(run, folds, load_checkpoint(run / layout.FOLD_DIR.format(folds[0]) / layout.LAST).config)


LISTS: dict[str, tuple[str, Any]] = {"dilations": ("--dilations", 1), "cnn_epochs": ("--cnn-epochs", 1)}


def series_config(o: dict[str, Any]) -> SeriesConfig:
    """The SeriesConfig of `train-series` from the command line's values ``o``, every one checked, then RUN read."""
    if o.get("run") is None or o.get("out") is None:
        raise IchprepError("missing argument RUN (a `train --folds` run)" if o.get("run") is None else "missing option --out SRUN")
    existing(o["run"], "RUN", "folder")
    output_folder(o["out"], "--out")
    choice(o["cell"], "--cell", CELLS)
    choice(o["optimizer"], "--optimizer", OPTIMIZERS)
    Schedule.parse(o["schedule"])
    if o["conv"] and o["conv"] % 2 == 0:
        raise IchprepError(f"--conv {o['conv']}: the kernel must be odd, so each slice sits at its centre")
    if o["deltas"] and not o["features"]:
        raise IchprepError("--deltas are the features' differences: drop --logits-only")
    parsed = {k: integers(o[k], option, lowest) for k, (option, lowest) in LISTS.items()}
    cfg = SeriesConfig(**{**o, **parsed, "dilations": parsed["dilations"] or (1,), "tta": views(o["tta"]),
                          "seq_aug": names(o["seq_aug"], "--seq-aug", SEQ_AUGMENTS)})
    first = cfg.parts()[0][1] / layout.LAST
    if cfg.resume and not first.exists():
        raise IchprepError(f"--resume: no {first} to continue from")
    check_cnns(cfg, fold_run(cfg.run))
    return cfg


def check_cnns(cfg: SeriesConfig, run: FoldRun) -> None:
    """The fold CNNs the run will embed (each CNN epoch asked for) are there, and drew every --tta view in training."""
    from ichprep.models.apply import check_views
    from ichprep.series.train import cnn_records

    for epoch in cfg.cnn_epochs or (None,):
        for fold, record in zip(run.folds, cnn_records(run, epoch)):
            check_views(record, cfg.tta, run.folder / layout.FOLD_DIR.format(fold) / layout.MODEL)
