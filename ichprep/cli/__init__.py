"""Command-line interface: a thin Typer layer, one module per stage.

Each module registers its commands on `app` when imported and imports its library
lazily, inside the command, so `ichprep convert` never pays for torch.
"""

from ichprep.cli import convert_cmd, demo_cmd, meta_cmd, synth_cmd, train_cmd  # noqa: F401  (registers commands)
from ichprep.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()
