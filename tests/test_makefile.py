"""The Makefile: one install, repeated only when pyproject.toml or the C kernel changes, and a chosen index for torch.

Dry runs (`make -n`) against a scratch VENV: nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_INPUTS = ("pyproject.toml", "ichprep/convert/render/_area.c")
"""What the install reads: a change to either needs another."""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str, venv: Path, *assignments: str) -> list[str]:
    """The commands ``make TARGET`` would run with VENV=venv."""
    done = subprocess.run(["make", "-n", "-C", str(REPO), target, f"VENV={venv}", *assignments],
                          capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if not line.startswith("make")]


def fake_venv(root: Path, installed: bool) -> Path:
    """A VENV with a python, marked installed (stamp newer than pyproject.toml and the C kernel) or not."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").touch()
    if installed:
        stamp = root / ".ichprep-installed"
        stamp.touch()
        later = max((REPO / name).stat().st_mtime for name in INSTALL_INPUTS) + 10
        os.utime(stamp, (later, later))
    return root


def test_test_reinstalls_nothing_once_installed(tmp_path):
    venv = fake_venv(tmp_path / "venv", installed=True)
    assert planned("test", venv) == [f"{venv}/bin/ruff check .", f"{venv}/bin/python -m pytest"]


def test_a_fresh_environment_installs_the_pinned_torch_first(tmp_path):
    venv = fake_venv(tmp_path / "venv", installed=False)
    steps = planned("setup", venv)
    assert "pip install torch==2.14.1 torchvision==0.29.1" in steps[0] and "--index-url" not in steps[0]
    assert steps[1] == f'{venv}/bin/pip install -e ".[dev]"'


def test_torch_index_chooses_where_torch_comes_from(tmp_path):
    venv = fake_venv(tmp_path / "venv", installed=False)
    steps = planned("setup", venv, "TORCH_INDEX=https://example.org/whl/cpu")
    assert steps[0].endswith("pip install torch==2.14.1 torchvision==0.29.1 --index-url https://example.org/whl/cpu")


@pytest.mark.parametrize("changed", INSTALL_INPUTS)
def test_a_changed_install_input_installs_again(tmp_path, changed):
    venv = fake_venv(tmp_path / "venv", installed=True)
    assert f'{venv}/bin/pip install -e ".[dev]"' in planned("test", venv, f"--what-if={changed}")
