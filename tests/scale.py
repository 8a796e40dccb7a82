"""A conversion's output folder at the competition's scale, made in seconds without converting anything.

Not a test module: the scale tests and ``benchmarks/manifest_scale.py`` use it to build a
manifest of hundreds of thousands of rows with the header columns real RSNA files produce, the
shard files and index it points to, the settings, and a list-file source naming every input,
so a re-run of ``ichprep convert`` on it finds everything already done.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import layout
from ichprep.settings import Settings

SHARD = 10000


def manifest_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` ok rows in shards of 10,000, with the flattened header columns of the real slices."""
    rng = np.random.default_rng(seed)
    ids = [f"ID_{i:09x}" for i in range(n)]
    series = np.arange(n) // 40
    table = pd.DataFrame({
        "id": ids,
        "source": [f"/data/stage_2_train_images/{i}.dcm" for i in ids],
        "status": "ok",
        "error": None,
        "output": [layout.shard_name(k) for k in np.arange(n) // SHARD],
        "row": pd.array(np.arange(n) % SHARD, dtype="Int64"),
        "header_fix": rng.random(n) < 0.01,
    })
    table["fname"] = table["source"]
    table["SOPInstanceUID"] = ids
    table["Modality"] = "CT"
    table["PatientID"] = [f"ID_{p:08x}" for p in series // 3]
    table["StudyInstanceUID"] = [f"ID_{s:010x}" for s in series]
    table["SeriesInstanceUID"] = [f"ID_{s + 7:010x}" for s in series]
    table["StudyID"] = None
    for name in ("MultiImagePositionPatient", "MultiImageOrientationPatient", "SamplesPerPixel", "MultiPixelSpacing"):
        table[name] = 1
    for name in ["ImagePositionPatient", "ImagePositionPatient1", "ImagePositionPatient2"]:
        table[name] = rng.normal(0, 100, n).round(3)
    for k in range(6):
        table["ImageOrientationPatient" + (str(k) if k else "")] = rng.normal(0, 1, n).round(6)
    table["PhotometricInterpretation"] = "MONOCHROME2"
    table["Rows"] = table["Columns"] = 512
    table["PixelSpacing"] = table["PixelSpacing1"] = 0.488281
    table["BitsAllocated"], table["BitsStored"], table["HighBit"], table["PixelRepresentation"] = 16, 12, 11, 0
    table["WindowCenter"], table["WindowWidth"] = 40.0, 80.0
    table["RescaleIntercept"], table["RescaleSlope"] = -1024.0, 1.0
    for name in ("img_min", "img_max", "img_mean", "img_std", "img_pct_window"):
        table[name] = rng.random(n)
    return table


def converted_folder(out: Path, n: int, in_parts: int = 0) -> Path:
    """OUT as an HDF5 run over ``n`` inputs that converted them all; returns the list file that names them.

    With ``in_parts`` the last that many rows are still in manifest parts of 5,000 rows, as a run
    killed before it could fold them leaves them (and there is no index yet).
    """
    out.mkdir(parents=True, exist_ok=True)
    table = manifest_table(n)
    table.iloc[: n - in_parts].to_parquet(out / layout.MANIFEST, index=False)
    parts = out / layout.STATE_DIR / layout.PARTS
    parts.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(n - in_parts, n, 5000)):
        table.iloc[start : start + 5000].to_parquet(parts / layout.PART_PATTERN.format(k), index=False)
    if not in_parts:
        table[["id", "output", "row"]].rename(columns={"output": "shard"}).to_parquet(out / layout.INDEX, index=False)
    for name in table["output"].unique():
        (out / name).touch()
    Settings(format="hdf5").save(out)
    listing = out.parent / f"{out.name}-inputs.txt"
    listing.write_text("\n".join(table["source"]) + "\n")
    return listing
