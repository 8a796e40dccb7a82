"""``--ids``: the image ids a run is restricted to, from a text file or a table."""

from __future__ import annotations

from pathlib import Path

from ichprep.errors import SourceError

ID_COLUMNS = ("SOPInstanceUID", "id", "ID", "image", "Image")
TABLE_READERS = {".parquet": "read_parquet", ".csv": "read_csv", ".fth": "read_feather", ".feather": "read_feather"}
"""The pandas reader of each table format (looked up when an --ids table is read, so workers never import pandas)."""


def read_ids(path: Path) -> list[str]:
    """Image ids from a text file (one per line), a CSV, Parquet or Feather table (an id column).

    An ``ID`` column in the competition's long form (``ID_<image>_<subtype>``) gives its images.
    """
    if not path.is_file():
        raise SourceError(f"--ids {path} does not exist" if not path.exists() else f"--ids {path} is not a file")
    reader = TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        return sorted({line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()})
    try:
        import pandas as pd

        table = getattr(pd, reader)(path)
    except (OSError, ValueError) as err:
        raise SourceError(f"--ids {path}: not a readable table ({' '.join(str(err).split())[:200]})") from None
    column = next((c for c in ID_COLUMNS if c in table.columns), None)
    if column is None:
        raise SourceError(f"--ids {path}: no id column (one of {', '.join(ID_COLUMNS)})")
    values = table[column].dropna().astype(str)
    if column == "ID":
        values = values.str.rsplit("_", n=1).str[0].where(values.str.count("_") >= 2, values)
    return sorted(set(values))
