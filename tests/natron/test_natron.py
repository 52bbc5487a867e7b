"""Faceplate Swap and Faceplate Mask in a real NatronRenderer 2.5 (see conftest.py).

Each case is what a compositor does with the nodes: list them, render a film plate numbered from
1001 with a store written by ``faceplate extract``, pull a matte off a JPEG and limit it with a
Roto, put two actors' models in one graph, render twice in one script, analyse and clear from
a script, and feed the node what goes wrong (no model, a wrong model, a frame without a face,
a worker killed mid-range).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

from faceplate.io import samples
from faceplate.io.store import AlignmentsStore
from faceplate.ofx.effects import MASK_ID, SWAP_ID
from faceplate.ofx.schema import schema
from tests.convert_model import tiny_model
from tests.natron.conftest import NatronSession

pytestmark = pytest.mark.natron

PLATE_FIRST, PLATE_FRAMES = 1001, 4
#: Natron's render of a frame against `faceplate convert`'s of the same frame, both float EXR:
#: the same swap_frame on the same float pixels; what differs is the order of float operations
#: in the host's channel handling (RGB plate into an RGBA effect and back).
EXR_TOLERANCE = 1e-6  # measured: 0 (bit-identical) on the development machine


def read(path: Path) -> np.ndarray:
    """An image file as H×W×C float32 (top-down), exactly as stored."""
    buf = oiio.ImageBuf(str(path))
    assert not buf.has_error, buf.geterror()
    return np.asarray(buf.get_pixels(oiio.FLOAT), np.float32)


def write_exr(path: Path, rgb: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    spec = oiio.ImageSpec(rgb.shape[1], rgb.shape[0], rgb.shape[2], oiio.FLOAT)
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(rgb, np.float32))
    out.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """single_face.mp4's frames 10-13 as a scene-linear float EXR sequence numbered from 1001,
    with the store `faceplate extract` writes for it (plate.fpstore beside the frames)."""
    from faceplate.cli.main import main
    from faceplate.core.colorspace import srgb_to_linear
    from faceplate.io.media import open_source

    folder = tmp_path_factory.mktemp("plate")
    with open_source(samples.path("single_face.mp4")) as src:
        for k in range(PLATE_FRAMES):
            rgb = src.read(10 + 6 * k).rgb.astype(np.float32) / np.float32(255.0)
            write_exr(folder / f"plate.{PLATE_FIRST + k:04d}.exr", srgb_to_linear(rgb))
    assert main(["extract", str(folder / "plate.####.exr"), "-o", str(folder / "faces"),
                 "--alignments", str(folder / "plate.fpstore")]) == 0
    with AlignmentsStore.open(folder / "plate.fpstore", readonly=True) as st:
        assert st.frame_numbers() == list(range(PLATE_FIRST, PLATE_FIRST + PLATE_FRAMES))
        assert st.face_count() == PLATE_FRAMES
    return folder


def exr_writer(path: Path) -> dict[str, Any]:
    return {"id": "out", "writer": str(path), "params": {
        "formatType": "input", "bitDepth": "32f", "outputComponents": "RGBA"}}


# --------------------------------------------------------------------------------- describe
NATRON_TYPES = {"double": "DoubleParam", "int": "IntParam", "bool": "BooleanParam",
                "choice": "ChoiceParam", "string": "StringParam", "path": "FileParam",
                "pushbutton": "ButtonParam"}


def test_both_nodes_are_listed_with_their_pages_and_parameters(session: NatronSession) -> None:
    run = session.run({"nodes": [{"id": "swap", "plugin": SWAP_ID},
                                 {"id": "mask", "plugin": MASK_ID}],
                       "steps": [{"describe": "swap"}, {"describe": "mask"}]}, "describe")
    assert all(s["ok"] for s in run.result["steps"]), run.result["steps"]
    for entry in schema()["plugins"]:
        node = run.result["nodes"]["swap" if entry["identifier"] == SWAP_ID else "mask"]
        assert node["plugin"] == entry["identifier"]
        pages = list(dict.fromkeys(p["page"] for p in entry["params"]))
        assert [p for p in node["pages"] if p in pages] == pages  # every page, in order
        for p in entry["params"]:
            got = node["params"].get(p["name"])
            assert got is not None, f"{entry['identifier']}: Natron has no {p['name']}"
            assert got["type"] == NATRON_TYPES[p["type"]], (p["name"], got)
            assert got["label"] == p["label"], (p["name"], got)
            assert got["visible"] == (not p.get("secret", False)), (p["name"], got)
            if p["type"] == "choice":
                assert got["choices"] == p["choices"], (p["name"], got)
                assert got["default"] == p["choices"].index(p["default"]), (p["name"], got)
            elif p["type"] in ("double", "int", "bool"):
                assert got["default"] == pytest.approx(p["default"]), (p["name"], got)
            elif p["type"] in ("string", "path"):
                assert got["default"] == p["default"], (p["name"], got)


# ----------------------------------------------------------------- a plate numbered from 1001
def test_exr_plate_from_1001_renders_what_convert_writes(session: NatronSession, plate: Path,
                                                         model: Path, tmp_path: Path) -> None:
    """Each frame Natron renders equals `faceplate convert`'s frame of the same number (the
    store is read at the frame's own number: not a frame off, not falling back to detection)."""
    from faceplate.cli.main import main

    cli = tmp_path / "cli"
    assert main(["convert", "--model", str(model), "--input", str(plate / "plate.####.exr"),
                 "--alignments", str(plate / "plate.fpstore"), "--output", str(cli),
                 "--format", "exr-float"]) == 0
    cli_frames = sorted(cli.glob("*.exr"))
    assert len(cli_frames) == PLATE_FRAMES
    out = tmp_path / "natron"
    out.mkdir()
    first, last = PLATE_FIRST, PLATE_FIRST + PLATE_FRAMES - 1
    run = session.run({
        "nodes": [{"id": "read", "reader": str(plate / "plate.####.exr")},
                  {"id": "swap", "plugin": SWAP_ID, "params": {
                      "model": str(model), "alignments": str(plate / "plate.fpstore")}},
                  exr_writer(out / "swap.####.exr")],
        "links": [["swap", 0, "read"], ["out", 0, "swap"]],
        "steps": [{"render": "out", "first": first, "last": last}]}, "plate1001")
    assert run.step(0)["ok"], run.step(0)["error"]
    assert not [m for m in run.messages if m], run.messages  # read from the store: no notes
    natron = [out / f"swap.{n:04d}.exr" for n in range(first, last + 1)]
    plates = [read(plate / f"plate.{n:04d}.exr") for n in range(first, last + 1)]
    cli_rgb = [read(p)[..., :3] for p in cli_frames]
    for k, path in enumerate(natron):
        got = read(path)[..., :3]
        assert np.abs(got - plates[k]).max() > 0.05  # the face was swapped
        err = float(np.abs(got - cli_rgb[k]).max())
        assert err <= EXR_TOLERANCE, f"frame {first + k}: max |Natron − convert| = {err:g}"
        if k + 1 < len(natron):  # the neighbour's faces would give another frame
            assert np.abs(got - cli_rgb[k + 1]).max() > 100 * EXR_TOLERANCE


# -------------------------------------------------------------------- mask on an RGB source
def write_offset_matte(path: Path, width: int, height: int, box: tuple[int, int, int, int]) -> None:
    """An RGBA EXR of display window ``width`` × ``height`` whose data window is only ``box``
    (x1, y1, x2, y2, top-down pixels; alpha 1 there): in Natron its region of definition is
    that box, away from the origin, as a Roto shape's is."""
    x1, y1, x2, y2 = box
    spec = oiio.ImageSpec(x2 - x1, y2 - y1, 4, oiio.FLOAT)
    spec.x, spec.y = x1, y1
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, width, height
    spec.channelnames = ("R", "G", "B", "A")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ones((y2 - y1, x2 - x1, 4), np.float32))
    out.close()


def test_mask_on_jpeg_writes_its_matte_and_an_offset_matte_limits_it(
        session: NatronSession, tmp_path: Path) -> None:
    """Faceplate Mask on an RGB source writes its matte into an RGBA output; a matte whose
    region of definition is away from the origin (as a Roto's is; this NatronRenderer has
    openfx-io's readers but not openfx-misc's Roto) plugged into its Mask input limits it."""
    jpeg = tmp_path / "obama.jpg"
    shutil.copy(samples.path("obama.jpg"), jpeg)
    h, w = read(jpeg).shape[:2]
    box = (40, 60, w // 2, h - 60)  # the left half, inset
    write_offset_matte(tmp_path / "matte.exr", w, h, box)
    run = session.run({
        "nodes": [{"id": "read", "reader": str(jpeg)},
                  {"id": "mask", "plugin": MASK_ID, "params": {"output": "alpha"}},
                  exr_writer(tmp_path / "alpha.exr"),
                  {"id": "matte", "reader": str(tmp_path / "matte.exr")},
                  {"id": "mask2", "plugin": MASK_ID, "params": {"output": "alpha"}},
                  {**exr_writer(tmp_path / "limited.exr"), "id": "out2"}],
        "links": [["mask", 0, "read"], ["out", 0, "mask"], ["mask2", 0, "read"],
                  ["mask2", 1, "matte"], ["out2", 0, "mask2"]],
        "steps": [{"render": "out", "first": 1, "last": 1},
                  {"render": "out2", "first": 1, "last": 1}]}, "mask_jpeg")
    assert run.step(0)["ok"] and run.step(1)["ok"], run.result["steps"]
    alpha = read(tmp_path / "alpha.exr")
    assert alpha.shape == (h, w, 4)  # the Output is RGBA although the JPEG is RGB
    a = alpha[..., 3]
    face = a > 0.5
    assert 0.03 < face.mean() < 0.5, face.mean()  # a face-sized matte, not 1 everywhere
    assert (a < 0.01).mean() > 0.4
    limited = read(tmp_path / "limited.exr")[..., 3]
    x1, y1, x2, y2 = box
    inside = (slice(y1 + 2, y2 - 2), slice(x1 + 2, x2 - 2))
    # inside the matte's box the face matte; outside it the Source's own alpha (opaque)
    np.testing.assert_allclose(limited[inside], a[inside], atol=1e-6)
    outside = np.ones((h, w), bool)
    outside[y1 - 2:y2 + 2, x1 - 2:x2 + 2] = False
    assert limited[outside].min() > 0.99
    assert (face & outside).any()  # the face reaches outside the box: the matte really cut it


def test_mask_node_cuts_her_hand_out_with_the_occlusion_source(
        session: NatronSession, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Faceplate Mask with the ``occlusion`` source and a Mask model (issue 15) on frame 100 of
    the woman's clip (her hand over her face): a matte of the face less her hand."""
    import cv2

    from faceplate.io.media import open_source
    from tests.occlusion_model import trained_mask_model

    mask_model = trained_mask_model(tmp_path_factory)
    png = tmp_path / "hand.png"
    with open_source(samples.path("WolfgangLanger_Pexels.mp4")) as src:
        cv2.imwrite(str(png), cv2.cvtColor(src.read(100).rgb, cv2.COLOR_RGB2BGR))
    run = session.run({
        "nodes": [{"id": "read", "reader": str(png)},
                  {"id": "hull", "plugin": MASK_ID,
                   "params": {"mask": "extended", "output": "alpha"}},
                  exr_writer(tmp_path / "hull.exr"),
                  {"id": "occ", "plugin": MASK_ID,
                   "params": {"mask": "occlusion", "mask_model": str(mask_model),
                              "output": "alpha"}},
                  {**exr_writer(tmp_path / "occ.exr"), "id": "out2"}],
        "links": [["hull", 0, "read"], ["out", 0, "hull"], ["occ", 0, "read"],
                  ["out2", 0, "occ"]],
        "steps": [{"render": "out", "first": 1, "last": 1},
                  {"render": "out2", "first": 1, "last": 1}]}, "mask_occlusion")
    assert run.step(0)["ok"] and run.step(1)["ok"], run.result["steps"]
    hull = read(tmp_path / "hull.exr")[..., 3] > 0.5
    occ = read(tmp_path / "occ.exr")[..., 3] > 0.5
    assert hull.mean() > 0.02
    kept = (occ & hull).sum() / hull.sum()
    assert 0.5 < kept < 0.97, kept      # most of the face, less her hand


# ---------------------------------------------------------------- two actors in one graph
def test_two_swap_nodes_with_two_models_keep_both_loaded(session: NatronSession, plate: Path,
                                                         model: Path, tmp_path: Path) -> None:
    second = tmp_path / "actor_b"
    shutil.copytree(model, second)  # another model folder: loaded separately
    log = tmp_path / "worker.log"
    out = tmp_path / "out"
    out.mkdir()
    first, last = PLATE_FIRST, PLATE_FIRST + PLATE_FRAMES - 1
    run = session.run({
        "nodes": [{"id": "read", "reader": str(plate / "plate.####.exr")},
                  {"id": "a", "plugin": SWAP_ID, "params": {
                      "model": str(model), "alignments": str(plate / "plate.fpstore")}},
                  {"id": "b", "plugin": SWAP_ID, "params": {
                      "model": str(second), "alignments": str(plate / "plate.fpstore"),
                      "output": "face_matte"}},
                  exr_writer(out / "two.####.exr")],
        "links": [["a", 0, "read"], ["b", 0, "a"], ["out", 0, "b"]],
        "steps": [{"render": "out", "first": first, "last": last}]}, "two_models",
        env={"FACEPLATE_OFX_WORKER_LOG": str(log)})
    assert run.step(0)["ok"], run.step(0)["error"]
    assert len(list(out.glob("two.*.exr"))) == PLATE_FRAMES
    loads = [line for line in log.read_text().splitlines() if "loaded model" in line]
    assert len(loads) == 2, loads  # each model once for the whole range, not once a frame
    assert not [line for line in log.read_text().splitlines() if "unloaded model" in line]


# ----------------------------------------------------------------- the worker's lifetime
def test_worker_survives_renders_and_their_threads(session: NatronSession, plate: Path,
                                                   model: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    out = tmp_path / "out"
    out.mkdir()
    run = session.run({
        "nodes": [{"id": "read", "reader": str(plate / "plate.####.exr")},
                  {"id": "swap", "plugin": SWAP_ID, "params": {
                      "model": str(model), "alignments": str(plate / "plate.fpstore")}},
                  exr_writer(out / "r.####.exr")],
        "links": [["swap", 0, "read"], ["out", 0, "swap"]],
        "steps": [{"render": "out", "first": PLATE_FIRST, "last": PLATE_FIRST + 1},
                  {"sleep": 2.0},  # the render threads end
                  {"render": "out", "first": PLATE_FIRST + 2, "last": PLATE_FIRST + 3}]},
        "lifetime", env={"FACEPLATE_OFX_WORKER_LOG": str(log)}, end_render=True)
    assert all(s["ok"] for s in run.result["steps"]), run.result["steps"]
    (pid,) = run.step(0)["pids_after"]
    assert run.step(2)["pids_before"] == [pid] and run.step(2)["pids_after"] == [pid]
    text = log.read_text()
    # one worker and one model load for both renders and NatronRenderer's own final render
    assert text.count("faceplate-worker: pid") == 1, text
    assert text.count("loaded model") == 1, text
    assert len(list(out.glob("r.*.exr"))) == PLATE_FRAMES


# ------------------------------------------------------------- analyse, render, clear
def test_analyze_then_clear_from_a_script_is_never_served_stale(session: NatronSession,
                                                                plate: Path, model: Path,
                                                                tmp_path: Path) -> None:
    store = tmp_path / "shot.fpstore"
    out = tmp_path / "out"
    out.mkdir()
    f = PLATE_FIRST + 1

    def render(tag: str) -> list[dict[str, Any]]:
        return [{"set": "out", "param": "filename", "value": str(out / f"{tag}.####.exr")},
                {"render": "out", "first": f, "last": f}]

    run = session.run({
        "nodes": [{"id": "read", "reader": str(plate / "plate.####.exr")},
                  {"id": "swap", "plugin": SWAP_ID, "params": {
                      "model": str(model), "alignments": str(store)}},
                  exr_writer(out / "a.####.exr")],
        "links": [["swap", 0, "read"], ["out", 0, "swap"]],
        "steps": [*render("detected"),
                  {"trigger": "swap", "param": "analyzeSequence"},
                  *render("analysed"),
                  {"trigger": "swap", "param": "clearSequence"},
                  *render("cleared")]}, "analyze")
    assert all(s["ok"] for s in run.result["steps"]), run.result["steps"]
    assert any("analysed 4 of 4 frames" in m for m in run.messages), run.messages
    assert any("moved aside" in m for m in run.messages), run.messages
    assert not store.exists() and list(tmp_path.glob("shot.*.bak.fpstore"))
    detected, analysed, cleared = (read(out / f"{t}.{f:04d}.exr")
                                   for t in ("detected", "analysed", "cleared"))
    # the smoothed tracks give another face than per-frame detection: a fresh render, not
    # Natron's cached frame; after Clear, per-frame detection again
    assert np.abs(analysed - detected).max() > 1e-3
    np.testing.assert_array_equal(cleared, detected)


# ------------------------------------------------------------------ what goes wrong
def test_pass_through_with_a_message_and_recovery_after_a_killed_worker(
        session: NatronSession, plate: Path, model: Path, tmp_path: Path) -> None:
    """No model, a wrong model, a frame without a face: the plate passes through with a
    message. A worker killed mid-range: the frame in flight goes to a new worker, the range
    completes, the message says so. A worker that keeps dying: that frame fails with a message,
    the render stops, and once a parameter changed the next render redoes it."""
    no_face = tmp_path / "no_face.exr"
    write_exr(no_face, np.full((120, 160, 3), 0.18, np.float32))
    out = tmp_path / "out"
    out.mkdir()
    first, last = PLATE_FIRST, PLATE_FIRST + PLATE_FRAMES - 1
    plate_seq = str(plate / "plate.####.exr")

    def setup(tag: str, reader: str, **params: Any) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = [
            {"set": "out", "param": "filename", "value": str(out / f"{tag}.####.exr")}]
        steps += [{"set": "swap", "param": k, "value": v} for k, v in params.items()]
        steps.append({"set": "read", "param": "filename", "value": reader})
        return steps

    steps = [
        *setup("nomodel", plate_seq, model=""),
        {"render": "out", "first": first, "last": first},                    # 3
        *setup("wrong", plate_seq, model=str(tmp_path / "no_such_model")),
        {"render": "out", "first": first, "last": first},                    # 7
        *setup("noface", str(no_face), model=str(model), alignments=""),
        {"render": "out", "first": 1, "last": 1},                            # 12
        *setup("killed", plate_seq, alignments=str(plate / "plate.fpstore")),
        # killed once the range's first frame is written (mid-frame or between frames)
        {"kill_worker_after": 0.0, "when": str(out / f"killed.{first:04d}.exr")},
        {"render": "out", "first": first, "last": last},                     # 17
        *setup("failed", plate_seq, color_strength=0.9),
        # the running worker and every new one for 8 s, from before the render starts
        {"kill_worker_after": 0.0, "for": 8.0},
        {"render": "out", "first": first, "last": last},                     # 21
        {"sleep": 8.0},
        {"set": "swap", "param": "color_strength", "value": 0.95},          # a change
        {"render": "out", "first": first, "last": last},                     # 24
    ]
    run = session.run({
        "nodes": [{"id": "read", "reader": plate_seq},
                  {"id": "swap", "plugin": SWAP_ID, "params": {"model": str(model)}},
                  exr_writer(out / "x.####.exr")],
        "links": [["swap", 0, "read"], ["out", 0, "swap"]], "steps": steps}, "failures")
    assert run.result.get("done"), run.result
    renders = [s for s in run.result["steps"] if "render" in s["step"]]
    nomodel, wrong, noface, killed, failed, redone = renders
    for r in (nomodel, wrong, noface, killed, redone):
        assert r["ok"], r
    msgs = " | ".join(run.messages)
    assert "no model loaded" in msgs and "model:" in msgs and "no face found" in msgs, msgs
    src = read(plate / f"plate.{first:04d}.exr")
    for tag in ("nomodel", "wrong"):  # the plate passes through unchanged
        np.testing.assert_array_equal(read(out / f"{tag}.{first:04d}.exr")[..., :3], src)
    np.testing.assert_array_equal(read(out / "noface.0001.exr")[..., :3], read(no_face))
    # killed once mid-range: sent again to a new worker, every frame swapped, and said so
    assert run.result["killed"][0], run.result["killed"]
    # (killed mid-frame: the frame was sent again; between frames: a new worker was started)
    assert "signal 9" in msgs, msgs
    assert "sent again to a new worker" in msgs or "a new worker was started" in msgs, msgs
    for n in range(first, last + 1):
        got = read(out / f"killed.{n:04d}.exr")[..., :3]
        assert np.abs(got - read(plate / f"plate.{n:04d}.exr")).max() > 0.05, n
    # a worker that keeps dying: the frame fails (Natron stops the render), saying why
    assert len(run.result["killed"][1]) >= 2, run.result["killed"]
    assert "Rendering Failed" in run.stdout and failed["ok"]  # app.render itself returns
    failed_msgs = [m for m in run.messages if "until a parameter changes" in m]
    assert failed_msgs and all("signal 9" in m for m in failed_msgs), msgs
    # after a parameter change the next render redoes every frame, the failed one included
    for n in range(first, last + 1):
        got = read(out / f"failed.{n:04d}.exr")[..., :3]
        assert np.abs(got - read(plate / f"plate.{n:04d}.exr")).max() > 0.05, n


# ------------------------------------------------------------------ the README's walk
def test_the_readme_walk_renders_a_swapped_plate(natron: Path, plate: Path, model: Path,
                                                 tmp_path: Path) -> None:
    """What the README tells a user after `make setup`: install the bundle where Natron looks
    (here OFX_DEST, a folder on OFX_PLUGIN_PATH, instead of /usr/OFX/Plugins), then render
    with the example script."""
    import subprocess

    from tests import native

    dest = tmp_path / "OFX"
    make = subprocess.run(["make", "install-ofx", f"OFX_DEST={dest}"], cwd=native.ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    assert (dest / "Faceplate.ofx.bundle" / "Contents" / "Linux-x86-64" / "Faceplate.ofx").is_file()
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHOME": "/usr",
           "HOME": str(tmp_path / "home"), "OFX_PLUGIN_PATH": str(dest),
           "FACEPLATE_PLATE": str(plate / "plate.####.exr"), "FACEPLATE_MODEL": str(model),
           "FACEPLATE_ALIGNMENTS": str(plate / "plate.fpstore"),
           "FACEPLATE_OUT": str(out / "swapped.####.exr")}
    script = native.ROOT / "ofx_plugin" / "examples" / "natron_swap.py"
    first, last = PLATE_FIRST, PLATE_FIRST + 1
    proc = subprocess.run([str(natron), "-w", "Write1", f"{first}-{last}", str(script)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    for n in range(first, last + 1):
        got = out / f"swapped.{n:04d}.exr"
        assert got.is_file(), log[-4000:]
        swapped = read(got)
        assert swapped.shape[:2] == (360, 640)
        assert np.abs(swapped[..., :3] - read(plate / f"plate.{n:04d}.exr")).max() > 0.05
