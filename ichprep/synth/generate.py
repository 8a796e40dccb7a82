"""Write a synthetic stage-1-train set: the DICOMs, the labels CSV and the quirks sidecar.

Why: the real data is 460 GB behind a licence, but every stage of ichprep (convert, clean-meta,
train) needs files that look and misbehave like it. ``generate`` writes
``OUT/stage_1_train_images/ID_<9 hex>.dcm``, ``OUT/stage_1_train.csv`` (six rows an image, in
the competition's subtype order) and ``OUT/synth_quirks.csv`` (``id,quirk``: which files carry
which known header quirk, so tests can find them).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom

from ichprep import SUBTYPES
from ichprep.paths import output_folder
from ichprep.synth.encode import write_slice
from ichprep.synth.phantom import NOISE_HU
from ichprep.synth.plan import SliceSpec, plan

IMAGES_DIR = "stage_1_train_images"
LABELS_CSV = "stage_1_train.csv"
QUIRKS_CSV = "synth_quirks.csv"


def write_labels(specs: list[SliceSpec], path: Path) -> None:
    """The competition label CSV: ``ID,Label``, six rows an image in SUBTYPES order."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ID", "Label"])
        for spec in specs:
            writer.writerows([f"{spec.image_id}_{name}", label] for name, label in zip(SUBTYPES, spec.labels))


def write_quirks(specs: list[SliceSpec], path: Path) -> None:
    """The sidecar ``id,quirk``: one row per image and quirk it carries."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "quirk"])
        writer.writerows([spec.image_id, quirk] for spec in specs for quirk in spec.quirks)


@contextmanager
def _lenient_uids() -> Iterator[None]:
    """Accept the competition's ``ID_...`` UIDs (invalid on purpose) without a warning per element."""
    settings = pydicom.config.settings
    modes = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = modes


def generate(out: Path, n: int, seed: int = 0, size: int = 512, progress: bool = False, noise: float = NOISE_HU) -> Path:
    """Write a synthetic stage-1-train set of ``n`` images under ``out`` and return ``out``.

    ``noise`` (HU) above the default makes slices hard to read alone while each lesion still spans
    contiguous slices: the data a model over the whole series is tested on.
    """
    out = output_folder(Path(out), "OUT")
    specs = plan(n, seed, size, noise)
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    iterator = specs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(specs, desc="synth", unit="img")
    with _lenient_uids():
        for spec in iterator:
            write_slice(spec, images / f"{spec.image_id}.dcm")
    write_labels(specs, out / LABELS_CSV)
    write_quirks(specs, out / QUIRKS_CSV)
    return out
