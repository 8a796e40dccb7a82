"""Run worker tasks on this machine's cores (joblib's loky) or a Dask cluster (joblib's Dask backend).

Distributed runs go through joblib's existing backends rather than code of our own: the same
tasks, the same results, only the executor changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sized
from itertools import islice
from typing import TypeVar

import numpy as np

from ichprep.convert.worker import Done, Job, Task, run

T = TypeVar("T")


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


STREAM_BATCH = 64
"""Inputs per batch when their number is unknown (a stream)."""


def batches(items: Iterable[T], jobs: int) -> Iterator[list[T]]:
    """Batches big enough to amortise dispatch, small enough for a lively progress bar."""
    return chunks(items, batch_size(len(items), jobs) if isinstance(items, Sized) else STREAM_BATCH)


def batch_size(n: int, jobs: int) -> int:
    """Inputs per batch when there are ``n`` of them: about eight batches per process, 8 to 256 inputs each."""
    return int(np.clip(n // (jobs * 8) or 1, 8, 256))


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), drawn only as each list is asked for."""
    rest = iter(items)
    while batch := list(islice(rest, size)):
        yield batch


def run_tasks(job: Job, tasks: Iterable[Task], jobs: int, scheduler: str | None = None) -> Iterator[Done]:
    """Results of the tasks as they finish: in-process for one job, else joblib (loky, or Dask at ``scheduler``).

    ``tasks`` is drawn lazily, so a stream's tasks are made as it is read. On this machine's cores
    one task per worker is in flight (``pre_dispatch``): a task is seconds of work, so a worker
    never waits for the next, and a killed run loses (and fetches again) only what was running.
    """
    if scheduler is None and jobs == 1:
        for task in tasks:
            yield run(job, task)
        return
    from joblib import Parallel, delayed  # a one-process run never pays for joblib's import
    if scheduler is None:
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1, pre_dispatch="n_jobs")(
            delayed(run)(job, task) for task in tasks)
        return
    from dask.distributed import Client
    from joblib import parallel_config

    with Client(scheduler), parallel_config(backend="dask"):
        yield from Parallel(n_jobs=-1, return_as="generator_unordered", batch_size=1)(delayed(run)(job, task) for task in tasks)
