"""``python -m ichprep``: the command line, for an interpreter whose ``ichprep`` script is not on PATH."""

from ichprep.cli import main

main()
