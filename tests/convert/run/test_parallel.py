"""Local workers and what a killed run leaves: orphans exit, the next run clears dead runs' leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ichprep.convert.run import parallel


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_batches_start_small_grow_to_the_batch_size_and_shrink_so_the_processes_finish_together() -> None:
    n, jobs = 2000, 2
    sizes = [len(b) for b in parallel.batches(list(range(n)), jobs)]
    full = parallel.batch_size(n, jobs)
    assert sizes[:jobs] == [parallel.FIRST_BATCH] * jobs, "each process's first batch is small: it starts on the first bytes"
    assert sizes[jobs:2 * jobs] == [2 * parallel.FIRST_BATCH] * jobs and max(sizes) == full
    assert sizes[-1] <= parallel.LEAST_BATCH and sizes[-jobs * 2:] == sorted(sizes[-jobs * 2:], reverse=True)
    left = [n - sum(sizes[:k]) for k in range(len(sizes))]
    assert all(size <= max(parallel.LEAST_BATCH, -(-rest // (2 * jobs))) for size, rest in zip(sizes, left)), \
        "no batch holds more than half a process's share of what is left"
    assert [x for b in parallel.batches(list(range(n)), jobs) for x in b] == list(range(n))


def test_a_stream_of_unknown_length_is_cut_into_equal_batches() -> None:
    sizes = [len(b) for b in parallel.batches(iter(range(200)), 2)]
    assert sizes == [parallel.STREAM_BATCH] * 3 + [200 - 3 * parallel.STREAM_BATCH]


def test_clear_stale_removes_only_what_dead_runs_left(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    left = [tmp_path / f"sem.loky-{dead}-abc", tmp_path / f"joblib_memmapping_folder_{dead}_0a1b_2c3d", tmp_path / f"loky-{dead}-x1"]
    kept = [tmp_path / f"sem.loky-{alive}-abc", tmp_path / f"joblib_memmapping_folder_{alive}_0a1b", tmp_path / f"sem.mp-{dead}-x",
            tmp_path / "unrelated"]
    for path in left[:1] + kept[::2]:
        path.write_bytes(b"x")
    for path in left[1:] + kept[1::2]:
        path.mkdir()
        (path / "inner.pkl").write_bytes(b"x")
    removed = parallel.clear_stale([tmp_path, tmp_path / "missing"])
    assert sorted(removed) == sorted(left)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


ORPHAN = """
import os, sys, time
from ichprep.convert.run.parallel import watch_parent
parent = os.getpid()
child = os.fork()
if child == 0:
    watch_parent(parent)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def test_a_worker_exits_soon_after_its_parent_is_killed() -> None:
    """The parent's pid is the parent's own, passed down as ``run_tasks`` passes it to its workers.

    Read by the child with ``getppid`` it could already be the reaper's: the parent may be killed
    before the child runs, and the child would then watch the wrong process.
    """
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert parallel._alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10 * parallel.WATCH_SECONDS + 5
    while parallel._alive(child) and not _zombie_or_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _zombie_or_gone(child), "the orphan still runs"


def _zombie_or_gone(pid: int) -> bool:
    """An orphan that exited is reaped by init (or a subreaper) soon; until then it is a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_worker_whose_parent_died_while_it_started_exits_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = subprocess.run([sys.executable, "-c", "from ichprep.convert.run.parallel import watch_parent\n"
                              f"watch_parent({gone.pid})\nprint('still running')"], capture_output=True, text=True)
    assert (started.returncode, started.stdout) == (1, "")


ZOMBIE = """
import os, sys, time
from ichprep.convert.run.parallel import watch_parent
run = os.fork()
if run == 0:
    os._exit(0)
time.sleep(0.2)
watch_parent(run)
print("watching", flush=True)
time.sleep(1)
os.waitpid(run, 0)
time.sleep(60)
"""


def test_a_worker_that_starts_while_its_killed_run_is_a_zombie_exits_once_the_run_is_reaped() -> None:
    """A SIGKILLed run stays a zombie (its pid alive) until its own parent reaps it: a worker starting then must not stay."""
    worker = subprocess.Popen([sys.executable, "-c", ZOMBIE], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "watching\n"
        assert worker.wait(timeout=1 + 10 * parallel.WATCH_SECONDS + 5) == 1
    finally:
        worker.kill()


def test_a_worker_started_by_a_live_run_that_is_not_its_parent_keeps_running() -> None:
    started = subprocess.run([sys.executable, "-c", "from ichprep.convert.run.parallel import watch_parent\n"
                              "watch_parent(1)\nprint('still running')"], capture_output=True, text=True)
    assert (started.returncode, started.stdout) == (0, "still running\n")


def test_each_worker_holds_its_next_task_while_the_parent_draws_another(tmp_path: Path, write_ct) -> None:
    """Over a link, drawing a task waits for its bytes: meanwhile no worker may be left without work.

    When the parent draws a task to replace a finished one, the others drawn are all still to
    convert: every worker has its task and its next one (in most draws: a parent descheduled for a
    task's length finds more done); all results come back.
    """
    from ichprep.convert.run.worker import Job, Task
    from ichprep.convert.sources import Files, Input
    from ichprep.store import ImageFiles
    from ichprep.windows import PRESETS

    jobs, per_task, n_tasks = 2, 24, 12
    src, out = tmp_path / "in", tmp_path / "out"
    out.mkdir()
    slices = [write_ct(src / f"ID_{k}.dcm", np.full((256, 256), 40 + k, np.int16)) for k in range(8)]
    items = [Input(f"ID_{k}", str(slices[k % 8]), str(slices[k % 8])) for k in range(per_task * n_tasks)]
    job = Job(Files(src, "folder"), (PRESETS["brain"],), 256, False, ImageFiles(str(out), "png"))
    unconverted: list[int] = []

    def tasks():
        for k in range(n_tasks):
            unconverted.append(k - len(list(out.glob("*.png"))) // per_task)
            yield Task(tuple(items[k * per_task:(k + 1) * per_task]))

    done = list(parallel.run_tasks(job, tasks(), jobs))
    steady = sorted(unconverted[parallel.QUEUED * jobs:])
    assert steady[len(steady) // 2] >= parallel.QUEUED * jobs - 1, f"workers were left without work while the parent drew: {unconverted}"
    assert sorted(row["id"] for d in done for row in d.rows) == sorted(i.id for i in items)
    assert all(row["status"] == "ok" for d in done for row in d.rows)


def test_worker_threads_share_the_cores_unless_the_user_set_them(monkeypatch) -> None:
    import joblib._parallel_backends

    monkeypatch.setattr(joblib._parallel_backends, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    env = parallel.worker_env(2)
    assert env["OMP_NUM_THREADS"] == "4" and env["OPENBLAS_NUM_THREADS"] == "3"
    assert parallel.worker_env(16)["OMP_NUM_THREADS"] == "1", "never fewer than one thread"


def test_joblib_runs_before_and_after_a_conversion_in_the_same_process(tmp_path: Path, write_ct) -> None:
    """A notebook mixes ichprep with its own joblib work: the process-wide worker pool must suit both."""
    from joblib import Parallel, delayed

    from ichprep.convert import Options, Settings, convert

    write_ct("in/ID_a.dcm", np.full((64, 64), 40, np.int16))
    write_ct("in/ID_b.dcm", np.full((64, 64), 60, np.int16))
    assert Parallel(n_jobs=2)(delayed(abs)(-k) for k in range(4)) == [0, 1, 2, 3]
    for k in range(2):
        convert(tmp_path / "in", tmp_path / f"out{k}", Settings(), Options(jobs=2, quiet=True))
        assert Parallel(n_jobs=2)(delayed(abs)(-k) for k in range(4)) == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "out1").glob("*.png")) == ["ID_a.png", "ID_b.png"]
