"""The command line as a whole: `ichprep --version`, and `python -m ichprep` as another way in."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_run import ichprep

from ichprep import __version__
from ichprep.convert.render import resample

KERNEL = resample.BACKENDS["kernel"]
ALSO = " (also available: OpenCV)" if KERNEL.available() else ""
VERSION = f"ichprep {__version__}\nresampler: {resample.pick().describe()}{ALSO}\n"


def test_version_prints_the_package_version_and_the_resampler_in_use():
    done = ichprep("--version")
    assert done.exit_code == 0 and done.stdout == VERSION and not done.stderr


def test_the_resampler_is_chosen_by_name(monkeypatch):
    monkeypatch.setenv(resample.ENV, "opencv")
    done = ichprep("--version")
    assert done.stdout.splitlines()[1].startswith("resampler: OpenCV")
    if not KERNEL.available():
        pytest.skip("the compiled kernel is not built here")
    monkeypatch.setenv(resample.ENV, "kernel")
    assert ichprep("--version").stdout.splitlines()[1] == f"resampler: {KERNEL.describe()} (also available: OpenCV)"
    monkeypatch.setenv(resample.ENV, "gpu")
    done = ichprep("--version")
    assert done.exit_code == 2 and done.stderr.startswith("ichprep: error: ICHPREP_RESAMPLER='gpu': choose one of kernel, opencv")


def test_python_m_ichprep_is_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "ichprep", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == VERSION, done.stderr


def test_help_names_every_argument_without_braces():
    from typer.main import get_command

    from ichprep.cli import app

    commands = get_command(app).commands
    assert {"convert", "train", "predict"} <= set(commands)
    for name, command in commands.items():
        arguments = [(p.metavar or p.name.upper()) + ("..." if p.nargs == -1 else "") if p.required
                     else f"[{p.metavar or p.name.upper()}]" for p in command.params if p.param_type_name == "argument"]
        usage = ichprep(name, "--help").stdout.splitlines()[0]
        assert "{" not in usage and "}" not in usage, usage
        assert usage.startswith(f"Usage: ichprep {name} [OPTIONS]") and usage.split()[4:] == arguments, usage
