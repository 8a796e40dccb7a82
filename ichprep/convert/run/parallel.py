"""Run worker tasks on this machine's cores (joblib's loky) or a Dask cluster (joblib's Dask backend).

Distributed runs go through joblib's existing backends rather than code of our own: the same
tasks, the same results, only the executor changes.

A run killed with SIGKILL (a notebook's restart, the out-of-memory killer) runs no cleanup of its
own, so it must not need one: each local worker watches its parent and exits when it is gone, and
every run first removes what dead runs left in shared memory and the temporary folder (loky's
named semaphores, joblib's memmapping folders).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from ichprep.convert.run.worker import Done, Job, Task, run

T = TypeVar("T")


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


STREAM_BATCH = 64
"""Inputs per batch when their number is unknown (a stream)."""
LEAST_BATCH = 8
"""The smallest batch: fewer inputs and dispatch costs more than it saves."""
FIRST_BATCH = 16
"""Inputs of each process's first batch; the next ones double up to ``batch_size``."""


def batches(items: Iterable[T], jobs: int) -> Iterator[list[T]]:
    """Batches big enough to amortise dispatch, small enough for a lively progress bar; tapered when counted.

    The first batches are small so that every process starts as soon as a few inputs are read
    (over a link, before a whole batch has arrived), and the last ones shrink so that the
    processes finish together instead of one converting a whole batch while the others wait.
    Batches are cut as they are drawn, so the end is known from what is left.
    """
    if not isinstance(items, Sized):
        return chunks(items, STREAM_BATCH)
    return _tapered(items, len(items), jobs)


def _tapered(items: Iterable[T], n: int, jobs: int) -> Iterator[list[T]]:
    size, rest, left, k = batch_size(n, jobs), iter(items), n, 0
    while left > 0:
        ramp = FIRST_BATCH << min(k // jobs, 16)
        tail = max(LEAST_BATCH, -(-left // (2 * jobs)))
        batch = list(islice(rest, min(size, ramp, tail)))
        if not batch:
            return
        yield batch
        left, k = left - len(batch), k + 1


def batch_size(n: int, jobs: int) -> int:
    """Inputs per batch when there are ``n`` of them: about eight batches per process, 8 to 256 inputs each."""
    return int(np.clip(n // (jobs * 8) or 1, LEAST_BATCH, 256))


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), drawn only as each list is asked for."""
    rest = iter(items)
    while batch := list(islice(rest, size)):
        yield batch


QUEUED = 2
"""Tasks in flight per local worker: the one it converts and the next, already drawn and sent.

A worker that finishes starts its next task at once instead of waiting for the parent to notice
and draw one (over a link, drawing a task waits for its bytes); a killed run loses (and fetches
again) only these.
"""


def run_tasks(job: Job, tasks: Iterable[Task], jobs: int, scheduler: str | None = None) -> Iterator[Done]:
    """Results of the tasks as they finish: in-process for one job, else loky's workers or Dask at ``scheduler``.

    ``tasks`` is drawn lazily, so a stream's tasks are made as it is read.
    """
    if scheduler is None and jobs == 1:
        for task in tasks:
            yield run(job, task)
        return
    if scheduler is None:
        yield from _on_this_machine(job, tasks, jobs)
        return
    from dask.distributed import Client
    from joblib import Parallel, delayed, parallel_config

    with Client(scheduler), parallel_config(backend="dask"):
        yield from Parallel(n_jobs=-1, return_as="generator_unordered", batch_size=1)(delayed(run)(job, task) for task in tasks)


def _on_this_machine(job: Job, tasks: Iterable[Task], jobs: int) -> Iterator[Done]:
    """Results of ``tasks`` run by ``jobs`` loky workers, :data:`QUEUED` per worker in flight, drawn in this thread.

    Not joblib's ``Parallel``: it draws the next task in loky's manager thread when one completes,
    and a task drawn from a download waits for its bytes there, so meanwhile no finished result
    was collected and no drawn task was sent: the workers took turns, each idle about half the
    time. Here the manager thread only moves tasks and results; a run that stops early (an error,
    Ctrl-C, the caller leaving) kills the workers and waits for them, so nothing writes after it.
    The executor is joblib's own (loky's, process-wide): a ``Parallel`` run after this one in the
    same notebook finds one it can use.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    from joblib.executor import get_memmapping_executor  # a one-process run never pays for joblib's import

    clear_stale()
    executor = get_memmapping_executor(jobs, timeout=IDLE_SECONDS, initializer=watch_parent, initargs=(os.getpid(),),
                                       env=worker_env(jobs), max_nbytes=None)
    rest, running = iter(tasks), set()
    try:
        while True:
            while len(running) < QUEUED * jobs and (task := next(rest, None)) is not None:
                running.add(executor.submit(run, job, task))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    except BaseException:
        executor.terminate(kill_workers=True)
        raise


def worker_env(jobs: int) -> dict[str, str]:
    """Environment of ``jobs`` workers: thread pools (OpenMP, BLAS, Numba, TBB) sized to share the cores.

    joblib's own rule, the one its ``Parallel`` applies: a variable the user set is kept. OpenCV's
    pool is set in the worker itself.
    """
    from joblib._parallel_backends import LokyBackend

    return LokyBackend()._prepare_worker_env(n_jobs=jobs)


WATCH_SECONDS = 0.5
"""How often a worker checks that its parent is alive: an orphan exits within about this long."""
IDLE_SECONDS = 60
"""Idle workers are kept this long for the next run of the same process (a notebook's next cell), not loky's 300 s."""
STALE = re.compile(r"^(?:sem\.loky-|loky-|joblib_memmapping_folder_)(\d+)[-_]")
"""Names of what loky and joblib leave in /dev/shm or the temporary folder, with the pid of the run that made them."""


def watch_parent(parent: int) -> None:
    """Worker initializer: exit as soon as ``parent`` (the run's process) is no longer this worker's parent, or is gone.

    A thread polling ``getppid`` works on every POSIX system and for any thread of the parent
    having started the worker (Linux's ``PR_SET_PDEATHSIG`` fires when that *thread* ends). A
    worker still starting when its parent died is already someone else's child: it exits at once
    if the parent is gone, and otherwise (the killed parent is a zombie until it is reaped) as
    soon as the parent's pid is gone.
    """
    ours = os.getppid() == parent

    def gone() -> bool:
        return os.getppid() != parent if ours else not _alive(parent)

    def watch() -> None:
        while not gone():
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    if gone():
        os._exit(1)
    threading.Thread(target=watch, name="ichprep-parent-watch", daemon=True).start()


def clear_stale(folders: Iterable[Path] | None = None, pattern: re.Pattern[str] = STALE) -> list[Path]:
    """Remove this user's loky/joblib leftovers (names ``pattern`` matches, its group 1 a pid) whose run is dead.

    Returns what was removed. Only names that carry a pid no process has any more are touched:
    a live run's, or another user's, are left alone.
    """
    folders = folders if folders is not None else [Path("/dev/shm"), Path(tempfile.gettempdir())]
    removed = []
    for folder in folders:
        try:
            entries = list(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            match = pattern.match(entry.name)
            try:
                if not match or entry.lstat().st_uid != os.getuid() or _alive(int(match.group(1))):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
