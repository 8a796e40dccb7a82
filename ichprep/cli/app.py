"""The Typer application object the command modules register on."""

import typer

app = typer.Typer(
    name="ichprep",
    help="RSNA intracranial-hemorrhage DICOMs to a compact, clean, training-ready dataset.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
