"""Crashes and concurrency: a killed run resumes to a complete output, a second run is refused, a full disk stops cleanly.

The kill tests start a real ``ichprep convert`` process, SIGKILL its whole process group
(parent and workers, as an OOM kill or a power cut would) at random points while it
converts, then re-run the same command and check the final folder as a user would read it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import badinput
import cv2
import h5py
import hdf5plugin  # noqa: F401  (registers the blosc filter for reading shards)
import numpy as np
import pandas as pd
import pytest
from cli_run import ichprep

from ichprep.convert.run import parallel
from ichprep.store import ImageFiles

N_SLICES = 200
SIDE = 512
KILLS = 3
LOCK = Path(".ichprep") / "lock"


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 distinct full-size slices: big enough that a run takes a few seconds to kill mid-way."""
    src = tmp_path_factory.mktemp("slices")
    base = badinput.ct_pixels(SIDE, SIDE)
    for i in range(N_SLICES):
        image_id = f"ID_{i:09x}"
        pixels = base.copy()
        pixels[200:300, 200:300] = i - 20  # a per-slice patch inside the subdural window: every image differs
        (src / f"{image_id}.dcm").write_bytes(badinput.encode(badinput.ct_dataset(pixels, image_id=image_id)))
    return src


def ids_of(src: Path) -> list[str]:
    return sorted(p.stem for p in src.glob("*.dcm"))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ichprep.cli import main; main()", "convert", *args]


def lock_held(out: Path) -> bool:
    """Whether some process holds the run lock of ``out`` (probing takes and drops it if free)."""
    try:
        with open(out / LOCK, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def start(args: list[str]) -> subprocess.Popen:
    """The run in its own process group, its output discarded (an undrained pipe could stall it)."""
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_lock(proc: subprocess.Popen, out: Path, timeout: float = 20) -> bool:
    """Until the run holds its lock (it is converting); False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if lock_held(out):
            return True
        time.sleep(0.02)
    return False


def written_since(out: Path, pattern: str, since: float) -> int:
    """Output files matching ``pattern`` that this run (started at ``since``) has written."""
    count = 0
    for path in out.glob(pattern):
        try:
            count += path.stat().st_mtime >= since
        except FileNotFoundError:
            continue
    return count


def kill_at_random_points(args: list[str], out: Path, pattern: str, total: int, rng: np.random.Generator) -> int:
    """Start the run KILLS times and SIGKILL it at a random point of its progress; returns kills that hit a live run.

    The point is a random share (10-75 %) of the ``total`` outputs written by that run, not a
    delay, so it falls mid-conversion on a fast machine as on a loaded one. Most kills take
    the whole process group; the second kills only the parent of two workers (as the OOM
    killer may): its orphaned workers still live while the next run starts. Every process
    group is killed at the end, orphans included (loky's idle workers would linger for minutes).
    """
    hits, groups = 0, []
    try:
        for k in range(KILLS):
            since = time.time() - 0.01
            proc = start(args + ["--jobs", str(1 + k % 2)])
            groups.append(proc.pid)
            target = int(rng.integers(total // 10, total * 3 // 4))
            deadline = time.monotonic() + 30
            while proc.poll() is None and written_since(out, pattern, since) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is None:
                (os.kill if k == 1 else os.killpg)(proc.pid, signal.SIGKILL)
                hits += 1
            proc.wait(timeout=30)
    finally:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    return hits


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".tmp" in p.name or p.parent.name == "parts"]


def assert_one_ok_row_per_input(out: Path, ids: list[str]) -> pd.DataFrame:
    table = pd.read_parquet(out / "manifest.parquet")
    assert sorted(table["id"]) == ids, "manifest rows lost or duplicated"
    assert (table["status"] == "ok").all(), table.loc[table["status"] != "ok", ["id", "error"]]
    return table


def test_a_killed_image_run_resumes_to_a_complete_folder(slices: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = cli(str(slices), str(out), "--quiet", "--format", "png")

    hits = kill_at_random_points(args, out, "*.png", N_SLICES, np.random.default_rng(7))
    final = subprocess.run(args + ["--jobs", "2"], capture_output=True, text=True, timeout=60)

    assert hits == KILLS, "a run finished before its kill"
    assert final.returncode == 0, final.stderr
    ids = ids_of(slices)
    assert_one_ok_row_per_input(out, ids)
    images = sorted(out.glob("*.png"))
    assert [p.stem for p in images] == ids
    decoded = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images]
    assert all(img is not None and img.shape == (256, 256, 3) for img in decoded)
    assert len({img.tobytes() for img in decoded}) == len(ids), "two ids share one image"
    assert temporaries(out) == []


def test_a_killed_hdf5_run_resumes_to_complete_shards_without_duplicates(slices: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = cli(str(slices), str(out), "--quiet", "--format", "hdf5", "--shard-size", "20")

    hits = kill_at_random_points(args, out, "shard-*.h5", N_SLICES // 20, np.random.default_rng(11))
    final = subprocess.run(args + ["--jobs", "2"], capture_output=True, text=True, timeout=60)

    assert hits == KILLS, "a run finished before its kill"
    assert final.returncode == 0, final.stderr
    ids = ids_of(slices)
    assert_one_ok_row_per_input(out, ids)
    stored: list[str] = []
    for shard in sorted(out.glob("shard-*.h5")):
        with h5py.File(shard, "r") as fh:
            stored += [s.decode() if isinstance(s, bytes) else s for s in fh["ids"][:]]
            assert fh["images"].shape[1:] == (256, 256, 3) and fh["images"].shape[0] == fh["ids"].shape[0]
            assert int(fh["images"][:].max()) > 0
    assert sorted(stored) == ids, "shards hold lost or duplicated images"
    index = pd.read_parquet(out / "index.parquet")
    assert sorted(index["id"]) == ids
    for row in index.sample(10, random_state=0).itertuples():
        with h5py.File(out / row.shard, "r") as fh:
            assert fh["ids"][row.row].decode() == row.id
    assert temporaries(out) == []


def test_a_second_run_into_the_same_folder_is_refused_while_one_runs(slices: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = start(cli(str(slices), str(out), "--quiet", "--jobs", "1"))
    try:
        assert wait_for_lock(first, out), "the first run finished before it could be raced"
        second = ichprep("convert", str(slices), str(out), "--quiet", "--jobs", "1")
        still_running = first.poll() is None
    finally:
        first.wait(timeout=60)

    assert still_running, "the second run was not started while the first ran"
    assert second.exit_code == 2
    assert "is being written by another ichprep run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert first.returncode == 0
    assert_one_ok_row_per_input(out, ids_of(slices))


def test_a_full_disk_stops_with_exit_1_keeps_the_manifest_and_a_rerun_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(40):
        image_id = f"ID_{i:09x}"
        (src / f"{image_id}.dcm").write_bytes(badinput.encode(badinput.ct_dataset(badinput.ct_pixels(seed=i), image_id=image_id)))
    ids = ids_of(src)
    real_write = ImageFiles.write
    written: list[str] = []

    def write_until_full(self: ImageFiles, image_id: str, image: np.ndarray, labels: np.ndarray | None = None) -> tuple[str, None]:
        if len(written) >= 25:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(image_id)
        return real_write(self, image_id, image, labels)

    monkeypatch.setattr(ImageFiles, "write", write_until_full)
    full = ichprep("convert", str(src), str(out), "--quiet", "--jobs", "1", "--size", "32")

    assert full.exit_code == 1, full.output
    assert "free some space and re-run" in full.stderr
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(written)
    kept = pd.read_parquet(out / "manifest.parquet")
    assert set(kept["id"]) <= set(written) and (kept["status"] == "ok").all()
    assert temporaries(out) == []

    monkeypatch.setattr(ImageFiles, "write", real_write)
    rerun = ichprep("convert", str(src), str(out), "--quiet", "--jobs", "1", "--size", "32")

    assert rerun.exit_code == 0, rerun.output
    assert_one_ok_row_per_input(out, ids)
    assert sorted(p.stem for p in out.glob("*.png")) == ids


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 3 MB tmpfs (root with mount rights only, else skipped): a disk that really fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0 or shutil.which("umount") is None:
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_disk_that_really_fills_under_two_workers_stops_cleanly_and_resumes(slices: Path, tiny_disk: Path) -> None:
    out = tiny_disk / "out"
    refused = subprocess.run(cli(str(slices), str(out), "--quiet", "--jobs", "2"), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "would not fit" in refused.stderr and not out.exists(), "the free space is the budget"
    # The up-front check is told the run fits, and the parent's free-space margin is set to 0, so the
    # disk fills between checks, inside a worker.
    code = ("import ichprep.convert.run.budget as b, ichprep.convert.run.fit as f; b.MARGIN = 0; f._surely_fits = lambda *a: True; "
            "from ichprep.cli import main; main()")
    args = [sys.executable, "-c", code, "convert", str(slices), str(out), "--quiet"]

    full = subprocess.run(args + ["--jobs", "2"], capture_output=True, text=True, timeout=60)

    assert full.returncode == 1
    assert "free some space and re-run" in full.stderr and "Traceback" not in full.stderr
    kept = pd.read_parquet(out / "manifest.parquet")
    assert (kept["status"] == "ok").all() and set(kept["id"]) <= {p.stem for p in out.glob("*.png")}
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    rerun = subprocess.run(args + ["--jobs", "2"], capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert_one_ok_row_per_input(out, ids_of(slices))
    assert temporaries(out) == []


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def described(pids: list[int]) -> list[str]:
    """Each process's pid, state and command line, to tell which one outlived its run."""
    lines = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            continue
        lines.append(f"{pid} {state} {command}")
    return lines


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_parent_killed_with_sigkill_leaves_nothing_running_and_the_next_run_clears_its_leftovers(slices: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = cli(str(slices), str(out), "--quiet")
    proc = start(args + ["--jobs", "2"])
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and (written_since(out, "*.png", 0) < 10 or len(group_members(proc.pid)) < 3):
            assert time.monotonic() < deadline, "the run never started its workers"
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_members(proc.pid) == [], f"workers of a killed run are still running: {described(group_members(proc.pid))}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(args + ["--jobs", "2"], check=True, capture_output=True, timeout=120)
    leftovers = [p for folder in (Path("/dev/shm"), Path(tempfile.gettempdir())) if folder.is_dir() for p in folder.iterdir()
                 if parallel.STALE.match(p.name) and parallel.STALE.match(p.name).group(1) == str(proc.pid)]
    assert leftovers == []
    assert_one_ok_row_per_input(out, ids_of(slices))
