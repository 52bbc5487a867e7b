"""One CMake build of the native parts for every test that needs them.

The OFX bundle (plugin, worker, in-process library, schema, icons), the C++ test host with its
fixture plugin and the bridge probe are configured and built once per test session into
``build/ofx``, the folder ``make ofx`` builds in (``FACEPLATE_OFX_BUILD_DIR`` points elsewhere,
e.g. at a sanitizer build), with the project venv's Python embedded in the worker. A lock file
serialises parallel sessions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The Makefile's `make ofx` folder: the tests and the user's bundle are one build.
BUILD = Path(os.environ.get("FACEPLATE_OFX_BUILD_DIR", ROOT / "build" / "ofx"))
TARGETS = ("FaceplateOFX", "faceplate-ofx-testhost", "FaceplateTestInvert",
           "FaceplateTestBadProp", "faceplate-bridge-probe")


@dataclass(frozen=True)
class Native:
    """Where the built pieces are."""

    build: Path
    bundle: Path        # Faceplate.ofx.bundle
    host: Path          # faceplate-ofx-testhost
    invert: Path        # FaceplateTestInvert.ofx.bundle (the host's own fixture plugin)
    bridge: Path        # folder of faceplate-worker and faceplate-bridge-probe

    @property
    def plugin_dir(self) -> Path:
        """The folder to put on OFX_PLUGIN_PATH for the Faceplate bundle."""
        return self.bundle.parent


_BUILT: Native | None = None


def python() -> Path:
    venv = ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def build() -> Native:
    """Configure and build (once per process; CMake itself skips what is up to date)."""
    global _BUILT
    if _BUILT is not None:
        return _BUILT
    if shutil.which("cmake") is None:
        pytest.fail("cmake is required to build the OFX bundle and the test host")
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD),
                              "-DCMAKE_BUILD_TYPE=Release", f"-DFACEPLATE_PYTHON={python()}"],
                             capture_output=True, text=True)
        assert cfg.returncode == 0, cfg.stdout[-4000:] + cfg.stderr[-4000:]
        proc = subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", *TARGETS],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    host_dir = BUILD / "tests" / "ofx_host"
    _BUILT = Native(BUILD, BUILD / "ofx_plugin" / "Faceplate.ofx.bundle",
                    host_dir / "faceplate-ofx-testhost",
                    host_dir / "FaceplateTestInvert.ofx.bundle", BUILD / "cpp_bridge")
    return _BUILT
