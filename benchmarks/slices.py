"""The slices every benchmark converts: the real RSNA samples, or quirk-free phantoms without them.

Copied under new names to as many files as a benchmark asks for, and read once so every
contender starts from a warm page cache.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rsna"


def make_inputs(folder: Path, n: int, phantoms: bool = False) -> list[Path]:
    """``n`` slices named ID_bench<k>.dcm copied from the real samples (or synthetic ones), page cache warm.

    ``phantoms`` uses ``ichprep synth`` slices even when the real samples are present.
    """
    real = [] if phantoms else sorted(SHARED.glob("stage_2_*_images/*.dcm"))
    originals = real or plain_phantoms(folder / "synth")
    files = []
    for k in range(n):
        target = folder / "in" / f"ID_bench{k:06d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(originals[k % len(originals)], target)
        files.append(target)
    for path in files:
        path.read_bytes()
    return files


def make_zip(files: list[Path], archive: Path) -> Path:
    """The files as members of one deflated zip (as the competition's archive is), page cache warm."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, f"stage_2_train_images/{path.name}")
    archive.read_bytes()
    return archive


def plain_phantoms(folder: Path, n: int = 100) -> list[Path]:
    """``ichprep synth`` slices without header quirks (the kernels' loop handles none of them)."""
    import pandas as pd

    from ichprep.synth import IMAGES_DIR, QUIRKS_CSV, generate

    generate(folder, n=n, seed=0)
    quirky = set(pd.read_csv(folder / QUIRKS_CSV, dtype=str)["id"])
    return sorted(p for p in (folder / IMAGES_DIR).glob("*.dcm") if p.stem not in quirky)
