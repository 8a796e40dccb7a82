"""Read ichprep's HDF5 shards with nothing but h5py (and hdf5plugin for the zstd/blosc codecs).

    python examples/read_shards.py OUT ID_0a1b2c3d4

Shows what a user of another framework needs: the index, one image by id, its labels, and how
the shard was made.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the blosc/zstd filter with HDF5)
import numpy as np
import pandas as pd


def image_by_id(out: Path, image_id: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The (S, S, 3) uint8 RGB image, its six labels (or None) and the shard's attributes."""
    index = pd.read_parquet(out / "index.parquet").set_index("id")
    shard, row = index.loc[image_id, ["shard", "row"]]
    with h5py.File(out / shard, "r") as f:
        attrs = dict(f.attrs)
        if attrs["codec"] in ("jpeg", "png"):
            import cv2

            image = cv2.imdecode(f["images"][row], cv2.IMREAD_COLOR)[..., ::-1]
        else:
            image = f["images"][row]
        labels = f["labels"][row] if "labels" in f else None
    return image, labels, attrs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("image_id")
    args = parser.parse_args()
    image, labels, attrs = image_by_id(args.out, args.image_id)
    print(f"{args.image_id}: {image.shape} {image.dtype}, labels {labels}")
    print(f"codec {attrs['codec']}, size {attrs['size']}, windows {[w['name'] for w in json.loads(attrs['windows'])]}")
