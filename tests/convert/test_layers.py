"""convert's layers, read from the source with ast: run -> render -> read -> sources, and nothing below imports convert.

Every import statement counts wherever it sits, a lazy one inside a function too. An import counts
for the module it names (``from ichprep.convert import sources`` names the package
``ichprep.convert``, whose ``__init__`` is the public facade; ``from ichprep.convert.sources import
Input`` names ``ichprep.convert.sources``), not for the packages Python runs on the way there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_imports import PACKAGE, modules, named, write

CONVERT = "ichprep.convert"
ORDER = ("ichprep.convert.run", "ichprep.convert.render", "ichprep.convert.read", "ichprep.convert.sources")
"""convert's rooms, top first: each may import the ones after it, never one before it nor the facade."""
BELOW = ("ichprep.store", "ichprep.settings", "ichprep.windows", "ichprep.layout", "ichprep.errors", "ichprep.atomic",
         "ichprep.paths", "ichprep.labels")
"""What convert builds on: none of it imports anything of convert."""


def room(module: str) -> str:
    """The room of ``module``: one of convert's folders, the facade ``ichprep.convert``, or the module itself."""
    return next((r for r in ORDER if module == r or module.startswith(r + ".")), CONVERT if module.startswith(CONVERT) else module)


def arrows(root: Path) -> set[tuple[str, str, str]]:
    """(room, room it imports, the importing module) for every import between two rooms under ``root``."""
    known = modules(root)
    return {(room(name), room(target), name) for name, path in known.items() for target in named(name, path, known)
            if room(name) != room(target)}


def upward(root: Path) -> list[tuple[str, str, str]]:
    """The imports by convert's rooms of a room above them or of the facade, as (room, room, module)."""
    return sorted((a, b, why) for a, b, why in arrows(root)
                  if a in ORDER and (b == CONVERT or (b in ORDER and ORDER.index(b) < ORDER.index(a))))


def test_convert_s_rooms_import_only_the_rooms_below_them_never_the_facade():
    assert upward(PACKAGE.parent) == []


def test_nothing_convert_builds_on_imports_convert():
    assert [(a, b, why) for a, b, why in arrows(PACKAGE.parent) if a in BELOW and b.startswith(CONVERT)] == []


@pytest.mark.parametrize(("text", "target"), [
    ("from ichprep.convert import sources\n", CONVERT),
    ("import ichprep.convert\n", CONVERT),
    ("def f():\n    from ichprep.convert.run import plan\n", "ichprep.convert.run"),
    ("from ..run import plan\n", "ichprep.convert.run"),
])
def test_the_check_finds_an_import_of_the_facade_or_of_a_room_above(tmp_path, text, target):
    write(tmp_path, "ichprep.convert.run.plan", "")
    write(tmp_path, "ichprep.convert.sources.base", "")
    write(tmp_path, "ichprep.convert.render.renderer", "from ichprep.convert.sources.base import Input\n")
    assert upward(tmp_path) == []
    write(tmp_path, "ichprep.convert.render.renderer", text)
    assert upward(tmp_path) == [("ichprep.convert.render", target, "ichprep.convert.render.renderer")]
