"""The conversion pipeline: a source's inputs in tasks -> workers -> images + manifest rows.

The parent lists the inputs, has the run planned (``plan``: the settings resolved and checked
against what OUT already holds, the inputs sorted, the disk fitted), keeps the progress bar and
writes the manifest; workers (``ichprep.convert.run.worker``) read, render and store. Everything a
user can get wrong is checked before anything is created, and a refused run leaves no trace in a
folder that did not exist. Re-running the same command resumes.
"""

from __future__ import annotations

import errno
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ichprep import LABELS, layout
from ichprep.convert.run import budget, fit, ladder, manifest, plan, resume
from ichprep.convert.run.parallel import batch_size, batches, chunks, default_jobs, run_tasks
from ichprep.convert.run.plan import Triage
from ichprep.convert.run.worker import Job, Task
from ichprep.convert.sources import Input, Source, open_source
from ichprep.convert.sources.inflight import Watch
from ichprep.convert.sources.zipped import Ahead, ZipArchive
from ichprep.errors import DiskFullError, IchprepError
from ichprep.paths import output_folder, removed_if_refused
from ichprep.settings import Settings
from ichprep.store import Shards
from ichprep.store.shards import DEFAULT_SHARD_SIZE, index_frame

STREAM_SHARD_SIZE = 256
"""A stream's members reach workers inside their tasks: a shard of a stream holds at most this many in memory."""


@dataclass(frozen=True)
class Options:
    """How to run a conversion; none of it changes the images (that is ``Settings``)."""

    jobs: int | None = None
    quiet: bool = False
    ids: Sequence[str] | None = None
    labels: Path | None = None
    """HDF5: the labels CSV whose rows are stored in the shards."""
    shard_size: int = DEFAULT_SHARD_SIZE
    max_disk: int | None = None
    min_quality: int = ladder.MIN_QUALITY
    """The lowest JPEG quality ``max_disk`` may pick for a lossy run given no quality."""
    dry_run: bool = False
    scheduler: str | None = None
    headers: tuple[str, ...] = field(default=(), repr=False)
    """``Name: value`` request headers for a URL source (never stored or shown: they may hold a secret)."""

    def check(self) -> Options:
        """Refuse values no run can be made with (``IchprepError`` naming the option)."""
        if self.shard_size < 1:
            raise IchprepError(f"--shard-size {self.shard_size}: must be at least 1")
        if self.jobs is not None and self.jobs < 1:
            raise IchprepError(f"--jobs {self.jobs}: must be at least 1")
        if not 1 <= self.min_quality <= 100:
            raise IchprepError(f"--min-quality {self.min_quality}: choose 1 to 100")
        return self


@dataclass
class Result:
    """Counts of a run, where its manifest is, the size estimate when one was made, and the JPEG ladder when measured."""

    converted: int = 0
    failed: int = 0
    skipped: int = 0
    fetched: int = 0
    manifest: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    estimate: budget.Estimate | None = None
    settings: Settings | None = None
    fitted: fit.Fit | None = None


def convert(
    src: Path | str,
    out: Path | str,
    settings: Settings = Settings(),
    options: Options = Options(),
    say: Callable[[str], None] | None = None,
) -> Result:
    """Convert every DICOM of ``src`` into ``out`` with ``settings``; resumable, one manifest row per input.

    ``say`` receives the quality ``--max-disk`` picked, before the run, and one line per failed
    input (default: stderr above the progress bar).
    """
    if not isinstance(settings, Settings) or not isinstance(options, Options):
        raise TypeError(f"convert(src, out, settings: Settings, options: Options): got {type(settings).__name__}, {type(options).__name__}")
    out = output_folder(Path(out), "OUT")
    settings.check()
    options.check()
    source = open_source(src, options.headers)
    inputs = source.inputs(options.ids)
    if isinstance(inputs, list) and not inputs:
        raise IchprepError(_nothing_found(source, options))
    if not isinstance(inputs, list):
        _check_streamable(source, settings, options)
    labels = _labels_by_id(options.labels)
    if options.dry_run:
        planned = plan.dry_run(source, inputs, out, settings, options.max_disk, options.min_quality)
        return Result(skipped=planned.triage.skipped, estimate=planned.fitted.estimate, settings=planned.settings,
                      fitted=planned.fitted)
    with removed_if_refused(out):
        out.mkdir(parents=True, exist_ok=True)
        with resume.locked(out):
            return _convert(source, inputs, out, settings, options, labels, say)


def _nothing_found(source: Source, options: Options) -> str:
    return f"{source.name}: no DICOM files found{' among the --ids given' if options.ids is not None else ''}"


def _check_streamable(source: Source, settings: Settings, options: Options) -> None:
    """Refuse what needs the inputs counted or sampled before the run, or a whole shard's members in memory."""
    why = f"{source.name} is a stream (read once, front to back; a URL whose server answers range requests is not)"
    if options.dry_run or options.max_disk is not None:
        raise IchprepError(f"--dry-run and --max-disk estimate from a sample of all the inputs: {why}")
    if settings.format == "hdf5" and options.shard_size > STREAM_SHARD_SIZE:
        raise IchprepError(f"--shard-size {options.shard_size}: a shard's members are held in memory when {why}; "
                           f"give --shard-size {STREAM_SHARD_SIZE} or less")


def _convert(
    source: Source,
    inputs: list[Input] | Iterator[Input],
    out: Path,
    settings: Settings,
    options: Options,
    labels: dict[str, np.ndarray],
    say: Callable[[str], None] | None,
) -> Result:
    """The run itself, inside OUT's lock."""
    from tqdm import tqdm

    say = say or (lambda line: tqdm.write(line, file=sys.stderr))
    done, recorded = resume.previous_runs(out)
    planned = plan.plan(source, inputs, out, settings, done, out, options.max_disk, options.min_quality, options.dry_run)
    settings, job, triage, todo, fitted = planned.settings, planned.job, planned.triage, planned.todo, planned.fitted
    result = Result(manifest=out / layout.MANIFEST, settings=settings, estimate=fitted.estimate, fitted=fitted)
    if fitted.picked:
        say(fitted.announce())
    settings.save(out)

    writer = manifest.ManifestWriter(out)
    reserve = budget.Reserve(out / layout.STATE_DIR / "reserve")
    jobs = options.jobs or default_jobs()
    jobs = max(1, min(jobs, len(todo) or 1)) if isinstance(todo, list) else jobs
    bar = tqdm(total=len(todo) if isinstance(todo, list) else None, disable=options.quiet, unit="img", desc="convert",
               file=sys.stderr, dynamic_ncols=True)
    started = time.monotonic()
    fetching = _ahead(source, todo, job, jobs, options)
    watch = Watch(fetching.limits) if fetching is not None else None
    try:
        _write(triage.take_refused(), writer, result, say, recorded)
        for done_task in run_tasks(job, _tasks(fetching or todo, job, out, jobs, options, labels), jobs, options.scheduler):
            _write(triage.take_refused() + done_task.rows, writer, result, say, recorded)
            result.fetched += done_task.fetched
            bar.update(len(done_task.rows))
            _show_fetched(bar, source.fetched + result.fetched, started, watch)
            _check_space(out, options, result)
        _write(triage.take_refused(), writer, result, say, recorded)
    finally:
        bar.close()
        reserve.release()
        _finalize(writer, out, settings.format == "hdf5")
    if triage.cut is not None:
        raise triage.cut
    result.skipped = triage.skipped
    result.fetched += source.fetched
    if not triage.seen and not result.failed:
        raise IchprepError(_nothing_found(source, options))
    return result


def _write(rows: list[dict[str, Any]], writer: manifest.ManifestWriter, result: Result, say: Callable[[str], None],
           recorded: set[tuple[str, str]]) -> None:
    """Count and report every row; add to the manifest those it does not already hold with the same failure."""
    for row in rows:
        _report(row, result, say)
        if row["status"] == "ok" and result.settings is not None and result.settings.lossy:
            row["quality"] = result.settings.quality
    writer.add(r for r in rows if r["status"] == "ok" or (r["source"], r["error"]) not in recorded)


def _show_fetched(bar: Any, fetched: int, started: float, watch: Watch | None = None) -> None:
    """Bytes read from the source so far and the rate, after the bar's slice count; and what limits the run, when known.

    ``CPU``: the workers never wait for bytes, so more ``--jobs`` would help; ``link``: they wait
    for a link that is busy; ``round trips``: they wait with every request slot busy.
    """
    rate = fetched / max(time.monotonic() - started, 1e-3)
    bound = watch.bound() if watch is not None else ""
    limit = f", limit: {bound}" if bound else ""
    bar.set_postfix_str(f"{budget.human(fetched)} fetched, {budget.human(rate)}/s{limit}", refresh=False)


def _ahead(source: Source, todo: list[Input] | Iterator[Input], job: Job, jobs: int, options: Options) -> Ahead | None:
    """A URL's members fetched by the parent ahead of its workers, so that no task starts with a round trip.

    A batch for each worker is held ahead (and two round trips' worth of the link on top): when
    every worker finishes at once, each finds its next batch fetched.

    Only for image batches on this machine: a shard's members would all sit in its task, and a
    Dask worker fetches its own ranges (the cluster may be far from this machine).
    """
    if (not isinstance(source, ZipArchive) or source.reader.meter() is None or not isinstance(todo, list) or not todo
            or options.scheduler is not None or isinstance(job.sink, Shards)):
        return None
    return source.ahead(todo, batch_size(len(todo), jobs) * jobs)


def _report(row: dict[str, Any], result: Result, say: Callable[[str], None]) -> None:
    if row["status"] == "ok":
        result.converted += 1
    else:
        result.failed += 1
        result.failures.append((row["source"], row["error"]))
        say(f"{row['source']}: {row['error']}")


def _labels_by_id(path: Path | None) -> dict[str, np.ndarray]:
    """Per-image label vectors (LABELS order) for shards, from the competition CSV."""
    if path is None:
        return {}
    from ichprep.labels import read_labels
    from ichprep.paths import existing

    table = read_labels(existing(Path(path), "--labels", "file"))
    values = table[list(LABELS)].to_numpy(np.uint8)
    return dict(zip(table["SOPInstanceUID"].astype(str), values))


def _tasks(todo: Iterable[Input], job: Job, out: Path, jobs: int, options: Options,
           labels: dict[str, np.ndarray]) -> Iterator[Task]:
    """Image batches, or whole shards numbered after every shard already on disk; drawn as the run goes."""
    if not isinstance(job.sink, Shards):
        yield from (Task(tuple(batch)) for batch in batches(todo, jobs))
        return
    first = resume.next_shard(out)
    for k, items in enumerate(chunks(todo, shard_size(todo, options.shard_size, jobs))):
        yield Task(tuple(items), first + k, {i.id: labels[i.id] for i in items if i.id in labels})


def shard_size(todo: Iterable[Input], largest: int, jobs: int) -> int:
    """Images per shard: ``--shard-size``, or fewer when that would leave processes idle.

    A shard is one process's task, so 3,000 inputs in shards of 10,000 would be converted by
    one process whatever ``--jobs`` says; they are cut into ``jobs`` shards instead. A stream,
    whose length is unknown, keeps the size asked for.
    """
    if not isinstance(todo, list) or not todo:
        return largest
    return max(1, min(largest, -(-len(todo) // jobs)))


def _finalize(writer: manifest.ManifestWriter, out: Path, shards: bool) -> None:
    """Write the manifest (and the shard index); a full disk here is reported as one, resumably."""
    try:
        changed = writer.finalize()
        if shards and (changed or not (out / layout.INDEX).exists()):
            manifest.write_atomic(index_frame(manifest.load(out, ["id", "status", "output", "row"])), out / layout.INDEX)
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


def scan(src: Path | str, jobs: int | None = None, quiet: bool = True, ids: Sequence[str] | None = None,
         headers: Sequence[str] = ()):
    """Manifest rows (header fields, pixel statistics, outcome) of every input, writing nothing."""
    from tqdm import tqdm

    source = open_source(src, headers)
    inputs = source.inputs(ids)
    triage = Triage()
    good = triage.pending(inputs)
    if isinstance(inputs, list):
        good = list(good)
    job = Job(source.for_workers())
    n_jobs = jobs or default_jobs()
    n_jobs = max(1, min(n_jobs, len(good) or 1)) if isinstance(good, list) else n_jobs
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(good) if isinstance(good, list) else None, disable=quiet, unit="file", desc="scan", file=sys.stderr) as bar:
        for done in run_tasks(job, (Task(tuple(b)) for b in batches(good, n_jobs)), n_jobs):
            rows.extend(triage.take_refused() + done.rows)
            bar.update(len(done.rows))
    if triage.cut is not None:
        raise triage.cut
    return manifest.frame(rows + triage.take_refused())
