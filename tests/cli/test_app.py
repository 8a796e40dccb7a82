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


def test_help_names_every_argument_without_braces():
    from typer.main import get_command

    from ichprep.cli import app

    commands = get_command(app).commands
    assert {"convert", "train", "predict"} <= set(commands)
    for name, command in commands.items():
        arguments = [(p.metavar or p.name.upper()) if p.required else f"[{p.metavar or p.name.upper()}]"
                     for p in command.params if p.param_type_name == "argument"]
        usage = ichprep(name, "--help").stdout.splitlines()[0]
        assert "{" not in usage and "}" not in usage, usage
        assert usage.startswith(f"Usage: ichprep {name} [OPTIONS]") and usage.split()[4:] == arguments, usage
