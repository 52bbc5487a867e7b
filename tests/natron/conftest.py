"""The real-Natron tier: Faceplate's nodes in a real NatronRenderer 2.5.

Runs when ``FACEPLATE_NATRON`` names a NatronRenderer (``.ci/run`` installs the one in
``../shared/natron`` and sets it); skipped, saying why, otherwise. Each test builds a graph with
Natron's Python API through ``driver.py`` (a spec file in, a result file out) and reads what
Natron wrote. NatronRenderer runs with a clean environment (no virtualenv on PATH, Debian's
Python as its home), a HOME per session (Natron caches plug-in descriptions there) and
``OFX_PLUGIN_PATH`` naming the freshly built bundle, exactly as the README tells a user.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import native

DRIVER = Path(__file__).with_name("driver.py")
#: A successful NatronRenderer 2.5 can still abort at exit (status 134, a cache-thread join
#: bug in stock releases; ../shared/natron's build is patched): outputs are judged by the files
#: and the driver's result, the exit status only as a hint.
TIMEOUT = 600


def natron_path() -> Path | None:
    p = os.environ.get("FACEPLATE_NATRON", "").strip()
    return Path(p) if p else None


@pytest.fixture(scope="session")
def natron() -> Path:
    p = natron_path()
    if p is None:
        pytest.skip("FACEPLATE_NATRON is not set: the real-Natron tier needs a NatronRenderer "
                    "(../shared/natron/install.sh prints its path; .ci/run sets it)")
    if not os.access(p, os.X_OK):
        pytest.fail(f"FACEPLATE_NATRON={p} is not an executable NatronRenderer")
    return p


@dataclass
class Run:
    """What one NatronRenderer run left: its exit status, output and the driver's result."""

    returncode: int
    stdout: str
    result: dict[str, Any]

    def step(self, k: int) -> dict[str, Any]:
        return self.result["steps"][k]

    @property
    def messages(self) -> list[str]:
        """The node messages a headless Natron printed: persistent ones (``Persistent
        message: <text>``; an empty one when cleared) and information from the main thread
        (``INFO: <node>: <text>``)."""
        out = []
        for line in self.stdout.splitlines():
            if "Persistent message:" in line:
                out.append(line.split("Persistent message:", 1)[1].strip())
            elif line.startswith("INFO: "):
                out.append(line[len("INFO: "):].strip())
        return out


@dataclass
class NatronSession:
    renderer: Path
    home: Path
    plugins: Path
    tmp: Path

    def run(self, spec: dict[str, Any], name: str, *, env: dict[str, str] | None = None,
            end_render: bool = False) -> Run:
        """Run the driver on ``spec`` (see driver.py) in a fresh NatronRenderer process.

        ``end_render`` keeps the writers for NatronRenderer's own render of every writer at
        the end of the script (by default the driver removes them first).
        """
        folder = self.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = {**spec, "result": str(folder / "result.json"), "end_render": end_render}
        (folder / "spec.json").write_text(json.dumps(spec, indent=1))
        run_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHOME": "/usr",
                   "HOME": str(self.home), "OFX_PLUGIN_PATH": str(self.plugins),
                   "FACEPLATE_NATRON_SPEC": str(folder / "spec.json"), "LANG": "C.UTF-8",
                   **(env or {})}
        proc = subprocess.run([str(self.renderer), str(DRIVER)], env=run_env, cwd=folder,
                              capture_output=True, text=True, timeout=TIMEOUT)
        out = proc.stdout + proc.stderr
        (folder / "natron.log").write_text(out)
        result_file = folder / "result.json"
        assert result_file.is_file(), f"NatronRenderer left no result (exit {proc.returncode}):" \
                                      f"\n{out[-6000:]}"
        return Run(proc.returncode, out, json.loads(result_file.read_text()))


@pytest.fixture(scope="session")
def session(natron: Path, tmp_path_factory: pytest.TempPathFactory) -> NatronSession:
    built = native.build()
    root = tmp_path_factory.mktemp("natron")
    home = root / "home"
    home.mkdir()
    return NatronSession(natron, home, built.plugin_dir, root)
