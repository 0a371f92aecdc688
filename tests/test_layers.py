"""Imports point down: data flows prepare -> train -> generate -> evaluate -> compose, and orchestration sits on top.

Each subpackage (or top-level module) has a layer; a module may import its own layer and those below, never one
above. The few upward imports that remain are listed with why, and the test fails when one of them is gone too, so
the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import charforge

PACKAGE = Path(charforge.__file__).parent
LAYERS = [
    {"charforge", "errors", "atomic", "digest", "yamlconfig", "options", "config", "plots", "progress"},  # plumbing
    {"models", "workspace", "run"},  # model loading and formats; the workspace and its runs
    {"data", "generate"},  # prepare; draw
    {"train"},
    {"evaluate", "comic", "publish"},
    {"world"},  # the mini world: its renderer, judge and base model build on everything below
    {"api", "environment"},
    {"recipes"},  # procedures built on the API: sweeps, the mini-world experiment, the UI's job queue
    {"cli", "cli_options", "__main__", "ui"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
# Upward imports still there, with why (none: the mini world registers its model, captioner and judge).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _imports() -> set[tuple[str, str]]:
    """(importing module, imported module) for every import of charforge's own modules, in functions too."""
    out = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(p for p in parts if p != "__init__") or "charforge"
        package = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(package[: len(package) - node.level + 1])
                if node.module:
                    out.add((module, ".".join([*base, node.module])))
                else:  # from .. import api, __version__: modules of the package, or its own names
                    for alias in node.names:
                        name = ".".join([*base, alias.name])
                        out.add((module, name if name.split(".")[0] in LAYER else ".".join(base) or "charforge"))
            elif isinstance(node, ast.ImportFrom | ast.Import):
                for name in [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]:
                    if name and name.startswith("charforge"):
                        out.add((module, name.removeprefix("charforge").lstrip(".") or "charforge"))
    return out


def _layer(module: str) -> int:
    return LAYER[module.split(".")[0]]


def test_every_module_has_a_layer():
    tops = {".".join(p.relative_to(PACKAGE).with_suffix("").parts[:1]) for p in PACKAGE.rglob("*.py")}
    assert tops - {"__init__"} <= set(LAYER), sorted(tops - set(LAYER) - {"__init__"})


def test_imports_point_down():
    upward = {(a, b) for a, b in _imports() if _layer(b) > _layer(a)}
    assert upward - KNOWN_UPWARD == set(), "a lower layer imports a higher one"
    assert KNOWN_UPWARD - upward == set(), "an upward import is gone: take it off KNOWN_UPWARD"


def test_no_import_loops_between_subpackages():
    graph: dict[str, set[str]] = {}
    for a, b in _imports():
        ta, tb = a.split(".")[0], b.split(".")[0]
        if ta != tb and tb != "charforge":
            graph.setdefault(ta, set()).add(tb)
    known = {(a.split(".")[0], b.split(".")[0]) for a, b in KNOWN_UPWARD}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if (start, nxt) in known:
                continue
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    loops = sorted(t for t in graph if reaches(t, t, {t}))
    assert not loops, loops
