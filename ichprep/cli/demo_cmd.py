"""`ichprep demo`: the whole data pipeline on built-in phantom CTs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ichprep.cli.app import app


@app.command()
def demo(
    out: Path = typer.Argument(Path("demo-out"), metavar="OUT", help="Folder for everything the demo makes."),
    n: int = typer.Option(300, "--n", "-n", min=20, help="Phantom slices to generate."),
    seed: int = typer.Option(0, help="Random seed of the phantoms and of the cleaning."),
    jobs: Optional[int] = typer.Option(None, help="Worker processes (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate phantom head CTs, convert them, clean their metadata and draw a contact sheet."""
    from ichprep.demo import run_demo

    made = run_demo(out, n=n, seed=seed, jobs=jobs, quiet=quiet)
    result = made["convert"]
    typer.echo(f"phantoms:      {made['raw']}  ({n} DICOMs + stage_1_train.csv)")
    typer.echo(f"images:        {made['images']}  ({result.converted} converted, {result.failed} failed; manifest.parquet)")
    typer.echo(f"clean tables:  {made['meta']}  (train.parquet, meta.parquet, df_trn.fth, report.png)")
    typer.echo(f"contact sheet: {made['sheet']}")
    typer.echo(f"next: ichprep train {made['images']} --labels {made['meta'] / 'train.parquet'} --out {out / 'run'} --sizes 64,128 --epochs 6")
    raise typer.Exit(1 if result.failed else 0)
