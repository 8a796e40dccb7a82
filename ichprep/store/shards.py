"""HDF5 shards: thousands of images per file instead of thousands of files.

A shard is written by exactly one worker, under a hidden temporary name, and renamed only
when complete: a crash never leaves a shard that looks valid and is not. Images are stored
one per chunk, so reading one image decompresses one chunk. With ``jpeg``/``png`` the
encoded file bytes are stored in a variable-length dataset instead (smaller, slower to read).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ichprep import LABELS, __version__, atomic
from ichprep.store.images import encode_bgr

CODECS = ("zstd", "blosc", "lzf", "gzip", "jpeg", "png")
DEFAULT_CODEC = "zstd"
"""Blosc with zstd level 3: no larger than PNG files and several times faster to read (benchmarks/storage_formats.py)."""
DEFAULT_SHARD_SIZE = 10000
SHARD_PATTERN = "shard-{:05d}.h5"


def compression(codec: str) -> dict[str, Any]:
    """h5py dataset keywords for a chunk codec (blosc/zstd through hdf5plugin, readable with it imported)."""
    if codec == "zstd":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.NOSHUFFLE))
    if codec == "lzf":
        return {"compression": "lzf"}
    if codec == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    if codec == "blosc":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    raise ValueError(f"unknown chunk codec {codec!r}")


def is_encoded(codec: str) -> bool:
    """Whether the codec stores encoded image files rather than compressed pixel chunks."""
    return codec in ("jpeg", "png")


def shard_name(number: int) -> str:
    return SHARD_PATTERN.format(number)


def shard_number(name: str) -> int:
    return int(Path(name).stem.split("-")[1])


@dataclass(frozen=True)
class ShardSpec:
    """How shards are made; recorded in every shard's attributes."""

    codec: str
    size: int
    channels: int
    quality: int
    attrs: tuple[tuple[str, str], ...]

    @property
    def bgr(self) -> bool:
        """Encoded images go through OpenCV (BGR); raw pixel chunks are stored RGB."""
        return is_encoded(self.codec)


class ShardWriter:
    """Appends rendered images to one shard; ``close`` renames it into place."""

    def __init__(self, path: Path, spec: ShardSpec, capacity: int) -> None:
        import h5py

        if spec.codec in ("blosc", "zstd"):
            import hdf5plugin  # noqa: F401  (registers the filter)
        self.path = path
        self.spec = spec
        self.tmp = atomic.temporary(path)
        self.file = h5py.File(self.tmp, "w")
        shape = (spec.size, spec.size, spec.channels)
        if is_encoded(spec.codec):
            self.images = self.file.create_dataset("images", shape=(capacity,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8))
        else:
            self.images = self.file.create_dataset(
                "images", shape=(capacity,) + shape, maxshape=(None,) + shape, chunks=(1,) + shape, dtype=np.uint8, **compression(spec.codec)
            )
        self.ids: list[str] = []
        self.labels: list[np.ndarray] = []

    def append(self, image_id: str, image: np.ndarray, labels: np.ndarray | None) -> int:
        """Store one image; returns its row."""
        row = len(self.ids)
        if is_encoded(self.spec.codec):
            fmt = "jpg" if self.spec.codec == "jpeg" else "png"
            self.images[row] = np.frombuffer(encode_bgr(image, fmt, self.spec.quality), dtype=np.uint8)
        else:
            self.images[row] = image.reshape(self.images.shape[1:])
        self.ids.append(image_id)
        if labels is not None:
            self.labels.append(labels)
        return row

    def close(self) -> None:
        """Trim to the rows written, add ids/labels/attributes, flush and rename into place."""
        import h5py

        try:
            self.images.resize(len(self.ids), axis=0)
            self.file.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
            if self.labels and len(self.labels) == len(self.ids):
                labels = self.file.create_dataset("labels", data=np.stack(self.labels).astype(np.uint8))
                labels.attrs["label_names"] = list(LABELS)
            for key, value in self.spec.attrs:
                self.file.attrs[key] = value
            self.file.attrs["codec"] = self.spec.codec
            self.file.attrs["size"] = self.spec.size
            self.file.attrs["ichprep_version"] = __version__
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the unfinished shard."""
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def shard_attrs(settings: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The run settings as shard attributes (JSON text for structured values)."""
    return (
        ("windows", json.dumps(settings["channels"])),
        ("crop", json.dumps(settings["crop"])),
    )


def read_image(shard: Any, row: int) -> np.ndarray:
    """One RGB image from an open shard (``h5py.File``), whatever its codec."""
    return ShardReader(shard).read(row)


class ShardReader:
    """Reads images of one open shard, with its dataset handle and codec looked up once.

    A training loader reads one image per call; looking up the dataset and the codec
    attribute each time cost as much as decompressing a zstd chunk.
    """

    def __init__(self, shard: Any) -> None:
        self.file = shard
        self.images = shard["images"]
        self.encoded = is_encoded(str(shard.attrs.get("codec", "")))

    def read(self, row: int) -> np.ndarray:
        if self.encoded:
            from ichprep.store.images import decode

            return decode(self.images[row].tobytes())
        out = np.empty(self.images.shape[1:], dtype=self.images.dtype)
        self.images.read_direct(out, np.s_[row])
        return out


def index_frame(rows: Sequence[dict[str, Any]]):
    """``index.parquet`` rows: id -> shard file and row."""
    import pandas as pd

    return pd.DataFrame([{"id": r["id"], "shard": r["output"], "row": int(r["row"])} for r in rows], columns=["id", "shard", "row"])
