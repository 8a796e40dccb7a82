"""Write a file so that readers see the old version or the whole new one, never half of it.

Every output of ichprep (images, shards, manifest parts, settings, checkpoints) is written to a
hidden temporary name in its own folder and renamed over the target when complete; a crash
leaves only temporaries, which match ``STALE`` and a resumed run deletes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE = ".*.tmp*"
"""Glob of the temporaries ``temporary`` names (what a crash can leave behind)."""


def temporary(path: Path) -> Path:
    """The hidden temporary name for ``path``: same folder (so the rename is atomic), unique per process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it over ``path`` if the block succeeds, delete it if not."""
    tmp = temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
