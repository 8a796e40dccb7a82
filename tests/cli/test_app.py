"""The command line as a whole: `ichprep --version`, and `python -m ichprep` as another way in."""

from __future__ import annotations

import subprocess
import sys

from cli_run import ichprep

from ichprep import __version__
from ichprep.convert.render import resampler

VERSION = f"ichprep {__version__}\nresampler: {resampler()}\n"


def test_version_prints_the_package_version_and_the_resampler_in_use():
    done = ichprep("--version")
    assert done.exit_code == 0 and done.stdout == VERSION and not done.stderr


def test_python_m_ichprep_is_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "ichprep", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == VERSION, done.stderr
