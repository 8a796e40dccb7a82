"""The competition's scale: a directory of 750,000 members is listed in seconds and bounded memory, and workers never read it.

The archive holds 750,000 tiny stored members written straight from ``struct``
(``ziptools.tiny_zip``, zip64 end records like the real one's). The listing runs in a fresh
process so its peak RSS is its own; ``benchmarks/remote_speed.py`` runs the same script and reports its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from peak import PEAK
from ziptools import tiny_zip

MEMBERS = 750_000
LISTING = PEAK + """
import json, sys, time
from ichprep.convert.sources import open_source
before = peak()
start = time.perf_counter()
source = open_source(sys.argv[1])
inputs = source.inputs()
seconds = time.perf_counter() - start
grown = peak() - before
worker = source.for_workers()
batch = inputs[400_000:400_064]
read = [data for _, data in worker.read(batch)]
print(json.dumps({"inputs": len(inputs), "seconds": seconds, "grown_mb": grown / 1024, "first": inputs[0].source,
                  "read": [r.hex() for r in read[:2]], "worker_bytes": worker.fetched,
                  "records": sum(30 + len(i.member) + 4 for i in batch)}))
"""


@pytest.mark.slow
def test_750000_members_are_listed_in_seconds_and_a_workers_batch_reads_only_its_records(tmp_path):
    path = tmp_path / "rsna.zip"
    tiny_zip(path, MEMBERS)
    run = subprocess.run([sys.executable, "-c", LISTING, str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["inputs"] == MEMBERS
    assert found["first"] == f"{path}!stage_2_train/ID_000000000.dcm"
    assert found["read"] == [(400_000).to_bytes(4, "little").hex(), (400_001).to_bytes(4, "little").hex()]
    assert found["worker_bytes"] == found["records"], "a worker reads its members' records and nothing of the directory"
    assert found["seconds"] < 60, f"listing took {found['seconds']:.1f} s"
    assert found["grown_mb"] < 450, f"listing grew the parent by {found['grown_mb']:.0f} MB"
