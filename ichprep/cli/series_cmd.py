"""`ichprep train-series` and `ichprep embed`: the second stage over each series, and the embeddings it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ichprep import layout
from ichprep.cli import common
from ichprep.cli.app import app
from ichprep.cli.common import resolved_options, say
from ichprep.paths import existing, output_file

RUN = typer.Argument(None, metavar="RUN", show_default=False, help="A finished `ichprep train --folds K` run folder "
                     "(not needed with --dry-run).")
SRUN = typer.Option(None, "--out", "-o", show_default=False, help="Folder: oof_embeddings.parquet, metrics.csv, curves.png, "
                    "last.pt, best.pt, model.pt (the fold CNNs and the sequence model), scores.json.")
CELL = typer.Option("gru", help="gru or lstm: the bidirectional recurrent layer.")
HIDDEN = typer.Option(64, min=1, help="Units per direction of the recurrent layers.")
LAYERS = typer.Option(2, min=1, help="Recurrent layers.")
CONV = typer.Option(0, min=0, help="Kernel of the 1-D convolutions along the series before the RNN (odd; 0: none).")
DILATIONS = typer.Option("1", help="With --conv: one convolution per dilation, e.g. 1,2,4,2 (the 1st place's).")
FEATURES = typer.Option(True, "--features/--logits-only", help="Feed the CNNs' pooled features with their logits, or the "
                        "six logits alone.")
DELTAS = typer.Option(False, "--deltas", help="Also feed each slice's features minus its neighbours' (the 2nd place's).")
SPACING = typer.Option(False, "--spacing", help="Also feed the distances to the previous and the next slice (the 1st place's).")
EPOCHS = typer.Option(15, min=1, help="Epochs.")
BATCH = typer.Option(16, "--batch-size", "-b", min=1, help="Series per batch.")
LR = typer.Option(2e-3, help="Peak learning rate of the schedule.")
WD = typer.Option(1e-2, help="Weight decay.")
DROPOUT = typer.Option(0.2, min=0.0, max=0.9, help="Dropout between and after the recurrent layers.")
BAGS = typer.Option(1, min=1, help="Average the predictions of the last N epochs' weights (the 2nd place's epoch "
                    "bagging); 1 keeps the best epoch's.")
SEQ_AUG = typer.Option(None, "--seq-aug", help="Training series read backwards (reverse) and/or every other slice (skip), "
                       "each with probability 0.5.")
CROP = typer.Option(0, min=0, help="Train on random windows of N slices of each series (0: whole series).")
REVERSE = typer.Option(False, "--reverse-tta", help="Average each prediction with that of the series read backwards.")
CNN_EPOCHS = typer.Option(None, "--cnn-epochs", help="One sequence model per CNN epoch listed (folds trained with "
                          "--snapshots), e.g. 1,2,3,4,5; their predictions averaged (default: the folds' model.pt).")
VAL_FRAC = typer.Option(0.2, "--val-frac", min=0.0, max=0.9, help="Share of patients held out for validation.")


@app.command("train-series")
def train_series_cmd(
    ctx: typer.Context, run: Optional[Path] = RUN, out: Optional[Path] = SRUN, recipe: Optional[str] = common.RECIPE,
    scale: str = common.SCALE, dry_run: bool = common.DRY_RUN, cell: str = CELL, hidden: int = HIDDEN,
    layers: int = LAYERS, conv: int = CONV, dilations: str = DILATIONS, features: bool = FEATURES, deltas: bool = DELTAS,
    spacing: bool = SPACING, epochs: int = EPOCHS, batch_size: int = BATCH, optimizer: str = common.OPTIMIZER,
    lr: float = LR, wd: float = WD, schedule: str = common.SCHEDULE, dropout: float = DROPOUT, bags: int = BAGS,
    seq_aug: Optional[str] = SEQ_AUG, crop: int = CROP, reverse: bool = REVERSE, cnn_epochs: Optional[str] = CNN_EPOCHS,
    val_frac: float = VAL_FRAC, tta: Optional[str] = common.TTA, seed: int = common.SEED,
    workers: Optional[int] = common.WORKERS, device: str = common.DEVICE, quiet: bool = common.QUIET,
    resume: bool = common.RESUME, stop_after: Optional[int] = common.STOP_AFTER,
) -> None:
    """Train a sequence model over each series on a --folds run's out-of-fold embeddings."""
    from ichprep.series.config import series_config

    cfg = series_config(resolved_options(ctx, "series"))
    from ichprep.series.train import train_series

    if train_series(cfg, say=say):
        typer.echo(f"model: {cfg.out / layout.MODEL}")


@app.command("embed")
def embed_cmd(
    model: Path = typer.Argument(..., metavar="MODEL", help="A model.pt of `ichprep train` (a fold ensemble: each fold's "
                                 "features side by side, the logits averaged)."),
    data: Path = typer.Argument(..., metavar="DATA", help="convert's output."),
    out: Path = typer.Option(..., "--out", "-o", help="Parquet file: id, series, position, slice, logit_<label> x 6, "
                             "f0000... (float16)."),
    tta: Optional[str] = common.TTA,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Images per batch."),
    workers: Optional[int] = common.WORKERS, device: str = common.DEVICE, quiet: bool = common.QUIET,
) -> None:
    """Write every image's pooled CNN features and six logits, with its series and position, for a second stage of your own."""
    existing(model, "MODEL", "file")
    existing(data, "DATA", "folder")
    output_file(out, "--out", (".parquet",))
    from ichprep.models.inputs import views

    views_ = views(tta)
    from ichprep.predict.embed import embed_data
    from ichprep.series.embeddings import width

    table = embed_data(model, data, out, views_, batch_size, workers, device, quiet)
    typer.echo(f"{len(table)} images x {width(table)} features -> {out}")
