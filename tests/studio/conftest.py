"""Fixtures of the Studio tests: a real shot (store + faceset cut from the sample clip by the real
extraction stages), a real server on a free loopback port, and headless Chromium."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceplate.io.faceset import read_face_png, write_face_png
from faceplate.studio.server import StudioServer
from faceplate.studio.workspace import Workspace
from tests.store_fixtures import Built, build_faceset

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "studio"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def shot_built(tmp_path_factory: pytest.TempPathFactory, media: dict[str, Path]) -> Built:
    """The first 8 frames of single_face.mp4 (640×360, one face each): store + 128 px faces."""
    return build_faceset(media["single_face.mp4"], tmp_path_factory.mktemp("shot"), n_frames=8,
                         size=128, masks=("components", "extended"))


def clone_shot(b: Built, dest: Path) -> Built:
    """An independent copy whose face PNGs point at the copied store (as extraction writes)."""
    dest.mkdir(parents=True, exist_ok=True)
    store = dest / b.store.name
    shutil.copyfile(b.store, store)
    faces = dest / "faces"
    faces.mkdir()
    for p in sorted(b.faces.glob("*.png")):
        img, meta = read_face_png(p)
        src = dict(meta.source, store=str(store))
        write_face_png(faces / p.name, img, dataclasses.replace(meta, source=src))
    return Built(b.input, store, faces, b.frames, b.n_faces)


@pytest.fixture()
def shot(shot_built: Built, tmp_path: Path) -> Built:
    return clone_shot(shot_built, tmp_path / "shot")


class Running:
    """A Studio server on a workspace, with a small HTTP client that carries the token."""

    def __init__(self, paths: list[Path]) -> None:
        self.ws = Workspace.open(paths)
        self.server = StudioServer(self.ws)
        self.server.start()
        self.base = f"http://127.0.0.1:{self.server.port}"

    def request(self, method: str, path: str, body: Any = None, *, token: bool = True,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        import json
        import urllib.error
        import urllib.request

        h = {"X-Faceplate-Token": self.server.token} if token else {}
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw, status, ctype = r.read(), r.status, r.headers.get("content-type", "")
        except urllib.error.HTTPError as err:
            raw, status, ctype = err.read(), err.code, err.headers.get("content-type", "")
        return status, (json.loads(raw) if "json" in ctype else raw)

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, {} if body is None else body, **kw)

    def close(self) -> None:
        self.server.stop()
        self.ws.close()


@pytest.fixture()
def studio(shot: Built) -> Iterator[Running]:
    run = Running([shot.store.parent])
    yield run
    run.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def occluded_shot(shot_built: Built, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shot with ``occlusion`` masks: four faces labelled through the Studio's API (an
    include polygon less an exclude band), ``faceplate mask train`` on them (a short run at
    64 px: what is shown matters here, not how good it is), ``faceplate mask apply`` on the
    store."""
    import subprocess
    import sys

    b = clone_shot(shot_built, tmp_path_factory.mktemp("occluded_shot"))
    run = Running([b.store.parent])
    try:
        for fi in range(4):
            f = run.get(f"/api/store/0/frame/{fi}")[1]["faces"][0]
            crop = f["crop"]
            labels = {"size": crop["size"], "centering": crop["centering"],
                      "matrix": crop["matrix"],
                      "shapes": [{"kind": "polygon", "mode": "include",
                                  "points": [[40, 40], [216, 40], [216, 230], [40, 230]]},
                                 {"kind": "polygon", "mode": "exclude",
                                  "points": [[60, 150], [200, 150], [200, 200], [60, 200]]}]}
            status, out = run.post(f"/api/store/0/frame/{fi}/face/0/labels",
                                   {"labels": labels, "etag": f["etag"]})
            assert status == 200, out
    finally:
        run.close()
    model = b.store.parent / "occlusion_model"
    cli = [sys.executable, "-m", "faceplate.cli.main", "mask"]
    subprocess.run([*cli, "train", "--faces", str(b.faces), "--output", str(model), "--size",
                    "64", "--iterations", "40", "--save-every", "40", "--preview-every", "0",
                    "--threads", "1"], check=True, capture_output=True)
    subprocess.run([*cli, "apply", str(model), "--alignments", str(b.store), "--faces",
                    str(b.faces)], check=True, capture_output=True)
    return b
