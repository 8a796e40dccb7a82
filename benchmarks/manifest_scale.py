"""A convert re-run at the competition's scale: folding a killed run's manifest parts, then nothing to do.

Builds an output folder of N manifest rows (default 750,000, the competition's DICOM count) with
the header columns of the real slices, half still in parts, without converting anything
(``tests/scale.py``), then times two re-runs of ``ichprep convert`` as whole processes and
prints their wall time and peak resident memory.

    python benchmarks/manifest_scale.py --n 750000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "convert" / "run"))

from scale import converted_folder  # noqa: E402
from test_scale import convert_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=750_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ichprep-scale-") as work:
        out = Path(work) / "out"
        start = time.perf_counter()
        listing = converted_folder(out, args.n, in_parts=args.n // 2)
        print(f"built a {args.n:,}-row folder (half in parts) in {time.perf_counter() - start:.1f} s")
        for what in ("resume: fold the parts", "re-run: nothing to do"):
            done, seconds, peak_mb = convert_process(listing, out)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            print(f"{what:<24} {seconds:6.1f} s   peak RSS {peak_mb:6.0f} MB")


if __name__ == "__main__":
    main()
