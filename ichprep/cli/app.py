"""The Typer application object the command modules register on, and its one global option, --version."""

import re
from typing import Any

import typer
from typer.core import TyperCommand

from ichprep import __version__


class Command(TyperCommand):
    """A command whose usage line names its arguments plainly: ``ichprep train [OPTIONS] DATA``.

    Typer writes a required argument as ``{DATA}``, braces that read as a placeholder to fill in or
    a set to choose from; the README and every error message name arguments without them.
    """

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [re.sub(r"\{([^{}]+)\}", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


class App(typer.Typer):
    """The Typer application whose commands are ``Command``s unless one asks for another class."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or Command, **kwargs)


app = App(
    name="ichprep",
    help="RSNA intracranial-hemorrhage DICOMs to a compact, clean, training-ready dataset.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    """Print ``ichprep <version>`` and what resamples cropped slices, then stop, before any command is looked at.

    The resampler is worth a line: the compiled kernel is built only where the install found a
    C compiler, and without it a cropped slice takes about 0.4 ms longer.
    """
    if value:
        from ichprep.convert.render.resample import BACKENDS, ORDER, pick

        chosen = pick()
        others = [BACKENDS[n].describe() for n in ORDER if BACKENDS[n] is not chosen and BACKENDS[n].available()]
        typer.echo(f"ichprep {__version__}\nresampler: {chosen.describe()}" + (f" (also available: {', '.join(others)})" if others else ""))
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and the resampler in use, and exit."
    ),
) -> None:
    """RSNA intracranial-hemorrhage DICOMs to a compact, clean, training-ready dataset."""
