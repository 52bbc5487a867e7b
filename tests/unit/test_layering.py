"""The data flow is one way (DESIGN.md): these import rules keep it so.

- ``extract`` never imports ``train``, ``convert`` or ``cli``.
- ``train`` and ``convert`` never import each other (they meet in ``io.model_files`` and the
  architectures in ``faceplate.models``).
- ``core`` imports nothing else of Faceplate and does no I/O-heavy imports.
- ``provenance`` sits below ``convert`` and ``ofx`` (which mark and sign with it) and never
  imports them; test and benchmark scaffolding (attacks, stand-in swaps) lives in ``tests/``.
- The packages' import graph has no cycle (``__main__`` entry points aside).
- Only ``cli`` (and ``__main__`` script entry points) may import ``cli``; no library module
  calls ``sys.exit``; nothing imports pickle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import faceplate

ROOT = Path(faceplate.__file__).parent

FORBIDDEN = {
    "core": ("faceplate.io", "faceplate.extract", "faceplate.faceset", "faceplate.train",
             "faceplate.convert", "faceplate.cli", "faceplate.models", "faceplate.evaluate"),
    "extract": ("faceplate.train", "faceplate.convert", "faceplate.cli"),
    "faceset": ("faceplate.train", "faceplate.convert", "faceplate.cli"),
    "train": ("faceplate.convert", "faceplate.cli", "faceplate.evaluate"),
    "convert": ("faceplate.train", "faceplate.cli"),
    "models": ("faceplate.train", "faceplate.convert", "faceplate.cli"),
    "io": ("faceplate.cli", "faceplate.train", "faceplate.convert"),
    "evaluate": ("faceplate.train", "faceplate.cli"),
    "provenance": ("faceplate.train", "faceplate.cli", "faceplate.convert", "faceplate.ofx",
                   "faceplate.evaluate"),
    "ofx": ("faceplate.train", "faceplate.cli"),
    "studio": ("faceplate.train", "faceplate.convert", "faceplate.cli"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "__main__.py":  # a script entry point is a front end, like cli/
            continue
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def _package_graph() -> dict[str, set[str]]:
    """Top-level package → the other top-level packages its modules import (function-level
    imports included; ``__main__`` entry points left out)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2 or path.name == "__main__.py":
            continue
        deps = graph.setdefault(parts[0], set())
        for name in _imports(path):
            bits = name.split(".")
            if bits[0] == "faceplate" and len(bits) > 1 and bits[1] != parts[0] \
                    and (ROOT / bits[1]).is_dir():
                deps.add(bits[1])
    return graph


def test_package_imports_have_no_cycle():
    graph = _package_graph()
    cycles = []
    for start in sorted(graph):
        # Depth-first search for a path back to ``start``.
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.append(" → ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles between packages:\n" + "\n".join(sorted(set(cycles)))


def test_library_code_never_exits():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "cli" or path.name == "__main__.py":
            continue
        text = path.read_text()
        for needle in ("sys.exit(", "os._exit(", "exit("):
            for line in text.splitlines():
                stripped = line.strip()
                if stripped.startswith(needle) or f" {needle}" in stripped:
                    bad.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert not bad, "\n".join(bad)


def test_no_pickle_anywhere():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        for name in _imports(path):
            if name in ("pickle", "cPickle", "dill", "joblib", "shelve"):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
        text = path.read_text()
        for needle in ("allow_pickle=True", "torch.load("):
            if needle in text:
                bad.append(f"{path.relative_to(ROOT)} uses {needle}")
    assert not bad, "\n".join(bad)
