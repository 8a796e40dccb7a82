"""`ichprep demo`: the whole job on built-in phantom CTs, and commands to go on with that paste as printed."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ichprep.cli.app import app

if TYPE_CHECKING:
    from ichprep.demo import DemoPaths, DemoResult


def script() -> Path | None:
    """The ``ichprep`` console script running now, or the one installed beside this interpreter."""
    candidates = (Path(sys.argv[0]), Path(sys.executable).parent / "ichprep")
    return next((p for p in candidates if p.name == "ichprep" and p.is_file()), None)


def invocation() -> str:
    """How to type this ichprep in the user's shell, from the current folder.

    ``ichprep`` alone where PATH finds this very installation (an active environment); else the
    path of its script (``.venv/bin/ichprep`` after ``make demo``, which does not activate the
    environment); else ``python -m ichprep`` with this interpreter.
    """
    found, mine = shutil.which("ichprep"), script()
    if mine is None:
        return f"{shlex.quote(sys.executable)} -m ichprep"
    if found and Path(found).resolve() == mine.resolve():
        return "ichprep"
    return shlex.quote(_from_here(mine))


def _from_here(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute."""
    absolute = path.absolute()
    relative = os.path.relpath(absolute)
    return str(absolute) if relative.startswith("..") else relative


def _arg(path: Path) -> str:
    """``path`` as one shell word, as the user would type it from here."""
    return shlex.quote(_from_here(path))


def next_commands(paths: DemoPaths, command: str) -> list[str]:
    """What to run next on the demo's outputs, each a complete command line for ``command`` = ``invocation()``."""
    lines = [
        f"{command} evaluate {_arg(paths.series_model)} {_arg(paths.test_dicoms)} --labels {_arg(paths.test_labels)} --tta hflip -q",
        f"{command} predict {_arg(paths.series_model)} {_arg(paths.test_dicoms)} --out {_arg(paths.root / 'submission-tta.csv')} "
        "--tta hflip -q",
    ]
    mine = script()
    if command != "ichprep" and mine is not None and (mine.parent / "activate").is_file():
        lines.append(f"source {_arg(mine.parent / 'activate')}    # then type ichprep alone")
    return lines


def _models(made: DemoResult) -> list[str]:
    """The summary's lines on the two stages: what trained on what, and their validation scores."""
    from ichprep.demo import EPOCHS, FOLDS

    series = made.series
    return [
        f"models:        {_from_here(made.paths.run)}  ({FOLDS} folds of {made.arch} from scratch, {EPOCHS} epochs each on "
        f"{made.device}, trained on clean-meta's 1:1 sample)",
        f"               out-of-fold weighted log loss {made.folds['oof_weighted_log_loss']:.4f} on every labelled image, at the "
        "true rates; model.pt averages fold0/ and fold1/",
        f"               {_from_here(made.paths.srun)}  (a bidirectional GRU over each complete series of the folds' "
        "out-of-fold outputs)",
        f"               validation: fold CNNs {series['val_cnn_learned_wll']:.4f} as learned, {series['val_cnn_wll']:.4f} at "
        f"the true rates, series model {series['val_series_wll']:.4f}",
    ]


def _tests(made: DemoResult) -> list[str]:
    """The summary's lines on the test phantoms: calibration's gain and the second stage's, apart, and the two-stage table."""
    from ichprep.cli.predict_cmd import scores_table

    s = made.scores
    raw, calibrated, both = (s[k] for k in ("fold_ensemble_as_learned", "fold_ensemble", "two_stage"))
    rows = [("fold ensemble, as it learned", raw, ""),
            ("fold ensemble, at the true rates", calibrated,
             f"calibration {calibrated['weighted_log_loss'] - raw['weighted_log_loss']:+.4f}"),
            ("both stages", both, f"second stage {both['weighted_log_loss'] - calibrated['weighted_log_loss']:+.4f}")]
    lines = [f"test scores:   {_from_here(made.paths.scores)}  ({made.test_images} new phantoms from their DICOMs, any in "
             f"{raw['true_any']:.1%} of them): weighted log loss, mean predicted any"]
    lines += [f"               {name:<34}{r['weighted_log_loss']:.4f}  {r['mean_any']:6.1%}  {gain}".rstrip() for name, r, gain in rows]
    return lines + [scores_table(both)]


def summary(made: DemoResult, n: int) -> list[str]:
    """Where each output went, with what it holds, and the scores on the test phantoms."""
    from ichprep.demo import SIZE

    paths, converted, report = made.paths, made.converted, made.report
    folds = report["folds"]
    if converted.converted or converted.failed:
        done = f"{converted.converted} converted, {converted.failed} failed"
    else:
        done = f"nothing to do: all {converted.skipped} were already converted"
    return [
        f"phantoms:      {_from_here(paths.raw)}  ({n} DICOMs + stage_1_train.csv to train on), "
        f"{_from_here(paths.test)}  ({made.test_images} new ones to test on)",
        f"images:        {_from_here(paths.images)}  ({done}; {SIZE} px PNG, manifest.parquet)",
        f"clean tables:  {_from_here(paths.meta)}  ({report['rows_kept']} of {report['rows_in']} images kept: "
        f"{folds['train']['rows']} train / {folds['valid']['rows']} validation, split by patient; train.parquet, report.png)",
        f"contact sheet: {_from_here(paths.sheet)}",
        *_models(made),
        *_tests(made),
        f"submission:    {_from_here(paths.submission)}  ({made.test_images} images x 6 rows, both stages)",
    ]


@app.command("demo")
def demo_cmd(
    out: Path = typer.Argument(Path("demo-out"), metavar="OUT", help="Folder for everything the demo makes."),
    n: int = typer.Option(1000, "--n", "-n", min=200, help="Phantom slices to train on (a quarter as many more are made to test on)."),
    seed: int = typer.Option(0, help="Random seed of the phantoms, the cleaning and the training."),
    jobs: Optional[int] = typer.Option(None, help="Worker processes for convert and clean-meta (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Make phantom head CTs, convert them, clean their metadata, draw a contact sheet, train a small model,
    score it on new phantoms and write their submission."""
    # Before torch loads OpenMP: its threads then sleep instead of spinning while they wait. On a
    # 2-core machine that also runs anything else, spinning threads made training 5x slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ichprep.demo import run_demo

    made = run_demo(out, n=n, seed=seed, jobs=jobs, quiet=quiet, say=lambda m: typer.echo(m, err=True))
    for line in summary(made, n):
        typer.echo(line)
    typer.echo("next:")
    for line in next_commands(made.paths, invocation()):
        typer.echo(f"  {line}")
    raise typer.Exit(1 if made.converted.failed else 0)
