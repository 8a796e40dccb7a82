"""The commands of the README and of docs/ are ones the project has: every `ichprep ...` line parses
with the current command line (each command, option and value exists), and every script, test file
and make target they name is there.

Parsing is click's own, without running anything; the commands that are cheap to run are run by
the tests of what they show (tests/test_demo.py, tests/test_examples.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from ichprep.cli import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
"""The front page and the pages it links to: one set of commands, wherever each is explained."""
SHELL_WORDS = ("ichprep", "python", "make", "torchrun", "pip", "head", "source", ".venv/")


def commands(text: str) -> list[str]:
    """The shell commands in ``text``'s code blocks, as bash would read them.

    A block with ``$ `` prompts holds commands only on those lines (the rest is what they print);
    a block without holds a command on every line. Indented blocks count too. Continuation lines
    (ending in a backslash) are joined.
    """
    found: list[str] = []
    fence, body = None, []
    for line in text.splitlines() + [""]:
        if line.startswith("```"):
            if fence is None:
                fence, body = line[3:].strip(), []
            else:
                if fence in ("bash", "console", "sh", ""):
                    found += _block_commands(body)
                fence = None
            continue
        if fence is not None:
            body.append(line)
        elif line.startswith("    ") and line.strip().startswith(SHELL_WORDS):
            found.append(line.strip())
    return found


def _block_commands(body: list[str]) -> list[str]:
    prompted = any(line.startswith("$ ") for line in body)
    found: list[str] = []
    for k, line in enumerate(body):
        if not (line.startswith("$ ") if prompted else line.strip()):
            continue
        command = line[2:] if prompted else line
        while body[k].endswith("\\"):
            k += 1
            command = command[:-1] + " " + body[k].strip()
        found.append(command)
    return [c for c in found if not c.lstrip().startswith("#")]


ALL = [command for page in PAGES for command in commands(page.read_text())]


def test_the_front_page_links_every_page_and_its_first_command_is_within_one_screen():
    text = README.read_text()
    assert all(f"(docs/{page.name})" in text for page in PAGES[1:])
    first = next(k for k, line in enumerate(text.splitlines()) if line.startswith("make demo"))
    assert first < 40


def test_the_readme_has_commands_to_check():
    words = [shlex.split(c, comments=True)[0] for c in ALL]
    assert words.count("ichprep") >= 20 and "make" in words and any(w.endswith("/ichprep") for w in words)


def ichprep_args(command: str) -> list[str] | None:
    """The arguments after the ichprep word (``ichprep``, ``.venv/bin/ichprep``, ``"$(command -v ichprep)"``)."""
    words = shlex.split(command, comments=True)
    at = next((k for k, w in enumerate(words) if w == "ichprep" or w.endswith("/ichprep") or "command -v ichprep" in w), None)
    return None if at is None else words[at + 1:]


@pytest.mark.parametrize("command", [c for c in ALL if ichprep_args(c) is not None])
def test_every_ichprep_command_parses_with_the_current_cli(command):
    args = ichprep_args(command)
    group = get_command(app)
    context = group.make_context("ichprep", list(args))
    sub = group.get_command(context, args[0])
    assert sub is not None, f"no command {args[0]!r}: {command}"
    sub.make_context(args[0], args[1:], parent=context)  # raises on an unknown option, a missing argument or a bad value


@pytest.mark.parametrize("command", [c for c in ALL if ichprep_args(c) is None])
def test_every_file_and_make_target_a_command_names_exists(command):
    words = shlex.split(command, comments=True)
    for word in words:
        path = word.split("::")[0]
        if re.fullmatch(r"(examples|benchmarks|scripts|tests)/[\w/]+\.py", path):
            assert (REPO / path).is_file(), f"{path} in: {command}"
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        for word in words[1:]:
            assert "=" in word or word in targets, f"make target {word!r} in: {command}"
