"""Read ichprep's HDF5 shards with nothing but h5py (and hdf5plugin for the zstd/blosc codecs).

    python examples/read_shards.py OUT [ID]

Shows what a user of another framework needs: the index, one image by id (the first one when no
id is given), its labels, and how the shard was made.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the blosc/zstd filter with HDF5)
import numpy as np
import pandas as pd


def image_by_id(index: pd.DataFrame, out: Path, image_id: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The (S, S, 3) uint8 RGB image, its six labels (or None) and the shard's attributes.

    ``index`` is ``OUT/index.parquet`` indexed by id: it says which shard and row hold the image.
    """
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
    parser.add_argument("image_id", nargs="?", help="an image id (default: the first in the index)")
    args = parser.parse_args()
    if not (args.out / "index.parquet").is_file():
        sys.exit(f"read_shards.py: error: {args.out} has no index.parquet; give the folder `ichprep convert --format hdf5` wrote")
    index = pd.read_parquet(args.out / "index.parquet").set_index("id")
    image_id = args.image_id or index.index[0]
    if image_id not in index.index:
        sys.exit(f"read_shards.py: error: {image_id} is not in {args.out / 'index.parquet'} ({len(index)} images, e.g. {index.index[0]})")
    image, labels, attrs = image_by_id(index, args.out, image_id)
    print(f"{image_id}: {image.shape} {image.dtype}, labels {labels}")
    print(f"codec {attrs['codec']}, size {attrs['size']}, windows {[w['name'] for w in json.loads(attrs['windows'])]}")
