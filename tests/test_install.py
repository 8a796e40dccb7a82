"""The install: the C kernel is compiled where a compiler exists, and a machine without one still installs.

Each test builds a wheel of a copy of the package's sources (the build leaves its files beside
them) with the environment's own setuptools (no download) and reads what the wheel holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _setuptools_builds_extensions_from_pyproject() -> bool:
    try:
        from importlib.metadata import version

        major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    except Exception:
        return False
    return (major, minor) >= (74, 1)


pytestmark = pytest.mark.skipif(not _setuptools_builds_extensions_from_pyproject(),
                                reason="needs setuptools 74.1 or newer installed to build without a download")


def wheel_names(tmp_path: Path, **env: str) -> list[str]:
    """The files of a wheel built from the package's sources with ``env`` added to the environment."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "ichprep", source / "ichprep", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)]
    done = subprocess.run(command, env=dict(os.environ, **env), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("ichprep-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def kernels(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("ichprep/convert/render/_area.") and n.endswith((".so", ".pyd"))]


def test_without_a_c_compiler_the_install_succeeds_and_leaves_the_kernel_out(tmp_path):
    names = wheel_names(tmp_path, CC="false")
    assert "ichprep/convert/render/renderer.py" in names and kernels(names) == []


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler on this machine")
def test_with_a_c_compiler_the_kernel_is_compiled_into_the_package(tmp_path):
    assert len(kernels(wheel_names(tmp_path))) == 1
