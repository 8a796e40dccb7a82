"""`ichprep predict` and `ichprep evaluate`: trained models applied to DATA, as a submission or scored against labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ichprep.cli.app import app
from ichprep.cli.common import DEVICE, HEADER, QUIET, TTA, WORKERS, say
from ichprep.paths import existing, existing_source, output_file

if TYPE_CHECKING:
    from ichprep.predict import Predictions

MODELS = typer.Argument(..., metavar="MODEL", help="RUN/model.pt from ichprep train (a --folds run's stands for its folds) "
                        "or SRUN/model.pt from train-series; several are averaged.")
DATA = typer.Argument(..., metavar="DATA", help="convert's output (folder or shards), or DICOMs rendered with the model's "
                      "settings (folder, list, .zip, a zip's URL, kaggle://COMPETITION or -).")
PRIOR = typer.Option(True, "--prior-correction/--no-prior-correction", help="Correct each model's probabilities from the "
                     "positive rates it learned (a rebalanced sample's) to the true ones recorded in model.pt.")
BATCH = typer.Option(None, "--batch-size", "-b", min=1, help="Images per batch (default: 64 on a CPU, 256 on CUDA, halved "
                     "while the GPU runs out of memory).")


def predictions(models: list[Path], data: str, batch_size: Optional[int], workers: Optional[int], device: str,
                tta: Optional[str], prior: bool, quiet: bool, headers: Optional[list[str]],
                scratch: Optional[Path] = None) -> Predictions:
    """The models' averaged probabilities for DATA, after every MODEL, DATA and option has been checked (raw DICOMs
    converted in ``scratch``); what was done to them said on stderr."""
    for model in models:
        existing(model, "MODEL", "file")
    existing_source(data, "DATA")
    from ichprep.models.inputs import views

    chosen = views(tta)
    from ichprep.predict import predict

    pred = predict(models, data, batch_size, workers, device, chosen, prior, quiet, tuple(headers or ()), scratch=scratch)
    for note in pred.notes:
        say(note)
    return pred


@app.command("predict")
def predict_cmd(
    models: list[Path] = MODELS, data: str = DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Submission CSV (ID,Label; six rows per image)."),
    tta: Optional[str] = TTA, prior_correction: bool = PRIOR,
    clip: float = typer.Option(1e-4, min=0.0, max=0.499, help="Clip probabilities to [clip, 1 - clip]."),
    batch_size: Optional[int] = BATCH, workers: Optional[int] = WORKERS, device: str = DEVICE, quiet: bool = QUIET,
    header: Optional[list[str]] = HEADER,
) -> None:
    """Write a competition submission for every image of DATA."""
    output_file(out, "--out", (".csv",))
    pred = predictions(models, data, batch_size, workers, device, tta, prior_correction, quiet, header, out.absolute().parent)
    from ichprep.atomic import replacing
    from ichprep.predict import submission

    with replacing(out) as tmp:
        submission(pred, clip).to_csv(tmp, index=False)
    typer.echo(f"{len(pred.ids)} images -> {out}")


@app.command("evaluate")
def evaluate_cmd(
    models: list[Path] = MODELS,
    data: str = typer.Argument(..., metavar="DATA", help="convert's output or DICOMs, as for predict."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Labels CSV (ID,Label) or clean-meta's train.parquet."),
    tta: Optional[str] = TTA, prior_correction: bool = PRIOR, batch_size: Optional[int] = BATCH,
    workers: Optional[int] = WORKERS, device: str = DEVICE, quiet: bool = QUIET, header: Optional[list[str]] = HEADER,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Weighted log loss and per-label log loss, AUC and accuracy at 0.5 of MODEL on labelled DATA."""
    existing(labels, "--labels", "file")
    from ichprep.labels import load_labels
    from ichprep.predict import evaluate

    table = load_labels(labels)
    pred = predictions(models, data, batch_size, workers, device, tta, prior_correction, quiet, header)
    result, unlabelled = evaluate(pred, table)
    if unlabelled:
        say(f"{unlabelled} images without labels were left out")
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
