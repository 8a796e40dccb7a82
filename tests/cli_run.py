"""Run the ``ichprep`` command line in-process, the way the console script runs it.

Not a test module. It goes through ``ichprep.cli.main``, so a test sees exactly what a user
sees: the one-line errors and exit codes that ``main`` makes of exceptions, not a traceback.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from ichprep.cli import main


@dataclass
class CliResult:
    """Exit code and the two output streams of one invocation."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def ichprep(*args: object) -> CliResult:
    """``ichprep ARGS...`` in this process; paths may be given as ``Path`` objects."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())
