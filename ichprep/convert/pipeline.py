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
import shutil
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ichprep import LABELS, __version__, atomic
from ichprep.convert import budget, dicom, manifest, sources
from ichprep.convert.render import Renderer
from ichprep.convert.windows import (
    FASTAI,
    Channel,
    fastai_channels,
    freqhist_breaks,
    parse_windows,
)
from ichprep.errors import BudgetError, DiskFullError, IchprepError, LabelsError
from ichprep.settings import SETTINGS, load_settings
from ichprep.store import shards as hdf5
from ichprep.store.images import EXTENSIONS, ImageSink

FREQHIST_SAMPLE = 32
"""Slices pooled for the fastai preset's breakpoints (Jeremy used a small sample too)."""


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
    codec: str = hdf5.DEFAULT_CODEC
    shard_size: int = hdf5.DEFAULT_SHARD_SIZE
    labels: Path | None = None
    max_disk: int | None = None
    dry_run: bool = False
    scheduler: str | None = None


@dataclass
class Result:
    """Counts of a run and where its manifest is."""

    converted: int = 0
    failed: int = 0
    skipped: int = 0
    manifest: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    estimate: budget.Estimate | None = None


FORMATS = ("png", "jpg", "jpeg", "hdf5")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable and small: channels, geometry and where images go.

    With neither ``sink`` nor ``shard`` (``scan``) nothing is rendered, only read and measured.
    """

    channels: tuple[Channel, ...] = ()
    size: int = 256
    crop: bool = True
    sink: ImageSink | None = None
    shard: hdf5.ShardSpec | None = None


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


Store = Callable[[str, np.ndarray], "tuple[str, int | None]"]
"""Puts one rendered image somewhere; returns (output name, row in it or None)."""


def convert_one(item: sources.Input, job: Job, store: Store | None = None, bgr: bool = False) -> dict[str, Any]:
    """Read, render and store one input; never raises for a bad file, returns its manifest row."""
    row: dict[str, Any] = {"id": item.id, "source": item.source, "fname": item.source, "status": "failed", "error": None, "output": None}
    try:
        parsed = dicom.read(sources.read_bytes(item))
        row.update(parsed.header)
        sl = parsed.decode()
        row["header_fix"] = sl.fix
        row.update(dicom.pixel_stats(sl.raw, sl.slope, sl.intercept))
        if store is not None:
            renderer = _renderer(job.channels, job.size, job.crop)
            row["output"], row["row"] = store(item.id, renderer.render(sl, bgr=bgr))
        row["status"] = "ok"
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on the output device while writing {item.id}") from None
        row["error"] = f"cannot read: {dicom.one_line(err)}"
    except (dicom.DicomError, ValueError, KeyError, zipfile.BadZipFile) as err:
        row["error"] = dicom.one_line(err)
    except MemoryError:
        row["error"] = "out of memory decoding this file"
    except Exception as err:  # a file that breaks a library in a new way must not stop 675,000 others
        row["error"] = f"unexpected {type(err).__name__}: {dicom.one_line(err)}"
    return row


def convert_batch(items: Sequence[sources.Input], job: Job) -> list[dict[str, Any]]:
    """A worker's unit of work for image files (or no output at all, for ``scan``)."""
    import cv2

    cv2.setNumThreads(1)
    sink = job.sink
    if sink is None:
        return [convert_one(item, job) for item in items]
    return [convert_one(item, job, lambda i, img: (sink.write(i, img), None), sink.bgr) for item in items]


def convert_shard(items: Sequence[sources.Input], labels: dict[str, np.ndarray], job: Job, out: str, number: int) -> list[dict[str, Any]]:
    """A worker's unit of work for HDF5: one whole shard, written by this process alone."""
    import cv2

    cv2.setNumThreads(1)
    spec = job.shard
    name = hdf5.shard_name(number)
    writer = hdf5.ShardWriter(Path(out) / name, spec, capacity=len(items))
    try:
        rows = [convert_one(item, job, lambda i, img: (name, writer.append(i, img, labels.get(i))), spec.bgr) for item in items]
    except BaseException:
        writer.abort()
        raise
    if any(r["status"] == "ok" for r in rows):
        writer.close()
    else:
        writer.abort()
    return rows


def _batches(items: Sequence[sources.Input], jobs: int) -> list[list[sources.Input]]:
    """Batches big enough to amortise dispatch, small enough for a lively progress bar."""
    size = int(np.clip(len(items) // (jobs * 8) or 1, 8, 256))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


Task = tuple[Callable[..., list[dict[str, Any]]], tuple]


def _run(tasks: list[Task], jobs: int, scheduler: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Results of the tasks as they finish: in-process for one job, else joblib (loky, or Dask at ``scheduler``)."""
    from joblib import Parallel, delayed

    if scheduler is None and jobs == 1:
        for fn, args in tasks:
            yield fn(*args)
        return
    if scheduler is None:
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)(delayed(fn)(*args) for fn, args in tasks)
        return
    from dask.distributed import Client
    from joblib import parallel_config

    with Client(scheduler), parallel_config(backend="dask"):
        yield from Parallel(n_jobs=-1, return_as="generator_unordered", batch_size=1)(delayed(fn)(*args) for fn, args in tasks)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT: two runs writing one folder would corrupt each other's manifest."""
    state = out / manifest.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IchprepError(f"{out} is being written by another ichprep run; wait for it or choose another output folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _channels(options: Options, inputs: Sequence[sources.Input], previous: dict[str, Any]) -> list[Channel]:
    """The run's channels; the fastai preset's breakpoints come from a sample (or the previous run)."""
    try:
        parsed = parse_windows(options.windows)
    except ValueError as err:
        raise IchprepError(f"--windows: {err}") from None
    if parsed != FASTAI:
        return parsed
    if previous.get("windows") == FASTAI:
        return fastai_channels(previous["channels"][2]["breaks"])
    return fastai_channels(sample_breaks(inputs))


def sample_breaks(inputs: Sequence[sources.Input], n: int = FREQHIST_SAMPLE) -> np.ndarray:
    """fastai freqhist breakpoints from HU pooled over up to ``n`` evenly spaced readable slices."""
    picks = [inputs[int(i)] for i in np.linspace(0, len(inputs) - 1, min(n, len(inputs)))] if inputs else []
    pooled = []
    for item in picks:
        try:
            pooled.append(dicom.read(sources.read_bytes(item)).decode().hu()[::2, ::2].ravel())
        except Exception:
            continue
    if not pooled:
        raise IchprepError("the fastai preset needs at least one readable slice to compute its breakpoints")
    return freqhist_breaks(np.concatenate(pooled))


def _settings(options: Options, channels: Sequence[Channel]) -> dict[str, Any]:
    return {
        "windows": options.windows if options.windows == FASTAI else ",".join(c.name for c in channels),
        "channels": [c.describe() for c in channels],
        "size": options.size,
        "crop": options.crop,
        "format": EXTENSIONS.get(options.format, options.format),
        "quality": options.quality,
        **({"codec": options.codec} if options.format == "hdf5" else {}),
        "ichprep_version": __version__,
    }


def options_from_settings(settings: dict[str, Any], **overrides: Any) -> Options:
    """Options that reproduce a conversion from its settings (how ``predict`` renders new DICOMs)."""
    known = {k: settings[k] for k in ("windows", "size", "crop", "format", "quality", "codec") if k in settings}
    return Options(**{**known, **overrides})


def _check_settings(out: Path, old: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse to mix images made with different settings in one folder."""
    if not old:
        return
    lossy = settings["format"] == "jpg" or settings.get("codec") == "jpeg"
    keys = ("windows", "size", "crop", "format") + (("quality",) if lossy else ()) + (("codec",) if "codec" in settings else ())
    changed = [f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in keys if old.get(k) != settings[k]]
    if changed:
        raise IchprepError(f"{out} holds output made with other settings ({'; '.join(changed)}): use another output folder")


def _write_settings(out: Path, settings: dict[str, Any]) -> None:
    atomic.write_bytes(out / SETTINGS, json.dumps(settings, indent=2).encode())


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
    """Temporary files of an interrupted run (images, shards, manifest parts): never valid output."""
    for folder in (out, out / manifest.STATE_DIR / manifest.PARTS):
        for path in folder.glob(atomic.STALE):
            if path.is_file():
                path.unlink(missing_ok=True)


def _done_ids(out: Path, previous: pd.DataFrame) -> set[str]:
    """Ids whose manifest row is ok and whose output (image or shard) is on disk."""
    if previous.empty:
        return set()
    ok = previous.loc[previous["status"] == "ok", ["id", "output"]].dropna()
    present = {name for name in ok["output"].unique() if (out / name).exists()}
    return set(ok.loc[ok["output"].isin(present), "id"].astype(str))


def _remove_orphan_shards(out: Path, previous: pd.DataFrame) -> None:
    """Shards no manifest row points to (finished after a stop): their images would be duplicates."""
    known = set(previous["output"].dropna()) if not previous.empty else set()
    for path in out.glob("shard-*.h5"):
        if path.name not in known:
            path.unlink()


def _report(row: dict[str, Any], result: Result, say: Callable[[str], None]) -> None:
    if row["status"] == "ok":
        result.converted += 1
    else:
        result.failed += 1
        result.failures.append((row["source"], row["error"]))
        say(f"{row['source']}: {row['error']}")


def _check_options(options: Options) -> None:
    if options.format not in FORMATS:
        raise IchprepError(f"--format {options.format!r}: choose png, jpg or hdf5")
    if options.size < 8 or options.size > 4096:
        raise IchprepError(f"--size {options.size}: choose 8 to 4096 pixels")
    if not 1 <= options.quality <= 100:
        raise IchprepError(f"--quality {options.quality}: choose 1 to 100")
    if options.codec not in hdf5.CODECS:
        raise IchprepError(f"--codec {options.codec!r}: choose one of {', '.join(hdf5.CODECS)}")
    if options.shard_size < 1:
        raise IchprepError(f"--shard-size {options.shard_size}: must be at least 1")


def _labels_by_id(path: Path | None) -> dict[str, np.ndarray]:
    """Per-image label vectors (LABELS order) for shards, from the competition CSV."""
    if path is None:
        return {}
    from ichprep.labels import read_labels

    try:
        table = read_labels(path)
    except (LabelsError, OSError) as err:
        raise IchprepError(f"--labels: {err}") from None
    values = table[list(LABELS)].to_numpy(np.uint8)
    return dict(zip(table["SOPInstanceUID"].astype(str), values))


def _tasks(todo: list[sources.Input], job: Job, out: Path, jobs: int, options: Options, labels: dict[str, np.ndarray]) -> list[Task]:
    """Image batches, or whole shards numbered after every shard already on disk."""
    if job.shard is None:
        return [(convert_batch, (batch, job)) for batch in _batches(todo, jobs)]
    first = 1 + max((hdf5.shard_number(p.name) for p in out.glob("shard-*.h5")), default=-1)
    tasks: list[Task] = []
    for k, start in enumerate(range(0, len(todo), options.shard_size)):
        items = todo[start : start + options.shard_size]
        shard_labels = {i.id: labels[i.id] for i in items if i.id in labels}
        tasks.append((convert_shard, (items, shard_labels, job, str(out), first + k)))
    return tasks


def _estimate(todo: list[sources.Input], job: Job, out: Path, options: Options) -> budget.Estimate:
    """Convert a spread-out sample into a scratch folder of OUT and measure what it occupies."""
    scratch = out / manifest.STATE_DIR / "sample"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    picks = [todo[int(i)] for i in np.linspace(0, len(todo) - 1, min(budget.SAMPLE, len(todo)))] if todo else []
    try:
        sample_job = Job(job.channels, job.size, job.crop, ImageSink(str(scratch), job.sink.fmt, job.sink.quality) if job.sink else None, job.shard)
        if job.shard is not None:
            rows = convert_shard(picks, {}, sample_job, str(scratch), 0)
        else:
            rows = convert_batch(picks, sample_job)
        made = sum(r["status"] == "ok" for r in rows)
        per_image = budget.disk_usage(scratch) / made if made else 0.0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    limit = options.max_disk
    return budget.Estimate(images=len(todo), per_image=per_image, free=budget.free_bytes(out), limit=limit)


def convert(src: Path | str, out: Path | str, options: Options = Options(), say: Callable[[str], None] | None = None) -> Result:
    """Convert every DICOM of ``src`` into ``out``; resumable, one manifest row per input.

    ``say`` receives one line per failed input (default: stderr above the progress bar).
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    _check_options(options)
    say = say or (lambda line: tqdm.write(line, file=sys.stderr))
    inputs = sources.discover(src, options.ids)
    if not inputs:
        restriction = " among the --ids given" if options.ids is not None else ""
        raise IchprepError(f"{src}: no DICOM files found{restriction}")
    labels = _labels_by_id(options.labels)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        previous_settings = load_settings(out)
        channels = _channels(options, inputs, previous_settings)
        if options.format != "hdf5" and len(channels) not in (1, 3):
            raise IchprepError(f"{options.format} images hold 1 or 3 channels; {len(channels)} windows given")
        settings = _settings(options, channels)
        _check_settings(out, previous_settings, settings)
        _remove_stale_temporaries(out)
        previous = manifest.load(out)
        _remove_orphan_shards(out, previous)

        if options.format == "hdf5":
            spec = hdf5.ShardSpec(options.codec, options.size, len(channels), options.quality, hdf5.shard_attrs(settings))
            job = Job(tuple(channels), options.size, options.crop, shard=spec)
        else:
            job = Job(tuple(channels), options.size, options.crop, sink=ImageSink(str(out), options.format, options.quality))
        good, bad = _validate_ids(inputs)
        done = _done_ids(out, previous)
        todo = [i for i in good if i.id not in done]
        result = Result(skipped=len(good) - len(todo), manifest=out / manifest.MANIFEST)

        if options.max_disk is not None or options.dry_run:
            estimate = _estimate(todo, job, out, options)
            result.estimate = estimate
            if options.dry_run:
                return result
            if not estimate.fits:
                raise BudgetError(f"{estimate.describe()}: it would not fit; {budget.advice(EXTENSIONS.get(options.format, 'hdf5'), options.size)}")
        _write_settings(out, settings)

        writer = manifest.ManifestWriter(out)
        reserve = budget.Reserve(out / manifest.STATE_DIR / "reserve")
        for row in bad:
            _report(row, result, say)
        writer.add(bad)
        jobs = max(1, min(options.jobs or default_jobs(), len(todo) or 1))
        bar = tqdm(total=len(todo), disable=options.quiet, unit="img", desc="convert", file=sys.stderr, dynamic_ncols=True)
        try:
            for rows in _run(_tasks(todo, job, out, jobs, options, labels), jobs, options.scheduler):
                for row in rows:
                    _report(row, result, say)
                writer.add(rows)
                bar.update(len(rows))
                _check_space(out, options, result)
        finally:
            bar.close()
            reserve.release()
            _finalize(writer, out, options.format == "hdf5")
    return result


def _finalize(writer: manifest.ManifestWriter, out: Path, shards: bool) -> None:
    """Write the manifest (and the shard index); a full disk here is reported as one, resumably."""
    try:
        table = writer.finalize()
        if shards:
            ok = table[(table["status"] == "ok") & table["output"].notna()]
            manifest.write_atomic(hdf5.index_frame(ok.to_dict("records")), out / "index.parquet")
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on {out} to write the manifest") from None
        raise


def _check_space(out: Path, options: Options, result: Result) -> None:
    """Stop before the disk fills or the budget is spent; everything finished so far is kept."""
    free = budget.free_bytes(out)
    if free < budget.MARGIN:
        raise DiskFullError(f"free space on {out} fell to {budget.human(free)}")
    if options.max_disk is not None and result.estimate is not None:
        used = result.converted * result.estimate.per_image
        if used > options.max_disk:
            raise DiskFullError(f"the budget --max-disk {budget.human(options.max_disk)} is spent")


def scan(src: Path | str, jobs: int | None = None, quiet: bool = True, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Manifest rows (header fields, pixel statistics, outcome) of every input, writing nothing."""
    from tqdm import tqdm

    inputs = sources.discover(Path(src), ids)
    good, bad = _validate_ids(inputs)
    job = Job()
    n_jobs = max(1, min(jobs or default_jobs(), len(good) or 1))
    rows: list[dict[str, Any]] = list(bad)
    with tqdm(total=len(good), disable=quiet, unit="file", desc="scan", file=sys.stderr) as bar:
        for batch_rows in _run([(convert_batch, (batch, job)) for batch in _batches(good, n_jobs)], n_jobs):
            rows.extend(batch_rows)
            bar.update(len(batch_rows))
    return manifest.frame(rows)
