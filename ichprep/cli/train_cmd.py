"""`ichprep train`, `lr-find`, `predict` and `evaluate`: the PyTorch side.

torch is imported inside each command so `ichprep convert` and `import ichprep.cli` stay light.
Every argument is checked before torch is even imported, so a typo costs a second, not a start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ichprep.cli.app import app
from ichprep.cli.convert_cmd import HEADER_HELP
from ichprep.errors import IchprepError
from ichprep.paths import (
    existing,
    existing_source,
    output_file,
    output_folder,
)

# The options several commands share, defined once (Typer reads them; it does not change them).
DATA = typer.Argument(..., metavar="DATA", help="convert's output: an image folder or HDF5 shards.")
LABELS = typer.Option(None, "--labels", "-l", help="Labels: stage_1_train.csv (long ID,Label) or clean-meta's train.parquet "
                      "(default: the shards' labels, else DATA/train.parquet or DATA/../train.parquet).")
ARCH = typer.Option("resnet18", help="resnet18, resnet34, resnet50, resnet101, densenet121 or alexnet.")
WEIGHTS = typer.Option(None, help="A torchvision ImageNet state dict to start from (its head is dropped).")
SEED = typer.Option(42, help="Seed of the subset, split, shuffles, augmentation and initialisation.")
MAX_IMAGES = typer.Option(None, "--max-images", min=1, help="Use a seeded subset of N images.")
NEIGHBOURS = typer.Option(0, min=0, help="Neighbouring slices on each side as extra channels (1 -> 9 channels).")
WORKERS = typer.Option(None, min=0, help="DataLoader worker processes (default: 2 on a CPU; on CUDA, the process's share "
                       "of the cores less one).")
DEVICE = typer.Option("auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
MODEL = typer.Argument(..., metavar="MODEL", help="RUN/model.pt from ichprep train.")
TTA = typer.Option(False, "--tta", help="Average with horizontally flipped images.")
PRIOR = typer.Option(False, "--prior-correction", help="Rescale to the true positive rates recorded in model.pt.")
PREDICT_BATCH = typer.Option(None, "--batch-size", "-b", min=1, help="Images per batch (default: 64 on a CPU, 256 on CUDA).")
HEADER = typer.Option(None, "--header", "-H", help=HEADER_HELP)


def _sizes(text: Optional[str], option: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers, such as 64,128,256."""
    if not text:
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise IchprepError(f"{option} {text!r}: expected comma-separated integers such as 64,128,256") from None
    if any(v <= 0 for v in values):
        raise IchprepError(f"{option} {text!r}: every value must be positive")
    return values


def _config(data: Path, out: Path, **options):
    """The run's TrainConfig, once every path and choice in it has been checked."""
    existing(data, "DATA", "folder")
    output_folder(out, "--out")
    for option in ("labels", "weights"):
        if options.get(option) is not None:
            existing(options[option], f"--{option}", "file")
    from ichprep.train import TrainConfig
    from ichprep.train.models import ARCHS

    if options["arch"] not in ARCHS:
        raise IchprepError(f"--arch {options['arch']!r}: choose one of {', '.join(ARCHS)}")
    return TrainConfig(data=data, out=out, **options)


@app.command()
def train(
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: last.pt, best.pt, model.pt, metrics.csv, curves.png."),
    labels: Optional[Path] = LABELS,
    arch: str = ARCH,
    weights: Optional[Path] = WEIGHTS,
    epochs: int = typer.Option(4, min=1, help="Epochs (ignored when --stage-epochs is given)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch per process."),
    lr: float = typer.Option(2e-3, help="Peak learning rate of the one-cycle schedule."),
    wd: float = typer.Option(1e-2, help="AdamW weight decay."),
    sizes: Optional[str] = typer.Option(None, help="Progressive resizing, e.g. 64,128,256 (default: the stored size)."),
    stage_epochs: Optional[str] = typer.Option(
        None, "--stage-epochs", help="Epochs per size, e.g. 2,2,1 (default: --epochs split evenly)."
    ),
    val_frac: Optional[float] = typer.Option(
        None, "--val-frac", min=0.0, max=0.9, help="Patient-grouped validation fraction (default: the table's fold column, else 0.2)."
    ),
    seed: int = SEED,
    workers: Optional[int] = WORKERS,
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/last.pt with the same options."),
    neighbours: int = NEIGHBOURS,
    device: str = DEVICE,
    quiet: bool = QUIET,
    max_images: Optional[int] = MAX_IMAGES,
    stop_after: Optional[int] = typer.Option(
        None, "--stop-after", min=1, help="Stop after N epochs of this call (resume later with --resume)."
    ),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn the flips/rotation/affine augmentation off."),
    compile_model: bool = typer.Option(
        False, "--compile", help="torch.compile the network: compiling takes a while before the first step."
    ),
) -> None:
    """Train a classifier of the six labels; the same command runs under torchrun for several GPUs."""
    cfg = _config(
        data, out, labels=labels, arch=arch, weights=weights, epochs=epochs, batch_size=batch_size, lr=lr, wd=wd,
        sizes=_sizes(sizes, "--sizes"), stage_epochs=_sizes(stage_epochs, "--stage-epochs"), val_frac=val_frac,
        seed=seed, workers=workers, resume=resume, neighbours=neighbours, device=device, quiet=quiet,
        max_images=max_images, stop_after=stop_after, augment=not no_augment, compile=compile_model,
    )
    if cfg.stage_epochs and not cfg.sizes:
        raise IchprepError("--stage-epochs needs --sizes")
    from ichprep.train import train as run_training

    run_training(cfg, say=lambda m: typer.echo(m, err=True))
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"model: {out / 'model.pt'}")


@app.command("lr-find")
def lr_find(
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for lr_find.csv and lr_find.png."),
    start: float = typer.Option(1e-7, help="First learning rate."),
    end: float = typer.Option(10.0, help="Last learning rate (the sweep stops earlier on divergence)."),
    steps: int = typer.Option(100, min=2, help="Most batches to try."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch."),
    labels: Optional[Path] = LABELS,
    arch: str = ARCH,
    weights: Optional[Path] = WEIGHTS,
    neighbours: int = NEIGHBOURS,
    size: Optional[int] = typer.Option(None, min=8, help="Resize batches to this side (default: the stored size)."),
    seed: int = SEED,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    max_images: Optional[int] = MAX_IMAGES,
) -> None:
    """Learning-rate range test: exponential sweep, smoothed loss, stop on divergence; prints a suggested lr."""
    if not 0 < start < end:
        raise IchprepError(f"--start {start:g} must be positive and below --end {end:g}")
    cfg = _config(data, out, labels=labels, arch=arch, weights=weights, batch_size=batch_size, neighbours=neighbours,
                  sizes=(size,) if size else (), seed=seed, workers=workers, device=device, max_images=max_images)
    from ichprep.train import lr_find as sweep

    _, suggestion = sweep(cfg, start, end, steps, say=lambda m: typer.echo(m, err=True))
    typer.echo(f"{suggestion:.2e}")


def _predictions(
    model: Path,
    data: str,
    batch_size: Optional[int],
    workers: Optional[int],
    device: str,
    tta: bool,
    prior: bool,
    quiet: bool,
    headers: Optional[list[str]],
    scratch: Optional[Path] = None,
):
    """The model's probabilities for DATA, after MODEL and DATA have been checked (raw DICOMs converted in ``scratch``)."""
    existing(model, "MODEL", "file")
    existing_source(data, "DATA")
    from ichprep.train import predict

    return predict(model, data, batch_size, workers, device, tta, prior, quiet, tuple(headers or ()), scratch)


@app.command()
def predict(
    model: Path = MODEL,
    data: str = typer.Argument(
        ...,
        metavar="DATA",
        help="convert's output (folder or shards), or DICOMs rendered with the model's settings "
        "(folder, list, .zip, a zip's URL, kaggle://COMPETITION or -).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Submission CSV (ID,Label; six rows per image)."),
    tta: bool = TTA,
    prior_correction: bool = PRIOR,
    clip: float = typer.Option(1e-4, min=0.0, max=0.499, help="Clip probabilities to [clip, 1 - clip]."),
    batch_size: Optional[int] = PREDICT_BATCH,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    quiet: bool = QUIET,
    header: Optional[list[str]] = HEADER,
) -> None:
    """Write a competition submission for every image of DATA."""
    output_file(out, "--out", (".csv",))
    pred = _predictions(model, data, batch_size, workers, device, tta, prior_correction, quiet, header, out.absolute().parent)
    from ichprep.atomic import replacing
    from ichprep.train import submission

    with replacing(out) as tmp:
        submission(pred, clip).to_csv(tmp, index=False)
    typer.echo(f"{len(pred.ids)} images -> {out}")


@app.command()
def evaluate(
    model: Path = MODEL,
    data: str = typer.Argument(..., metavar="DATA", help="convert's output or DICOMs, as for predict."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Labels CSV (ID,Label) or clean-meta's train.parquet."),
    tta: bool = TTA,
    prior_correction: bool = PRIOR,
    batch_size: Optional[int] = PREDICT_BATCH,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    quiet: bool = QUIET,
    header: Optional[list[str]] = HEADER,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Weighted log loss and per-label log loss, AUC and accuracy at 0.5 of MODEL on labelled DATA."""
    existing(labels, "--labels", "file")
    from ichprep.train import evaluate as score
    from ichprep.train.dataset import load_labels

    table = load_labels(labels)
    pred = _predictions(model, data, batch_size, workers, device, tta, prior_correction, quiet, header)
    result, unlabelled = score(pred, table)
    if unlabelled:
        typer.echo(f"{unlabelled} images without labels were left out", err=True)
    if as_json:
        from ichprep import strict_json

        typer.echo(strict_json.dumps(result))
        return
    typer.echo(scores_table(result))


def scores_table(result: dict) -> str:
    """evaluate's summary as the printed table: the weighted log loss, then one row per label."""
    lines = [f"weighted log loss  {result['weighted_log_loss']:.4f}", f"{'label':<18}{'log loss':>9}{'AUC':>8}{'acc@0.5':>9}"]
    for name in result["log_loss"]:
        lines.append(f"{name:<18}{result['log_loss'][name]:>9.4f}{result['auc'][name]:>8.3f}{result['accuracy'][name]:>9.3f}")
    return "\n".join(lines)
