"""Refresh the printed outputs in README.md and docs/ from real runs of the current code.

    python scripts/readme_outputs.py            # rerun the examples, rewrite the pages
    python scripts/readme_outputs.py --check    # rerun them, print a diff, exit 1 if an output changed
    python scripts/readme_outputs.py --section clean-meta    # only the sections whose heading says so

Every console example (``$ command`` followed by what it printed) in the sections named in
SECTIONS is run in order, as pasted, in a scratch folder prepared for its section, and the lines
after each command are replaced by what it printed (stdout and stderr merged, as a terminal shows
them). Where the README leaves lines out with a ``...`` line, the same lines are kept (see
``shaped``); lines longer than WIDTH characters are cut and end in `` ...``; torchrun's timestamped
log lines are left out.

A few minutes on 2 cores: the examples train small models. The training numbers depend on the CPU,
the number of torch threads and the torch version (the README says so).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
RSNA = REPO.parent / "shared" / "data" / "rsna"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WIDTH = 150
ELIDED = "..."
TORCHRUN_LOG = re.compile(r"^[DIWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ")
"""torchrun's own log lines (a timestamp and a process id each): left out, they would differ on every run."""


class Unavailable(Exception):
    """A section whose examples need something this machine does not have (the real data)."""


@dataclass(frozen=True)
class Section:
    """The section under ``heading`` of ``page``, how to prepare its scratch folder, and its shell's PATH.

    ``activated``: PATH holds the environment, as after ``source .venv/bin/activate``; else it is a
    fresh shell's, as right after ``make demo``. ``until``: the heading that ends the section, where
    later sections go on with its files.
    """

    heading: str
    prepare: Callable[[Path, list[str]], None]
    page: str = "README.md"
    activated: bool = True
    until: str | None = None


def link_environment(scratch: Path, _section: list[str]) -> None:
    """``scratch/.venv``: the project's environment, where `make demo` leaves it."""
    (scratch / ".venv").symlink_to(REPO / ".venv")


def link_real_sample(scratch: Path, _section: list[str]) -> None:
    """The real sample's files under the names the examples use, and the broken labels file of the error example."""
    if not RSNA.is_dir():
        raise Unavailable(f"no real sample in {RSNA}")
    for name in ("stage_2_train_images", "stage_2_test_images", "stage_2_train.csv"):
        (scratch / name).symlink_to(RSNA / name)
    labels = (RSNA / "stage_2_train.csv").read_text().splitlines(keepends=True)
    (scratch / "broken.csv").write_text("".join(line for line in labels if not line.startswith("ID_0000ca2f6_subdural,")))


def run_setup_block(scratch: Path, section: list[str]) -> None:
    """Run the section's first code block without a ``$`` prompt that makes phantoms (``ichprep synth``): its data.

    Other prompt-less blocks show commands on the real data, which are not run here.
    """
    for block in blocks(section):
        body = section[block[0] + 1:block[1]]
        if not any(line.startswith("$ ") for line in body) and body and body[0].startswith("ichprep synth"):
            for command in body:
                run(command, scratch, activated=True, check=True)
            return


SECTIONS = (
    Section("## The main job: `ichprep demo`", link_environment, activated=False),
    Section("# Cleaning the metadata", link_real_sample, page="docs/clean-meta.md"),
    Section("# Training, predicting and evaluating", run_setup_block, page="docs/train.md"),
)
"""A page's H1 heading stands for the whole page, whose later examples go on with the earlier ones' files."""


def blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(opening fence, closing fence) line numbers of the fenced code blocks in ``lines``."""
    fences = [k for k, line in enumerate(lines) if line.startswith("```")]
    return list(zip(fences[::2], fences[1::2]))


def section_span(lines: list[str], heading: str, until: str | None = None) -> tuple[int, int]:
    """The lines from ``heading`` to ``until``, or else to the next heading of the same or a higher level."""
    start = next(k for k, line in enumerate(lines) if line.startswith(heading))
    level = len(heading) - len(heading.lstrip("#"))
    for k in range(start + 1, len(lines)):
        if _inside_block(lines, k) or not lines[k].startswith("#"):
            continue
        if lines[k].startswith(until) if until else len(lines[k]) - len(lines[k].lstrip("#")) <= level:
            return start, k
    return start, len(lines)


def _inside_block(lines: list[str], k: int) -> bool:
    return sum(line.startswith("```") for line in lines[:k]) % 2 == 1


def run(command: str, cwd: Path, activated: bool, check: bool = False) -> list[str]:
    """What ``command`` prints in a bash started in ``cwd``, stdout and stderr in the order written."""
    path = f"{VENV_BIN}:{SYSTEM_PATH}" if activated else SYSTEM_PATH
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and done.returncode:
        raise SystemExit(f"readme_outputs: `{command}` failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
    return [line.rstrip() for line in done.stdout.splitlines()]


def shaped(printed: list[str], shown: list[str]) -> list[str]:
    """``printed`` cut as the README cuts ``shown``.

    Where ``shown`` has a ``...`` line, as many first lines are kept as it shows before it, and
    after it the lines that start as its lines after it do (``folds: ...``), else the last ones.
    """
    printed = [line if len(line) <= WIDTH else line[:WIDTH - 4] + " " + ELIDED for line in printed if not TORCHRUN_LOG.match(line)]
    cuts = [k for k, line in enumerate(shown) if line.strip() == ELIDED]
    if not cuts:
        return printed
    head, after = cuts[0], shown[cuts[-1] + 1:]
    if len(printed) <= head + len(after):
        return printed
    rest = printed[head:]
    tail = [next((line for line in rest if line.startswith(_key(want))), None) for want in after]
    if None in tail:
        tail = rest[len(rest) - len(after):] if after else []
    return printed[:head] + [shown[cuts[0]]] + tail


def _key(line: str) -> str:
    """What a printed line starts with whatever its numbers: up to its first colon, else its first word."""
    return line[:line.index(":") + 1] if ":" in line else line.split(" ")[0]


def refresh_block(body: list[str], scratch: Path, activated: bool) -> list[str]:
    """The block's lines with each command's output replaced by what it prints now."""
    out: list[str] = []
    k = 0
    while k < len(body):
        if not body[k].startswith("$ "):
            out.append(body[k])
            k += 1
            continue
        end = k + 1
        while body[end - 1].endswith("\\"):
            end += 1
        command = "\n".join([body[k][2:], *body[k + 1:end]])
        shown_end = next((j for j in range(end, len(body)) if body[j].startswith("$ ")), len(body))
        print(f"$ {command}", file=sys.stderr)
        out += body[k:end] + shaped(run(command, scratch, activated), body[end:shown_end])
        k = shown_end
    return out


def refresh_section(lines: list[str], section: Section) -> list[str]:
    """``lines`` with the console examples of ``section`` rerun, in the order they appear."""
    start, stop = section_span(lines, section.heading, section.until)
    part = lines[start:stop]
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        scratch = Path(tmp)
        section.prepare(scratch, part)
        new = [(open_, close, refresh_block(part[open_ + 1:close], scratch, section.activated))
               for open_, close in blocks(part) if any(line.startswith("$ ") for line in part[open_ + 1:close])]
    for open_, close, body in reversed(new):
        part[open_ + 1:close] = body
    return lines[:start] + part + lines[stop:]


def refreshed(page: str, text: str, only: list[str]) -> str:
    """``page``'s text with the examples of its sections (or of those whose heading holds one of ``only``) rerun.

    Sections that cannot run here are left as they are.
    """
    lines = text.splitlines()
    for section in (s for s in SECTIONS if s.page == page and (not only or any(word in s.heading for word in only))):
        try:
            lines = refresh_section(lines, section)
        except Unavailable as why:
            print(f"readme_outputs: left {section.heading!r} as it is: {why}", file=sys.stderr)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only show what would change; exit 1 if anything would")
    parser.add_argument("--section", action="append", default=[], help="only the sections whose heading holds this (repeatable)")
    args = parser.parse_args()
    changed = False
    for page in dict.fromkeys(s.page for s in SECTIONS):
        path = REPO / page
        before = path.read_text()
        after = refreshed(page, before, args.section)
        changed |= before != after
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(before.splitlines(True), after.splitlines(True), page, f"{page} (now)"))
        else:
            path.write_text(after)
    return int(changed) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
