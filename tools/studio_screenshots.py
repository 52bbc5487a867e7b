"""Screenshots of the Studio's views for the README (docs/studio/*.png), from ``make demo``'s
output, in Debian's headless Chromium. Works on a copy of demo_out's stores and faces (it draws
mask labels on one face), so demo_out is left as it was.

Usage: python tools/studio_screenshots.py [demo_out] [docs/studio]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from faceplate.studio.server import StudioServer
from faceplate.studio.workspace import Workspace


def save(page: object, path: Path) -> None:
    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw))  # type: ignore[attr-defined]
    img = Image.open(raw).convert("RGB")
    img = img.resize((1024, round(img.height * 1024 / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_out")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/studio")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faceplate-shots-"))
    for st in demo.glob("*.fpstore"):
        if ".bak" not in st.suffixes:
            shutil.copyfile(st, work / st.name)
    shutil.copytree(demo / "faces", work / "faces")
    ws = Workspace.open([work])
    server = StudioServer(ws)
    server.start()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            pg = b.new_page(viewport={"width": 1280, "height": 720})
            pg.goto(server.url)
            pg.wait_for_selector("body[data-ready='1']")
            woman = next(f["id"] for f in ws.documents()["facesets"] if f["name"] == "faces/woman")
            pg.select_option("#doc", str(woman))
            pg.wait_for_timeout(500)
            pg.select_option("#sort-key", "yaw")
            pg.check("#group")
            pg.wait_for_function("document.querySelector('#status').textContent.includes('grouped')")
            pg.keyboard.press("c")
            other = next(f["id"] for f in ws.documents()["facesets"] if f["name"] == "faces/man")
            pg.select_option("#cov-other", str(other))
            pg.wait_for_timeout(1500)
            save(pg, out / "faceset.png")
            pg.keyboard.press("2")
            store = next(s["id"] for s in ws.documents()["stores"] if s["name"] == "man.fpstore")
            pg.select_option("#doc", str(store))
            pg.wait_for_selector("body[data-frame-shown]")
            for _ in range(30):
                pg.keyboard.press("ArrowRight")
            pg.wait_for_selector("body[data-frame-shown='30']")
            pg.select_option("#lm-group", "mouth")
            pg.wait_for_timeout(800)
            save(pg, out / "frames.png")
            face = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{server.port}/api/store/{store}/frame/30",
                headers={"X-Faceplate-Token": server.token})).read())["faces"][0]
            c = face["crop"]
            k = c["size"] / 512
            labels = {"size": c["size"], "centering": c["centering"], "matrix": c["matrix"],
                      "shapes": [
                          {"kind": "polygon", "mode": "include", "points": [
                              [x * k, y * k] for x, y in ((70, 60), (440, 60), (470, 300),
                                                          (400, 470), (256, 512), (110, 470),
                                                          (40, 300))]},
                          {"kind": "polygon", "mode": "exclude", "points": [
                              [x * k, y * k] for x, y in ((300, 330), (500, 300), (512, 512),
                                                          (330, 512))]},
                          {"kind": "stroke", "mode": "exclude", "radius": 10 * k,
                           "points": [[x * k, y * k] for x, y in ((60, 70), (200, 40),
                                                                  (330, 45), (450, 70))]}]}
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{server.port}/api/store/{store}/frame/30/face/0/labels",
                data=json.dumps({"labels": labels, "etag": face["etag"]}).encode(),
                headers={"X-Faceplate-Token": server.token,
                         "Content-Type": "application/json"}, method="POST")).read()
            pg.keyboard.press("3")
            pg.wait_for_selector("body[data-mask-shown]")
            pg.wait_for_timeout(800)
            save(pg, out / "masks.png")
            b.close()
    finally:
        server.stop()
        ws.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
