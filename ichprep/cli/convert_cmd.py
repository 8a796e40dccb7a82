"""`ichprep convert`: DICOMs to windowed, cropped, resized images with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ichprep.cli.app import app

if TYPE_CHECKING:
    from ichprep.convert import Result

HEADER_HELP = ("A request header 'Name: value' for a URL source, sent to its own host only (repeatable; "
               "also the lines of ICHPREP_HEADERS, which keeps a secret out of the shell history).")

# convert's options, defined once (Typer reads them; it does not change them); HEADER is fetch's too.
SRC = typer.Argument(..., metavar="SRC", help="DICOM folder (searched recursively), a .zip archive, a text/CSV list of paths; "
                     "or a zip's http(s):// URL, kaggle://COMPETITION, or - (a zip on standard input).")
OUT = typer.Argument(..., metavar="OUT", help="Output folder: images, manifest.parquet, ichprep.json.")
WINDOWS = typer.Option("brain,subdural,bone", help="Channels as window names or LEVEL/WIDTH pairs (R,G,B), or 'fastai'.")
SIZE = typer.Option(256, help="Output side in pixels.")
CROP = typer.Option(True, "--crop/--no-crop", help="Square crop around the head before resizing.")
FORMAT = typer.Option("png", "--format", help="png, jpg, or hdf5 (shards).")
QUALITY = typer.Option(None, show_default=False, help="JPEG quality (written 4:4:4), also for --codec jpeg "
                       "[default: what --max-disk affords, else 95].")
MIN_QUALITY = typer.Option(75, help="The lowest JPEG quality --max-disk may pick (below it a smaller --size loses less).")
CODEC = typer.Option("zstd", help="HDF5 codec: zstd, blosc (lz4), lzf, gzip (lossless chunks), jpeg or png (encoded bytes).")
SHARD_SIZE = typer.Option(10000, help="HDF5: images per shard.")
LABELS = typer.Option(None, help="HDF5: stage_1_train.csv whose labels are stored in the shards.")
MAX_DISK = typer.Option(None, help="Output budget (e.g. 20GB): picks the JPEG quality that fits, refuses a run that cannot; "
                        "stops if it is spent.")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the size estimate and the JPEG quality ladder; convert nothing.")
SCHEDULER = typer.Option(None, help="Dask scheduler address (tcp://host:8786): convert on that cluster.")
IDS = typer.Option(None, help="Only these image ids: a text file, CSV or Parquet (e.g. clean-meta's train.parquet).")
HEADER = typer.Option(None, "--header", "-H", help=HEADER_HELP)
JOBS = typer.Option(None, help="Worker processes (default: all cores).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


@app.command("convert")
def convert_cmd(
    src: str = SRC,
    out: Path = OUT,
    windows: str = WINDOWS,
    size: int = SIZE,
    crop: bool = CROP,
    format: str = FORMAT,
    quality: Optional[int] = QUALITY,
    min_quality: int = MIN_QUALITY,
    codec: str = CODEC,
    shard_size: int = SHARD_SIZE,
    labels: Optional[Path] = LABELS,
    max_disk: Optional[str] = MAX_DISK,
    dry_run: bool = DRY_RUN,
    scheduler: Optional[str] = SCHEDULER,
    ids: Optional[Path] = IDS,
    header: Optional[list[str]] = HEADER,
    jobs: Optional[int] = JOBS,
    quiet: bool = QUIET,
) -> None:
    """Convert DICOMs to 3-channel windowed images, resumably, with a manifest of every input."""
    from ichprep.convert import Options, convert
    from ichprep.convert.run.budget import parse_size
    from ichprep.convert.sources import read_ids
    from ichprep.errors import IchprepError
    from ichprep.settings import Settings

    try:
        limit = parse_size(max_disk) if max_disk else None
    except ValueError as err:
        raise IchprepError(f"--max-disk: {err}") from None
    settings = Settings(windows=windows, size=size, crop=crop, format=format, quality=quality, codec=codec)
    options = Options(jobs=jobs, quiet=quiet, ids=read_ids(ids) if ids else None, labels=labels, shard_size=shard_size,
                      max_disk=limit, min_quality=min_quality, dry_run=dry_run, scheduler=scheduler, headers=tuple(header or ()))
    result = convert(src, out, settings, options)
    if dry_run:
        typer.echo(dry_run_report(result))
        raise typer.Exit(0)
    typer.echo(run_report(result, out))
    raise typer.Exit(1 if result.failed else 0)


def run_report(result: Result, out: Path) -> str:
    """The line a run ends with: what it converted, failed, skipped and fetched, or that there was nothing to do."""
    from ichprep.convert.run.budget import human

    if result.converted or result.failed:
        return (f"{result.converted} converted, {result.failed} failed, {result.skipped} already done, "
                f"{human(result.fetched)} fetched -> {out}")
    return f"nothing to do: all {result.skipped} inputs were already converted -> {out}"


@app.command("fetch")
def fetch_cmd(
    src: str = typer.Argument(..., metavar="SRC", help="A zip source: a .zip file, a URL of one, or kaggle://COMPETITION."),
    name: str = typer.Argument(..., metavar="NAME", help="The member to fetch: its path in the zip, or a file name only one member has."),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write."),
    header: Optional[list[str]] = HEADER,
) -> None:
    """Fetch one file (the labels CSV, the sample submission) from the download, reading only its own bytes."""
    from ichprep.convert.sources import fetch_member
    from ichprep.paths import existing_source, output_file

    existing_source(src, "SRC")
    output_file(out, "--out")
    typer.echo(f"{fetch_member(src, name, out, tuple(header or ()))} ({out.stat().st_size:,} bytes)")


def dry_run_report(result: Result) -> str:
    """The estimate at the run's settings, and the ladder of JPEG qualities with what each costs and whether it fits."""
    from ichprep.convert.run.ladder import MARGIN

    fitted = result.fitted
    lines = [result.estimate.describe() + ("" if result.estimate.fits else ": it would NOT fit")]
    if fitted.ladder is not None:
        what = "picked by --max-disk" if fitted.picked else "the output's" if result.settings.lossy else "with --format jpg"
        lines.append(f"JPEG qualities (4:4:4, {what}; PSNR against the lossless render of {fitted.ladder.sampled} sampled slices, "
                     f"median; fits: within the budget with a {MARGIN:.0%} margin):")
        lines.append(fitted.ladder.table(fitted.available))
        if fitted.picked:
            lines.append(fitted.announce())
    return "\n".join(lines)
