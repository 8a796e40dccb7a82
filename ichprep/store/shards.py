"""HDF5 shards, thousands of images per file: the writing side (a sink) and the reading side (a store).

A shard is written by exactly one worker task, under a hidden temporary name, and renamed only
when complete: a crash never leaves a shard that looks valid and is not. Images are stored one
per chunk, so reading one image decompresses one chunk. With ``jpeg``/``png`` the encoded file
bytes are stored in a variable-length dataset instead (smaller, slower to read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ichprep import LABELS, __version__, atomic, layout
from ichprep.errors import IchprepError
from ichprep.store.images import decode, encode_bgr

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CODEC = "zstd"
"""Blosc with zstd level 3: no larger than PNG files and several times faster to read (benchmarks/storage_formats.py)."""
DEFAULT_SHARD_SIZE = 10000


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


@dataclass(frozen=True)
class Shards:
    """The sink of a shard folder: how shards are made, small and picklable; ``open`` starts one shard.

    ``attrs`` are the conversion settings, recorded in every shard so that a shard read on its
    own still says how its images were made.
    """

    out: str
    codec: str
    size: int
    channels: int
    quality: int
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def bgr(self) -> bool:
        """Encoded images go through OpenCV (BGR); raw pixel chunks are stored RGB."""
        return is_encoded(self.codec)

    def open(self, number: int, capacity: int) -> ShardSink:
        """Start shard ``number`` with room for ``capacity`` images."""
        return ShardSink(Path(self.out) / layout.shard_name(number), self, capacity)


class ShardSink:
    """Appends rendered images to one shard; ``close`` renames it into place, ``abort`` drops it."""

    def __init__(self, path: Path, spec: Shards, capacity: int) -> None:
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
                "images",
                shape=(capacity,) + shape,
                maxshape=(None,) + shape,
                chunks=(1,) + shape,
                dtype=np.uint8,
                **compression(spec.codec),
            )
        self.ids: list[str] = []
        self.labels: list[np.ndarray] = []

    def write(self, image_id: str, image: np.ndarray, labels: np.ndarray | None = None) -> tuple[str, int | None]:
        """Store one image; returns the shard's file name and the image's row in it."""
        row = len(self.ids)
        if is_encoded(self.spec.codec):
            fmt = "jpg" if self.spec.codec == "jpeg" else "png"
            self.images[row] = np.frombuffer(encode_bgr(image, fmt, self.spec.quality), dtype=np.uint8)
        else:
            self.images[row] = image.reshape(self.images.shape[1:])
        self.ids.append(image_id)
        if labels is not None:
            self.labels.append(labels)
        return self.path.name, row

    def close(self) -> None:
        """Trim to the rows written, add ids/labels/attributes, flush and rename into place.

        A shard without a single image is dropped instead: it would only be an empty file.
        """
        import h5py

        if not self.ids:
            self.abort()
            return
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
            return decode(self.images[row].tobytes())
        out = np.empty(self.images.shape[1:], dtype=self.images.dtype)
        self.images.read_direct(out, np.s_[row])
        return out


class ShardStore:
    """The store of a folder of shards (raw (N,S,S,C) uint8 chunks or encoded jpeg/png bytes).

    File handles live in `_files`, keyed by shard name, and belong to the process that opened them:
    they are dropped when pickled (spawn) and reopened when the pid changes (fork).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        index = shard_index(self.root)
        self.ids: list[str] = index["id"].tolist()
        self._shard: list[str] = index["shard"].tolist()
        self._row: np.ndarray = index["row"].to_numpy(dtype=np.int64)
        self._files: dict = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def _file(self, name: str) -> ShardReader:
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter before a blosc shard is read)

        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if name not in self._files:
            self._files[name] = ShardReader(h5py.File(self.root / name, "r"))
        return self._files[name]

    def read(self, index: int) -> np.ndarray:
        return self._file(self._shard[index]).read(int(self._row[index]))

    def labels(self) -> pd.DataFrame | None:
        """The shards' own `labels` datasets as a table indexed by id (None when no shard has them)."""
        import h5py
        import pandas as pd

        frames = []
        for name in dict.fromkeys(self._shard):
            with h5py.File(self.root / name, "r") as f:
                if "labels" not in f:
                    return None
                names = [str(n) for n in f["labels"].attrs.get("label_names", LABELS)]
                table = pd.DataFrame(f["labels"][:], columns=names)[list(LABELS)]
                table.index = pd.Index(f["ids"].asstr()[:], name="id")
                frames.append(table)
        return pd.concat(frames) if frames else None


def shard_index(root: Path) -> pd.DataFrame:
    """id -> (shard, row): from OUT/index.parquet when convert wrote it, else from each shard's `ids`."""
    import pandas as pd

    index_path = root / layout.INDEX
    if index_path.exists():
        return pd.read_parquet(index_path, columns=["id", "shard", "row"])
    import h5py

    frames = []
    for path in layout.shards(root):
        with h5py.File(path, "r") as f:
            ids = f["ids"].asstr()[:]
        frames.append(pd.DataFrame({"id": ids, "shard": path.name, "row": np.arange(len(ids))}))
    if not frames:
        raise IchprepError(f"{root}: no {layout.SHARD_GLOB} files")
    return pd.concat(frames, ignore_index=True)


def index_frame(manifest: pd.DataFrame) -> pd.DataFrame:
    """``index.parquet`` from a manifest's converted rows: id -> shard file and row, column-wise."""
    import pandas as pd

    ok = manifest[(manifest["status"] == "ok") & manifest["output"].notna()]
    return pd.DataFrame({"id": ok["id"].to_numpy(), "shard": ok["output"].to_numpy(), "row": ok["row"].astype("int64").to_numpy()})
