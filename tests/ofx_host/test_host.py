"""Drive the C++ OFX test host (faceplate-ofx-testhost) and its fixture Invert plugin.

The host and its fixture bundles come from the suite's one CMake build (:func:`tests.native.build`,
``build/tests``). The host is no friendlier than Natron 2.5 (closed property sets, clip
preferences applied, a fresh thread per frame, Begin/EndSequenceRender around every frame,
instances created unconnected and probed at render scale 0.5, masks with their own RoD,
InstanceChanged while frames render); the tests marked "Natron-like" show each. Images are
exchanged as ``.f32`` files (20-byte header ``FPF32\\0\\0\\0`` + uint32 LE width, height,
channels, then top-down float32 rows) holding values in the depth's native units (byte 0..255,
short 0..65535, float as is). Expected results are computed with NumPy from the documented
maths: RGB inverted (alpha kept), ``a = mix * (maskInvert ? 1 - m : m)`` (``a = mix`` without a
mask), ``out = a * inverted + (1 - a) * src``, integer depths rounded with floor(v + 0.5).
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import native

PLUGIN_ID = "org.faceplate.test.Invert"
FULL_SCALE_ID = "org.faceplate.test.InvertFullScale"  # no render-scale support
MAX = {"byte": 255.0, "short": 65535.0, "float": 1.0}
W, H = 37, 23  # odd sizes catch H/W swaps


@pytest.fixture(scope="session")
def built() -> tuple[Path, Path]:
    """(host executable, FaceplateTestInvert.ofx.bundle) from the suite's one native build."""
    n = native.build()
    return n.host, n.invert


def write_f32(path: Path, img: np.ndarray) -> Path:
    """Write an H×W×C array (any numeric dtype) as .f32."""
    arr = np.ascontiguousarray(img, dtype="<f4")
    h, w, c = arr.shape
    path.write_bytes(b"FPF32\0\0\0" + struct.pack("<3I", w, h, c) + arr.tobytes())
    return path


def read_f32(path: Path) -> np.ndarray:
    """Read a .f32 file as an H×W×C float32 array (top-down)."""
    data = path.read_bytes()
    assert data[:8] == b"FPF32\0\0\0"
    w, h, c = struct.unpack("<3I", data[8:20])
    return np.frombuffer(data[20:], dtype="<f4").reshape(h, w, c).copy()


def run_host(host: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([str(host), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip(), f"no JSON from the host (rc={proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def make_source(depth: str, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if depth == "float":
        return rng.uniform(-0.2, 1.3, (H, W, channels)).astype(np.float32)
    return rng.integers(0, int(MAX[depth]) + 1, (H, W, channels)).astype(np.float32)


def expected(src: np.ndarray, depth: str, mix: float = 1.0, mask: np.ndarray | None = None,
             mask_invert: bool = False) -> np.ndarray:
    """The plugin's maths in float32 (see the module docstring)."""
    top = np.float32(MAX[depth])
    s = src.astype(np.float32)
    inv = s.copy()
    n = s.shape[2]
    ch = slice(0, 1) if n == 1 else slice(0, 3)
    inv[..., ch] = top - s[..., ch]
    a = np.full(s.shape[:2] + (1,), np.float32(mix), dtype=np.float32)
    if mask is not None:
        m = mask.astype(np.float32) if depth == "float" else mask.astype(np.float32) / top
        a = a * (np.float32(1) - m if mask_invert else m)
    v = a * inv + (np.float32(1) - a) * s
    if depth == "float":
        return v
    return np.clip(np.floor(v + np.float32(0.5)), 0, top)


def render(built: tuple[Path, Path], tmp_path: Path, src: np.ndarray, *extra: str,
           depth: str = "float", comps: str = "RGBA", rowbytes: str = "positive",
           context: str = "filter", name: str = "out",
           plugin: str = PLUGIN_ID) -> tuple[int, dict[str, Any], Path]:
    host, bundle = built
    inp = write_f32(tmp_path / f"{name}_in.f32", src)
    out = tmp_path / f"{name}.f32"
    rc, js = run_host(host, "render", bundle, "--plugin", plugin, "--context", context,
                      "--input", inp, "--output", out, "--depth", depth, "--components", comps,
                      "--rowbytes", rowbytes, *extra)
    return rc, js, out


def assert_close(got: np.ndarray, want: np.ndarray, depth: str) -> None:
    assert got.shape == want.shape
    if depth == "float":
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    else:
        assert np.abs(got - want).max() <= 1.0


# ---------------------------------------------------------------------------------------- tests
def test_host_selftest(built: tuple[Path, Path]) -> None:
    rc, js = run_host(built[0], "selftest")
    failed = [c for c in js["checks"] if not c["ok"]]
    assert rc == 0 and js["failed"] == 0, failed
    assert len(js["checks"]) > 40


def test_describe_both_contexts(built: tuple[Path, Path]) -> None:
    rc, js = run_host(built[0], "describe", built[1])
    assert rc == 0, js
    plugins = {p["identifier"]: p for p in js["plugins"]}
    assert set(plugins) == {PLUGIN_ID, FULL_SCALE_ID}
    plugin = plugins[PLUGIN_ID]
    assert plugin["version"] == [1, 0]
    assert plugin["errors"] == [] and plugin["load_status"] == 0 and plugin["unload_status"] == 0
    assert set(plugin["contexts"]) == {
        "OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"}
    safety = plugin["props"]["OfxImageEffectPluginRenderThreadSafety"]
    assert safety == "OfxImageEffectRenderFullySafe"
    assert plugin["props"]["OfxImageEffectPluginPropHostFrameThreading"] == 0
    assert "OfxMessageSuite v2" in js["suites_fetched"]
    for ctx in ("filter", "general"):
        d = plugin["in_context"][ctx]
        clips = {c["name"]: c for c in d["clips"]}
        assert set(clips) == {"Source", "Mask", "Output"}
        assert clips["Mask"]["optional"] == 1 and clips["Mask"]["is_mask"] == 1
        assert clips["Mask"]["components"] == ["OfxImageComponentAlpha"]
        assert clips["Source"]["is_mask"] == 0
        params = {p["name"]: p for p in d["params"]}
        assert params["mix"]["type"] == "OfxParamTypeDouble" and params["mix"]["default"] == 1
        assert params["mix"]["label"] == "Mix" and params["mix"]["page"] == "Controls"
        assert params["mix"]["props"]["OfxParamPropMax"] == 1
        assert params["maskInvert"]["type"] == "OfxParamTypeBoolean"
        assert params["maskInvert"]["label"] == "Invert Mask"
        assert params["maskInvert"]["default"] == 0
        assert params["maskInvert"]["hint"]
        assert params["testChoice"]["options"] == ["first", "second", "third"]
        assert d["page_order"] == ["Controls"]  # definition order: the property is unknown
        assert "OfxPluginPropParamPageOrder" not in plugin["props"]


@pytest.mark.parametrize("rowbytes", ["positive", "negative"])
@pytest.mark.parametrize("comps", ["RGBA", "RGB"])
@pytest.mark.parametrize("depth", ["byte", "short", "float"])
def test_invert_matches_numpy(built: tuple[Path, Path], tmp_path: Path, depth: str, comps: str,
                              rowbytes: str) -> None:
    seed = ["byte", "short", "float"].index(depth) * 2 + (comps == "RGB")
    src = make_source(depth, 4 if comps == "RGBA" else 3, seed=seed)
    rc, js, out = render(built, tmp_path, src, depth=depth, comps=comps, rowbytes=rowbytes)
    assert rc == 0, js
    (frame,) = js["frames"]
    assert frame["status"] == "ok" and frame["render_called"]
    assert js["leaked_images"] == 0 and js["destroy_status"] == 0
    got = read_f32(out)
    np.testing.assert_array_equal(got, expected(src, depth))  # exact: max - s, alpha kept
    assert not np.array_equal(got, src)


def test_general_context_renders(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 4, seed=3)
    rc, js, out = render(built, tmp_path, src, context="general")
    assert rc == 0 and js["context"] == "OfxImageEffectContextGeneral"
    np.testing.assert_array_equal(read_f32(out), expected(src, "float"))


def test_mix_zero_is_identity_without_render(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("byte", 4, seed=4)
    rc, js, out = render(built, tmp_path, src, "--param", "mix=0", depth="byte")
    assert rc == 0
    (frame,) = js["frames"]
    assert frame["status"] == "identity" and frame["identity_clip"] == "Source"
    assert not frame["render_called"]
    assert "OfxImageEffectActionRender" not in js["action_counts"]
    np.testing.assert_array_equal(read_f32(out), src)


@pytest.mark.parametrize("depth", ["byte", "float"])
def test_mix_half(built: tuple[Path, Path], tmp_path: Path, depth: str) -> None:
    src = make_source(depth, 4, seed=5)
    rc, js, out = render(built, tmp_path, src, "--param", "mix=0.5", depth=depth)
    assert rc == 0
    assert_close(read_f32(out), expected(src, depth, mix=0.5), depth)


@pytest.mark.parametrize("mask_invert", [False, True])
@pytest.mark.parametrize("depth", ["byte", "short", "float"])
def test_mask_respected(built: tuple[Path, Path], tmp_path: Path, depth: str,
                        mask_invert: bool) -> None:
    src = make_source(depth, 4, seed=6)
    mask = np.zeros((H, W, 1), np.float32)
    mask[:, : W // 2] = MAX[depth]  # left half fully on
    mask[H // 2 :, W // 2 :] = np.round(MAX[depth] * 0.25)  # a partial quarter
    mpath = write_f32(tmp_path / "mask.f32", mask)
    rc, js, out = render(built, tmp_path, src, "--mask", str(mpath), "--param", "mix=0.8",
                         "--param", f"maskInvert={int(mask_invert)}", depth=depth,
                         rowbytes="negative")
    assert rc == 0, js
    got = read_f32(out)
    assert_close(got, expected(src, depth, 0.8, mask, mask_invert), depth)
    untouched = mask[..., 0] == (0 if not mask_invert else MAX[depth])
    np.testing.assert_array_equal(got[untouched], src[untouched])


def test_render_scale_half(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("short", 3, seed=7)
    rc, js, out = render(built, tmp_path, src, "--render-scale", "0.5", depth="short", comps="RGB")
    assert rc == 0 and js["rod_status"] in (0, 14)
    got = read_f32(out)
    h2, w2 = int(np.ceil(H * 0.5)), int(np.ceil(W * 0.5))
    assert got.shape == (h2, w2, 3)
    ys = np.minimum(np.floor((np.arange(h2) + 0.5) / 0.5).astype(int), H - 1)
    xs = np.minimum(np.floor((np.arange(w2) + 0.5) / 0.5).astype(int), W - 1)
    np.testing.assert_array_equal(got, expected(src[ys][:, xs], "short"))


def test_bounds_differ_from_rod(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 4, seed=8)
    x1, y1, x2, y2 = 5, 3, 30, 20  # OFX pixel coords, y up
    rc, js, out = render(built, tmp_path, src, "--window", f"{x1},{y1},{x2},{y2}",
                         rowbytes="negative")
    assert rc == 0
    got = read_f32(out)
    want = np.zeros_like(src)
    rows = slice(H - y2, H - y1)  # top-down rows of the window
    want[rows, x1:x2] = expected(src, "float")[rows, x1:x2]
    np.testing.assert_array_equal(got, want)


def test_threads_give_same_result(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 4, seed=9)
    rc1, one, out1 = render(built, tmp_path, src, "--threads", "1", "--mt-cpus", "1", name="one")
    rc4, many, _ = render(built, tmp_path, src, "--threads", "4", "--mt-cpus", "3",
                          "--frames", "1-12", name="seq_####")
    assert rc1 == 0 and rc4 == 0
    assert len(many["frames"]) == 12 and many["threads"] == 4
    assert {f["hash"] for f in many["frames"]} == {one["frames"][0]["hash"]}
    assert many["action_counts"]["OfxImageEffectActionRender"] == 12
    for k in (1, 7, 12):
        np.testing.assert_array_equal(read_f32(tmp_path / f"seq_{k:04d}.f32"), read_f32(out1))


def test_abort_honoured(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("byte", 4, seed=10)
    rc, js, out = render(built, tmp_path, src, "--abort-after", "2", "--mt-cpus", "1", depth="byte")
    (frame,) = js["frames"]
    assert rc == 4 and frame["status"] == "aborted"
    assert frame["abort_calls"] == 3  # polled once per row, stopped at the first true
    got = read_f32(out)
    want = np.zeros_like(src)
    want[H - 2 :] = expected(src, "byte")[H - 2 :]  # OFX rows 0 and 1 = the bottom two rows
    np.testing.assert_array_equal(got, want)


def test_fail_render_reports_and_host_survives(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 4, seed=11)
    rc, js, _ = render(built, tmp_path, src, "--param", "failRender=true", "--frames", "1-2")
    assert rc == 3
    assert [f["status"] for f in js["frames"]] == ["failed", "failed"]
    assert all(f["rc"] == 1 for f in js["frames"])
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageError" and "failRender" in pm["text"]
    assert js["destroy_status"] == 0 and js["unload_status"] == 0


def test_varargs_round_trip_every_type(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 4, seed=12)
    values = {
        "testInt": "-5", "testDouble": "1.25", "testBool": "1", "testChoice": "second",
        "testRGB": "0.1,0.2,0.3", "testRGBA": "0.5,0.25,0,1", "testDouble2D": "-1.5,2",
        "testInteger2D": "3,-4", "testDouble3D": "1,2,3", "testInteger3D": "7,8,9",
        "testString": "héllo wörld",
    }
    args = [a for k, v in values.items() for a in ("--param", f"{k}={v}")]
    rc, js, _ = render(built, tmp_path, src, *args, "--instance-changed", "selfTest")
    assert rc == 0, js
    assert js["instance_changed"] == [{"name": "selfTest", "status": 0}]
    assert any(m["text"] == "selfTest ok" for m in js["messages"]), js["messages"]
    p = js["params"]
    assert p["testInt"] == -4 and p["testDouble"] == 2.5 and p["testBool"] == 0
    assert p["testChoice"] == 2
    np.testing.assert_allclose(p["testRGB"], [0.35, 0.45, 0.55])
    np.testing.assert_allclose(p["testRGBA"], [0.75, 0.5, 0.25, 1.25])
    assert p["testDouble2D"] == [-0.5, 3] and p["testInteger2D"] == [4, -3]
    assert p["testDouble3D"] == [2, 3, 4] and p["testInteger3D"] == [8, 9, 10]
    assert p["testString"] == "héllo wörld!"


@pytest.mark.parametrize("cancel_after", [-1, 2])
def test_progress_and_cancel(built: tuple[Path, Path], tmp_path: Path, cancel_after: int) -> None:
    src = make_source("float", 4, seed=13)
    rc, js, _ = render(built, tmp_path, src, "--frames", "1-5", "--instance-changed", "analyze",
                       "--cancel-progress-after", str(cancel_after))
    assert rc == 0
    calls = [c["call"] for c in js["progress"]]
    assert calls[0] == "start" and calls[-1] == "end"
    assert js["progress"][0]["id"] == "analyze"
    updates = [c["value"] for c in js["progress"] if c["call"] == "update"]
    texts = [m["text"] for m in js["messages"]]
    if cancel_after < 0:
        assert updates == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
        assert "analyze done 5 frames" in texts
    else:
        assert len(updates) == 3 and "analyze cancelled after 3 frames" in texts


def test_bad_input_is_a_clean_error(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = make_source("float", 3, seed=14)
    rc, js, _ = render(built, tmp_path, src, comps="RGBA")  # 3 channels, RGBA asked
    assert rc == 1 and js["status"] == "error" and "channels" in js["error"]
    rc, js = run_host(built[0], "describe", tmp_path / "Missing.ofx.bundle")
    assert rc == 2 and js["status"] == "error"


def image_to_native(path: Path, depth: str) -> np.ndarray:
    """Read a PNG/EXR with OpenImageIO as H×W×C float32 in the depth's native units."""
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(str(path))
    fmt = {"byte": oiio.UINT8, "short": oiio.UINT16, "float": oiio.FLOAT}[depth]
    px = buf.get_pixels(fmt)
    assert px is not None, buf.geterror()
    return np.asarray(px).astype(np.float32)


@pytest.mark.parametrize(("ext", "depth"), [(".png", "short"), (".png", "byte"), (".exr", "float")])
def test_png_exr_through_the_host(built: tuple[Path, Path], tmp_path: Path, ext: str,
                                  depth: str) -> None:
    import OpenImageIO as oiio

    rng = np.random.default_rng(15)
    rgba = rng.uniform(0, 1, (H, W, 4)).astype(np.float32)
    src_file = tmp_path / f"src{ext}"
    spec = oiio.ImageSpec(W, H, 4, {".png": oiio.UINT16, ".exr": oiio.HALF}[ext])
    out = oiio.ImageOutput.create(str(src_file))
    assert out is not None and out.open(str(src_file), spec)
    out.write_image(rgba)
    out.close()
    src = image_to_native(src_file, depth)
    rc, js, res = render(built, tmp_path, src, depth=depth, rowbytes="negative")
    assert rc == 0
    got = read_f32(res)
    np.testing.assert_array_equal(got, expected(src, depth))
    exr = tmp_path / "result.exr"  # and back out as a float EXR
    assert oiio.ImageBuf(got / np.float32(MAX[depth])).write(str(exr))
    np.testing.assert_allclose(image_to_native(exr, "float"), got / MAX[depth], atol=1e-6)


# ----------------------------------------------------- Natron-like: no friendlier than Natron 2.5
def logs(js: dict[str, Any]) -> list[str]:
    """The fixture's kOfxMessageLog lines, in order."""
    return [m["text"] for m in js["messages"] if m["type"] == "OfxMessageLog"]


def test_unknown_property_fails_describe(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Natron-like: closed property sets. A plugin that sets a property OFX 1.4 does not have
    (org.faceplate.test.BadProp, checking its writes as Faceplate.ofx does) fails Describe,
    naming it; the old open sets accepted any name."""
    bad = built[1].parent / "FaceplateTestBadProp.ofx.bundle"
    proc = subprocess.run([str(built[0]), "describe", str(bad)], capture_output=True, text=True,
                          timeout=60)
    js = json.loads(proc.stdout)
    (plugin,) = js["plugins"]
    assert proc.returncode == 2 and plugin["identifier"] == "org.faceplate.test.BadProp"
    assert plugin["describe_status"] == 1 and plugin["errors"] == ["Describe failed"]
    assert "refused the property OfxImageEffectPropFaceplateNotInOfx14" in proc.stderr
    src = write_f32(tmp_path / "in.f32", make_source("float", 4))
    rc, js = run_host(built[0], "render", bad, "--plugin", "org.faceplate.test.BadProp",
                      "--input", src)
    assert rc == 2 and "describe failed" in js["error"]


def test_every_property_set_is_closed(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Natron-like: the instance, its parameter set, a clip, a param, an image and the host each
    refuse an unknown name (ErrUnknown), a wrong type (ErrValue) and a bad index (ErrBadIndex),
    as seen from the plugin (the old host created unknown names on set)."""
    rc, js, _ = render(built, tmp_path, make_source("float", 4), "--instance-changed",
                       "closedTest")
    assert rc == 0, js
    assert js["instance_changed"] == [{"name": "closedTest", "status": 0}]
    assert "closedTest ok" in [m["text"] for m in js["messages"]], js["messages"]


@pytest.mark.parametrize("depth", ["byte", "float"])
def test_clip_preferences_are_applied(built: tuple[Path, Path], tmp_path: Path,
                                      depth: str) -> None:
    """Natron-like: what GetClipPreferences sets is what the images have. With an RGB Source the
    Output is RGB by default; asked for RGBA (outputRGBA) it is RGBA, unpremultiplied, with the
    plugin's matte as alpha (the old host kept the Output RGB and dropped it)."""
    src = make_source(depth, 3, seed=20)
    rc, js, out = render(built, tmp_path, src, comps="RGB", depth=depth, name="rgb")
    assert rc == 0, js
    np.testing.assert_array_equal(read_f32(out), expected(src, depth))
    default_output = js.get("clips", {}).get("Output", {}).get("components")
    rc, js, out = render(built, tmp_path, src, "--param", "outputRGBA=1", "--param", "mix=0.5",
                         comps="RGB", depth=depth, name="rgba")
    assert rc == 0, js
    got = read_f32(out)
    assert got.shape == (H, W, 4)
    assert js["clip_preferences"]["OfxImageClipPropComponents_Output"] == "OfxImageComponentRGBA"
    assert js["clips"]["Output"] == {
        "connected": 1, "components": "OfxImageComponentRGBA",
        "depth": f"OfxBitDepth{depth.title()}", "premultiplication": "OfxImageAlphaUnPremultiplied"}
    assert js["clips"]["Source"]["components"] == "OfxImageComponentRGB"
    assert js["frames"][0]["channels"] == 4
    assert_close(got[..., :3], expected(src, depth, mix=0.5), depth)
    assert_close(got[..., 3], np.full((H, W), 0.5 * MAX[depth], np.float32), depth)
    assert default_output == "OfxImageComponentRGB"


def test_each_frame_on_a_fresh_thread_in_its_own_sequence(built: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    """Natron-like: every frame renders on a thread that exits afterwards, and
    Begin/EndSequenceRender come around it alone ([t, t]) on that thread. The fixture logs what it
    sees: its first render on the thread, inside a one-frame sequence (the old host called one
    sequence [first, last] on the main thread and reused its render threads)."""
    rc, js, _ = render(built, tmp_path, make_source("float", 4), "--frames", "1-6",
                       "--threads", "2", "--param", "traceRender=1")
    assert rc == 0, js
    traces = sorted(t for t in logs(js) if t.startswith("render "))
    assert traces == [f"render t={t} renders_on_thread=1 in_sequence=1 sequence={t},{t}"
                      for t in range(1, 7)]
    frames = js["frames"]
    threads = {f["thread"] for f in frames}
    assert len(threads) == 6 and js["main_thread"] not in threads
    for f in frames:
        assert f["status"] == "ok" and f["sequence"] == [f["time"], f["time"]]
        assert f["begin_sequence_status"] in (0, 14) and f["end_sequence_status"] in (0, 14)
    assert js["action_counts"]["OfxImageEffectActionBeginSequenceRender"] == 6
    assert js["action_counts"]["OfxImageEffectActionEndSequenceRender"] == 6


def test_instance_created_unconnected_and_probed_at_half_scale(built: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """Natron-like: CreateInstance sees its inputs unconnected; GetRegionOfDefinition follows at
    scale 1 and 0.5 (Natron's render-scale probe), before the inputs connect (each connection
    reported by InstanceChanged) and before GetClipPreferences."""
    rc, js, _ = render(built, tmp_path, make_source("float", 4), "--render-scale", "0.5")
    assert rc == 0, js
    assert logs(js)[:3] == ["createInstance: Source connected=0",
                            "getRegionOfDefinition: scale=1 Source connected=0",
                            "getRegionOfDefinition: scale=0.5 Source connected=0"]
    assert js["probe"]["scale_one_status"] == 14 and js["probe"]["half_status"] == 14
    assert js["render_scale_support"] == "yes" and js["render_scale_used"] == 0.5
    acts = js["actions"]
    i = acts.index("OfxActionCreateInstance")
    assert acts[i + 1: i + 6] == [
        "OfxImageEffectActionGetRegionOfDefinition", "OfxImageEffectActionGetRegionOfDefinition",
        "OfxActionBeginInstanceChanged", "OfxActionInstanceChanged",
        "OfxActionEndInstanceChanged"]  # Source connected
    assert acts.index("OfxImageEffectActionGetClipPreferences") > i + 5
    assert js["connected"] == ["Source"]


def test_no_render_scale_support_renders_at_full_scale(built: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """Natron-like: a plugin that fails the probe at 0.5 is rendered at scale 1 and the result
    downscaled (the old host rendered it at 0.5, so every frame failed)."""
    src = make_source("short", 4, seed=21)
    rc, js, out = render(built, tmp_path, src, "--render-scale", "0.5", "--frames", "1-2",
                         depth="short", plugin=FULL_SCALE_ID)
    assert rc == 0, js
    assert js["probe"]["half_status"] == 1 and js["render_scale_support"] == "no"
    assert js["render_scale_used"] == 1 and [f["status"] for f in js["frames"]] == ["ok", "ok"]
    h2, w2 = int(np.ceil(H * 0.5)), int(np.ceil(W * 0.5))
    ys = np.minimum(np.floor((np.arange(h2) + 0.5) / 0.5).astype(int), H - 1)
    xs = np.minimum(np.floor((np.arange(w2) + 0.5) / 0.5).astype(int), W - 1)
    np.testing.assert_array_equal(read_f32(out), expected(src, "short")[ys][:, xs])


@pytest.mark.parametrize("depth", ["byte", "float"])
def test_mask_with_its_own_rod(built: tuple[Path, Path], tmp_path: Path, depth: str) -> None:
    """Natron-like: the Mask input's RoD is away from the origin (a Roto's): its image has those
    bounds, the effect is limited to it (the old host only took a mask the size of the input)."""
    src = make_source(depth, 4, seed=22)
    x1, y1, x2, y2 = 9, 4, 30, 15  # OFX pixels, y up
    m = np.zeros((y2 - y1, x2 - x1, 1), np.float32)
    m[:, : (x2 - x1) // 2] = MAX[depth]
    m[:, (x2 - x1) // 2 :] = np.round(MAX[depth] * 0.25)
    full = np.zeros((H, W, 1), np.float32)
    full[H - y2: H - y1, x1:x2] = m  # the same mask placed in the frame (top-down rows)
    mpath = write_f32(tmp_path / "mask.f32", m)
    rc, js, out = render(built, tmp_path, src, "--mask", str(mpath), "--mask-rod",
                         f"{x1},{y1},{x2},{y2}", "--param", "mix=0.8", depth=depth,
                         rowbytes="negative")
    assert rc == 0, js
    assert js["connected"] == ["Source", "Mask"]
    got = read_f32(out)
    assert_close(got, expected(src, depth, 0.8, full), depth)
    outside = full[..., 0] == 0
    assert outside.sum() > W * H // 2
    np.testing.assert_array_equal(got[outside], src[outside])
    rc, js = run_host(built[0], "render", built[1], "--plugin", PLUGIN_ID, "--input",
                      tmp_path / "out_in.f32", "--mask", mpath)
    assert rc == 1 and "size of the input" in js["error"]  # without --mask-rod


def test_instance_changed_while_frames_render(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Natron-like: InstanceChanged (Analyze: clipGetImage per frame, progress) arrives from the
    main thread while render threads run; both finish."""
    rc, js, _ = render(built, tmp_path, make_source("float", 4), "--frames", "1-4",
                       "--threads", "2", "--param", "renderSleepMs=150",
                       "--instance-changed-during-render", "analyze")
    assert rc == 0, js
    (ic,) = js["instance_changed_during_render"]
    assert ic["name"] == "analyze" and ic["status"] == 0
    assert ic["frames_in_flight"] >= 1  # fired while a frame was rendering
    assert ic["end_ms"] < max(f["end_ms"] for f in js["frames"])
    assert "analyze done 4 frames" in [m["text"] for m in js["messages"]]
    assert [f["status"] for f in js["frames"]] == ["ok"] * 4
    assert js["leaked_images"] == 0


def test_abort_at_stops_one_frame(built: tuple[Path, Path], tmp_path: Path) -> None:
    """--abort-at F:MS aborts frame F's render once it has run MS ms; the others finish."""
    rc, js, _ = render(built, tmp_path, make_source("float", 4), "--frames", "1-2",
                       "--threads", "2", "--param", "renderSleepMs=800", "--abort-at", "2:50")
    assert rc == 4, js
    f1, f2 = js["frames"]
    assert f1["status"] == "ok" and f2["status"] == "aborted"
    assert f2["end_ms"] < f1["end_ms"] and f2["ms"] < 600
