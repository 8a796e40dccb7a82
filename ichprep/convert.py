"""The conversion pipeline: inputs in batches -> joblib workers -> images + manifest rows.

Each worker reads a file once and produces everything from that read: the rendered image
(written by the worker itself, so only small manifest rows travel back), the header row and
the pixel statistics. The parent keeps the progress bar and the manifest. Re-running the
same command resumes: inputs whose image exists and whose manifest row says ok are skipped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ichprep import __version__, dicom, manifest, sources
from ichprep.render import Renderer
from ichprep.sinks.images import EXTENSIONS, ImageSink
from ichprep.windows import FASTAI, Channel, Window, fastai_channels, freqhist_breaks, parse_windows

SETTINGS = "ichprep.json"
FREQHIST_SAMPLE = 32
"""Slices pooled for the fastai preset's breakpoints (Jeremy used a small sample too)."""


class UsageError(Exception):
    """A problem with the command as given (exit code 2), not with an input file."""


class DiskFullError(Exception):
    """The output file system is full: the run stops cleanly and can be resumed."""


@dataclass(frozen=True)
class Options:
    """What ``ichprep convert`` does; the CLI maps its flags one to one onto these."""

    windows: str = "brain,subdural,bone"
    size: int = 256
    crop: bool = True
    format: str = "png"
    quality: int = 95
    jobs: int | None = None
    quiet: bool = False
    ids: Sequence[str] | None = None


@dataclass
class Result:
    """Counts of a run and where its manifest is."""

    converted: int = 0
    failed: int = 0
    skipped: int = 0
    manifest: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable and small."""

    channels: tuple[Channel, ...]
    size: int
    crop: bool
    sink: ImageSink | None


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@lru_cache(maxsize=4)
def _renderer(channels: tuple[Channel, ...], size: int, crop: bool) -> Renderer:
    """One renderer (and its lookup tables) per worker process and settings."""
    return Renderer(channels, size, crop)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def convert_one(item: sources.Input, job: Job) -> dict[str, Any]:
    """Read, render and write one input; never raises for a bad file, returns its manifest row."""
    row: dict[str, Any] = {"id": item.id, "source": item.source, "fname": item.source, "status": "failed", "error": None, "output": None}
    try:
        ds = dicom.parse(sources.read_bytes(item))
        row.update(dicom.read_header(ds))
        sl = dicom.decode(ds)
        row["header_fix"] = sl.fix
        row.update(dicom.pixel_stats(sl.raw, sl.slope, sl.intercept))
        if job.sink is not None:
            renderer = _renderer(job.channels, job.size, job.crop)
            row["output"] = job.sink.write(item.id, renderer.render(sl, bgr=job.sink.bgr))
        row["status"] = "ok"
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on the output device while writing {item.id}") from None
        row["error"] = f"cannot read: {_one_line(err)}"
    except (dicom.DicomError, ValueError, KeyError, zipfile.BadZipFile) as err:
        row["error"] = _one_line(err)
    except MemoryError:
        row["error"] = "out of memory decoding this file"
    except Exception as err:  # a file that breaks a library in a new way must not stop 675,000 others
        row["error"] = f"unexpected {type(err).__name__}: {_one_line(err)}"
    return row


def convert_batch(items: Sequence[sources.Input], job: Job) -> list[dict[str, Any]]:
    """A worker's unit of work: a batch, so per-task overhead stays small next to the work."""
    import cv2

    cv2.setNumThreads(1)
    return [convert_one(item, job) for item in items]


def _batches(items: Sequence[sources.Input], jobs: int) -> list[list[sources.Input]]:
    """Batches big enough to amortise dispatch, small enough for a lively progress bar."""
    size = int(np.clip(len(items) // (jobs * 8) or 1, 8, 256))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _run(batches: list[list[sources.Input]], job: Job, jobs: int) -> Iterator[list[dict[str, Any]]]:
    """Results of the batches as they finish, through joblib (its configured backend: loky or Dask)."""
    from joblib import Parallel, delayed

    if jobs == 1:
        for batch in batches:
            yield convert_batch(batch, job)
        return
    parallel = Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)
    yield from parallel(delayed(convert_batch)(batch, job) for batch in batches)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT: two runs writing one folder would corrupt each other's manifest."""
    state = out / manifest.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out} is being written by another ichprep run; wait for it or choose another output folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _channels(options: Options, inputs: Sequence[sources.Input], previous: dict | None) -> list[Channel]:
    """The run's channels; the fastai preset's breakpoints come from a sample (or the previous run)."""
    try:
        parsed = parse_windows(options.windows)
    except ValueError as err:
        raise UsageError(f"--windows: {err}") from None
    if parsed != FASTAI:
        return parsed
    if previous and previous.get("windows") == FASTAI:
        return fastai_channels(previous["channels"][2]["breaks"])
    return fastai_channels(sample_breaks(inputs))


def sample_breaks(inputs: Sequence[sources.Input], n: int = FREQHIST_SAMPLE) -> np.ndarray:
    """fastai freqhist breakpoints from HU pooled over up to ``n`` evenly spaced readable slices."""
    picks = [inputs[int(i)] for i in np.linspace(0, len(inputs) - 1, min(n, len(inputs)))] if inputs else []
    pooled = []
    for item in picks:
        try:
            pooled.append(dicom.decode(dicom.parse(sources.read_bytes(item))).hu()[::2, ::2].ravel())
        except Exception:
            continue
    if not pooled:
        raise UsageError("the fastai preset needs at least one readable slice to compute its breakpoints")
    return freqhist_breaks(np.concatenate(pooled))


def _settings(options: Options, channels: Sequence[Channel]) -> dict[str, Any]:
    return {
        "windows": options.windows if options.windows == FASTAI else ",".join(c.name for c in channels),
        "channels": [c.describe() for c in channels],
        "size": options.size,
        "crop": options.crop,
        "format": EXTENSIONS.get(options.format, options.format),
        "quality": options.quality,
        "ichprep_version": __version__,
    }


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix images made with different settings in one folder."""
    path = out / SETTINGS
    if not path.exists():
        return
    old = json.loads(path.read_text())
    keys = ("windows", "size", "crop", "format") + (("quality",) if settings["format"] == "jpg" else ())
    changed = [f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in keys if old.get(k) != settings[k]]
    if changed:
        raise UsageError(f"{out} holds output made with other settings ({'; '.join(changed)}): use another output folder")


def _write_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / SETTINGS
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(settings, indent=2))
    os.replace(tmp, path)


def _validate_ids(inputs: Sequence[sources.Input]) -> tuple[list[sources.Input], list[dict[str, Any]]]:
    """Split off inputs whose id would be an unsafe file name or collide with an earlier input."""
    seen: dict[str, str] = {}
    good, bad = [], []
    for item in inputs:
        reason = None
        if not sources.is_safe_id(item.id):
            reason = f"unsafe image id {item.id!r} for a file name"
        elif item.id in seen:
            reason = f"duplicate image id (also {seen[item.id]})"
        if reason:
            bad.append({"id": item.id, "source": item.source, "fname": item.source, "status": "failed", "error": reason})
        else:
            seen[item.id] = item.source
            good.append(item)
    return good, bad


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of an interrupted run: never valid output, always safe to delete."""
    for path in out.glob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def _done_ids(out: Path, previous: pd.DataFrame, sink: ImageSink) -> set[str]:
    if previous.empty:
        return set()
    ok = previous.loc[previous["status"] == "ok", "id"].astype(str)
    return {i for i in ok if (out / sink.name(i)).exists()}


def _report(row: dict[str, Any], result: Result, say: Callable[[str], None]) -> None:
    if row["status"] == "ok":
        result.converted += 1
    else:
        result.failed += 1
        result.failures.append((row["source"], row["error"]))
        say(f"{row['source']}: {row['error']}")


def convert(src: Path | str, out: Path | str, options: Options = Options()) -> Result:
    """Convert every DICOM of ``src`` into ``out``; resumable, one manifest row per input."""
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if options.format not in EXTENSIONS:
        raise UsageError(f"--format {options.format!r}: choose png or jpg")
    if options.size < 8 or options.size > 4096:
        raise UsageError(f"--size {options.size}: choose 8 to 4096 pixels")
    if not 1 <= options.quality <= 100:
        raise UsageError(f"--quality {options.quality}: choose 1 to 100")
    try:
        inputs = sources.discover(src, options.ids)
    except sources.SourceError as err:
        raise UsageError(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        previous_settings = json.loads((out / SETTINGS).read_text()) if (out / SETTINGS).exists() else None
        channels = _channels(options, inputs, previous_settings)
        if options.format in ("png", "jpg", "jpeg") and len(channels) not in (1, 3):
            raise UsageError(f"{options.format} images hold 1 or 3 channels; {len(channels)} windows given")
        settings = _settings(options, channels)
        _check_settings(out, settings)
        _write_settings(out, settings)
        _remove_stale_temporaries(out)

        sink = ImageSink(str(out), options.format, options.quality)
        job = Job(tuple(channels), options.size, options.crop, sink)
        good, bad = _validate_ids(inputs)
        done = _done_ids(out, manifest.load(out), sink)
        todo = [i for i in good if i.id not in done]
        result = Result(skipped=len(good) - len(todo))
        writer = manifest.ManifestWriter(out)
        say = (lambda line: tqdm.write(line, file=sys.stderr))
        for row in bad:
            _report(row, result, say)
        writer.add(bad)
        jobs = max(1, min(options.jobs or default_jobs(), len(todo) or 1))
        bar = tqdm(total=len(todo), disable=options.quiet, unit="img", desc="convert", file=sys.stderr, dynamic_ncols=True)
        try:
            for rows in _run(_batches(todo, jobs), job, jobs):
                for row in rows:
                    _report(row, result, say)
                writer.add(rows)
                bar.update(len(rows))
        finally:
            bar.close()
            result.manifest = out / manifest.MANIFEST
            writer.finalize()
    return result


def scan(src: Path | str, jobs: int | None = None, quiet: bool = True, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Manifest rows (header fields, pixel statistics, outcome) of every input, writing nothing."""
    from tqdm import tqdm

    try:
        inputs = sources.discover(Path(src), ids)
    except sources.SourceError as err:
        raise UsageError(str(err)) from None
    good, bad = _validate_ids(inputs)
    job = Job((Window("brain", 40, 80),), 1, False, None)
    n_jobs = max(1, min(jobs or default_jobs(), len(good) or 1))
    rows: list[dict[str, Any]] = list(bad)
    with tqdm(total=len(good), disable=quiet, unit="file", desc="scan", file=sys.stderr) as bar:
        for batch_rows in _run(_batches(good, n_jobs), job, n_jobs):
            rows.extend(batch_rows)
            bar.update(len(batch_rows))
    return manifest.frame(rows)
