"""`ichprep clean-meta` (metadata table + Jeremy Howard's cleaning) and `ichprep sheet`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ichprep import layout
from ichprep.cli.app import app
from ichprep.cli.convert_cmd import HEADER_HELP


@app.command("clean-meta")
def clean_meta_cmd(
    source: str = typer.Argument(..., metavar="SOURCE", help="convert's output folder or its manifest.parquet (no DICOM re-read), "
                                           "or DICOMs to scan: a folder / file list / .zip, a zip's URL, kaggle://COMPETITION or -."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for meta.parquet, train.parquet, labels.parquet, "
                                                      "df_trn.fth, comb.fth, labels.fth, report.json, report.png."),
    labels: Optional[Path] = typer.Option(None, "--labels", "-l", help="Competition labels CSV (ID,Label), e.g. "
                                                                       "stage_1_train.csv; leave out for a test set."),
    min_brain: float = typer.Option(0.02, "--min-brain", help="Drop slices with a smaller fraction of pixels in "
                                                             "0 < HU < 80."),
    neg_ratio: float = typer.Option(1.0, "--neg-ratio", help="Negatives kept per positive (any == 1)."),
    sample: bool = typer.Option(True, "--sample/--no-sample", help="--no-sample keeps every negative."),
    val_frac: float = typer.Option(0.2, "--val-frac", help="Fraction of patients in the validation fold."),
    seed: int = typer.Option(42, "--seed", help="Seed of the negative sample and the fold split."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Processes for scanning DICOMs (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json instead of the short summary."),
    header: Optional[list[str]] = typer.Option(None, "--header", "-H", help=HEADER_HELP),
) -> None:
    """Build the metadata table and clean it as Jeremy Howard's RSNA kernels did.

    Drops unreadable and little-brain slices, samples negatives, adds a PatientID-grouped fold.

    Every row stays in meta.parquet with keep and drop_reason; train.parquet holds the kept rows.
    """
    from ichprep.meta import CleanOptions, clean_meta, format_report

    options = CleanOptions(min_brain=min_brain, neg_ratio=neg_ratio, seed=seed, val_frac=val_frac, sample=sample)
    report = clean_meta(source, labels, out, options, jobs=jobs, quiet=quiet, headers=tuple(header or ()))
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    typer.echo(f"wrote {out}")


@app.command("sheet")
def sheet_cmd(
    data: Path = typer.Argument(..., metavar="DATA", help="Converted images: a folder of <id>.png/.jpg or of HDF5 shards."),
    meta: Path = typer.Option(..., "--meta", "-m", help="clean-meta's train.parquet / meta.parquet, or a labels CSV."),
    out: Path = typer.Option(Path(layout.SHEET), "--out", "-o", help="PNG to write."),
    per_subtype: int = typer.Option(8, "--per-subtype", "-n", min=1, help="Images per subtype row."),
    seed: int = typer.Option(0, "--seed", help="Seed for picking which images of a subtype are shown."),
) -> None:
    """A contact sheet: one row of converted images per subtype (and one of negatives).

    Each tile shows its id and positive labels: a check by eye that windows, crops and labels agree.
    """
    from ichprep.plots.sheet import contact_sheet

    shown = contact_sheet(data, meta, out, per_subtype=per_subtype, seed=seed)
    typer.echo(f"wrote {out} ({shown} images)")
