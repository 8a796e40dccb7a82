"""The stages' import rules, read from the source with ast: the rooms in layers, and inference never imports training.

The package is a house of rooms (each subpackage, convert's folders, each top-level module) in
layers (``LAYERS``): a room imports only rooms of the layers below it, so there is no cycle and
no arrow that runs up, and a change to a room never reaches the rooms beneath it. ``ichprep.predict``
applies a model.pt with what ``models``, ``series``' data and ``store`` offer; were it to import
``ichprep.train`` (directly, inside a function, or through another module it imports) the stages
would be one again. The rules are checked on the import graph of the source, every import
statement counted wherever it sits, so a lazy import inside a function cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ichprep

PACKAGE = Path(ichprep.__file__).parent


def modules(root: Path) -> dict[str, Path]:
    """Every module under ``root`` (a folder holding the package ``ichprep``) by its dotted name."""
    found = {}
    for path in (root / "ichprep").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ichprep modules that module ``name`` (file ``path``) imports anywhere in it, with the packages they sit in."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            named |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    out = set()
    for target in named:
        parts = target.split(".")
        for end in range(1, len(parts) + 1):  # a module imports the packages above it too
            if ".".join(parts[:end]) in known:
                out.add(".".join(parts[:end]))
    return out


def named(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ichprep modules that module ``name`` names in its imports (``from a import b``: ``a``, and ``a.b`` if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join(anchor + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {module for module in found if module in known}


LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",), ("cli",), ("demo",), ("predict",), ("series",), ("train",), ("meta",), ("models",),
    ("data", "plots", "synth"), ("convert",), ("convert.run",), ("convert.render",), ("convert.read",), ("convert.sources",),
    ("store",), ("settings",), ("windows", "labels", "paths", "metrics", "splits"), ("strict_json", "layout", "errors", "atomic"),
    ("ichprep",),
)
"""The rooms, top layer first: the command line, the demo, inference, the second stage, training, the
metadata table, the networks and the data they read, conversion and its stages, the stores, and
the plain facts everything shares (the package itself: the label names and the version)."""


def room(module: str) -> str:
    """The room of a module: convert's folder, else the subpackage or top-level module under ichprep."""
    parts = module.split(".")
    if len(parts) == 1:
        return "ichprep"
    return ".".join(parts[1:3]) if parts[1] == "convert" and len(parts) > 2 else parts[1]


def layer(name: str) -> int:
    return next(k for k, rooms in enumerate(LAYERS) if name in rooms)


def room_arrows(root: Path) -> set[tuple[str, str, str]]:
    """(room, room it imports, the module importing) for every import between two rooms under ``root``."""
    known = modules(root)
    return {(room(name), room(target), name) for name, path in known.items() for target in named(name, path, known)
            if room(name) != room(target)}


def test_every_room_has_its_layer():
    assert {room(name) for name in modules(PACKAGE.parent)} <= {r for rooms in LAYERS for r in rooms}


def test_rooms_import_only_rooms_of_the_layers_below_so_nothing_runs_up_and_nothing_cycles():
    assert sorted(arrow for arrow in room_arrows(PACKAGE.parent) if layer(arrow[1]) <= layer(arrow[0])) == []


def test_the_layer_check_finds_an_arrow_up_and_a_pair_in_one_layer(tmp_path):
    write(tmp_path, "ichprep.models.apply", "from ichprep.store import open_converted\n")
    write(tmp_path, "ichprep.store.converted", "")
    write(tmp_path, "ichprep.data.batches", "")
    assert [a for a in room_arrows(tmp_path) if layer(a[1]) <= layer(a[0])] == []
    write(tmp_path, "ichprep.store.converted", "def f():\n    from ichprep.models.apply import check_data\n")
    write(tmp_path, "ichprep.data.batches", "from ichprep import plots\n")
    write(tmp_path, "ichprep.plots", "")
    assert sorted(a for a in room_arrows(tmp_path) if layer(a[1]) <= layer(a[0])) == [
        ("data", "plots", "ichprep.data.batches"), ("store", "models", "ichprep.store.converted")]


def path_to(start_prefix: str, forbidden: str, root: Path) -> list[str] | None:
    """A chain of imports from a module of ``start_prefix`` to one of ``forbidden``, or None when there is none."""
    known = modules(root)
    graph = {name: imported(name, path, known) for name, path in known.items()}
    starts = [n for n in known if n == start_prefix or n.startswith(start_prefix + ".")]
    chains = {n: [n] for n in starts}
    todo = list(starts)
    while todo:
        name = todo.pop()
        for target in sorted(graph[name]):
            if target == forbidden or target.startswith(forbidden + "."):
                return chains[name] + [target]
            if target not in chains:
                chains[target] = chains[name] + [target]
                todo.append(target)
    return None


def test_predict_never_imports_train_directly_or_through_another_module():
    assert path_to("ichprep.predict", "ichprep.train", PACKAGE.parent) is None


def write(root: Path, name: str, text: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in [path.parent, *path.parent.parents]:
        if folder == root:
            break
        (folder / "__init__.py").touch()
    path.write_text(text)


def test_the_check_finds_a_direct_a_lazy_and_a_relative_import_of_train(tmp_path):
    write(tmp_path, "ichprep.train.loop", "")
    write(tmp_path, "ichprep.predict.predict", "import numpy\n")
    assert path_to("ichprep.predict", "ichprep.train", tmp_path) is None
    for text in ("from ichprep.train.loop import train\n", "def f():\n    import ichprep.train\n",
                 "from ..train import loop\n", "from ichprep import train\n"):
        write(tmp_path, "ichprep.predict.predict", text)
        chain = path_to("ichprep.predict", "ichprep.train", tmp_path)
        assert chain is not None and chain[0] == "ichprep.predict.predict" and chain[-1].startswith("ichprep.train"), text


def test_the_check_follows_imports_through_other_stages(tmp_path):
    write(tmp_path, "ichprep.train.loop", "")
    write(tmp_path, "ichprep.series.embed", "def f():\n    from ichprep.train.loop import train\n")
    write(tmp_path, "ichprep.predict.predict", "from ichprep.series.embed import f\n")
    assert path_to("ichprep.predict", "ichprep.train", tmp_path) == [
        "ichprep.predict.predict", "ichprep.series.embed", "ichprep.train"]  # importing train.loop runs train's __init__
