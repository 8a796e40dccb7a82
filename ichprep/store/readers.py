"""Read `ichprep convert`'s output: an image folder or HDF5 shards, one image at a time by position.

Torch-free, so the Dataset, the contact sheet and a notebook read images the same way. HDF5
files are opened lazily in whichever process reads them (and reopened after a fork), so a store
pickles without open handles and works in DataLoader workers under both fork and spawn.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.store.images import decode
from ichprep.store.shards import ShardReader

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")


class FolderSource:
    """Images stored as OUT/<id>.png|jpg, read with OpenCV and returned as RGB uint8 (H, W, 3)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.ids: list[str] = [p.stem for p in files]
        self._names: list[str] = [p.name for p in files]

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, index: int) -> np.ndarray:
        return decode((self.root / self._names[index]).read_bytes())


class ShardSource:
    """Images stored in OUT/shard-*.h5 (raw (N,S,S,C) uint8 or encoded jpeg/png bytes).

    File handles live in `_files`, keyed by shard name, and belong to the process that opened them:
    they are dropped when pickled (spawn) and reopened when the pid changes (fork).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        index = _shard_index(self.root)
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

    def _file(self, name: str):
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


def _shard_index(root: Path) -> pd.DataFrame:
    """id -> (shard, row): from OUT/index.parquet when convert wrote it, else from each shard's `ids`."""
    index_path = root / "index.parquet"
    if index_path.exists():
        return pd.read_parquet(index_path, columns=["id", "shard", "row"])
    import h5py

    frames = []
    for path in sorted(root.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            ids = f["ids"].asstr()[:]
        frames.append(pd.DataFrame({"id": ids, "shard": path.name, "row": np.arange(len(ids))}))
    if not frames:
        raise IchprepError(f"{root}: no shard-*.h5 files")
    return pd.concat(frames, ignore_index=True)


ImageSource = FolderSource | ShardSource


def open_source(data: str | Path) -> ImageSource:
    """The image store in `data`: HDF5 shards when any shard-*.h5 is there, else an image folder."""
    data = Path(data)
    if not data.is_dir():
        raise IchprepError(f"{data}: not a folder of converted images or shards")
    if any(data.glob("shard-*.h5")):
        return ShardSource(data)
    source = FolderSource(data)
    if not len(source):
        raise IchprepError(f"{data}: no .png/.jpg images and no shard-*.h5 files")
    return source
