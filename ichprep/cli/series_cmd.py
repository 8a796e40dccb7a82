"""`ichprep train-series` and `ichprep embed`: the second stage over each series, and the embeddings it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ichprep import layout
from ichprep.cli.app import app
from ichprep.cli.train_cmd import DEVICE, QUIET, SEED, TTA, WORKERS, _tta
from ichprep.errors import IchprepError
from ichprep.paths import existing, output_file, output_folder


@app.command("train-series")
def train_series_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., metavar="RUN", help="A finished `ichprep train --folds K` run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder: oof_embeddings.parquet, metrics.csv, curves.png, last.pt, "
                             "model.pt (the fold CNNs and the sequence model), scores.json."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Set every option of a published configuration "
                                         "(nobrainer-2019, seutao-2019, fastai-2019); options given explicitly win."),
    scale: str = typer.Option("full", help="With --recipe: full (as published) or tiny (a tiny network, a few epochs: "
                              "minutes on a CPU)."),
    cell: str = typer.Option("gru", help="gru or lstm: the bidirectional recurrent layer."),
    hidden: int = typer.Option(64, min=1, help="Units per direction of the recurrent layers."),
    layers: int = typer.Option(2, min=1, help="Recurrent layers."),
    conv: int = typer.Option(0, min=0, help="Kernel of a 1-D convolution along the series before the RNN (odd; 0: none)."),
    features: bool = typer.Option(True, "--features/--logits-only", help="Feed the CNNs' pooled features with their "
                                  "logits, or the six logits alone."),
    epochs: int = typer.Option(15, min=1, help="Epochs."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Series per batch."),
    lr: float = typer.Option(2e-3, help="Peak learning rate of the one-cycle schedule."),
    wd: float = typer.Option(1e-2, help="AdamW weight decay."),
    dropout: float = typer.Option(0.2, min=0.0, max=0.9, help="Dropout between and after the recurrent layers."),
    val_frac: float = typer.Option(0.2, "--val-frac", min=0.0, max=0.9, help="Share of patients held out for validation."),
    tta: Optional[str] = TTA,
    seed: int = SEED,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    quiet: bool = QUIET,
    resume: bool = typer.Option(False, "--resume", help="Continue from SRUN/last.pt with the same options."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1, help="Stop after N epochs of this call."),
) -> None:
    """Train a sequence model over each series on a --folds run's out-of-fold embeddings."""
    options = dict(cell=cell, hidden=hidden, layers=layers, conv=conv, features=features, epochs=epochs, batch_size=batch_size,
                   lr=lr, wd=wd, dropout=dropout, val_frac=val_frac, tta=tta, seed=seed)
    if recipe is not None:
        from ichprep.series.recipes import apply, show

        options = apply(ctx, recipe, "series", options, scale)
        typer.echo(show(recipe, "series", options, scale), err=True)
    existing(run, "RUN", "folder")
    output_folder(out, "--out")
    if options["cell"] not in ("gru", "lstm"):
        raise IchprepError(f"--cell {options['cell']!r}: choose gru or lstm")
    if options["conv"] and options["conv"] % 2 == 0:
        raise IchprepError(f"--conv {options['conv']}: the kernel must be odd, so each slice sits at its centre")
    options["tta"] = _tta(options["tta"])
    from ichprep.series.train import SeriesConfig, run_config
    from ichprep.series.train import train_series as fit

    run_config(run)
    cfg = SeriesConfig(run=run, out=out, workers=workers, device=device, quiet=quiet, resume=resume, stop_after=stop_after,
                       **options)
    fit(cfg, say=lambda m: typer.echo(m, err=True))
    if (out / layout.MODEL).exists() and not stop_after:
        typer.echo(f"model: {out / layout.MODEL}")


@app.command("embed")
def embed_cmd(
    model: Path = typer.Argument(..., metavar="MODEL", help="A model.pt of `ichprep train` (a fold ensemble: each fold's "
                                 "features side by side, the logits averaged)."),
    data: Path = typer.Argument(..., metavar="DATA", help="convert's output."),
    out: Path = typer.Option(..., "--out", "-o", help="Parquet file: id, series, position, slice, logit_<label> x 6, "
                             "f0000... (float16)."),
    tta: Optional[str] = TTA,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Images per batch."),
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    quiet: bool = QUIET,
) -> None:
    """Write every image's pooled CNN features and six logits, with its series and position, for a second stage of your own."""
    existing(model, "MODEL", "file")
    existing(data, "DATA", "folder")
    output_file(out, "--out", (".parquet",))
    views = _tta(tta)
    from ichprep.series.embed import embed_data

    table = embed_data(model, data, out, views, batch_size, workers, device, quiet)
    typer.echo(f"{len(table)} images x {sum(c.startswith('f') and c[1:].isdigit() for c in table.columns)} features -> {out}")
