"""`ichprep train` and `ichprep lr-find`: the CNN trainer's commands, which parse and call ``ichprep.train``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ichprep import layout
from ichprep.cli import common
from ichprep.cli.app import app
from ichprep.cli.common import resolved_options, say
from ichprep.errors import IchprepError

OPTIONAL_DATA = typer.Argument(None, metavar="DATA", show_default=False, help="convert's output: an image folder or HDF5 "
                               "shards (not needed with --dry-run).")
RUN = typer.Option(None, "--out", "-o", show_default=False, help="Run folder: last.pt, best.pt, model.pt, metrics.csv, "
                   "curves.png (not needed with --dry-run).")
EPOCHS = typer.Option(4, min=1, help="Epochs (ignored when --stage-epochs is given).")
FREEZE = typer.Option(None, "--freeze-epochs", min=0, help="Epochs of the new head alone before all layers train (default: "
                      "1 from trained weights, 0 from random ones).")
LR_MULT = typer.Option(100.0, "--lr-mult", min=1.0, help="Once unfrozen, the stem learns at lr / LR_MULT, the head at lr, the "
                       "blocks between on a geometric ramp (fastai's slice(lr/100, lr)).")
BATCH = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch per process.")
ACCUMULATE = typer.Option(1, "--accumulate", min=1, help="Batches whose gradients add up to one step: -b 8 --accumulate 8 "
                          "trains as batches of 64 on a GPU that holds 8.")
LR = typer.Option(2e-3, help="Peak learning rate of the schedule.")
WD = typer.Option(1e-2, help="Weight decay.")
SIZES = typer.Option(None, help="Progressive resizing, e.g. 64,128,256 (default: the stored size).")
STAGE_EPOCHS = typer.Option(None, "--stage-epochs", help="Epochs per size, e.g. 2,2,1 (default: --epochs split evenly).")
VAL_FRAC = typer.Option(None, "--val-frac", min=0.0, max=0.9, help="Patient-grouped validation fraction (default: the "
                        "table's fold column, else 0.2).")
FOLDS = typer.Option(None, "--folds", min=2, help="Train K patient-grouped folds into RUN/fold<i>/, then write RUN/oof.csv "
                     "and the fold ensemble RUN/model.pt.")
FOLD = typer.Option(None, "--fold", min=0, help="With --folds: train fold I only (the run is assembled once every fold is there).")
TRAIN_FOLDS = typer.Option(None, "--train-folds", help="With --folds K: the folds this run trains and averages, e.g. 0,1,2 "
                           "(the 2nd place trained 3 of 5; default: all).")
NEG_RATIO = typer.Option(None, "--neg-ratio", help="Train on N negatives per positive drawn afresh each epoch from every "
                         "labelled image of the training patients, or all of them (default: the --labels table's rows).")
FLIPS = typer.Option("hflip,vflip", help="Flips drawn with probability 0.5 each: hflip, vflip, transpose (or none); the "
                     "views predict's --tta may average.")
ROTATE = typer.Option(15.0, min=0.0, help="Shift-scale-rotate: rotation up to this many degrees.")
ZOOM = typer.Option(0.1, min=0.0, help="Shift-scale-rotate: scaling by up to this fraction.")
SHIFT = typer.Option(0.05, min=0.0, help="Shift-scale-rotate: shift by up to this fraction of the side.")
AFFINE_P = typer.Option(1.0, "--affine-p", help="Probability of the shift-scale-rotate per image.")
NO_AUGMENT = typer.Option(False, "--no-augment", help="Turn the flips and the shift-scale-rotate off.")
SNAPSHOTS = typer.Option(False, "--snapshots", help="Keep every epoch's model as RUN/epoch<N>.pt (for train-series "
                         "--cnn-epochs).")
COMPILE = typer.Option(False, "--compile", help="torch.compile the network: compiling takes a while before the first step.")


@app.command("train")
def train_cmd(
    ctx: typer.Context, data: Optional[Path] = OPTIONAL_DATA, out: Optional[Path] = RUN,
    labels: Optional[Path] = common.LABELS, arch: str = common.ARCH, weights: Optional[Path] = common.WEIGHTS,
    pretrained: bool = common.PRETRAINED, epochs: int = EPOCHS, freeze_epochs: Optional[int] = FREEZE,
    lr_mult: float = LR_MULT, batch_size: int = BATCH, accumulate: int = ACCUMULATE, optimizer: str = common.OPTIMIZER,
    lr: float = LR, wd: float = WD, schedule: str = common.SCHEDULE, sizes: Optional[str] = SIZES,
    stage_epochs: Optional[str] = STAGE_EPOCHS, val_frac: Optional[float] = VAL_FRAC, seed: int = common.SEED,
    workers: Optional[int] = common.WORKERS, resume: bool = common.RESUME, neighbours: int = common.NEIGHBOURS,
    stack: str = common.STACK, norm: str = common.NORM, folds: Optional[int] = FOLDS, fold: Optional[int] = FOLD,
    train_folds: Optional[str] = TRAIN_FOLDS, neg_ratio: Optional[str] = NEG_RATIO, flips: str = FLIPS,
    rotate: float = ROTATE, zoom: float = ZOOM, shift: float = SHIFT, affine_p: float = AFFINE_P,
    no_augment: bool = NO_AUGMENT, snapshots: bool = SNAPSHOTS, device: str = common.DEVICE, quiet: bool = common.QUIET,
    max_images: Optional[int] = common.MAX_IMAGES, stop_after: Optional[int] = common.STOP_AFTER,
    compile_model: bool = COMPILE, recipe: Optional[str] = common.RECIPE, scale: str = common.SCALE,
    dry_run: bool = common.DRY_RUN,
) -> None:
    """Train a classifier of the six labels; the same command runs under torchrun for several GPUs."""
    from ichprep.train.options import train_config

    cfg = train_config(resolved_options(ctx, "train"))
    from ichprep.train import fit

    if fit(cfg, say) is None:
        raise typer.Exit(0)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"model: {cfg.out / layout.MODEL}")


@app.command("lr-find")
def lr_find_cmd(
    data: Path = common.DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for lr_find.csv and lr_find.png."),
    start: float = typer.Option(1e-7, help="First learning rate."),
    end: float = typer.Option(10.0, help="Last learning rate (the sweep stops earlier on divergence)."),
    steps: int = typer.Option(100, min=2, help="Most batches to try."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch."),
    labels: Optional[Path] = common.LABELS, arch: str = common.ARCH, weights: Optional[Path] = common.WEIGHTS,
    pretrained: bool = common.PRETRAINED, neighbours: int = common.NEIGHBOURS, stack: str = common.STACK,
    norm: str = common.NORM, optimizer: str = common.OPTIMIZER,
    size: Optional[int] = typer.Option(None, min=8, help="Resize batches to this side (default: the stored size)."),
    seed: int = common.SEED, workers: Optional[int] = common.WORKERS, device: str = common.DEVICE,
    max_images: Optional[int] = common.MAX_IMAGES,
) -> None:
    """Learning-rate range test: exponential sweep, smoothed loss, stop on divergence; prints a suggested lr."""
    if not 0 < start < end:
        raise IchprepError(f"--start {start:g} must be positive and below --end {end:g}")
    from ichprep.train.options import train_config

    cfg = train_config(dict(data=data, out=out, labels=labels, arch=arch, weights=weights, pretrained=pretrained,
                            batch_size=batch_size, neighbours=neighbours, stack=stack, norm=norm, optimizer=optimizer,
                            sizes=str(size) if size else None, seed=seed, workers=workers, device=device, max_images=max_images))
    from ichprep.train.lr_find import lr_find

    _, suggestion = lr_find(cfg, start, end, steps, say=say)
    typer.echo(f"{suggestion:.2e}")
