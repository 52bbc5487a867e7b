"""What the built bundle asks of the system it is loaded on (binary compatibility).

A host may load its own, older libstdc++ before any plug-in (Natron's Linux releases do), so
the plug-in and its worker carry their C++ runtime inside, with its symbols kept local: they
must need no ``GLIBCXX_*``, ``CXXABI_*`` or ``GCC_*`` symbol version at all. The glibc floor is
stated in the README; these tests fail when a change raises it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import native

#: The highest glibc symbol versions the binaries may need (README, "Binary compatibility").
GLIBC_FLOOR = {"Faceplate.ofx": (2, 35), "faceplate-worker": (2, 36)}

pytestmark = pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not installed")


def versions(binary: Path) -> set[str]:
    """The symbol versions a binary's dynamic symbols refer to (``GLIBC_2.34`` ...)."""
    out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"\b((?:GLIBCXX|CXXABI|GCC|GLIBC)_[0-9.]+)\b", out))


@pytest.mark.parametrize("name", sorted(GLIBC_FLOOR))
def test_binary_needs_no_cxx_runtime_and_an_old_enough_glibc(name: str) -> None:
    path = native.build().bundle / "Contents" / "Linux-x86-64" / name
    got = versions(path)
    assert got, f"{path}: no versioned symbols found (objdump output changed?)"
    assert not [v for v in got if not v.startswith("GLIBC_")], sorted(got)
    highest = max(tuple(int(p) for p in v.split("_")[1].split(".")) for v in got)
    assert highest <= GLIBC_FLOOR[name], f"{name} needs GLIBC_{'.'.join(map(str, highest))}"


def test_plugin_exports_only_the_ofx_entry_points() -> None:
    path = native.build().bundle / "Contents" / "Linux-x86-64" / "Faceplate.ofx"
    out = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split()[-1] for line in out.splitlines()
             if (" DF " in line or " DO " in line) and "*UND*" not in line}
    assert names == {"OfxGetNumberOfPlugins", "OfxGetPlugin", "OfxSetHost"}, sorted(names)
