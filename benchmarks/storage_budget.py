"""What the competition's training images occupy per format, size and JPEG quality, and which disks they fit.

Each real stage 2 training slice in ../shared/data/rsna (phantoms when absent) is converted by the
real pipeline at each --size: to PNG files and to HDF5 zstd shards, measured in allocated blocks,
and through ``--dry-run``'s JPEG ladder (the same sample stored at each quality, with the median
PSNR of each window against the lossless render). Bytes per image are scaled to stage 1's and
stage 2's training sets (with the manifest's bytes per image) and held against a Kaggle
notebook's 20 GB working folder and a Colab runtime's free disk.

    python benchmarks/storage_budget.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from slices import SHARED, make_inputs

from ichprep.convert import Options, convert
from ichprep.convert.run.budget import MANIFEST_BYTES, disk_usage
from ichprep.settings import Settings

SIZES = (224, 256, 384)
QUALITIES = (95, 90, 85, 80, 75)
STAGES = {"stage 1": 674_258, "stage 2": 752_803}
"""Training images of each stage (stage 2's training set is stage 1's plus its test set)."""
DISKS = {"Kaggle 20 GB": 20e9, "Colab 80 GB": 80e9}
"""A Kaggle notebook's /kaggle/working holds 20 GB; a fresh Colab runtime shows about 80 GB free of its disk."""


def main() -> None:
    real = sorted(SHARED.glob("stage_2_train_images/*.dcm"))
    work = Path(tempfile.mkdtemp(prefix="ichprep-budget-"))
    try:
        make_inputs(work, len(real) or 40)
        src = work / "in"
        print(f"{len(real) or 40} {'real stage 2 training' if real else 'phantom'} slices; totals include the manifest "
              f"({MANIFEST_BYTES} B/image); PSNR in dB against the lossless render, median over the slices.")
        print("| size | format | KB/image | " + " | ".join(f"{s} ({n:,})" for s, n in STAGES.items()) + " | "
              + " | ".join(f"fits {d}" for d in DISKS) + " | PSNR brain / subdural / bone |")
        print("|---:|---|---:|" + "---:|" * len(STAGES) + "---|" * len(DISKS) + "---|")
        for size in SIZES:
            for name, settings in (("PNG", Settings(size=size)), ("HDF5 zstd", Settings(size=size, format="hdf5"))):
                out = work / f"{name}-{size}".replace(" ", "")
                done = convert(src, out, settings, Options(jobs=1, quiet=True))
                extra = ("manifest.parquet", "index.parquet", "ichprep.json", ".ichprep")
                stored = disk_usage(out) - sum(disk_usage(out / f) for f in extra if (out / f).exists())
                row(size, name, stored / done.converted, "lossless")
                shutil.rmtree(out)
            ladder = convert(src, work / "dry", Settings(size=size, format="jpg"), Options(jobs=1, quiet=True, dry_run=True)).fitted.ladder
            for quality in QUALITIES:
                rung = ladder.rung(quality)
                row(size, f"JPEG q{quality}", rung.per_image, " / ".join(f"{p:.1f}" for p in rung.psnr))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def row(size: int, name: str, per_image: float, psnr: str) -> None:
    totals = {stage: n * (per_image + MANIFEST_BYTES) for stage, n in STAGES.items()}
    fits = [_which([s for s, t in totals.items() if t <= room]) for room in DISKS.values()]
    print(f"| {size} | {name} | {per_image / 1000:.1f} | " + " | ".join(f"{t / 1e9:.1f} GB" for t in totals.values())
          + " | " + " | ".join(fits) + f" | {psnr} |")


def _which(stages: list[str]) -> str:
    return "both" if len(stages) == len(STAGES) else ", ".join(stages) or "neither"


if __name__ == "__main__":
    main()
