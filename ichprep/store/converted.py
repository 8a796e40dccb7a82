"""One way into convert's output folder: its images, its settings, the manifest's slice columns, its default labels.

Training, prediction, evaluation, the embeddings, the second stage and the contact sheet open a
converted folder with ``open_converted`` and ask the ``Converted`` for the parts they need. Each
part is read on first use and kept: a caller that only reads images never opens a manifest of
750,000 rows, and one that needs the series and the patients reads the manifest once, and only
its slice columns (``slices``); clean-meta alone reads all of it (``manifest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from ichprep import layout
from ichprep.labels import load_labels
from ichprep.settings import Settings
from ichprep.store import Store, open_store

SERIES = "SeriesInstanceUID"
PATIENT = "PatientID"
Z = "ImagePositionPatient2"
POSITION: tuple[str, ...] = ("ImagePositionPatient", "ImagePositionPatient1", Z)
ORIENTATION: tuple[str, ...] = tuple(f"ImageOrientationPatient{s}" for s in ("", "1", "2", "3", "4", "5"))
SLICE_COLUMNS: tuple[str, ...] = ("id", "status", PATIENT, SERIES, "InstanceNumber", *POSITION, *ORIENTATION)
"""The manifest's columns that place an image: its outcome, patient, series and position in it."""


@dataclass(frozen=True)
class Converted:
    """convert's output in ``folder``; every part is read when first asked for, then kept."""

    folder: Path

    @cached_property
    def images(self) -> Store:
        """The images, one at a time by position (``open_store``: shards or image files)."""
        return open_store(self.folder)

    @cached_property
    def settings(self) -> Settings | None:
        """The settings the images were made with (``OUT/ichprep.json``), None where the folder has none."""
        return Settings.load(self.folder)

    @cached_property
    def manifest(self) -> pd.DataFrame | None:
        """The whole manifest, every column (clean-meta builds its table from it); None without one."""
        path = self.folder / layout.MANIFEST
        return pd.read_parquet(path) if path.is_file() else None

    @cached_property
    def slices(self) -> pd.DataFrame | None:
        """The manifest's ``SLICE_COLUMNS`` that it has, one row per input as written; None without a manifest.

        Only these columns are read, not the header and pixel statistics of every row.
        """
        path = self.folder / layout.MANIFEST
        if not path.is_file():
            return None
        import pyarrow.parquet as pq

        present = set(pq.read_schema(path).names)
        return pd.read_parquet(path, columns=[c for c in SLICE_COLUMNS if c in present])

    @cached_property
    def series(self) -> pd.DataFrame | None:
        """id -> (SeriesInstanceUID, ImagePositionPatient2) of every converted slice, for stacking neighbours;
        None when the manifest is missing or lacks them.

        It lists every converted slice, including neighbours that a rebalanced training table left out.
        """
        cols = [SERIES, Z]
        if self.slices is None or not set(cols) <= set(self.slices.columns):
            return None
        return self.slices.drop_duplicates("id").set_index("id")[cols]

    @cached_property
    def patients(self) -> pd.Series | None:
        """id -> PatientID from the manifest; None when the manifest is missing or has no PatientID."""
        if self.slices is None or PATIENT not in self.slices.columns:
            return None
        return self.slices.drop_duplicates("id").set_index("id")[PATIENT]

    @cached_property
    def labels_file(self) -> Path | None:
        """Where labels live when none are given: clean-meta's train.parquet inside the folder or beside it."""
        for candidate in (self.folder / layout.TRAIN_TABLE, self.folder.parent / layout.TRAIN_TABLE):
            if candidate.exists():
                return candidate
        return None

    @cached_property
    def labels(self) -> tuple[pd.DataFrame, Path | None] | None:
        """The default labels, indexed by id, and their file: the shards' own (no file), else ``labels_file``'s; None
        when there are neither."""
        from ichprep.store.shards import ShardStore

        if isinstance(self.images, ShardStore):
            table = self.images.labels()
            if table is not None:
                return table, None
        if self.labels_file is None:
            return None
        return load_labels(self.labels_file), self.labels_file

