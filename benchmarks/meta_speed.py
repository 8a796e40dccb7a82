"""How fast clean-meta's two halves are: the table from a manifest, and reading headers.

1. ``build_table`` + ``clean`` + ``read_labels`` on a generated manifest of --rows rows (the
   shape of convert's manifest: ~45 header columns, slices of 40-slice series in shuffled
   order) and its 6-rows-an-image labels CSV. Stage 1 has 674,258 images, so this must take
   seconds, not minutes.
2. Header reading on the real DICOMs in ../shared/data/rsna, cycled to --reads reads: our path
   (``dcmread(stop_before_pixels=True)`` + ``header.flatten``) against the loop the public
   kernels used, ``pd.DataFrame([dcmread(f).to_json_dict() ...])``, and against the same loop
   without pixels (the fair half of the gap). The median of --repeats runs is reported.

    python benchmarks/meta_speed.py --rows 100000 --reads 300 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from slices import SHARED

from ichprep import SUBTYPES
from ichprep.convert.read.header import flatten
from ichprep.labels import read_labels
from ichprep.meta import build_table
from ichprep.meta.cleaning import CleanOptions, clean

SLICES_PER_SERIES = 40


def timed(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_manifest(rows: int, seed: int = 0) -> pd.DataFrame:
    """A manifest-shaped table: ids, series with z positions, header columns and pixel stats."""
    rng = np.random.default_rng(seed)
    series = np.arange(rows) // SLICES_PER_SERIES
    ids = np.array([f"ID_{k:09x}" for k in range(rows)])
    table = pd.DataFrame({
        "id": ids, "source": [f"stage_1_train_images/{i}.dcm" for i in ids], "status": "ok", "error": None,
        "header_fix": rng.random(rows) < 0.01, "fname": None,
        "SOPInstanceUID": ids, "Modality": "CT",
        "PatientID": [f"ID_p{k // 2:07x}" for k in series],
        "StudyInstanceUID": [f"ID_s{k:08x}" for k in series],
        "SeriesInstanceUID": [f"ID_r{k:08x}" for k in series],
        "StudyID": None, "MultiImagePositionPatient": 1,
        "ImagePositionPatient": -125.0, "ImagePositionPatient1": rng.normal(-100, 10, rows),
        "ImagePositionPatient2": (np.arange(rows) % SLICES_PER_SERIES) * 5.0 + rng.normal(0, 50, rows // SLICES_PER_SERIES + 1)[series],
        "MultiImageOrientationPatient": 1,
        **{f"ImageOrientationPatient{i or ''}": rng.random(rows) for i in range(6)},
        "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "Rows": 512, "Columns": 512,
        "MultiPixelSpacing": 1, "PixelSpacing": 0.488, "PixelSpacing1": 0.488,
        "BitsAllocated": 16, "BitsStored": rng.choice([12, 16], rows), "HighBit": 15,
        "PixelRepresentation": rng.choice([0, 1], rows), "WindowCenter": 40.0, "WindowWidth": 80.0,
        "RescaleIntercept": -1024.0, "RescaleSlope": 1.0,
        "img_min": rng.integers(-2000, 0, rows).astype(float), "img_max": rng.integers(1000, 4000, rows).astype(float),
        "img_mean": rng.normal(500, 100, rows), "img_std": rng.normal(1000, 100, rows),
        "img_pct_window": rng.beta(2, 6, rows),
    })
    table["fname"] = table["source"]
    table.loc[rng.choice(rows, 3, replace=False), "img_pct_window"] = np.nan
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def write_labels_csv(ids: np.ndarray, path: Path, seed: int = 0) -> None:
    """The competition's long CSV for ``ids``: six rows an image, ~14 % positives."""
    rng = np.random.default_rng(seed)
    positive = rng.random(len(ids)) < 0.14
    subtype = rng.integers(0, 5, len(ids))
    long = pd.DataFrame({
        "ID": np.char.add(np.repeat(ids, 6).astype(str), np.tile([f"_{s}" for s in SUBTYPES], len(ids))),
        "Label": np.column_stack([positive & (subtype == k) for k in range(5)] + [positive]).astype(int).ravel(),
    })
    long.to_csv(path, index=False)


def table_speed(rows: int, repeats: int) -> None:
    manifest = synthetic_manifest(rows)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "labels.csv"
        write_labels_csv(manifest["id"].to_numpy(), csv)
        t_labels = timed(lambda: read_labels(csv), repeats)
        labels = read_labels(csv)
    t_table = timed(lambda: build_table(manifest), repeats)
    table = build_table(manifest)
    t_clean = timed(lambda: clean(table, labels, CleanOptions()), repeats)
    _, train, _ = clean(table, labels, CleanOptions())
    print(f"table from a {rows:,}-row manifest ({manifest.shape[1]} columns):")
    print(f"  build_table        {t_table:7.2f} s  ({rows / t_table:,.0f} rows/s)")
    print(f"  read_labels        {t_labels:7.2f} s  ({6 * rows:,} CSV lines)")
    print(f"  clean              {t_clean:7.2f} s  ({len(train):,} rows kept, {int(train['any'].sum()):,} positive)")
    print(f"  total              {t_table + t_labels + t_clean:7.2f} s")


def header_speed(reads: int, repeats: int) -> None:
    files = sorted(SHARED.glob("stage_2_*_images/*.dcm"))
    if not files:
        print(f"header reading: skipped, no DICOMs in {SHARED}")
        return
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    chosen = [files[k % len(files)] for k in range(reads)]
    for path in files:
        path.read_bytes()  # warm the page cache for every contender

    def ours() -> pd.DataFrame:
        return pd.DataFrame([flatten(pydicom.dcmread(f, stop_before_pixels=True)) for f in chosen])

    def kernel_loop() -> pd.DataFrame:
        return pd.DataFrame([pydicom.dcmread(f).to_json_dict() for f in chosen])

    def kernel_loop_no_pixels() -> pd.DataFrame:
        return pd.DataFrame([pydicom.dcmread(f, stop_before_pixels=True).to_json_dict() for f in chosen])

    t_ours = timed(ours, repeats)
    t_kernel = timed(kernel_loop, repeats)
    t_fair = timed(kernel_loop_no_pixels, repeats)
    print(f"header reading, {reads} reads of {len(files)} real DICOMs (median of {repeats}):")
    print(f"  ichprep dcmread(stop_before_pixels) + flatten   {t_ours:6.3f} s  ({reads / t_ours:,.0f} files/s)")
    print(f"  DataFrame([dcmread(f).to_json_dict()])         {t_kernel:6.3f} s  ({reads / t_kernel:,.0f} files/s)")
    print(f"  same, stop_before_pixels                        {t_fair:6.3f} s  ({reads / t_fair:,.0f} files/s)")
    print(f"  ratio vs the kernel loop: {t_kernel / t_ours:.1f}x; vs the loop without pixels: {t_fair / t_ours:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the generated manifest")
    parser.add_argument("--reads", type=int, default=300, help="header reads (real files cycled)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; the median is reported")
    args = parser.parse_args()
    table_speed(args.rows, args.repeats)
    header_speed(args.reads, args.repeats)


if __name__ == "__main__":
    main()
