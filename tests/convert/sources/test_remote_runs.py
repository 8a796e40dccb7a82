"""Whole conversions from a URL and from standard input: the same images as from the zip on disk, at a bounded download.

The zip is served by ``zipserver.ZipServer`` on the loopback interface, which counts every body
byte it sends: a full run may download at most 1.1x the zip, a 30 % ``--ids`` subset 0.4x, and
two runs killed with SIGKILL plus the resume 1.6x. During a run nothing but output may appear
on disk: TMPDIR stays empty and OUT holds only what a conversion writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_run import ichprep
from zipserver import ZipServer
from ziptools import build

from ichprep.convert.sources import remote
from ichprep.convert.sources.remote import Patience, shown
from ichprep.synth import generate

N = 120
ARGS = ("--size", "64", "--quiet")
SECRET = "s3cret-t0ken"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """120 full-size phantom slices (a few seconds to convert: long enough to kill a run mid-way) and their labels."""
    return generate(tmp_path_factory.mktemp("synth"), n=N, seed=11, size=512)


@pytest.fixture(scope="module")
def dicoms(synth) -> dict[str, bytes]:
    return {f"stage_1_train_images/{p.name}": p.read_bytes() for p in sorted((synth / "stage_1_train_images").glob("*.dcm"))}


@pytest.fixture(scope="module")
def archive(dicoms, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zip") / "rsna-intracranial-hemorrhage-detection.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in dicoms.items():
            zf.writestr(name, data)
        zf.writestr("stage_1_train.csv", "ID,Label\n")
    return path


@pytest.fixture(scope="module")
def local(archive, tmp_path_factory) -> Path:
    """The reference: the same zip converted from this disk."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert ichprep("convert", archive, out, *ARGS, "--jobs", "2").exit_code == 0
    return out


def images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}


def assert_same_images(out: Path, local: Path, ids: list[str] | None = None) -> None:
    expected = images(local)
    if ids is not None:
        expected = {name: data for name, data in expected.items() if name[:-4] in ids}
    got = images(out)
    assert sorted(got) == sorted(expected)
    assert got == expected, "an image differs from the local run's"


def everything_written(out: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file() and p.suffix != ".png")


def test_a_url_with_503s_dropped_bodies_and_a_redirect_gives_the_local_images(archive, local, tmp_path):
    out = tmp_path / "out"
    with ZipServer(archive, faults=[None, 503, ("drop", 300_000), 503, ("drop", 2_000_000), 503, ("drop", 10)]) as server:
        server.redirects["/start.zip"] = server.url(host="localhost") + f"?X-Amz-Signature={SECRET}"
        run = ichprep("convert", server.url(path="/start.zip") + f"?token={SECRET}", out, *ARGS, "--jobs", "2",
                      "--header", f"X-Api-Key: {SECRET}")
    assert run.exit_code == 0, run.output
    assert_same_images(out, local)
    assert server.served <= 1.1 * archive.stat().st_size, f"downloaded {server.served / archive.stat().st_size:.2f}x the zip"
    assert all(("X-Api-Key" in seen.headers) == (seen.host == "127.0.0.1") for seen in server.requests)
    assert SECRET not in run.output and SECRET not in everything_written(out)
    table = pd.read_parquet(out / "manifest.parquet")
    start = shown(server.url(path="/start.zip") + "?token=x")
    assert table["source"].str.startswith(f"{start}!stage_1_train_images/ID_").all()
    assert "fetched" in run.stdout


def test_a_server_that_ignores_range_gives_the_local_images_in_one_pass(archive, local, tmp_path):
    out = tmp_path / "out"
    with ZipServer(archive, ranges=False, faults=[("drop", 500_000)]) as server:
        run = ichprep("convert", server.url(), out, *ARGS, "--jobs", "2")
    assert run.exit_code == 0, run.output
    assert_same_images(out, local)
    assert len(server.requests) == 2, "one pass over the body, resumed once where the connection dropped"
    assert server.served <= 1.1 * archive.stat().st_size


def test_ids_fetch_only_their_members(archive, local, tmp_path):
    ids = sorted(p.stem for p in local.glob("*.png"))
    subset = sorted(np.random.default_rng(0).choice(ids, size=int(0.3 * len(ids)), replace=False))
    (tmp_path / "ids.txt").write_text("\n".join(subset))
    out = tmp_path / "out"
    with ZipServer(archive) as server:
        run = ichprep("convert", server.url(), out, *ARGS, "--jobs", "2", "--ids", tmp_path / "ids.txt")
    assert run.exit_code == 0, run.output
    assert_same_images(out, local, subset)
    assert server.served <= 0.4 * archive.stat().st_size, f"downloaded {server.served / archive.stat().st_size:.2f}x the zip"


def covers(byte_range: str | None, offset: int, size: int) -> bool:
    """Whether a ``Range`` header asks for the byte at ``offset``."""
    first, _, last = (byte_range or "bytes=0-").removeprefix("bytes=").partition("-")
    start = int(first) if first else size - int(last)
    return start <= offset <= (int(last) if first and last else size - 1)


def test_a_range_that_fails_for_good_is_failed_rows_and_a_rerun_converts_them(archive, local, tmp_path, monkeypatch):
    """Every request for the bytes of one member answers 503 in the first run (whichever of the requests in flight asks)."""
    monkeypatch.setattr(remote, "PATIENCE", Patience(tries=3, backoff=0.01))
    out = tmp_path / "out"
    offset, size = zipfile.ZipFile(archive).infolist()[N // 2].header_offset, archive.stat().st_size
    broken = [True]
    with ZipServer(archive, guard=lambda seen: 503 if broken[0] and covers(seen.headers.get("Range"), offset, size) else None) as server:
        first = ichprep("convert", server.url(), out, *ARGS, "--jobs", "1")
        failed = pd.read_parquet(out / "manifest.parquet").query("status == 'failed'")
        broken[0] = False
        again = ichprep("convert", server.url(), out, *ARGS, "--jobs", "1")
    assert first.exit_code == 1, first.output
    assert len(failed) > 0 and (failed["error"] == "network: HTTP 503 Service Unavailable (after 3 tries)").all()
    assert again.exit_code == 0, again.output
    assert f"{len(failed)} converted, 0 failed" in again.stdout
    assert_same_images(out, local)


def cli(*args: object, flush_rows: int | None = None) -> list[str]:
    """``ichprep convert ARGS`` as a process; ``flush_rows`` sets how many manifest rows wait before they are saved."""
    setup = f"import ichprep.convert.run.manifest as m; m.FLUSH_ROWS = {flush_rows}; " if flush_rows else ""
    return [sys.executable, "-c", setup + "from ichprep.cli import main; main()", "convert", *map(str, args)]


def written_since(out: Path, since: float) -> int:
    count = 0
    for path in out.glob("*.png"):
        try:
            count += path.stat().st_mtime >= since
        except FileNotFoundError:
            continue
    return count


def outside_output(out: Path, tmp: Path) -> list[str]:
    """Anything in TMPDIR, and anything in OUT a conversion does not write (such as a fetched member)."""
    stray = [str(p) for p in tmp.rglob("*") if p.is_file()]
    for path in out.rglob("*") if out.exists() else []:
        relative = path.relative_to(out).as_posix()
        if path.is_file() and not (relative.endswith((".png", ".png.tmp")) or relative.startswith(".ichprep/")
                                   or relative in ("manifest.parquet", "ichprep.json") or ".tmp" in path.name):
            stray.append(relative)
    return stray


def test_two_kills_and_a_resume_download_at_most_1_6x_and_only_output_touches_the_disk(archive, local, tmp_path):
    """A kill loses the batches in flight and the manifest rows not yet saved, which are fetched again.

    The real run saves rows every 5,000 of 750,000 (0.7 % of it); here every 4 of 120, so that
    the unsaved rows weigh about as little against this run as they do against the real one. One
    process, for the same reason: with two, the batches in flight are a quarter of these 120
    slices (a few thousandths of the real run), and what is measured is their size, not what a
    resume fetches again. (tests/convert/run/test_crash.py kills runs of two processes.)
    """
    out, tmp = tmp_path / "out", tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    rng = np.random.default_rng(3)
    stray: list[str] = []
    with ZipServer(archive) as server:
        args = cli(server.url(), out, *ARGS, "--jobs", "1", flush_rows=4)
        for _ in range(2):
            since = time.time() - 0.01
            proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            target, deadline = int(rng.integers(N // 5, N * 3 // 5)), time.monotonic() + 60
            while proc.poll() is None and written_since(out, since) < target and time.monotonic() < deadline:
                stray += outside_output(out, tmp)
                time.sleep(0.02)
            assert proc.poll() is None, "the run finished before it could be killed"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert_same_images(out, local)
    assert server.served <= 1.6 * archive.stat().st_size, f"downloaded {server.served / archive.stat().st_size:.2f}x the zip"
    assert stray == [], f"not output: {sorted(set(stray))[:5]}"


def test_a_zip_on_standard_input_gives_the_local_images_and_a_rerun_skips_what_is_done(dicoms, archive, local, tmp_path):
    """The first pass is a streaming writer's zip (sizes after the data), the rerun the zip on disk."""
    streamed = build({**dicoms, "stage_1_train.csv": b"ID,Label\n"}, "descriptors")
    out = tmp_path / "out"
    first = subprocess.run(cli("-", out, *ARGS, "--jobs", "2"), input=streamed, capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr.decode()
    assert_same_images(out, local)
    table = pd.read_parquet(out / "manifest.parquet")
    assert table["source"].str.startswith("stdin!stage_1_train_images/ID_").all()
    again = subprocess.run(cli("-", out, *ARGS, "--jobs", "2"), input=archive.read_bytes(), capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode().startswith(f"nothing to do: all {N} inputs were already converted")


def test_clean_meta_scans_a_url(archive, local, tmp_path):
    with ZipServer(archive) as server:
        run = ichprep("clean-meta", server.url(), "--out", tmp_path / "meta", "--jobs", "1", "--quiet", "--no-sample")
    assert run.exit_code == 0, run.output
    meta = pd.read_parquet(tmp_path / "meta" / "meta.parquet")
    assert sorted(meta["SOPInstanceUID"]) == sorted(pd.read_parquet(local / "manifest.parquet")["SOPInstanceUID"])


@pytest.mark.slow
def test_a_dask_cluster_converts_a_url_with_no_shared_input_files(archive, local, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    from ichprep.convert import Options, convert
    from ichprep.settings import Settings

    with ZipServer(archive) as server, distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                                               dashboard_address=None) as cluster:
        result = convert(server.url(), tmp_path / "out", Settings(size=64), Options(quiet=True, scheduler=cluster.scheduler_address))
    assert (result.converted, result.failed) == (N, 0)
    assert_same_images(tmp_path / "out", local)
    assert server.served <= 1.1 * archive.stat().st_size


@pytest.mark.slow
def test_predict_renders_a_url_as_it_renders_the_zip_on_disk(synth, dicoms, tmp_path, one_torch_thread):
    pytest.importorskip("torch")
    from ichprep.predict import predict
    from ichprep.train import TrainConfig, train

    small = tmp_path / "small.zip"
    small.write_bytes(build(dict(list(dicoms.items())[:24])))
    data = tmp_path / "train"
    assert ichprep("convert", small, data, "--size", "16", "--quiet", "--jobs", "1").exit_code == 0
    train(TrainConfig(data=data, out=tmp_path / "run", labels=synth / "stage_1_train.csv", epochs=1, batch_size=8, workers=0,
                      quiet=True, val_frac=0.0), say=lambda _m: None)
    model = tmp_path / "run" / "model.pt"
    with ZipServer(small, guard=lambda seen: None if seen.headers.get("X-Api-Key") == SECRET else 401) as server:
        remote_run = predict(model, server.url(), workers=0, quiet=True, headers=(f"X-Api-Key: {SECRET}",))
    local_run = predict(model, small, workers=0, quiet=True)
    assert remote_run.ids == local_run.ids and len(local_run.ids) == 24
    assert np.array_equal(remote_run.probs, local_run.probs)
