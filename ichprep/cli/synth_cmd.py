"""`ichprep synth`: a synthetic stage-1-train set of phantom head CTs, to try every stage without the real data."""

from __future__ import annotations

from pathlib import Path

import typer

from ichprep.cli.app import app


@app.command("synth")
def synth_cmd(
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder: stage_1_train_images/, stage_1_train.csv, synth_quirks.csv."),
    n: int = typer.Option(200, "--n", "-n", min=1, help="Number of images (grouped into series of 10-20 slices)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes byte-identical files."),
    size: int = typer.Option(512, "--size", min=16, help="Rows (and columns) of each slice in pixels; the head keeps its size in mm."),
    noise: float = typer.Option(4.0, "--noise", min=0.0, help="Pixel noise inside the head in HU (e.g. 60: slices hard to "
                                "read alone, lesions still spanning neighbouring slices)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write N phantom head-CT DICOMs with hemorrhages, labels and the real data's header quirks."""
    from ichprep.synth import LABELS_CSV, generate

    generate(out, n, seed=seed, size=size, progress=not quiet, noise=noise)
    typer.echo(f"{n} images -> {out} (labels: {out / LABELS_CSV})")
