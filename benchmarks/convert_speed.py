"""ichprep convert against the loops users write, as whole processes, from a folder and from a zip.

Every contender is a separate process started the way a user starts it, so imports and start-up
count: ``ichprep convert`` through its CLI, and each plain loop of ``plain_loops.py`` as its own
script (``kernels``: float32, np.clip per window, per-channel INTER_LINEAR resize, the loop of
the public kernels; ``float64-area``: the float64 + INTER_AREA loop ``peers.py`` measures). All
read the same slices from a folder and from a deflated zip of them (the loops read members with
``zipfile``) and write 256 px images with the defaults of their own tools.

One-core contenders (the loops and ``--jobs 1``) are pinned to one CPU, so OpenCV's threads do not
turn a one-core loop into a two-core one; ``--jobs 2`` gets two CPUs. Contenders run interleaved
(every repeat runs each once, in a shuffled order) and medians are reported, because the machine
is shared. Ratios are ichprep's images/s over the ``kernels`` loop's from the same source writing
the same image format (HDF5 shards are compared with the loops' PNG: both are lossless), and over
the ``float64-area`` loop's JPEG; beside them, the same ratio of images per CPU-second, which other
work on a shared machine disturbs far less. Start-up is the time of converting a single slice.

The slices are the real RSNA files in ../shared/data/rsna repeated to --n files, or ``ichprep
synth`` phantoms of 512 x 512 when that folder is absent (or with --phantoms).

    python benchmarks/convert_speed.py --n 3000 --repeats 3 [--out-root /dev/shm]
    python benchmarks/convert_speed.py --n 300 --repeats 3 --formats jpg          # a couple of minutes
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from slices import SHARED, make_inputs, make_zip

HERE = Path(__file__).resolve().parent
ICHPREP = [sys.executable, "-c", "from ichprep.cli import main; main()", "convert"]
LOOP = [sys.executable, str(HERE / "plain_loops.py")]
FORMATS = ("jpg", "png", "hdf5")
PEER_FORMAT = {"jpg": "jpg", "png": "png", "hdf5": "png"}
"""The loops' image format each ichprep format is compared with (shards against lossless PNG)."""


@dataclass(frozen=True)
class Contender:
    """One command, run into a fresh output folder each time."""

    name: str
    argv: tuple[str, ...]
    cpus: int
    source: str
    fmt: str
    peer: str | None = None
    tree: str | None = None
    """Another ichprep checkout to run instead of the installed one (put first on PYTHONPATH)."""

    def command(self, src: Path, out: Path) -> list[str]:
        return [part.replace("{src}", str(src)).replace("{out}", str(out)) for part in self.argv]


def ichprep(source: str, fmt: str, jobs: int, crop: bool = True, tree: str | None = None) -> Contender:
    argv = (*ICHPREP, "{src}", "{out}", "--format", fmt, "--jobs", str(jobs), "--quiet") + (() if crop else ("--no-crop",))
    name = f"{'baseline' if tree else 'ichprep'} {source} {fmt} --jobs {jobs}{'' if crop else ' --no-crop'}"
    return Contender(name, argv, jobs, source, fmt, tree=tree)


def loop(peer: str, source: str, ext: str) -> Contender:
    return Contender(f"{peer} loop {source} {ext}", (*LOOP, peer, "{src}", "{out}", ext), 1, source, ext, peer)


def contenders(formats: tuple[str, ...], sources: tuple[str, ...], baseline: str | None = None) -> list[Contender]:
    """The loops for every source and image format needed, and ichprep (and a baseline tree) in each configuration."""
    out: list[Contender] = []
    for source in sources:
        for ext in sorted({PEER_FORMAT[f] for f in formats} | {"jpg"}):
            out.append(loop("kernels", source, ext))
        out.append(loop("float64-area", source, "jpg"))
        for tree in (None, baseline) if baseline else (None,):
            for fmt in formats:
                out.append(ichprep(source, fmt, 1, tree=tree))
                out.append(ichprep(source, fmt, 2, tree=tree))
                if fmt == "jpg":
                    out.append(ichprep(source, fmt, 1, crop=False, tree=tree))
    return out


def pinned(cpus: int):
    """A ``preexec_fn`` that restricts the child to its first ``cpus`` allowed CPUs."""
    allowed = sorted(os.sched_getaffinity(0))[:cpus]
    return lambda: os.sched_setaffinity(0, allowed)


def children_cpu() -> float:
    """CPU seconds (user + system) of all finished child processes and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(contender: Contender, src: Path, root: str | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run into a fresh folder; a failing run stops the benchmark."""
    out = Path(tempfile.mkdtemp(prefix="ichprep-bench-", dir=root)) / "out"
    try:
        cpu = children_cpu()
        start = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=contender.tree) if contender.tree else None
        done = subprocess.run(
            contender.command(src, out), preexec_fn=pinned(contender.cpus), env=env, cwd=out.parent, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{contender.name} failed ({done.returncode}): {done.stderr[-2000:]}")
        return seconds, children_cpu() - cpu
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def measure(runs: list[Contender], sources: dict[str, Path], repeats: int, root: str | None) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each contender over ``repeats`` interleaved rounds."""
    times: dict[str, list[tuple[float, float]]] = {c.name: [] for c in runs}
    rng = random.Random(0)
    for round_ in range(repeats):
        order = runs[:]
        rng.shuffle(order)
        for contender in order:
            times[contender.name].append(run_once(contender, sources[contender.source], root))
        print(f"round {round_ + 1}/{repeats} done", file=sys.stderr)
    return {name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values)) for name, values in times.items()}


def startup(one: Path, repeats: int, root: str | None, baseline: str | None) -> list[tuple[str, tuple[float, float]]]:
    """Median wall seconds of importing the CLI and of converting one slice (ichprep and the kernels' loop)."""
    runs = [
        Contender("python -c 'import ichprep.cli'", (sys.executable, "-c", "import ichprep.cli"), 1, "1 slice", "-"),
        ichprep("1 slice", "jpg", 1),
        loop("kernels", "1 slice", "jpg"),
    ]
    if baseline:
        runs.insert(2, ichprep("1 slice", "jpg", 1, tree=baseline))
    seconds = measure(runs, {"1 slice": one}, repeats, root)
    return [(c.name, seconds[c.name]) for c in runs]


def report(runs: list[Contender], seconds: dict[str, tuple[float, float]], n: int) -> None:
    """Images/s (wall) and per CPU-second of each contender, and ichprep's ratios to the loops.

    The CPU ratio (images per CPU-second over the kernels loop's) is the steadier figure on a
    shared machine, where other work stretches wall time; it is no speed-up for ``--jobs 2``.
    """
    rate = {c.name: n / seconds[c.name][0] for c in runs}
    per_cpu = {c.name: n / seconds[c.name][1] for c in runs}
    print(
        f"{'contender':44s} {'images/s':>9s} {'img/CPU-s':>10s} {'vs kernels loop':>16s} {'vs float64-area':>16s} {'CPU vs kernels':>15s}"
    )
    for c in runs:
        line = f"{c.name:44s} {rate[c.name]:9.0f} {per_cpu[c.name]:10.0f}"
        if c.peer is None:
            kernels = f"kernels loop {c.source} {PEER_FORMAT[c.fmt]}"
            float64 = rate[f"float64-area loop {c.source} jpg"]
            line += f" {rate[c.name] / rate[kernels]:15.2f}x {rate[c.name] / float64:15.2f}x {per_cpu[c.name] / per_cpu[kernels]:14.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="slices per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--formats", default="jpg,png,hdf5", help="ichprep formats to time (jpg, png, hdf5)")
    parser.add_argument("--sources", default="folder,zip", help="folder, zip or both")
    parser.add_argument("--phantoms", action="store_true", help="ichprep synth phantoms even when the real slices are present")
    parser.add_argument(
        "--baseline",
        default=None,
        help="another ichprep checkout (e.g. a git worktree of main) timed beside "
        "this one in the same rounds; its rows are labelled 'baseline'",
    )
    parser.add_argument(
        "--out-root",
        default=None,
        help="where outputs are written (default: the temp folder); "
        "a tmpfs such as /dev/shm takes the file system's cost per created file out of the comparison",
    )
    args = parser.parse_args()
    formats = tuple(f for f in args.formats.split(",") if f)
    sources = tuple(s for s in args.sources.split(",") if s)
    if not set(formats) <= set(FORMATS) or not set(sources) <= {"folder", "zip"}:
        parser.error("--formats takes jpg, png, hdf5; --sources folder, zip")
    work = Path(tempfile.mkdtemp(prefix="ichprep-bench-in-"))
    try:
        files = make_inputs(work, args.n, phantoms=args.phantoms)
        paths = {"folder": work / "in", "zip": make_zip(files, work / "in.zip")}
        one = work / "one"
        one.mkdir()
        shutil.copy(files[0], one)
        runs = contenders(formats, sources, args.baseline)
        seconds = measure(runs, paths, args.repeats, args.out_root)
        first_up = startup(one, max(args.repeats, 5), args.out_root, args.baseline)
        kind = "phantom" if args.phantoms or not any(SHARED.glob("stage_2_*_images/*.dcm")) else "real"
        where = args.out_root or tempfile.gettempdir()
        print(
            f"\n{args.n} {kind} slices -> 256 px, whole processes, median of {args.repeats} interleaved rounds, "
            f"warm page cache, output under {where}"
        )
        report(runs, seconds, args.n)
        print(f"\n{'start-up':44s} {'seconds':>9s} {'CPU-s':>10s}")
        for name, (wall, cpu) in first_up:
            print(f"{name:44s} {wall:9.2f} {cpu:10.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
