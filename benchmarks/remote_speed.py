"""Converting straight from the download: a loopback URL against the same zip on local disk, the 750,000-member listing, inflate.

1. Throughput: --n real slices (../shared/data/rsna copied under new names, or phantoms) in one
   deflated zip, converted to PNG at 256 px with 2 jobs from the file and from a loopback HTTP
   server (tests/zipserver.py) that answers range requests; median of --repeats runs each.
2. Listing: an archive of 750,000 tiny members (tests/ziptools.py, zip64 like the real one);
   seconds to list it and the parent's peak RSS growth, then a conversion of --sample real
   members of that archive (--ids) with 2 jobs, sampling the parent's and workers' RSS, against
   the same members in an archive of their own: equal worker RSS means workers never read the
   directory.
3. Inflate: ms per member for zlib, isal, zlib-ng and libdeflate (those installed) on the slices deflated
   at level 6, and the speed-up over zlib.
4. Round trips: --far phantom slices (JPEG, 2 jobs) from a server in its own process that waits
   --latency ms before each answer and shares one --link MB/s among its connections, the whole
   zip and a 30 % --ids subset spread through it. Efficiency = best possible time / actual, where
   best = max(bytes the run needs / link rate, the local zip's own conversion time); and the
   bytes fetched as a share of the zip. Each run's output is kept until the end: deleting
   thousands of files (on a disk mounted with online discard) slows the next run's file creation.

    python benchmarks/remote_speed.py --n 1000 --repeats 3
    python benchmarks/remote_speed.py --skip throughput listing inflate --far 1500 --latency 0 40 100
    python benchmarks/remote_speed.py --skip throughput listing inflate --tmp /dev/shm
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from slices import make_inputs, make_zip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from zipserver import ZipServer  # noqa: E402
from ziptools import tiny_zip  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "convert" / "sources"))
from test_listing_scale import LISTING, MEMBERS  # noqa: E402

from ichprep.convert import Options, convert  # noqa: E402
from ichprep.convert.sources import ZipArchive, open_source  # noqa: E402
from ichprep.settings import Settings  # noqa: E402


def peak_rss(command: list[str]) -> tuple[float, float, float]:
    """Seconds, and the peak RSS (MB) of the process and of its largest child, sampled every 50 ms."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = worker = 0.0
    while proc.poll() is None:
        try:
            parent = max(parent, proc.memory_info().rss)
            worker = max([worker] + [c.memory_info().rss for c in proc.children(recursive=True)])
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr.read().decode())
    return time.perf_counter() - start, parent / 2**20, worker / 2**20


def throughput(files: list[Path], work: Path, repeats: int) -> None:
    archive = work / "rsna.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, f"stage_2_train/{path.name}")
    times: dict[str, list[float]] = {"local zip": [], "loopback URL": []}
    with ZipServer(archive) as server:
        contenders = [("local zip", str(archive)), ("loopback URL", server.url())]
        convert(archive, work / "warm-up", Settings(), Options(jobs=2, quiet=True, ids=[files[0].stem]))
        for k in range(repeats):
            for name, src in contenders[:: 1 if k % 2 == 0 else -1]:
                out = work / "out"
                start = time.perf_counter()
                convert(src, out, Settings(), Options(jobs=2, quiet=True))
                times[name].append(time.perf_counter() - start)
                shutil.rmtree(out)
    local = statistics.median(times["local zip"])
    print(f"\n{len(files)} slices, zip {archive.stat().st_size / 1e6:.0f} MB, PNG 256 px, 2 jobs, median of {repeats}")
    for name, runs in times.items():
        print(f"  {name:14s} {len(files) / statistics.median(runs):7.1f} images/s  {local / statistics.median(runs):.2f}x the local zip")


def listing(files: list[Path], work: Path, sample: int) -> None:
    big, small = work / "big.zip", work / "small.zip"
    slices = [path.read_bytes() for path in files]
    step = MEMBERS // sample
    tiny_zip(big, MEMBERS, payload=lambda k: slices[(k // step) % len(slices)] if k % step == 0 else b"\0\0\0\0")
    tiny_zip(small, sample, payload=lambda k: slices[k % len(slices)])
    found = json.loads(subprocess.run([sys.executable, "-c", LISTING, str(big)], capture_output=True, text=True, check=True).stdout)
    print(f"\nlisting {found['inputs']:,} members ({big.stat().st_size / 1e6:.0f} MB zip64 archive): "
          f"{found['seconds']:.1f} s, parent peak RSS +{found['grown_mb']:.0f} MB")
    ids = work / "ids.txt"
    ids.write_text("\n".join(f"ID_{k:09x}" for k in range(0, MEMBERS, step)[:sample]))
    runs = (("the 750,000-member zip, --ids", big, ["--ids", str(ids)]), ("a zip of those members alone", small, []))
    for name, archive, extra in runs:
        out = work / "out"
        command = [sys.executable, "-c", "from ichprep.cli import main; main()", "convert", str(archive), str(out), "--jobs", "2",
                   "-q", *extra]
        seconds, parent, worker = peak_rss(command)
        shutil.rmtree(out)
        print(f"  convert {sample} slices from {name:32s} {seconds:5.1f} s, "
              f"peak RSS parent {parent:4.0f} MB, largest worker {worker:4.0f} MB")


def incremental(module: Any) -> Callable[[bytes, int], bytes]:
    """A zlib-like module's raw-deflate inflater, capped at ``limit`` bytes of output."""

    def inflate(data: bytes, limit: int) -> bytes:
        return module.decompressobj(-15).decompress(data, limit)

    return inflate


def inflate_speed(files: list[Path], repeats: int) -> None:
    raw = [path.read_bytes() for path in files[:200]]
    packed = []
    for data in raw:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed.append(compressor.compress(data) + compressor.flush())
    backends: dict[str, Callable[[bytes, int], bytes]] = {"zlib": incremental(zlib)}
    for name, module in (("isal", "isal.isal_zlib"), ("zlib-ng", "zlib_ng.zlib_ng")):
        try:
            backends[name] = incremental(__import__(module, fromlist=["x"]))
        except ImportError:
            continue
    try:
        import deflate

        backends["libdeflate"] = deflate.deflate_decompress
    except ImportError:
        pass
    best: dict[str, float] = {}
    for _ in range(max(repeats, 5)):
        for name, inflate in backends.items():
            start = time.perf_counter()
            for data, original in zip(packed, raw):
                assert inflate(data, len(original) + 1) == original
            best[name] = min(best.get(name, 1e9), (time.perf_counter() - start) / len(raw) * 1e3)
    size = statistics.mean(map(len, raw)) / 1e3
    print(f"\ninflate of a {size:.0f} KB slice deflated at level 6 to {statistics.mean(map(len, packed)) / 1e3:.0f} KB "
          f"(best of {max(repeats, 5)})")
    for name, ms in best.items():
        print(f"  {name:8s} {ms:.2f} ms  {best['zlib'] / ms:.2f}x zlib")


def _serve(archive: Path, latency: float, rate: float, pipe: Any) -> None:
    """A ZipServer in its own process (its threads must not share the converting parent's GIL): port out, bytes served on request."""
    with ZipServer(archive, latency=latency, rate=rate) as server:
        pipe.send(server.port)
        while pipe.recv() == "served":
            pipe.send(server.served)
            server.served = 0


def needed_bytes(archive: Path, ids: set[str] | None) -> int:
    """Bytes a run must download: the directory's tail and the records of the members it converts."""
    source = open_source(archive)
    assert isinstance(source, ZipArchive)
    records = sum(i.ref.end - i.ref.offset for i in source.inputs(ids))
    return records + source.fetched


def far(files: list[Path], work: Path, latencies: list[float], link: float, repeats: int) -> None:
    archive = make_zip(files, work / "far.zip")
    size = archive.stat().st_size
    rng = __import__("numpy").random.default_rng(0)
    subset = sorted(str(s) for s in rng.choice([p.stem for p in files], size=int(0.3 * len(files)), replace=False))
    ids = work / "subset.txt"
    ids.write_text("\n".join(subset))
    settings = Settings(format="jpg")
    kinds = {"whole zip": None, "30 % subset": subset}

    numbers = itertools.count()

    def timed(src: str | Path, chosen: list[str] | None) -> float:
        out = work / "far-done" / str(next(numbers))
        start = time.perf_counter()
        convert(src, out, settings, Options(jobs=2, quiet=True, ids=chosen))
        return time.perf_counter() - start

    timed(archive, subset[:8])
    need = {kind: needed_bytes(archive, set(chosen) if chosen else None) for kind, chosen in kinds.items()}
    print(f"\n{len(files)} phantom slices, zip {size / 1e6:.0f} MB, JPEG 256 px, 2 jobs, link {link / 1e6:.0f} MB/s shared, "
          f"median of {repeats}, each URL run beside a run of the local zip (the machine's load drifts)")
    print("  round trip  run           local s  URL s   best s  efficiency  fetched (of the zip)")
    context = multiprocessing.get_context("spawn")
    for latency in latencies:
        ours, theirs = context.Pipe()
        server = context.Process(target=_serve, args=(archive, latency / 1e3, link, theirs), daemon=True)
        server.start()
        url = f"http://127.0.0.1:{ours.recv()}/{archive.name}"
        try:
            for kind, chosen in kinds.items():
                local, runs, served = [], [], []
                for k in range(repeats):
                    for src in (archive, url)[:: 1 if k % 2 == 0 else -1]:
                        (local if src == archive else runs).append(timed(src, chosen))
                    ours.send("served")
                    served.append(ours.recv())
                seconds = statistics.median(runs)
                best = max(need[kind] / link, statistics.median(local))
                print(f"  {latency:5.0f} ms    {kind:12s} {statistics.median(local):7.2f} {seconds:7.2f}  {best:6.2f}  "
                      f"{best / seconds:8.2f}     {statistics.median(served) / size:5.2f}")
        finally:
            ours.send("stop")
            server.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="slices of the throughput runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2000, help="members converted out of the 750,000-member zip")
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "listing", "inflate", "far"])
    parser.add_argument("--far", type=int, default=1500, help="phantom slices of the round-trip runs")
    parser.add_argument("--latency", type=float, nargs="*", default=[0, 40, 100], help="round trips (ms) of the far server")
    parser.add_argument("--link", type=float, default=44, help="MB/s of the far server's link, shared by its connections")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="folder for the inputs and outputs (default: the system's temporary folder); a RAM disk "
                             "takes the file system's cost of creating each output file out of the comparison")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ichprep-bench-remote-", dir=args.tmp))
    try:
        files = make_inputs(work, args.n)
        if "inflate" not in args.skip:
            inflate_speed(files, args.repeats)
        if "throughput" not in args.skip:
            throughput(files, work, args.repeats)
        if "listing" not in args.skip:
            listing(files, work, args.sample)
        if "far" not in args.skip:
            far(make_inputs(work / "far", args.far, phantoms=True), work, args.latency, args.link * 1e6, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
