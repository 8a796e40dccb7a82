"""`ichprep train`, `lr-find`, `predict` and `evaluate`: the PyTorch side.

torch is imported inside each command so `ichprep convert` and `import ichprep.cli` stay light.
Every argument is checked before torch is even imported, so a typo costs a second, not a start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ichprep import layout
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
ARCH = typer.Option("resnet18", help="Any timm model, or NAME.TAG for one of its pretrained tags. Curated: resnet18/34/50, "
                    "densenet121/169, efficientnet_b0-b3, seresnext50_32x4d, resnext101_32x8d.fb_wsl_ig1b_ft_in1k (2nd place "
                    "2019), convnext_tiny; sizes and speeds in docs/train.md.")
WEIGHTS = typer.Option(None, help="Start from this .safetensors or .pth state dict in timm's names instead of the "
                       "Hugging Face download (the head is dropped, the stem adapted to the channels).")
PRETRAINED = typer.Option(True, "--pretrained/--no-pretrained", help="Start from the arch's ImageNet weights (downloaded "
                          "once into the Hugging Face cache, HF_HOME; HF_HUB_OFFLINE=1 uses the cache alone) or from random ones.")
STACK = typer.Option("windows", help="windows: every window of each stacked slice (3 x (2 x --neighbours + 1) channels); "
                     "2.5d: the brain window of the previous, this and the next slice (3 channels, the 1st place's input).")
NORM = typer.Option("auto", help="Input normalisation: pretrained (the weights' ImageNet mean/std), data (0.6/0.25), or auto "
                    "(pretrained with trained weights, data from random ones).")
SEED = typer.Option(42, help="Seed of the subset, split, shuffles, augmentation and initialisation.")
MAX_IMAGES = typer.Option(None, "--max-images", min=1, help="Use a seeded subset of N images.")
NEIGHBOURS = typer.Option(0, min=0, help="Neighbouring slices on each side as extra channels (1 -> 9 channels).")
WORKERS = typer.Option(None, min=0, help="DataLoader worker processes (default: 2 on a CPU; on CUDA, the process's share "
                       "of the cores less one).")
DEVICE = typer.Option("auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
MODELS = typer.Argument(..., metavar="MODEL", help="RUN/model.pt from ichprep train (a --folds run's stands for its folds); "
                        "several are averaged.")
TTA = typer.Option(None, "--tta", help="Test-time views to average with, comma-separated: hflip, vflip, transpose "
                   "(all in one forward pass).")
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
    """The run's TrainConfig, once every path and choice in it has been checked and its weights made local.

    The starting weights are resolved last (``models.pretrained.resolve``): a download, when the
    cache has none yet, is the first work the command does, and a refusal still leaves nothing behind.
    """
    existing(data, "DATA", "folder")
    output_folder(out, "--out")
    for option in ("labels", "weights"):
        if options.get(option) is not None:
            existing(options[option], f"--{option}", "file")
    from ichprep.models.inputs import NORMS, STACKS

    stack, norm = options.get("stack", "windows"), options.get("norm", "auto")
    if stack not in STACKS:
        raise IchprepError(f"--stack {stack!r}: choose {' or '.join(STACKS)}")
    if stack == "2.5d" and options.get("neighbours"):
        raise IchprepError("--stack 2.5d takes one slice on each side by itself; drop --neighbours")
    if norm not in NORMS:
        raise IchprepError(f"--norm {norm!r}: choose {', '.join(NORMS)}")
    folds, fold = options.get("folds"), options.get("fold")
    if fold is not None and (folds is None or fold >= folds):
        raise IchprepError(f"--fold {fold} needs --folds K with K > {fold}")
    from ichprep.models.backbones import check_arch
    from ichprep.models.pretrained import resolve
    from ichprep.train import TrainConfig

    check_arch(options["arch"])
    start = resolve(options["arch"], options.get("weights"), options.get("pretrained", True))
    return TrainConfig(data=data, out=out, start=start, **options)


@app.command()
def train(
    ctx: typer.Context,
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: last.pt, best.pt, model.pt, metrics.csv, curves.png."),
    labels: Optional[Path] = LABELS,
    arch: str = ARCH,
    weights: Optional[Path] = WEIGHTS,
    pretrained: bool = PRETRAINED,
    epochs: int = typer.Option(4, min=1, help="Epochs (ignored when --stage-epochs is given)."),
    freeze_epochs: Optional[int] = typer.Option(
        None, "--freeze-epochs", min=0, help="Epochs of the new head alone before all layers train (default: 1 from trained "
        "weights, 0 from random ones)."),
    lr_mult: float = typer.Option(100.0, "--lr-mult", min=1.0, help="Once unfrozen, the stem learns at lr / LR_MULT, the head "
                                  "at lr, the blocks between on a geometric ramp (fastai's slice(lr/100, lr))."),
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
    stack: str = STACK,
    norm: str = NORM,
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="Train K patient-grouped folds into RUN/fold<i>/, "
                                        "then write RUN/oof.csv and the fold ensemble RUN/model.pt."),
    fold: Optional[int] = typer.Option(None, "--fold", min=0, help="With --folds: train fold I only (the run is assembled "
                                       "once every fold is there)."),
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
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Set every option of a published configuration "
                                         "(nobrainer-2019, seutao-2019, fastai-2019), printed first; options given explicitly win."),
    scale: str = typer.Option("full", help="With --recipe: full (as published) or tiny (a tiny network, a few epochs: "
                              "minutes on a CPU)."),
) -> None:
    """Train a classifier of the six labels; the same command runs under torchrun for several GPUs."""
    if recipe is not None:
        from ichprep.series.recipes import apply, show

        chosen = dict(arch=arch, pretrained=pretrained, epochs=epochs, freeze_epochs=freeze_epochs, batch_size=batch_size,
                      sizes=sizes, stack=stack, folds=folds, workers=workers)
        chosen = apply(ctx, recipe, "train", chosen, scale)
        typer.echo(show(recipe, "train", chosen, scale), err=True)
        arch, pretrained, epochs, freeze_epochs, batch_size = (chosen[k] for k in ("arch", "pretrained", "epochs", "freeze_epochs",
                                                                                    "batch_size"))
        sizes, stack, folds, workers = chosen["sizes"], chosen["stack"], chosen["folds"], chosen["workers"]
    if stage_epochs and not sizes:
        raise IchprepError("--stage-epochs needs --sizes")
    cfg = _config(
        data, out, labels=labels, arch=arch, weights=weights, pretrained=pretrained, epochs=epochs,
        freeze_epochs=freeze_epochs, lr_mult=lr_mult, batch_size=batch_size, lr=lr, wd=wd,
        sizes=_sizes(sizes, "--sizes"), stage_epochs=_sizes(stage_epochs, "--stage-epochs"), val_frac=val_frac,
        seed=seed, workers=workers, resume=resume, neighbours=neighbours, stack=stack, norm=norm, folds=folds, fold=fold,
        device=device, quiet=quiet, max_images=max_images, stop_after=stop_after, augment=not no_augment, compile=compile_model,
    )
    say = lambda m: typer.echo(m, err=True)  # noqa: E731
    if cfg.folds is not None:
        from ichprep.train import train_folds

        if train_folds(cfg, say=say) is None:
            raise typer.Exit(0)
    else:
        from ichprep.train import train as run_training

        run_training(cfg, say=say)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"model: {out / layout.MODEL}")


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
    pretrained: bool = PRETRAINED,
    neighbours: int = NEIGHBOURS,
    stack: str = STACK,
    norm: str = NORM,
    size: Optional[int] = typer.Option(None, min=8, help="Resize batches to this side (default: the stored size)."),
    seed: int = SEED,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    max_images: Optional[int] = MAX_IMAGES,
) -> None:
    """Learning-rate range test: exponential sweep, smoothed loss, stop on divergence; prints a suggested lr."""
    if not 0 < start < end:
        raise IchprepError(f"--start {start:g} must be positive and below --end {end:g}")
    cfg = _config(data, out, labels=labels, arch=arch, weights=weights, pretrained=pretrained, batch_size=batch_size,
                  neighbours=neighbours, stack=stack, norm=norm, sizes=(size,) if size else (), seed=seed, workers=workers,
                  device=device, max_images=max_images)
    from ichprep.train import lr_find as sweep

    _, suggestion = sweep(cfg, start, end, steps, say=lambda m: typer.echo(m, err=True))
    typer.echo(f"{suggestion:.2e}")


def _tta(text: Optional[str]) -> tuple[str, ...]:
    """--tta's comma-separated views, each one ``predict.tta.TTA`` knows."""
    from ichprep.models.inputs import TTA_VIEWS

    views = tuple(v.strip() for v in (text or "").split(",") if v.strip())
    unknown = [v for v in views if v not in TTA_VIEWS]
    if unknown:
        raise IchprepError(f"--tta {text!r}: unknown view {unknown[0]!r}; choose from {', '.join(TTA_VIEWS)}")
    return views


def _predictions(
    models: list[Path],
    data: str,
    batch_size: Optional[int],
    workers: Optional[int],
    device: str,
    tta: Optional[str],
    prior: bool,
    quiet: bool,
    headers: Optional[list[str]],
    scratch: Optional[Path] = None,
):
    """The models' averaged probabilities for DATA, after every MODEL, DATA and option has been checked (raw DICOMs
    converted in ``scratch``)."""
    for model in models:
        existing(model, "MODEL", "file")
    existing_source(data, "DATA")
    views = _tta(tta)
    from ichprep.predict import predict

    return predict(models, data, batch_size, workers, device, views, prior, quiet, tuple(headers or ()), scratch=scratch)


@app.command()
def predict(
    models: list[Path] = MODELS,
    data: str = typer.Argument(
        ...,
        metavar="DATA",
        help="convert's output (folder or shards), or DICOMs rendered with the model's settings "
        "(folder, list, .zip, a zip's URL, kaggle://COMPETITION or -).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Submission CSV (ID,Label; six rows per image)."),
    tta: Optional[str] = TTA,
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
    pred = _predictions(models, data, batch_size, workers, device, tta, prior_correction, quiet, header, out.absolute().parent)
    from ichprep.atomic import replacing
    from ichprep.predict import submission

    with replacing(out) as tmp:
        submission(pred, clip).to_csv(tmp, index=False)
    typer.echo(f"{len(pred.ids)} images -> {out}")


@app.command()
def evaluate(
    models: list[Path] = MODELS,
    data: str = typer.Argument(..., metavar="DATA", help="convert's output or DICOMs, as for predict."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Labels CSV (ID,Label) or clean-meta's train.parquet."),
    tta: Optional[str] = TTA,
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
    from ichprep.labels import load_labels
    from ichprep.predict import evaluate as score

    table = load_labels(labels)
    pred = _predictions(models, data, batch_size, workers, device, tta, prior_correction, quiet, header)
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
