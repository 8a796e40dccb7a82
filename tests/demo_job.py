"""The demo the suite checks, run twice in the background from the moment the suite knows it will need it.

Not a test module. ``make demo``'s job takes a minute and a half on two cores, most of it one
process training on the CPU, while the rest of the suite mostly keeps one core busy. So when
tests/test_demo.py is collected, the demo starts at once, as `make demo` runs it (its script,
from the repository root, in a shell whose PATH does not hold the environment), then runs again
into the same folder (the re-run the README promises converts and trains nothing). It runs at the
lowest priority (``nice 19``): it takes only the CPU the tests leave idle, so a test that times
itself is not slowed by it. The demo's tests wait for it; nothing else depends on when it ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "ichprep"
FRESH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of a login shell that has not activated the environment."""
TIMEOUT = 1800
"""Seconds the demo's tests wait for both runs at most (about 2 minutes alone on two cores)."""


def fresh_shell() -> dict[str, str]:
    """The environment of a new terminal: the system PATH, no virtual environment, nothing of pytest's."""
    return {"PATH": FRESH_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


@dataclass
class Ran:
    """One run of the demo: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


class DemoJob:
    """``ichprep demo OUT -q`` twice into one folder, in the background, at the lowest priority."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ichprep-demo-"))
        self.out = self.root / "demo-out"
        runs = "; ".join(f"{SCRIPT} demo {self.out} -q > {self.root}/{n}.out 2> {self.root}/{n}.err; echo $? > {self.root}/{n}.rc"
                         for n in ("first", "second"))
        self.process = subprocess.Popen(["nice", "-n", "19", "bash", "-c", runs], cwd=REPO, env=fresh_shell(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def runs(self) -> tuple[Ran, Ran]:
        """Both runs, once they have ended (the first run's folder is the second's)."""
        self.process.wait(timeout=TIMEOUT)
        return tuple(Ran(int((self.root / f"{n}.rc").read_text() or 1), (self.root / f"{n}.out").read_text(),
                         (self.root / f"{n}.err").read_text()) for n in ("first", "second"))

    def close(self) -> None:
        """Stop a run still going (the suite was cut short) and remove the folder."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
