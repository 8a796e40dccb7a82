"""Command-line interface: a thin Typer layer, one module per stage, and the one place errors end.

Each module registers its commands on `app` when imported and imports its library lazily, inside
the command, so `ichprep convert` never pays for torch. ``main`` turns what a user can cause into
one line on stderr and an exit code: ``IchprepError`` and option errors exit 2, a full disk or a
stream cut short 1, Ctrl-C 130. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from ichprep.cli import convert_cmd, demo_cmd, meta_cmd, predict_cmd, series_cmd, synth_cmd, train_cmd  # noqa: F401  (registers)
from ichprep.cli.app import app

INTERRUPTED = 130


def fail(message: str, code: int = 2, kind: str = "error") -> None:
    """Print ``ichprep: <kind>: <message>`` as one line on stderr and exit with ``code``."""
    print(f"ichprep: {kind}: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point."""
    import typer

    from ichprep.errors import DiskFullError, IchprepError, StreamCutError

    args = sys.argv[1:] if args is None else list(args)
    try:
        code = app(args=args or ["--help"], prog_name="ichprep", standalone_mode=False)
    except typer.TyperException as err:  # an option or argument Typer could not parse
        context = getattr(err, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        fail(err.format_message() + hint, err.exit_code)
    except typer.Abort:
        fail("interrupted; re-run the same command to resume", INTERRUPTED, "stopped")
    except IchprepError as err:
        fail(str(err))
    except DiskFullError as err:
        fail(f"{err}; free some space and re-run the same command to resume", 1, "stopped")
    except StreamCutError as err:
        fail(f"{err}; re-run the same command to resume (finished members are skipped)", 1, "stopped")
    if code == INTERRUPTED:
        fail("interrupted; re-run the same command to resume", INTERRUPTED, "stopped")
    sys.exit(code or 0)
