"""Manifest rows for the real sample DICOMs, computed independently of ichprep's reader.

The header columns come from ``ichprep.convert.read.header.flatten``; the pixel statistics are recomputed
here with plain numpy on pydicom's ``pixel_array`` (the contract's definitions), so the
clean-meta tests do not depend on convert's implementation.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from ichprep.convert.read.header import flatten

RSNA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rsna"
TRAIN_IMAGES = RSNA / "stage_2_train_images"
TRAIN_CSV = RSNA / "stage_2_train.csv"


def require_rsna() -> None:
    """Skip the calling test when the real sample data is absent."""
    if not (TRAIN_IMAGES.is_dir() and TRAIN_CSV.is_file()):
        pytest.skip("real RSNA sample data not present (../shared/data/rsna)")


def manifest_row(path: Path) -> dict:
    """One contract manifest row: outcome, flattened header and raw-pixel statistics."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    hu = raw.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return {
        "id": path.stem, "source": str(path), "status": "ok", "error": None, "header_fix": False,
        "fname": str(path), **flatten(ds),
        "img_min": float(raw.min()), "img_max": float(raw.max()), "img_mean": float(raw.mean()),
        "img_std": float(raw.std()), "img_pct_window": float(((hu > 0) & (hu < 80)).mean()),
    }


@lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    return tuple(manifest_row(p) for p in sorted(TRAIN_IMAGES.glob("*.dcm")))


def real_manifest() -> pd.DataFrame:
    """Manifest of the 40 real train slices (skips when they are absent); read once per session."""
    require_rsna()
    return pd.DataFrame(list(_rows()))
