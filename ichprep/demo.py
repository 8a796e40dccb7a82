"""The built-in main job on phantom CTs: synth -> convert -> clean-meta -> contact sheet -> train
(FOLDS patient-grouped folds) -> train-series (the second stage over each series) -> evaluate both
on new phantoms -> the two-stage submission.

The real data cannot be downloaded by the tool, so a newcomer sees the whole job work on synthetic
head CTs (with the real data's header quirks) in a few minutes on a 2-core CPU. Sizes are chosen
for that budget: 64 px images, which the phantoms' hemorrhages are drawn large enough for, and a
short resnet18 from random weights (``NO_PRETRAINED_WHY``). The model is scored on phantoms it
never saw, from another seed (new patients), given to it as raw DICOMs, so the demo also shows
predict converting DICOMs with the model's own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ichprep import atomic, layout, strict_json
from ichprep.convert.run.pipeline import Options, Result, convert
from ichprep.meta.table import clean_meta
from ichprep.paths import output_folder
from ichprep.plots.sheet import contact_sheet
from ichprep.settings import Settings
from ichprep.synth import generate
from ichprep.synth.generate import IMAGES_DIR, LABELS_CSV

SIZE = 64
"""Side of the converted images and of the model's input: enough for the phantoms, fast on a CPU.
The phantoms are made at 4 x SIZE (the real slices are 512 px): a quarter of the pixels to write and read."""
EPOCHS = 10
FOLDS = 2
"""The fewest folds that give every training image an out-of-fold prediction for the second stage."""
SERIES_EPOCHS = 10
BATCH_SIZE = 32
LEARNING_RATE = 5e-4
NO_PRETRAINED_WHY = "from random weights: phantoms need no ImageNet features (real runs start from them, downloaded once)"
"""The one line the demo prints about its starting weights."""
TEST_SHARE = 4
"""One test phantom for every TEST_SHARE training phantoms."""


PLACES = {
    "raw": "raw", "test": "test", "test_dicoms": f"test/{IMAGES_DIR}", "test_labels": f"test/{LABELS_CSV}",
    "images": "images", "meta": "meta", "sheet": layout.SHEET, "run": "run", "model": f"run/{layout.MODEL}",
    "srun": "srun", "series_model": f"srun/{layout.MODEL}", "scores": layout.TEST_SCORES, "submission": layout.SUBMISSION,
}
"""Each output of the demo and where it goes, relative to the demo's folder."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo puts each output (``PLACES``), all inside ``root``: ``paths.model`` and so on."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        if name not in PLACES:
            raise AttributeError(name)
        return self.root / PLACES[name]


@dataclass
class DemoResult:
    """What each stage made: the paths, convert's counts, the cleaning report, the folds' and the second
    stage's validation scores, and the test scores of the fold ensemble and of the two stages."""

    paths: DemoPaths
    converted: Result
    report: dict[str, Any]
    folds: dict[str, Any]
    series: dict[str, Any]
    arch: str
    device: str
    test_images: int
    scores: dict[str, Any]


def run_demo(out: Path, n: int = 1000, seed: int = 0, jobs: int | None = None, quiet: bool = False,
             say: Callable[[str], None] = print) -> DemoResult:
    """Run the whole job into ``out``; ``say`` receives the training's progress lines.

    Running it again gives the same result: the phantoms are rewritten byte for byte, convert
    finds every image already done, finished folds and a finished second stage are not trained
    again (an interrupted one resumes), and the training is deterministic on a CPU.
    """
    paths = DemoPaths(output_folder(Path(out), "OUT"))
    generate(paths.raw, n=n, seed=seed, size=4 * SIZE, progress=not quiet)
    generate(paths.test, n=max(1, n // TEST_SHARE), seed=seed + 1, size=4 * SIZE, progress=not quiet)
    converted = convert(paths.raw / IMAGES_DIR, paths.images, Settings(size=SIZE), Options(jobs=jobs, quiet=quiet))
    report = clean_meta(paths.images, paths.raw / LABELS_CSV, paths.meta, jobs=jobs, quiet=quiet)
    contact_sheet(paths.images, paths.meta / layout.TRAIN_TABLE, paths.sheet, per_subtype=4, seed=seed)
    from ichprep.models.device import pick_device
    from ichprep.series.config import SeriesConfig
    from ichprep.series.train import train_series
    from ichprep.train import TrainConfig, train_folds

    cfg = TrainConfig(data=paths.images, out=paths.run, labels=paths.meta / layout.TRAIN_TABLE, epochs=EPOCHS, folds=FOLDS,
                      batch_size=BATCH_SIZE, lr=LEARNING_RATE, seed=seed, workers=0, quiet=quiet, pretrained=False)
    say(f"training {FOLDS} folds of {cfg.arch} {NO_PRETRAINED_WHY}")
    folds = train_folds(cfg, say=say)
    series = train_series(SeriesConfig(run=paths.run, out=paths.srun, epochs=SERIES_EPOCHS, seed=seed, workers=0, quiet=quiet,
                                       resume=(paths.srun / layout.LAST).exists()), say=say)
    test_images, scores = _test(paths, quiet)
    return DemoResult(paths, converted, report, folds, series, cfg.arch, str(pick_device(cfg.device)), test_images, scores)


def _test(paths: DemoPaths, quiet: bool) -> tuple[int, dict[str, Any]]:
    """Predict the test DICOMs with the fold ensemble and with the two stages and score them: the fold ensemble as it
    learned on the 1:1 sample and at the true rates (predict's default), and both stages, so calibration's gain and the
    second stage's show apart, each with its mean probability of ``any``; write the two-stage submission."""
    from ichprep.labels import load_labels
    from ichprep.predict import evaluate, predict, submission

    labels = load_labels(paths.test_labels)
    ensemble = predict(paths.model, paths.test_dicoms, workers=0, quiet=quiet)
    pred = predict(paths.series_model, paths.test_dicoms, workers=0, quiet=quiet)
    made = {"fold_ensemble_as_learned": replace(ensemble, probs=ensemble.as_learned), "fold_ensemble": ensemble, "two_stage": pred}
    scores = {}
    for name, predicted in made.items():
        scores[name], _ = evaluate(predicted, labels)
        scores[name].update(mean_any=float(predicted.probs[:, 0].mean()), true_any=float(labels.loc[predicted.ids, "any"].mean()))
    with atomic.replacing(paths.submission) as tmp:
        submission(pred).to_csv(tmp, index=False)
    atomic.write_bytes(paths.scores, strict_json.dumps(scores, indent=2).encode())
    return len(pred.ids), scores
