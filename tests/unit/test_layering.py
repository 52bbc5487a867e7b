"""The data flow is one way (DESIGN.md): these import rules keep it so.

- ``extract`` never imports ``train``, ``convert`` or ``cli``.
- ``train`` and ``convert`` never import each other (they meet in ``io.model_files`` and the
  architectures in ``faceplate.models``).
- ``core`` imports nothing else of Faceplate and does no I/O-heavy imports.
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
    "provenance": ("faceplate.train", "faceplate.cli"),
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
