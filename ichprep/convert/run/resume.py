"""What a run finds in its output folder: the lock, leftovers of an interrupted run, what is done.

Re-running the same command resumes: temporaries of the interrupted run are removed, shards no
manifest row points to are dropped (their images would be converted again), and inputs whose
manifest row is ok and whose output is on disk are skipped.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ichprep import atomic, layout
from ichprep.convert.run import manifest
from ichprep.errors import IchprepError


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT: two runs writing one folder would corrupt each other's manifest."""
    state = out / layout.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / layout.LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IchprepError(f"{out} is being written by another ichprep run; wait for it or choose another output folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def previous_runs(out: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """What earlier runs into OUT finished (their ids) and failed ((source, reason)); their leftovers removed.

    Only these two sets outlive the reading: the manifest's columns are dropped before the run
    converts anything, so folding the manifest at its end has that memory to itself.
    """
    remove_stale_temporaries(out)
    previous = manifest.load(out, manifest.STATE_COLUMNS)
    remove_orphan_shards(out, previous)
    return done_ids(out, previous), failures(previous)


def remove_stale_temporaries(out: Path) -> None:
    """Temporary files of an interrupted run (images, shards, manifest parts): never valid output."""
    for folder in (out, out / layout.STATE_DIR / layout.PARTS):
        for path in folder.glob(atomic.STALE):
            if path.is_file():
                path.unlink(missing_ok=True)


def done_ids(out: Path, previous: pd.DataFrame) -> set[str]:
    """Ids whose manifest row is ok and whose output (image or shard) is on disk.

    OUT is listed once rather than asked about each output: 750,000 image files are one
    directory read, not 750,000 calls to stat.
    """
    if previous.empty:
        return set()
    ok = previous.loc[previous["status"] == "ok", ["id", "output"]].dropna()
    with os.scandir(out) as entries:
        present = {entry.name for entry in entries}
    return set(ok.loc[ok["output"].isin(present), "id"].astype(str).tolist())


def failures(previous: pd.DataFrame) -> set[tuple[str, str]]:
    """(source, reason) of every failed row: a run that fails an input the same way again need not record it.

    Inputs refused before conversion (an unsafe or repeated id) are refused again on every run;
    recording each once keeps a re-run with nothing to do from rewriting the manifest.
    """
    if previous.empty:
        return set()
    failed = previous[previous["status"] != "ok"]
    return set(zip(failed["source"].tolist(), failed["error"].tolist()))


def remove_orphan_shards(out: Path, previous: pd.DataFrame) -> None:
    """Shards no manifest row points to (finished after a stop): their images would be duplicates."""
    known = set(previous["output"].dropna().unique().tolist()) if not previous.empty else set()
    for path in layout.shards(out):
        if path.name not in known:
            path.unlink()


def next_shard(out: Path) -> int:
    """The number after every shard already in ``out``: new shards never overwrite finished ones."""
    return 1 + max((layout.shard_number(p.name) for p in layout.shards(out)), default=-1)
