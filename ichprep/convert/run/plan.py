"""What a run will do, decided before any worker starts: its settings, its inputs, its quality; and the dry run.

``plan`` resolves the settings (the fastai preset's breakpoints sampled from slices spread over all
the inputs, or the ones OUT's earlier run used) and checks them against what OUT already holds,
sorts the inputs (``Triage``: refused, already converted, to convert), and fits the run to its
disk (``fit``: the JPEG quality its budget affords, or a refusal). ``dry_run`` makes the same plan
and leaves OUT as it was. Kept apart from ``pipeline`` so that the pipeline only drives the stages.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ichprep import layout
from ichprep.convert.read import dicom
from ichprep.convert.run import fit, manifest, resume
from ichprep.convert.run.worker import Job
from ichprep.convert.sources import Input, Source, is_safe_id
from ichprep.errors import IchprepError, StreamCutError
from ichprep.settings import DEFAULT_QUALITY, Settings
from ichprep.store import ImageFiles, Shards, SinkSpec
from ichprep.windows import fastai_channels, freqhist_breaks, is_fastai, unsampled

FREQHIST_SAMPLE = 32
"""Slices pooled for the fastai preset's breakpoints (Jeremy used a small sample too)."""


@dataclass
class Plan:
    """A run's settings ready to render, the job its workers share, its inputs sorted and still to convert, its fit to the disk.

    ``todo`` is a list for a listed source (it is counted and sampled) and, for a stream, an
    iterator that sorts its members as they arrive.
    """

    settings: Settings
    job: Job
    triage: Triage
    todo: list[Input] | Iterator[Input]
    fitted: fit.Fit


def plan(source: Source, inputs: list[Input] | Iterator[Input], out: Path, settings: Settings, done: set[str], where: Path,
         limit: int | None, min_quality: int, dry_run: bool = False) -> Plan:
    """The plan of a run of ``inputs`` into ``out`` (free space measured at ``where``), ``done`` ids skipped.

    ``limit`` is ``--max-disk``; ``BudgetError`` when nothing fits (a dry run refuses nothing).
    """
    settings = resolve(settings, source, inputs, out)
    job = Job(source.for_workers(), settings.channels, settings.size, settings.crop, sink(out, settings))
    triage = Triage(done)
    todo = triage.pending(inputs)
    todo = list(todo) if isinstance(inputs, list) else todo
    settings, job, fitted = _fit(settings, job, todo, out, where, limit, min_quality, dry_run)
    return Plan(settings, job, triage, todo, fitted)


def dry_run(source: Source, inputs: list[Input], out: Path, settings: Settings, limit: int | None, min_quality: int) -> Plan:
    """The plan of a run, its output size estimated from a converted sample, leaving OUT as it was (nothing created)."""
    created = next((p for p in [*reversed(out.absolute().parents), out, out / layout.STATE_DIR] if not p.exists()), None)
    try:
        done = resume.done_ids(out, manifest.load(out, manifest.STATE_COLUMNS)) if out.exists() else set()
        where = out if out.exists() else _existing_parent(out)
        return plan(source, inputs, out, settings, done, where, limit, min_quality, dry_run=True)
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _fit(settings: Settings, job: Job, todo: list[Input] | Iterator[Input], out: Path, where: Path, limit: int | None,
         min_quality: int, dry_run: bool) -> tuple[Settings, Job, fit.Fit]:
    """The run's settings and job with the quality its budget affords (``BudgetError`` when nothing fits).

    A stream cannot be sampled: its run keeps the quality given (or the default) and stops if the
    disk fills.
    """
    if isinstance(todo, list):
        fitted = fit.fit(job, todo, settings, out / layout.STATE_DIR / "sample", where, limit, min_quality, dry_run)
    else:
        fitted = fit.Fit(settings.quality or DEFAULT_QUALITY)
    settings = replace(settings, quality=fitted.quality)
    return settings, replace(job, sink=replace(job.sink, quality=fitted.quality)), fitted


def _existing_parent(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (where its free space is measured)."""
    return next(p for p in path.absolute().parents if p.exists())


def resolve(settings: Settings, source: Source, inputs: Sequence[Input] | Iterator[Input], out: Path) -> Settings:
    """The run's settings, ready to render (``resolve_fastai``), checked against what OUT already holds."""
    previous = Settings.load(out)
    settings = resolve_fastai(settings, source, inputs, previous)
    if settings.quality is None and previous is not None and previous.format == settings.format:
        settings = replace(settings, quality=previous.quality)  # a resumed run keeps the quality its budget picked
    changed = previous.output_differences(settings) if previous is not None else []
    if changed:
        raise IchprepError(f"{out} holds output made with other settings ({'; '.join(changed)}): use another output folder")
    return settings


def resolve_fastai(settings: Settings, source: Source, inputs: Sequence[Input] | Iterator[Input],
                   previous: Settings | None) -> Settings:
    """``settings`` ready to render: the fastai preset's breakpoints sampled from ``inputs``, or ``previous``'s reused.

    Jeremy Howard's third channel equalises the histogram over breakpoints taken from the data
    (``windows.freqhist_breaks``). A resumed run reuses its folder's, so it renders exactly as
    before; ``predict`` renders new DICOMs with its model's (given settings, nothing to sample).
    """
    if not unsampled(settings.channels):
        return settings
    if previous is not None and is_fastai(previous.channels):
        return settings.resolved(previous.channels)
    if not isinstance(inputs, Sequence):
        raise IchprepError(f"--windows fastai takes its breakpoints from slices spread over all the inputs, and {source.name} "
                           "is a stream, read once front to back: give the zip's URL or file instead")
    return settings.resolved(fastai_channels(sample_breaks(source, inputs)))


def sample_breaks(source: Source, inputs: Sequence[Input], n: int = FREQHIST_SAMPLE) -> np.ndarray:
    """fastai freqhist breakpoints from HU pooled over up to ``n`` evenly spaced readable slices."""
    picks = [inputs[int(i)] for i in np.linspace(0, len(inputs) - 1, min(n, len(inputs)))] if inputs else []
    pooled = []
    for _, data in source.read(picks):
        try:
            if isinstance(data, Exception):
                continue
            pooled.append(dicom.read(data).decode().hu()[::2, ::2].ravel())
        except Exception:  # an unreadable sample slice is simply not pooled; the run reports it later
            continue
    if not pooled:
        raise IchprepError("the fastai preset needs at least one readable slice to compute its breakpoints")
    return freqhist_breaks(np.concatenate(pooled))


def sink(out: Path, settings: Settings) -> SinkSpec:
    """Where a run's images go: image files, or shards that record the settings in their attributes."""
    if settings.format != "hdf5":
        return ImageFiles(str(out), settings.format, settings.quality)
    attrs = (("windows", json.dumps([c.describe() for c in settings.channels])), ("crop", json.dumps(settings.crop)))
    return Shards(str(out), settings.codec, settings.size, len(settings.channels), settings.quality, attrs)


class Triage:
    """Which inputs a run converts: unsafe or duplicate ids become failed rows, ids already converted are skipped.

    It sorts the inputs as they are drawn, so a stream's members are sorted as the stream is
    read; joblib may draw them in its dispatch thread, so failed rows wait in a deque that the
    run's loop drains. A stream that breaks off ends the inputs there (``cut``): the members
    already read are still converted, then the run stops.
    """

    def __init__(self, done: Collection[str] = ()) -> None:
        self.done = done
        self.seen: dict[str, str] = {}
        """Id -> the file or member name that has it (strings the inputs already hold)."""
        self.skipped = 0
        self.refused: deque[dict[str, Any]] = deque()
        self.cut: StreamCutError | None = None

    def pending(self, inputs: Iterable[Input]) -> Iterator[Input]:
        """The inputs still to convert, in order."""
        try:
            yield from self._sorted(inputs)
        except StreamCutError as err:
            self.cut = err

    def _sorted(self, inputs: Iterable[Input]) -> Iterator[Input]:
        for item in inputs:
            reason = None
            if not is_safe_id(item.id):
                reason = f"unsafe image id {item.id!r} for a file name"
            elif item.id in self.seen:
                reason = f"duplicate image id (also {self.seen[item.id]})"
            if reason:
                self.refused.append({"id": item.id, "source": item.source, "fname": item.source, "status": "failed", "error": reason})
                continue
            self.seen[item.id] = item.member or item.where
            if item.id in self.done:
                self.skipped += 1
                continue
            yield item

    def take_refused(self) -> list[dict[str, Any]]:
        """The failed rows of refused inputs found since the last call."""
        rows = []
        while self.refused:
            rows.append(self.refused.popleft())
        return rows
