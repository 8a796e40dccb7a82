"""The manifest: one row per input with its outcome, header fields and pixel statistics.

Rows are flushed to numbered part files as a run goes, so a crash or Ctrl-C loses at most
the batches in flight, and the parent never holds 675,000 rows of dicts in memory. The
final ``manifest.parquet`` is the previous manifest plus all parts, last word per id, written
under a temporary name and renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ichprep import atomic
from ichprep.convert.header import scalar

MANIFEST = "manifest.parquet"
STATE_DIR = ".ichprep"
PARTS = "parts"
FLUSH_ROWS = 5000

LEAD_COLUMNS = ["id", "source", "status", "error", "output", "row", "header_fix", "fname"]
STAT_COLUMNS = ["img_min", "img_max", "img_mean", "img_std", "img_pct_window"]


def frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a manifest table (see ``tidy``)."""
    return tidy(pd.DataFrame(list(rows)))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """A table that Parquet accepts: lead columns first, typed statistics, mixed-type columns as text.

    Works column by column, so folding 675,000 rows from many parts stays a matter of seconds.
    """
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


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return frame([])
    combined = pd.concat(tables, ignore_index=True, sort=False)
    return tidy(combined.drop_duplicates("id", keep="last").reset_index(drop=True))


def load(out: Path) -> pd.DataFrame:
    """The manifest of ``out`` including parts of an unfinished run (empty if none)."""
    tables = []
    if (out / MANIFEST).exists():
        tables.append(pd.read_parquet(out / MANIFEST))
    parts_dir = out / STATE_DIR / PARTS
    if parts_dir.exists():
        tables += [pd.read_parquet(p) for p in sorted(parts_dir.glob("part-*.parquet"))]
    return _concat(tables)


class ManifestWriter:
    """Collects rows, flushes them to part files, and folds everything into the manifest at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts_dir = out / STATE_DIR / PARTS
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.parts_dir.glob("part-*.parquet"))
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self._pending: list[dict[str, Any]] = []

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Persist pending rows as the next part file."""
        if not self._pending:
            return
        write_atomic(frame(self._pending), self.parts_dir / f"part-{self._next:06d}.parquet")
        self._next += 1
        self._pending = []

    def finalize(self) -> pd.DataFrame:
        """Merge the old manifest and every part into ``manifest.parquet``; remove the parts."""
        self.flush()
        table = load(self.out)
        write_atomic(table, self.out / MANIFEST)
        for part in self.parts_dir.glob("part-*.parquet"):
            part.unlink()
        return table
