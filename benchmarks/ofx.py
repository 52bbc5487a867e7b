"""The OFX node's overhead: host → worker → host against calling the Python swap directly.

One 1920×1080 float RGBA frame (frame 0 of ``samples.upscaled_clip("single_face.mp4", 48)`` in
scene-linear float, alpha 1) is rendered by Faceplate Swap with an untrained ``df`` 128 px model
(the convert benchmark's, cached) three ways:

* ``direct``: :func:`faceplate.ofx.render.render` in this process (what the node runs);
* ``host``: the real bundle loaded by the C++ test host (``tests/ofx_host``): the shell converts
  the host image to a float frame, sends it to ``faceplate-worker`` over the UNIX socket + memfd,
  waits, and writes the result back. Timed by the host around the Render action, minus the time
  the test host spends in its own ``clipGetImage`` (it builds each image on request; a real host
  has them ready);
* ``bridge``: ``faceplate-bridge-probe`` — the worker round trip alone, with the worker's own
  Python time (``python_ms``) subtracted: the pure IPC cost.

The first frame of each (model loading) is dropped; figures are medians. Overhead =
``host − direct`` (noisy: both contain the whole swap) and ``bridge − python_ms`` (exact). The
target is ≤ 10 ms per frame.

With a real Natron (``FACEPLATE_NATRON``, as the tests take it) it also measures, in the same
run and on the same model, seconds per 1080p frame of a NatronRenderer graph Read → Faceplate
Swap → Write against ``faceplate convert`` on the same frames: ``--natron-frames`` frames of
the clip as a scene-linear float EXR sequence numbered from 1001 with its alignments store, both
writing float EXR. Each side's first frame (worker start, model load) is left out: Natron renders
one frame, then the range in a second ``app.render`` (timed); the CLI's per-frame time is its
frame loop after the first frame. The ratio Natron / CLI is in the JSON (target ≤ 1.25). Beside
it: Natron's own Read → Write of the same frames without the node (what Natron's EXR reading and
writing cost per frame), the node's graph again with Natron's "Number of parallel renders"
preference at 2 (``nParallelRenders``: a frame in the worker while Natron reads and writes
another), and two Swap nodes with two models (the worker's peak memory).

Writes JSON (``--output``) and prints it; never asserts on time.

Usage: python benchmarks/ofx.py [--frames 8] [--natron-frames 12] [--output bench_out/ofx.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import machine_info, write_report

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "ofx"  # make ofx's folder (the tests build there too)


def build() -> tuple[Path, Path, Path, Path]:
    """(test host, bundle, bridge probe, worker) built with CMake in Release."""
    py = ROOT / ".venv" / "bin" / "python"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release",
                    f"-DFACEPLATE_PYTHON={py}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", "FaceplateOFX",
                    "faceplate-ofx-testhost", "faceplate-bridge-probe", "faceplate-worker"],
                   check=True, capture_output=True)
    bundle = BUILD / "ofx_plugin" / "Faceplate.ofx.bundle"
    worker = next(bundle.rglob("faceplate-worker"))
    return (BUILD / "tests" / "ofx_host" / "faceplate-ofx-testhost", bundle,
            BUILD / "cpp_bridge" / "faceplate-bridge-probe", worker)


def frame_1080p() -> Any:
    """H×W×4 float32 scene-linear RGBA, top-down."""
    import numpy as np

    from faceplate.core.colorspace import srgb_to_linear
    from faceplate.io import samples
    from faceplate.io.media import open_source

    with open_source(samples.upscaled_clip("single_face.mp4", 48)) as src:
        rgb = src.read(0).rgb
    lin = srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))
    alpha = np.ones(lin.shape[:2] + (1,), np.float32)
    return np.ascontiguousarray(np.concatenate([lin, alpha], axis=2), dtype=np.float32)


def natron_vs_cli(model_dir: Path, n: int, work: Path) -> dict[str, Any]:
    """Seconds per 1080p frame: NatronRenderer (Read → Faceplate Swap → Write EXR) against
    ``faceplate convert`` (EXR float) on the same ``n`` frames, store and model."""
    import os

    import numpy as np
    import OpenImageIO as oiio

    from faceplate.convert.run import run_convert
    from faceplate.convert.swap import ConvertConfig
    from faceplate.convert.writers.images import ImagesConfig
    from faceplate.extract.pipeline import ExtractConfig, Extractor, run_extract
    from faceplate.io.media import open_source

    natron = os.environ.get("FACEPLATE_NATRON", "").strip()
    if not natron:
        return {"skipped": "FACEPLATE_NATRON is not set (../shared/natron/install.sh)"}
    plate = work / "plate"
    plate.mkdir(parents=True, exist_ok=True)
    first = 1001
    frames = [plate / f"plate.{first + k:04d}.exr" for k in range(n)]
    if not all(f.exists() for f in frames):
        with open_source(samples_clip()) as src:
            for k, path in enumerate(frames):
                lin = linear(src.read(k).rgb)
                out = oiio.ImageOutput.create(str(path))
                out.open(str(path), oiio.ImageSpec(lin.shape[1], lin.shape[0], 3, oiio.FLOAT))
                out.write_image(np.ascontiguousarray(lin))
                out.close()
    store = plate / "plate.fpstore"
    if not store.exists():
        run_extract(plate / "plate.####.exr", None, store,
                    extractor=Extractor(ExtractConfig(write_faces=False, thumbnails=False)))

    # faceplate convert: per frame after the first
    written: list[float] = []
    cli_out = work / "cli_out"
    t0 = time.perf_counter()
    stats = run_convert(model_dir, plate / "plate.####.exr", cli_out, store, ConvertConfig(),
                        images_cfg=ImagesConfig(format="exr-float"),
                        on_frame=lambda _i, _r: written.append(time.perf_counter()))
    cli_total = time.perf_counter() - t0
    cli_per_frame = (written[-1] - written[0]) / (len(written) - 1)

    # NatronRenderer: one frame (worker start, model load), then the range, timed
    spec = {"nodes": [{"id": "read", "reader": str(plate / "plate.####.exr")},
                      {"id": "swap", "plugin": "org.faceplate.Swap", "params": {
                          "model": str(model_dir), "alignments": str(store)}},
                      {"id": "out", "writer": str(work / "natron_out" / "swap.####.exr"),
                       "params": {"formatType": "input", "bitDepth": "32f",
                                  "outputComponents": "RGBA"}}],
            "links": [["swap", 0, "read"], ["out", 0, "swap"]],
            "steps": [{"render": "out", "first": first, "last": first},
                      {"render": "out", "first": first + 1, "last": first + n - 1}],
            "result": str(work / "natron_result.json")}
    (work / "natron_out").mkdir(exist_ok=True)
    home = work / "natron_home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHOME": "/usr", "HOME": str(home),
           "OFX_PLUGIN_PATH": str(BUILD / "ofx_plugin"), "LANG": "C.UTF-8"}

    def natron_run(tag: str, graph: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Runs ``graph`` in NatronRenderer through tests/natron/driver.py: (steps, log)."""
        graph = {**graph, "result": str(work / f"natron_{tag}.json")}
        (work / f"natron_{tag}_spec.json").write_text(json.dumps(graph))
        proc = subprocess.run([natron, str(ROOT / "tests" / "natron" / "driver.py")],
                              env={**env, "FACEPLATE_NATRON_SPEC":
                                   str(work / f"natron_{tag}_spec.json")},
                              capture_output=True, text=True, timeout=3600, cwd=work)
        return (json.loads((work / f"natron_{tag}.json").read_text())["steps"],
                (proc.stdout + proc.stderr)[-3000:])

    t0 = time.perf_counter()
    steps, log = natron_run("swap", spec)
    natron_total = time.perf_counter() - t0
    if not all(st["ok"] for st in steps):
        return {"error": [st["error"] for st in steps], "log": log}
    natron_per_frame = steps[1]["seconds"] / (n - 1)
    # Natron's own part: the same Read → Write without the node; and the node's graph with
    # Natron's "Number of parallel renders" preference at 2 (frames overlap: one in the
    # worker while Natron reads and writes another)
    rw = json.loads(json.dumps(spec))
    rw["nodes"] = [nd for nd in rw["nodes"] if nd["id"] != "swap"]
    rw["links"] = [["out", 0, "read"]]
    rw_steps, _ = natron_run("read_write", rw)
    par_steps, _ = natron_run("parallel2", {**spec, "settings": {"nParallelRenders": 2}})
    par_per_frame = par_steps[1]["seconds"] / (n - 1) if all(
        st["ok"] for st in par_steps) else None

    # Two actors: a second Swap node with a second model (a copy of the folder: loaded on its
    # own) after the first, the same frames; the worker's peak memory against one model's.
    second = work / "second_model"
    if not second.exists():
        import shutil

        shutil.copytree(model_dir, second)
    two = json.loads(json.dumps(spec))
    two["nodes"].insert(2, {"id": "swap2", "plugin": "org.faceplate.Swap", "params": {
        "model": str(second), "alignments": str(store), "output": "face_matte"}})
    two["links"] = [["swap", 0, "read"], ["swap2", 0, "swap"], ["out", 0, "swap2"]]
    two_steps, _ = natron_run("two", two)

    def peak(step: dict[str, Any]) -> float | None:
        mem = step.get("worker_memory_mib") or {}
        return max((m["VmHWM"] for m in mem.values()), default=None)

    return {
        "frames": n, "frame_size": [1920, 1080], "output": "EXR float, both",
        "natron": natron, "cli_frames": stats.frames,
        "cli_seconds_per_frame": cli_per_frame, "cli_total_seconds": cli_total,
        "natron_seconds_per_frame": natron_per_frame,
        "natron_first_frame_seconds": steps[0]["seconds"],
        "natron_total_seconds": natron_total,
        "ratio_natron_over_cli": natron_per_frame / cli_per_frame,
        "natron_read_write_only_seconds_per_frame": rw_steps[1]["seconds"] / (n - 1),
        "natron_parallel_renders_2_seconds_per_frame": par_per_frame,
        "ratio_natron_parallel_renders_2_over_cli":
            None if par_per_frame is None else par_per_frame / cli_per_frame,
        "target_ratio": 1.25,
        "worker_peak_rss_mib_one_model": peak(steps[1]),
        "two_models": {
            "ok": all(st["ok"] for st in two_steps),
            "natron_seconds_per_frame": two_steps[1]["seconds"] / (n - 1),
            "worker_peak_rss_mib": peak(two_steps[1]),
        },
    }


def samples_clip() -> Path:
    from faceplate.io import samples

    return samples.upscaled_clip("single_face.mp4", 48)


def linear(rgb: Any) -> Any:
    """H×W×3 uint8 sRGB → float32 scene-linear."""
    import numpy as np

    from faceplate.core.colorspace import srgb_to_linear

    return srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--output", type=Path, default=Path("bench_out/ofx.json"))
    ap.add_argument("--natron-frames", type=int, default=12,
                    help="frames for the NatronRenderer / faceplate convert comparison")
    ap.add_argument("--model", choices=("df128", "none"), default="df128",
                    help="none: Faceplate Swap without a model (the source passes through): the "
                         "shell and bridge cost on their own")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from convert import prepare  # the convert benchmark's cached df 128 model
    from faceplate.io import samples
    from faceplate.ofx.effects import SWAP_ID
    from faceplate.ofx.render import render

    work = samples.cache_dir().parent / "derived" / "bench_convert_48"
    work.mkdir(parents=True, exist_ok=True)
    _, _, model_dir = prepare(48, work)
    host, bundle, probe, worker = build()
    frame = frame_1080p()
    h, w = frame.shape[:2]
    params = {"model": str(model_dir)} if args.model == "df128" else {}
    n = args.frames

    # direct
    direct: list[float] = []
    faces = 0
    for _ in range(n + 1):
        t = time.perf_counter()
        res = render(SWAP_ID, frame, params)
        direct.append((time.perf_counter() - t) * 1000.0)
        faces = res.faces
    direct = direct[1:]

    tmp = BUILD / "bench_io"
    tmp.mkdir(parents=True, exist_ok=True)
    f32 = tmp / "frame.f32"
    f32.write_bytes(b"FPF32\0\0\0" + struct.pack("<3I", w, h, 4) + frame.astype("<f4").tobytes())
    raw = tmp / "frame.raw"
    raw.write_bytes(frame.astype("<f4").tobytes())

    # host → worker → host
    model_args = ["--param", f"model={model_dir}"] if params else []
    proc = subprocess.run([str(host), "render", str(bundle), "--plugin", SWAP_ID, "--input",
                           str(f32), "--depth", "float", "--components", "RGBA", *model_args,
                           "--frames", f"1-{n + 1}"],
                          capture_output=True, text=True, timeout=1200)
    js = json.loads(proc.stdout)
    frames = js["frames"][1:]
    # The plugin's Render action minus the time this test host spends building its own images
    # (a real host has them ready): what the shell + bridge + worker cost around the swap.
    host_ms = [f["render_ms"] - f["host_image_ms"] for f in frames]
    statuses = sorted({f["status"] for f in js["frames"]})

    # the bridge alone
    proc = subprocess.run([str(probe), "--worker", str(worker), "--effect", SWAP_ID,
                           "--width", str(w), "--height", str(h), "--in", str(raw),
                           "--params", json.dumps(params),
                           "--steps", ",".join(["render"] * (n + 1))],
                          capture_output=True, text=True, timeout=1200)
    steps = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    renders = [s for s in steps if s["step"] == "render"][1:]
    ipc = [s["ms"] - s["python_ms"] for s in renders]

    med = statistics.median
    report = {
        "benchmark": "ofx",
        "frame": {"width": w, "height": h, "format": "float32 RGBA scene-linear",
                  "faces": faces},
        "model": ({"architecture": "df", "size": 128, "weights": "random (untrained)"}
                  if params else None),
        "settings": "Faceplate Swap defaults (detect per frame, colour rct, blend overlay)",
        "machine": machine_info(),
        "results": {
            "frames_timed": n,
            "direct_ms": med(direct),
            "host_ms": med(host_ms),
            "host_statuses": statuses,
            "overhead_host_minus_direct_ms": med(host_ms) - med(direct),
            "bridge_ms": med([s["ms"] for s in renders]),
            "bridge_python_ms": med([s["python_ms"] for s in renders]),
            "bridge_faces": sorted({s["faces"] for s in renders}),
            "overhead_ipc_ms": med(ipc),
            "target_overhead_ms": 10.0,
            "direct_all_ms": direct, "host_all_ms": host_ms, "ipc_all_ms": ipc,
        },
    }
    if params:
        report["natron_vs_cli"] = natron_vs_cli(model_dir, args.natron_frames,
                                                work / f"natron_bench_{args.natron_frames}")
    write_report(report, args.output)


if __name__ == "__main__":
    main()
