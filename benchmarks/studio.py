"""The Studio's speed on a 20,000-face faceset and a 1080p H.264 clip, in headless Chromium.

Builds (once, cached beside the sample media) a faceset of 20,000 face PNGs at 256 px — real
faces extracted from the woman's clip by the real pipeline, written again under 20,000 frame
numbers — and a frames-only alignments store over the 1920×1080 H.264 benchmark clip (the
woman's clip upscaled, 120 frames, the one ``benchmarks/extract.py`` uses). Then serves them
with the real server and measures, in Debian's headless Chromium driven by Playwright:

* ``first_grid_paint_s``: from navigation to every thumbnail of the first screen drawn
  (cold: nothing cached by the server or the browser);
* ``thumbnails_per_s``: thumbnails served over HTTP by another process, cold (made from the
  PNGs) and warm (from the server's cache): in batches of 160 on 2 connections, as the page
  asks for them, and one per request on 8 connections;
* ``scroll_cold`` / ``scroll_restart``: frames per second while the grid scrolls 40 px a frame
  for 4 s, with the 95th-percentile frame time: thumbnails made while it scrolls, and after a
  restart (thumbnails kept in the faceset's journal);
* ``seek_s``: seconds from a click on the timeline to the frame drawn, for random seeks,
  before the frame cache has the clip (decoding from the key frame) and after.

Writes JSON (``--output``) and prints it. Never asserts on time.

Usage: python benchmarks/studio.py [--faces 20000] [--output bench_out/studio.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import machine_info, write_report

CHROMIUM = "/usr/bin/chromium"


def build_faceset(n: int) -> Path:
    """The cached n-face benchmark faceset (256 px PNGs with real records)."""
    from faceplate.extract.pipeline import ExtractConfig, Extractor
    from faceplate.io import samples
    from faceplate.io.faceset import FaceMeta, face_filename, write_face_png
    from faceplate.io.media import open_source

    root = samples.cache_dir().parent / "derived" / f"studio_faceset_{n}"
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    clip = samples.fetch()["WolfgangLanger_Pexels.mp4"]
    ex = Extractor(ExtractConfig(detector="blazeface", masks=("components",), size=256,
                                 thumbnails=False))
    seeds: list[tuple[Any, Any, Any]] = []
    with open_source(clip, every_n=4) as src:
        meta_src = {"store": str(root / "bench.fpstore"), "source": str(clip),
                    "frame_width": src.width, "frame_height": src.height, "is_video": True}
        for frame in src:
            res = ex.process(frame)
            seeds += [(r, c, m) for r, (c, m) in zip(res.records, res.crops)]
            if len(seeds) >= 100:
                break
    print(f"writing {n} faces from {len(seeds)} real ones into {root}", file=sys.stderr)
    for i in range(n):
        rec, crop, matrix = seeds[i % len(seeds)]
        rec = dataclasses.replace(rec, frame_index=i, frame_name=f"bench_{i:06d}",
                                  timestamp=None)
        write_face_png(root / face_filename(rec), crop,
                       FaceMeta(record=rec, matrix=matrix, size=256, centering="face",
                                source=meta_src))
    done.write_text("ok")
    return root


def build_clip_store(frames: int, folder: Path) -> Path:
    """A frames-only store over the cached 1080p H.264 benchmark clip."""
    from faceplate.core.types import FrameInfo
    from faceplate.io import samples
    from faceplate.io.media import open_source
    from faceplate.io.store import AlignmentsStore

    clip = samples.upscaled_clip("WolfgangLanger_Pexels.mp4", frames)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clip1080.fpstore"
    path.unlink(missing_ok=True)
    with open_source(clip) as src, AlignmentsStore.open(path, create=True) as st:
        for k, v in (("source", str(clip)), ("width", src.width), ("height", src.height),
                     ("fps", src.fps), ("kind", src.kind), ("total_frames", src.total_frames)):
            st.set_meta(k, v)
        st.put_frames([(FrameInfo(i, f"clip_{i:06d}", None, src.width, src.height, i), [])
                       for i in range(src.total_frames)])
    return path


_CLIENT = r"""
import http.client, sys, threading, time
port, token = sys.argv[1], sys.argv[2]
first, count, clients, batch = map(int, sys.argv[3:7])
ids = list(range(first, first + count))
bad = []
def worker(part):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
    for k in range(0, len(part), batch):
        chunk = part[k:k + batch]
        path = (f"/api/faceset/0/thumb/{chunk[0]}" if batch == 1 else
                "/api/faceset/0/thumbs?ids=" + ",".join(map(str, chunk)))
        conn.request("GET", path, headers={"X-Faceplate-Token": token})
        r = conn.getresponse(); body = r.read()
        sizes = [len(body)] if batch == 1 else [
            int(v) for v in r.getheader("X-Thumb-Sizes").split(",")]
        if r.status != 200 or len(sizes) != len(chunk) or 0 in sizes:
            bad.append(chunk[0])
    conn.close()
threads = [threading.Thread(target=worker, args=(ids[k::clients],)) for k in range(clients)]
t0 = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
print(count / (time.perf_counter() - t0), len(bad))
"""


def thumbs_per_second(port: int, token: str, first: int, count: int, clients: int = 8,
                      batch: int = 1) -> float:
    """Thumbnails fetched per second by ``clients`` keep-alive connections of another process
    (so the client does not share the server's interpreter); ``batch`` > 1 asks for that many
    per request, as the page does."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _CLIENT, str(port), token, str(first),
                          str(count), str(clients), str(batch)], capture_output=True,
                         text=True, check=True)
    rate, bad = out.stdout.split()
    if int(bad):
        raise RuntimeError(f"{bad} thumbnail requests failed")
    return float(rate)


FIRST_PAINT_JS = """async () => {
  await new Promise(r => {
    const w = () => document.body.dataset.ready ? r() : setTimeout(w, 5); w(); });
  const grid = document.querySelector('#grid');
  const visible = () => [...document.querySelectorAll('.cell img')].filter(im => {
    const b = im.getBoundingClientRect(); const g = grid.getBoundingClientRect();
    return b.bottom > g.top && b.top < g.bottom; });
  while (true) {
    const v = visible();
    if (v.length && v.every(im => im.complete && im.naturalWidth > 0)) break;
    await new Promise(r => requestAnimationFrame(r));
  }
  await new Promise(r => requestAnimationFrame(r));
  return { ms: performance.now(), cells: visible().length };
}"""

SCROLL_JS = """async (seconds) => {
  const grid = document.querySelector('#grid');
  const times = [];
  const t0 = performance.now();
  await new Promise(done => {
    const step = (t) => {
      times.push(t);
      grid.scrollTop += 40;
      if (t - t0 < seconds * 1000) requestAnimationFrame(step); else done();
    };
    requestAnimationFrame(step);
  });
  const d = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  return { frames: times.length - 1, seconds: (times[times.length - 1] - times[0]) / 1000,
           p95_ms: d[Math.floor(d.length * 0.95)], max_ms: d[d.length - 1],
           scrolled_px: grid.scrollTop };
}"""


def seek_times(page: Any, n_frames: int, seeks: int, rng: random.Random) -> list[float]:
    box = page.locator("#timeline").bounding_box()
    out = []
    for _ in range(seeks):
        k = rng.randrange(n_frames)
        before = page.evaluate("document.body.dataset.frameShown")
        if before == str(k):
            continue
        x = box["x"] + (k + 0.5) / n_frames * box["width"]
        t0 = time.perf_counter()
        page.mouse.click(x, box["y"] + box["height"] / 2)
        page.wait_for_selector(f"body[data-frame-shown='{k}']", timeout=30_000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        out.append(time.perf_counter() - t0)
    return out


def _stats(times: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(times), 3),
            "p95": round(sorted(times)[max(0, int(len(times) * 0.95) - 1)], 3),
            "max": round(max(times), 3), "n": len(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--seeks", type=int, default=20)
    ap.add_argument("--output", type=Path, default=Path("bench_out/studio.json"))
    args = ap.parse_args()

    import tempfile

    from playwright.sync_api import sync_playwright

    from faceplate.studio.server import StudioServer
    from faceplate.studio.workspace import Workspace

    faceset = build_faceset(args.faces)
    tmp = Path(tempfile.mkdtemp(prefix="faceplate-studio-bench-"))
    store = build_clip_store(args.frames, tmp)
    report: dict[str, Any] = {"machine": machine_info(), "faces": args.faces,
                              "face_size": 256, "clip": "1920x1080 H.264 CRF 18, "
                              f"{args.frames} frames (x264 default GOP)"}
    rng = random.Random(7)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        (faceset / ".faceplate-studio.db").unlink(missing_ok=True)  # cold: no thumbnails yet
        for run in ("cold", "restart"):
            t0 = time.perf_counter()
            ws = Workspace.open([faceset, store], prefetch_frames=False,
                                warm_thumbnails=False)
            open_s = time.perf_counter() - t0
            server = StudioServer(ws)
            server.start()
            try:
                ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
                page = ctx.new_page()
                report[f"open_workspace_s_{run}"] = round(open_s, 2)
                page.goto(server.url)
                first = page.evaluate(FIRST_PAINT_JS)
                report[f"first_grid_paint_s_{run}"] = round(first["ms"] / 1000, 3)
                report["first_screen_thumbnails"] = first["cells"]
                # cold: thumbnails made while the grid scrolls; restart: they come from the
                # faceset's journal (made in the cold pass)
                scroll = page.evaluate(SCROLL_JS, 4)
                report[f"scroll_{run}"] = {
                    "fps": round(scroll["frames"] / scroll["seconds"], 1),
                    "frame_p95_ms": round(scroll["p95_ms"], 1),
                    "frame_max_ms": round(scroll["max_ms"], 1), "px": scroll["scrolled_px"]}
                if run == "cold":
                    mid = args.faces // 2
                    tp: dict[str, float] = {}
                    for name, first, clients, batch in (
                            ("batched_cold", mid, 2, 160), ("batched_warm", mid, 2, 160),
                            ("single_cold", mid + 3000, 8, 1),
                            ("single_warm", mid + 3000, 8, 1)):
                        tp[name] = round(thumbs_per_second(server.port, server.token, first,
                                                           3000, clients, batch), 1)
                    report["thumbnails_per_s"] = tp
                    page.keyboard.press("2")
                    page.wait_for_selector("body[data-frame-shown]", timeout=60_000)
                    times = seek_times(page, args.frames, args.seeks, rng)
                    report["seek_s_decoding"] = _stats(times)
                ctx.close()
            finally:
                server.stop()
                ws.close()
        ws = Workspace.open([store])  # the frame cache on: it decodes the clip ahead
        server = StudioServer(ws)
        server.start()
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(server.url)
            page.wait_for_selector("body[data-frame-shown]", timeout=60_000)
            t0 = time.perf_counter()
            while ws.store(0).cached_frames() < args.frames and time.perf_counter() - t0 < 300:
                time.sleep(0.05)
            report["frame_cache_fill_s"] = round(time.perf_counter() - t0, 2)
            report["frame_cache_frames"] = ws.store(0).cached_frames()
            report["seek_s_cached"] = _stats(seek_times(page, args.frames, args.seeks, rng))
            page.close()
        finally:
            server.stop()
            ws.close()
        browser.close()
    report["machine_after"] = {"load_average": list(__import__("os").getloadavg())}
    report["targets"] = {"first_grid_paint_s": 1.0, "thumbnails_per_s": 500, "scroll_fps": 50,
                         "seek_s": 0.15}
    write_report(report, args.output)


if __name__ == "__main__":
    main()
