"""The manifest: one row per input with its outcome, header fields and pixel statistics.

Rows are flushed to numbered part files as a run goes (by count and by time), so a crash or Ctrl-C loses at most the
batches in flight, and the parent never holds 750,000 rows of dicts in memory. The final
``manifest.parquet`` is the previous manifest plus all parts, last word per input (its
``source``: two inputs with one id each keep their row), streamed file by file into one
Parquet file under a temporary name and renamed, so folding a competition-sized manifest takes
seconds and a bounded amount of memory. A run that added nothing leaves the manifest untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ichprep import atomic
from ichprep.convert.read.header import scalar
from ichprep.layout import MANIFEST, PART_GLOB, PART_PATTERN, PARTS, STATE_DIR

FLUSH_ROWS = 5000
FLUSH_SECONDS = 30.0
"""Pending rows are flushed every FLUSH_ROWS rows or FLUSH_SECONDS, whichever comes first: a slow run (a
remote source, a big slice size) killed after minutes keeps the work of all but its last half minute."""
ROW_GROUP = 50_000
"""Rows per Parquet row group of the manifest: the unit a merge or a column read holds in memory."""

LEAD_COLUMNS = ["id", "source", "status", "error", "output", "row", "header_fix", "fname"]
STAT_COLUMNS = ["img_min", "img_max", "img_mean", "img_std", "img_pct_window"]
STATE_COLUMNS = ["id", "source", "status", "error", "output"]
"""What a re-run needs to know of the previous runs: which input ended how, and where."""


def frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a manifest table (see ``tidy``)."""
    return tidy(pd.DataFrame(list(rows)))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """A table that Parquet accepts: lead columns first, typed statistics, mixed-type columns as text."""
    table = table.copy()
    for column in LEAD_COLUMNS + STAT_COLUMNS:
        if column not in table.columns:
            table[column] = None
    for column in table.columns:
        table[column] = plain_column(table[column])
    for column in STAT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    table["header_fix"] = table["header_fix"].fillna(False).astype(bool)
    table["row"] = pd.to_numeric(table["row"], errors="coerce").astype("Int64")
    ordered = LEAD_COLUMNS + [c for c in table.columns if c not in LEAD_COLUMNS]
    return table[ordered]


def plain_column(column: pd.Series) -> pd.Series:
    """One Parquet/Feather-safe type per column.

    Header values of one keyword can differ in type across files (a DS that failed to parse
    stays a string, an empty value is None); an object column mixing numbers and strings
    cannot be saved, so it becomes numeric when every value parses and text otherwise.
    """
    if column.dtype != object:
        return column
    present = column.dropna()
    kinds = set(map(type, present))
    if len(kinds) <= 1 and kinds <= {str, int, float, bool}:
        return column
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all():
        return pd.to_numeric(column, errors="coerce")
    return column.map(_text, na_action="ignore").astype(object)


def _text(value: Any) -> str | None:
    """A header value as text (bytes decoded as the header flattening does)."""
    plain = scalar(value)
    return None if plain is None else str(plain)


def write_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write Parquet under a temporary name, then rename: readers never see half a file."""
    with atomic.replacing(path) as tmp:
        table.to_parquet(tmp, index=False)


def _files(out: Path) -> list[Path]:
    """The manifest and the parts of an unfinished run, oldest first: later files have the last word."""
    return ([out / MANIFEST] if (out / MANIFEST).is_file() else []) + _parts(out / STATE_DIR / PARTS)


def _parts(folder: Path) -> list[Path]:
    """The part files in ``folder`` (none when there is no such folder), oldest first."""
    return sorted(folder.glob(PART_GLOB)) if folder.is_dir() else []


def _latest(files: list[Path]) -> list[np.ndarray]:
    """For each file, which of its rows hold the last word on their input (its ``source``).

    A manifest on its own holds one row per input already: only parts can repeat an input.
    """
    if len(files) == 1:
        return [np.ones(pq.read_metadata(files[0]).num_rows, dtype=bool)]
    sources = [pq.read_table(f, columns=["source"])["source"] for f in files]
    lengths = [len(s) for s in sources]
    if not sum(lengths):
        return [np.zeros(0, dtype=bool) for _ in files]
    joined = pa.chunked_array([pc.cast(c, pa.large_string()) for s in sources for c in s.chunks], type=pa.large_string())
    codes = pc.dictionary_encode(joined).combine_chunks().indices.to_numpy(zero_copy_only=False)
    _, first_from_end = np.unique(codes[::-1], return_index=True)
    keep = np.zeros(len(codes), dtype=bool)
    keep[len(codes) - 1 - first_from_end] = True
    return np.split(keep, np.cumsum(lengths)[:-1])


def load(out: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The manifest of ``out`` including parts of an unfinished run, last word per input (empty if none).

    ``columns`` reads only those (e.g. ``STATE_COLUMNS`` for a resume), which keeps a
    750,000-row manifest to a few hundred MB.
    """
    files = _files(out)
    if not files:
        empty = frame([])
        return empty[columns] if columns else empty
    tables = []
    for path, keep in zip(files, _latest(files)):
        schema = pq.read_schema(path)
        wanted = [c for c in columns if c in schema.names] if columns else None
        tables.append(pq.read_table(path, columns=wanted).filter(pa.array(keep)).to_pandas())
    table = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True, sort=False)
    return tidy(table) if columns is None else table.reindex(columns=columns)


def _unified_schema(files: list[Path]) -> pa.Schema:
    """One schema for every file: lead columns first, a column's type agreed across files.

    Numbers of several types become float64; numbers against text become numbers when every
    text value parses as one, else text (the rule ``plain_column`` applies within a file).
    """
    types: dict[str, list[pa.DataType]] = {}
    for path in files:
        for fld in pq.read_schema(path):
            if not fld.name.startswith("__"):
                types.setdefault(fld.name, []).append(fld.type)
    names = [c for c in LEAD_COLUMNS if c in types] + [c for c in types if c not in LEAD_COLUMNS]
    return pa.schema([(name, _agreed(name, types[name], files)) for name in names])


def _agreed(name: str, kinds: list[pa.DataType], files: list[Path]) -> pa.DataType:
    """The type column ``name`` takes in the merged manifest."""
    distinct = {k for k in kinds if k != pa.null()}
    if len(distinct) <= 1:
        return distinct.pop() if distinct else pa.null()
    if all(_numeric(k) for k in distinct):
        return pa.float64()
    for path in files:
        schema = pq.read_schema(path)
        if name not in schema.names or _numeric(schema.field(name).type) or schema.field(name).type == pa.null():
            continue
        try:
            pc.cast(pq.read_table(path, columns=[name])[name], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.string()
    return pa.float64()


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with every column of ``schema``, in its order and types (missing ones null)."""
    columns = []
    for fld in schema:
        if fld.name not in table.column_names:
            columns.append(pa.nulls(len(table), fld.type))
            continue
        column = table[fld.name]
        if column.type != fld.type:
            column = pc.cast(pc.cast(column, pa.string()) if pa.types.is_string(fld.type) else column, fld.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def merge(out: Path) -> bool:
    """Fold the parts into ``manifest.parquet``, one file at a time; False when there was nothing to fold."""
    files = _files(out)
    parts = [f for f in files if f.parent.name == PARTS]
    if not parts:
        return False
    schema = _unified_schema(files)
    schema = schema.with_metadata(_pandas_note(files, schema))
    with atomic.replacing(out / MANIFEST) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for path, keep in zip(files, _latest(files)):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP):
                chosen, keep = keep[: batch.num_rows], keep[batch.num_rows :]
                table = _conform(pa.Table.from_batches([batch]).filter(pa.array(chosen)), schema)
                if table.num_rows:
                    writer.write_table(table, row_group_size=ROW_GROUP)
    for part in parts:
        part.unlink()
    return True


def _pandas_note(files: list[Path], schema: pa.Schema) -> dict[bytes, bytes]:
    """pandas' own note on each column, so the merged file reads back as the parts did (``row`` as Int64).

    A column whose type the merge changed gets the note of its new type.
    """
    notes: dict[str, dict] = {}
    for path in files:
        raw = pq.read_schema(path).metadata or {}
        if b"pandas" in raw:
            kinds = pq.read_schema(path)
            notes.update({c["name"]: c for c in json.loads(raw[b"pandas"])["columns"] if c["name"] in kinds.names
                          and kinds.field(c["name"]).type == (schema.field(c["name"]).type if c["name"] in schema.names else None)})
    columns = [notes.get(f.name) or _plain_note(f) for f in schema]
    return {b"pandas": json.dumps({"index_columns": [], "column_indexes": [], "columns": columns, "creator": {"library": "ichprep"},
                                   "pandas_version": pd.__version__}).encode()}


def _plain_note(fld: pa.Field) -> dict:
    """pandas' note for a column with no better one: text as object, numbers as their numpy type."""
    text = pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type) or fld.type == pa.null()
    kind = "object" if text else fld.type.to_pandas_dtype().__name__
    return {"name": fld.name, "field_name": fld.name, "pandas_type": "unicode" if text else kind, "numpy_type": kind, "metadata": None}


class ManifestWriter:
    """Collects rows, flushes them to part files, and folds everything into the manifest at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts_dir = out / STATE_DIR / PARTS
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in _parts(self.parts_dir)), default=-1)
        self._pending: list[dict[str, Any]] = []
        self._flushed = time.monotonic()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= FLUSH_ROWS or (self._pending and time.monotonic() - self._flushed >= FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Persist pending rows as the next part file."""
        self._flushed = time.monotonic()
        if not self._pending:
            return
        write_atomic(frame(self._pending), self.parts_dir / PART_PATTERN.format(self._next))
        self._next += 1
        self._pending = []

    def finalize(self) -> bool:
        """Merge the old manifest and every part into ``manifest.parquet``; False when nothing changed."""
        self.flush()
        return merge(self.out)
