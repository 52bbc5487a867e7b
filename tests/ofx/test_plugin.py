"""Faceplate.ofx.bundle (ofx_plugin/) driven through the C++ OFX test host.

The bundle (plugin, worker, schema, Info.plist) and ``faceplate-ofx-testhost`` come from the
suite's one CMake build (:func:`tests.native.build`). The host behaves as Natron 2.5 does where
the node could tell (closed property sets, clip preferences applied, a fresh thread per frame,
the render-scale probe, masks with their own RoD, InstanceChanged during renders: see
tests/ofx_host/README.md). Images are ``.f32`` files
(see tests/ofx_host/README.md) in the depth's native units. Renders are compared with calling
:func:`faceplate.ofx.render.render_mask` directly on the same normalised float32 RGBA frame:
float within 1e-5, byte within 1 code value. Mix / Mask follow openfx-misc:
``a = mix * (maskInvert ? 1 - m : m)``, ``out = a * effect + (1 - a) * source``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceplate.io import samples
from faceplate.ofx.render import render_mask
from faceplate.ofx.schema import schema
from tests import native
from tests.ofx_host.test_host import image_to_native, read_f32, run_host, write_f32

MASK_ID, SWAP_ID = "org.faceplate.Mask", "org.faceplate.Swap"
FLOAT_TOL = 1e-5  # same code, same input bits: the worker and the direct call agree exactly here
BYTE_TOL = 1.0  # one 8-bit code value (rounding of the mixed float result)

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")


@pytest.fixture(scope="session")
def built() -> tuple[Path, Path]:
    """(test host executable, Faceplate.ofx.bundle) from the suite's one native build."""
    n = native.build()
    return n.host, n.bundle


@pytest.fixture(scope="session")
def obama() -> np.ndarray:
    """obama.jpg as H×W×3 float32 in [0, 1] (top-down)."""
    return image_to_native(samples.path("obama.jpg"), "float")


def rgba(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,), np.float32)], axis=2)


def render(built: tuple[Path, Path], tmp_path: Path, src: np.ndarray, *extra: str,
           plugin: str = MASK_ID, depth: str = "float", comps: str = "RGBA",
           rowbytes: str = "positive", env: dict[str, str] | None = None,
           name: str = "out") -> tuple[int, dict[str, Any], Path]:
    host, bundle = built
    inp = write_f32(tmp_path / f"{name}_in.f32", src)
    out = tmp_path / f"{name}.f32"
    args = ["render", str(bundle), "--plugin", plugin, "--input", str(inp), "--output", str(out),
            "--depth", depth, "--components", comps, "--rowbytes", rowbytes, *extra]
    if env is None:
        rc, js = run_host(host, *args)
    else:
        import json

        proc = subprocess.run([str(host), *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        rc, js = proc.returncode, json.loads(proc.stdout)
    return rc, js, out


# ------------------------------------------------------------------------------------- describe
def test_bundle_layout_and_exports(built: tuple[Path, Path]) -> None:
    bundle = built[1] / "Contents"
    for rel in ("Info.plist", "Linux-x86-64/Faceplate.ofx", "Linux-x86-64/faceplate-worker",
                "Linux-x86-64/faceplate-worker.paths", "Linux-x86-64/libfaceplate_inproc.so",
                "Resources/faceplate_schema.json"):
        assert (bundle / rel).is_file(), rel
    for icon in (f"{MASK_ID}.png", f"{SWAP_ID}.png", "Faceplate.png"):  # Natron's icon names
        import cv2

        img = cv2.imread(str(bundle / "Resources" / icon), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (128, 128, 4), icon
        assert img[..., 3].min() == 0 and img[..., 3].max() == 255, icon
    assert "<string>Faceplate.ofx</string>" in (bundle / "Info.plist").read_text()
    if shutil.which("nm") is None:
        pytest.skip("nm not installed")
    nm = subprocess.run(["nm", "-D", "--defined-only", str(bundle / "Linux-x86-64/Faceplate.ofx")],
                        capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    assert names == {"OfxGetNumberOfPlugins", "OfxGetPlugin", "OfxSetHost"}


def test_describe_both_plugins(built: tuple[Path, Path]) -> None:
    rc, js = run_host(built[0], "describe", built[1])
    assert rc == 0, js
    plugins = {p["identifier"]: p for p in js["plugins"]}
    assert set(plugins) == {MASK_ID, SWAP_ID}
    want = {p["identifier"]: p for p in schema()["plugins"]}
    for ident, p in plugins.items():
        assert p["errors"] == [] and p["load_status"] == 0 and p["unload_status"] == 0
        assert p["version"] == want[ident]["version"]
        props = p["props"]
        assert props["OfxPropLabel"] == want[ident]["label"]
        assert props["OfxImageEffectPluginPropGrouping"] == "Faceplate"
        assert props["OfxImageEffectPluginRenderThreadSafety"] == "OfxImageEffectRenderFullySafe"
        assert props["OfxImageEffectPluginPropHostFrameThreading"] == 0
        assert props["OfxImageEffectPropSupportsTiles"] == 0
        assert set(props["OfxImageEffectPropSupportedPixelDepths"]) == {
            "OfxBitDepthByte", "OfxBitDepthShort", "OfxBitDepthFloat"}
        assert set(p["contexts"]) == {"OfxImageEffectContextFilter",
                                      "OfxImageEffectContextGeneral"}
        for ctx in ("filter", "general"):
            d = p["in_context"][ctx]
            clips = {c["name"]: c for c in d["clips"]}
            assert set(clips) == {"Source", "Mask", "Output"}
            assert clips["Mask"]["optional"] == 1 and clips["Mask"]["is_mask"] == 1
            assert clips["Mask"]["components"] == ["OfxImageComponentAlpha"]
            assert clips["Source"]["components"] == ["OfxImageComponentRGBA",
                                                     "OfxImageComponentRGB"]
            assert clips["Source"]["optional"] == 0 and clips["Source"]["is_mask"] == 0
            params = {q["name"]: q for q in d["params"]}
            assert params["mix"]["type"] == "OfxParamTypeDouble" and params["mix"]["default"] == 1
            assert params["maskInvert"]["type"] == "OfxParamTypeBoolean"
            assert d["page_order"][-1] == "Controls"


_OFX_TYPES = {"double": "OfxParamTypeDouble", "int": "OfxParamTypeInteger",
              "bool": "OfxParamTypeBoolean", "choice": "OfxParamTypeChoice",
              "string": "OfxParamTypeString", "path": "OfxParamTypeString",
              "pushbutton": "OfxParamTypePushButton"}


def test_params_equal_python_schema(built: tuple[Path, Path]) -> None:
    rc, js = run_host(built[0], "describe", built[1])
    assert rc == 0
    plugins = {p["identifier"]: p for p in js["plugins"]}
    for want in schema()["plugins"]:
        for ctx in ("filter", "general"):
            d = plugins[want["identifier"]]["in_context"][ctx]
            got = [q for q in d["params"] if q["type"] != "OfxParamTypePage"]
            assert [q["name"] for q in got] == [q["name"] for q in want["params"]]
            pages = list(dict.fromkeys(q["page"] for q in want["params"]))
            assert d["page_order"] == pages
            for g, w in zip(got, want["params"], strict=True):
                where = f"{want['identifier']}.{w['name']}"
                assert g["type"] == _OFX_TYPES[w["type"]], where
                assert g["label"] == w["label"] and g["hint"] == w["hint"], where
                assert g["page"] == w["page"], where
                if w["type"] == "choice":
                    assert g["options"] == w["choices"], where
                    assert g["default"] == w["choices"].index(w["default"]), where
                elif w["type"] == "bool":
                    assert g["default"] == int(w["default"]), where
                elif w["type"] == "pushbutton":
                    assert w["owner"] == "shell", where
                elif w["type"] in ("string", "path"):
                    assert g["default"] == w["default"], where
                    mode = g["props"]["OfxParamPropStringMode"]
                    assert mode == ("OfxParamStringIsFilePath" if w["type"] == "path"
                                    else "OfxParamStringIsSingleLine"), where
                else:
                    assert g["default"] == pytest.approx(w["default"]), where
                    for key, prop in (("min", "OfxParamPropMin"), ("max", "OfxParamPropMax")):
                        if w[key] is not None:
                            assert g["props"][prop] == pytest.approx(w[key]), where


# --------------------------------------------------------------------------------------- render
@pytest.mark.parametrize("rowbytes", ["positive", "negative"])
def test_mask_float_rgba_matches_python(built: tuple[Path, Path], tmp_path: Path,
                                        obama: np.ndarray, rowbytes: str) -> None:
    src = rgba(obama)
    rc, js, out = render(built, tmp_path, src, rowbytes=rowbytes)
    assert rc == 0, js
    (frame,) = js["frames"]
    assert frame["status"] == "ok" and frame["render_called"]
    assert js["leaked_images"] == 0 and js["destroy_status"] == 0
    got = read_f32(out)
    want = render_mask(src, {})
    assert want[..., 3].mean() > 0.01  # a face was found: the comparison is not all zeros
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_TOL)
    np.testing.assert_array_equal(got[..., :3], src[..., :3])  # output=alpha keeps RGB
    assert js["persistent_message"] is None


def test_mask_byte_rgb_matte_matches_python(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = image_to_native(samples.path("obama.jpg"), "byte")  # 0..255, 3 channels
    rc, js, out = render(built, tmp_path, src, "--param", "output=matte", depth="byte",
                         comps="RGB", rowbytes="negative")
    assert rc == 0, js
    got = read_f32(out)
    assert got.shape[2] == 4  # the matte needs an RGBA Output, whatever the Source
    want = render_mask(rgba(src / np.float32(255.0)), {"output": "matte"})
    want_u8 = np.clip(np.floor(want * 255.0 + 0.5), 0, 255)
    assert want_u8.max() == 255
    assert np.abs(got - want_u8).max() <= BYTE_TOL


def test_mix_zero_is_identity(built: tuple[Path, Path], tmp_path: Path,
                              obama: np.ndarray) -> None:
    src = rgba(obama[::4, ::4])
    rc, js, out = render(built, tmp_path, src, "--param", "mix=0")
    assert rc == 0
    (frame,) = js["frames"]
    assert frame["status"] == "identity" and frame["identity_clip"] == "Source"
    assert not frame["render_called"]
    np.testing.assert_array_equal(read_f32(out), src)


@pytest.mark.parametrize("mask_invert", [0, 1])
def test_mask_clip_and_mix_respected(built: tuple[Path, Path], tmp_path: Path,
                                     obama: np.ndarray, mask_invert: int) -> None:
    src = rgba(obama)
    h, w = src.shape[:2]
    m = np.zeros((h, w, 1), np.float32)
    m[:, : w // 2] = 1.0  # left half on
    m[h // 2 :, w // 2 :] = 0.25  # bottom-right quarter partly on
    mpath = write_f32(tmp_path / "mask.f32", m)
    rc, js, out = render(built, tmp_path, src, "--mask", str(mpath), "--param", "mix=0.8",
                         "--param", f"maskInvert={mask_invert}", rowbytes="negative")
    assert rc == 0, js
    eff = render_mask(src, {})
    a = np.float32(0.8) * (1 - m if mask_invert else m)
    want = a * eff + (1 - a) * src
    got = read_f32(out)
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_TOL)
    untouched = m[..., 0] == (1.0 if mask_invert else 0.0)
    np.testing.assert_array_equal(got[untouched], src[untouched])
    assert not np.array_equal(got[..., 3], src[..., 3])


def test_frame_without_face_passes_through(built: tuple[Path, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = rgba(rng.uniform(0.2, 0.3, (157, 201, 3)).astype(np.float32))
    rc, js, out = render(built, tmp_path, src)
    assert rc == 0
    assert js["frames"][0]["status"] == "ok"
    got = read_f32(out)
    np.testing.assert_array_equal(got[..., :3], src[..., :3])
    assert got[..., 3].max() == 0.0  # an empty mask
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageWarning" and "no face found" in pm["text"]


def test_bad_param_fails_frame_with_message(built: tuple[Path, Path], tmp_path: Path,
                                            obama: np.ndarray) -> None:
    src = rgba(obama[::4, ::4])
    rc, js, _ = render(built, tmp_path, src, "--param", "erode=100", "--frames", "1-2")
    assert rc == 3
    assert [f["status"] for f in js["frames"]] == ["failed", "failed"]
    assert all(f["rc"] == 1 for f in js["frames"])
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageError" and "erode" in pm["text"], pm
    assert js["leaked_images"] == 0
    assert js["destroy_status"] == 0 and js["unload_status"] == 0


def test_worker_timeout_fails_frame_and_host_survives(built: tuple[Path, Path],
                                                      tmp_path: Path, obama: np.ndarray) -> None:
    src = rgba(obama)
    rc, js, _ = render(built, tmp_path, src, "--frames", "1-2",
                       env={"FACEPLATE_OFX_TIMEOUT_MS": "20"})
    assert rc == 3
    assert [f["status"] for f in js["frames"]] == ["failed", "failed"]
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageError" and pm["text"].startswith("Faceplate Mask: "), pm
    assert "no reply within 20 ms" in pm["text"]
    assert js["leaked_images"] == 0
    assert js["destroy_status"] == 0 and js["unload_status"] == 0


def test_swap_passes_through_with_status(built: tuple[Path, Path], tmp_path: Path,
                                         obama: np.ndarray) -> None:
    src = np.round(rgba(obama[::3, ::3]) * np.float32(65535.0))  # short, native units
    rc, js, out = render(built, tmp_path, src, plugin=SWAP_ID, depth="short")
    assert rc == 0, js
    np.testing.assert_array_equal(read_f32(out), src)  # short -> float -> short is exact
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageWarning" and "no model loaded" in pm["text"]


# --------------------------------------------------------------- Faceplate Swap with a model
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.convert_model import tiny_model

    return tiny_model(tmp_path_factory)


SWAP_CASES = [("float", "RGBA", "positive", 1e-4), ("byte", "RGB", "negative", 1.0),
              ("short", "RGBA", "negative", 2.0)]


@pytest.mark.parametrize(("depth", "comps", "rowbytes", "tol"), SWAP_CASES)
def test_swap_matches_python(built: tuple[Path, Path], tmp_path: Path, obama: np.ndarray,
                             model_dir: Path, depth: str, comps: str, rowbytes: str,
                             tol: float) -> None:
    """Acceptance 2 for the swap: host → worker → host equals the direct Python render."""
    from faceplate.ofx.render import render as py_render

    scale = {"float": 1.0, "byte": 255.0, "short": 65535.0}[depth]
    norm = rgba(obama)
    if depth != "float":
        norm = np.round(norm * np.float32(scale)) / np.float32(scale)
    src = norm * np.float32(scale) if comps == "RGBA" else norm[..., :3] * np.float32(scale)
    rc, js, out = render(built, tmp_path, src, "--param", f"model={model_dir}",
                         plugin=SWAP_ID, depth=depth, comps=comps, rowbytes=rowbytes)
    assert rc == 0, js
    assert js["persistent_message"] is None, js["persistent_message"]
    want = py_render(SWAP_ID, norm.astype(np.float32), {"model": str(model_dir)})
    assert want.faces == 1
    want_native = want.image[..., : src.shape[2]] * np.float32(scale)
    if depth != "float":
        want_native = np.clip(np.floor(want_native + 0.5), 0, scale)
    got = read_f32(out)
    # Stated tolerance: every pixel within `tol`, except face pixels where the watermark's
    # quantiser rounded the other way because inference differed in the last float bits between
    # the two processes (thread counts): at most 0.2% of the frame, each within 2% of full scale.
    diff = np.abs(got - want_native)
    assert (diff <= tol).mean() >= 0.998, (diff > tol).mean()
    assert diff.max() <= 0.02 * scale + tol
    changed = np.abs(got - src).max(axis=2) > tol
    assert changed.mean() > 0.01  # the face really was swapped


def test_swap_analyze_sequence_progress_cancel_and_clear(built: tuple[Path, Path],
                                                         tmp_path: Path, obama: np.ndarray,
                                                         model_dir: Path) -> None:
    from faceplate.io.store import AlignmentsStore

    src = rgba(obama)
    store = tmp_path / "shot.fpstore"
    common = ("--param", f"model={model_dir}", "--param", f"alignments={store}")
    rc, js, _ = render(built, tmp_path, src, *common, "--frames", "3-5",
                       "--instance-changed", "analyzeSequence", plugin=SWAP_ID, name="a")
    assert rc == 0, js
    assert js["instance_changed"] == [{"name": "analyzeSequence", "status": 0}]
    calls = [p["call"] for p in js["progress"]]
    assert calls == ["start", "update", "update", "update", "end"], js["progress"]
    assert js["progress"][-2]["value"] == pytest.approx(1.0)
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.frame_numbers() == [3, 4, 5]  # keyed by the host's frame numbers
        assert [f.name for f in st.frames()] == ["host_3", "host_4", "host_5"]
        assert st.get_meta("smoothing") is not None  # the end pass ran
    assert [f["status"] for f in js["frames"]] == ["ok"] * 3
    assert js["persistent_message"] is None  # renders read the store: nothing to report

    # Cancelled after the first update: the frames done are kept, the tracks not smoothed.
    store.unlink()
    rc, js, _ = render(built, tmp_path, src, *common, "--frames", "3-6",
                       "--instance-changed", "analyzeSequence", "--cancel-progress-after", "1",
                       plugin=SWAP_ID, name="b")
    assert rc == 0, js
    assert [p["call"] for p in js["progress"]] == ["start", "update", "update", "end"]
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.frame_numbers() == [3, 4]
        assert st.get_meta("smoothing") is None

    rc, js, _ = render(built, tmp_path, src, *common, "--instance-changed", "clearSequence",
                       plugin=SWAP_ID, name="c")
    assert rc == 0 and js["instance_changed"][0]["status"] == 0, js
    assert not store.exists()
    # recoverable, and the node's message says where
    (note,) = [m["text"] for m in js["messages"] if "Clear:" in m["text"]]
    (kept,) = [p for p in tmp_path.glob("shot.*.bak.fpstore") if str(p) in note]
    with AlignmentsStore.open(kept, readonly=True) as st:
        assert st.frame_numbers() == [3, 4]


def test_swap_analyze_without_store_fails_cleanly(built: tuple[Path, Path], tmp_path: Path,
                                                  obama: np.ndarray, model_dir: Path) -> None:
    src = rgba(obama[::2, ::2])
    rc, js, _ = render(built, tmp_path, src, "--param", f"model={model_dir}",
                       "--instance-changed", "analyzeSequence", plugin=SWAP_ID)
    assert js["instance_changed"][0]["status"] != 0
    assert js["destroy_status"] == 0 and js["unload_status"] == 0
    assert js["leaked_images"] == 0


def test_swap_bad_model_passes_through_with_message(built: tuple[Path, Path], tmp_path: Path,
                                                    obama: np.ndarray) -> None:
    src = rgba(obama[::2, ::2])
    rc, js, out = render(built, tmp_path, src, "--param", f"model={tmp_path / 'missing'}",
                         plugin=SWAP_ID)
    assert rc == 0, js
    np.testing.assert_array_equal(read_f32(out), src)
    pm = js["persistent_message"]
    assert pm["type"] == "OfxMessageWarning" and "model:" in pm["text"], pm


# -------------------------------------------------------------------------------- placements
def _run_env(built: tuple[Path, Path], tmp_path: Path, src: np.ndarray, env: dict[str, str],
             *extra: str, plugin: str = MASK_ID) -> tuple[int, dict[str, Any], str, Path]:
    import json

    host, bundle = built
    inp = write_f32(tmp_path / "p_in.f32", src)
    out = tmp_path / "p_out.f32"
    proc = subprocess.run([str(host), "render", str(bundle), "--plugin", plugin, "--input",
                           str(inp), "--output", str(out), *extra],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, **env})
    return proc.returncode, json.loads(proc.stdout), proc.stderr, out


def test_in_process_placement_matches_the_worker(built: tuple[Path, Path], tmp_path: Path,
                                                 obama: np.ndarray) -> None:
    """FACEPLATE_OFX_PLACEMENT=inprocess runs the same core inside the host process."""
    src = rgba(obama)
    rc, js, err, out = _run_env(built, tmp_path, src, {"FACEPLATE_OFX_PLACEMENT": "inprocess"},
                                "--frames", "1-2", "--param", "mask=extended")
    assert rc == 0, (js, err)
    assert "Faceplate.ofx: rendering in-process" in err, err
    assert [f["status"] for f in js["frames"]] == ["ok", "ok"]
    want = render_mask(src, {"mask": "extended"})
    assert want[..., 3].mean() > 0.01
    np.testing.assert_allclose(read_f32(out), want, rtol=0, atol=FLOAT_TOL)
    assert js["destroy_status"] == 0 and js["unload_status"] == 0
    # The default is the worker.
    rc, js, err, _ = _run_env(built, tmp_path, src[::4, ::4].copy(), {})
    assert rc == 0 and "Faceplate.ofx: rendering in faceplate-worker" in err, err


def test_in_process_refused_when_the_host_has_python(built: tuple[Path, Path], tmp_path: Path,
                                                     obama: np.ndarray) -> None:
    """A host with its own libpython (as NatronRenderer) keeps the worker placement."""
    bundle = built[1]
    paths = next(bundle.rglob("faceplate-worker.paths")).read_text().splitlines()
    libpython = next(line.split("=", 1)[1] for line in paths if line.startswith("libpython="))
    assert Path(libpython).is_file()
    src = rgba(obama[::4, ::4])
    rc, js, err, out = _run_env(built, tmp_path, src, {"FACEPLATE_OFX_PLACEMENT": "inprocess",
                                                      "LD_PRELOAD": libpython})
    assert rc == 0, (js, err)
    assert "ignored: the host has its own Python" in err, err
    np.testing.assert_allclose(read_f32(out), render_mask(src, {}), rtol=0, atol=FLOAT_TOL)


def test_in_process_refused_when_a_python_is_loaded_privately(built: tuple[Path, Path],
                                                               tmp_path: Path,
                                                               obama: np.ndarray) -> None:
    """A libpython that the host (or another plug-in) dlopened RTLD_LOCAL is not visible to
    dlsym(RTLD_DEFAULT); the placement guard still finds it and keeps the worker."""
    bundle = built[1]
    paths = next(bundle.rglob("faceplate-worker.paths")).read_text().splitlines()
    libpython = next(line.split("=", 1)[1] for line in paths if line.startswith("libpython="))
    src = rgba(obama[::4, ::4])
    rc, js, err, out = _run_env(built, tmp_path, src, {"FACEPLATE_OFX_PLACEMENT": "inprocess"},
                                "--preload-local", libpython)
    assert rc == 0, (js, err)
    assert "ignored: the host has its own Python" in err, err
    np.testing.assert_allclose(read_f32(out), render_mask(src, {}), rtol=0, atol=FLOAT_TOL)


# ------------------------------------------------------------------- analysis range and Clear
def test_analyze_range_is_the_clip_range_clamped_to_the_timeline(
        built: tuple[Path, Path], tmp_path: Path, obama: np.ndarray, model_dir: Path) -> None:
    """Analyze Sequence runs over the Source clip's frame range clamped to the timeline: an
    unbounded clip (a generator's, a still's) over the timeline only, negative frames allowed
    where the timeline has them."""
    from faceplate.io.store import AlignmentsStore

    src = rgba(obama[::2, ::2])
    cases = [("-inf,inf", "3-5", [3, 4, 5]), ("-4,1", "-2-0", [-2, -1, 0])]
    for k, (clip_range, timeline, want) in enumerate(cases):
        store = tmp_path / f"s{k}.fpstore"
        rc, js, _ = render(built, tmp_path, src, "--param", f"model={model_dir}", "--param",
                           f"alignments={store}", "--frames", timeline, "--source-range",
                           clip_range, "--instance-changed", "analyzeSequence", plugin=SWAP_ID,
                           name=f"r{k}")
        assert js["instance_changed"] == [{"name": "analyzeSequence", "status": 0}], js
        with AlignmentsStore.open(store, readonly=True) as st:
            assert st.frame_numbers() == want


def test_clear_touches_only_a_faceplate_store(built: tuple[Path, Path], tmp_path: Path,
                                              obama: np.ndarray, model_dir: Path) -> None:
    """Clear on a path that is not a Faceplate store fails with a message and leaves it be."""
    notes = tmp_path / "notes.fpstore"
    notes.write_text("the director's notes")
    src = rgba(obama[::4, ::4])
    rc, js, _ = render(built, tmp_path, src, "--param", f"model={model_dir}", "--param",
                       f"alignments={notes}", "--instance-changed", "clearSequence",
                       plugin=SWAP_ID)
    assert js["instance_changed"][0]["status"] != 0, js
    (msg,) = [m["text"] for m in js["messages"] if "Clear" in m["text"]]
    assert "not a Faceplate alignments store" in msg or "not an SQLite" in msg, msg
    assert notes.read_text() == "the director's notes"
    assert sorted(p.name for p in tmp_path.glob("notes*")) == ["notes.fpstore"]


# ---------------------------------------------------------------------------- premultiplication
def test_premultiplied_source_and_declared_output_alpha(built: tuple[Path, Path],
                                                        tmp_path: Path,
                                                        obama: np.ndarray) -> None:
    """The test host hands RGBA as premultiplied: the shell renders straight colour, puts a
    Source-following Output back in premultiplied form, and declares each output's state."""
    straight = rgba(obama[::3, ::3])
    h, w = straight.shape[:2]
    a = np.linspace(0.25, 1.0, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    straight[..., 3] = a
    premult = straight.copy()
    premult[..., :3] *= a[..., None]
    # Swap without a model: the Output follows the Source (premultiplied, unchanged).
    rc, js, out = render(built, tmp_path, premult, plugin=SWAP_ID, name="sw")
    assert rc == 0, js
    prefs = js["clip_preferences"]["OfxImageEffectPropPreMultiplication"]
    assert prefs == "OfxImageAlphaPremultiplied"
    np.testing.assert_allclose(read_f32(out), premult, rtol=0, atol=1e-6)
    # Mask into alpha: straight colour with the new alpha, declared unpremultiplied.
    rc, js, out = render(built, tmp_path, premult, name="mk")
    assert rc == 0, js
    prefs = js["clip_preferences"]["OfxImageEffectPropPreMultiplication"]
    assert prefs == "OfxImageAlphaUnPremultiplied"
    got = read_f32(out)
    np.testing.assert_allclose(got[..., :3], straight[..., :3], rtol=1e-5, atol=1e-6)
    want = render_mask(straight, {})
    np.testing.assert_allclose(got[..., 3], want[..., 3], atol=FLOAT_TOL)


@pytest.mark.parametrize("plugin", [MASK_ID, SWAP_ID])
def test_no_render_scale_support_so_rendered_at_full_scale(built: tuple[Path, Path],
                                                           tmp_path: Path, obama: np.ndarray,
                                                           plugin: str) -> None:
    """Natron's probe right after CreateInstance: RoD at scale 1 succeeds, at 0.5 fails, so the
    node is rendered at full scale and the host downscales the result (nearest neighbour here)."""
    src = rgba(obama[::4, ::4])
    rc, js, out = render(built, tmp_path, src, "--render-scale", "0.5", plugin=plugin)
    assert rc == 0, js
    assert js["probe"] == {"time": 0, "scale_one_status": 14, "half_status": 1}
    assert js["render_scale_support"] == "no" and js["render_scale_used"] == 1
    assert [f["status"] for f in js["frames"]] == ["ok"] and js["rod_status"] == 14
    h, w = src.shape[:2]
    ys = np.minimum(np.floor((np.arange(int(np.ceil(h * 0.5))) + 0.5) / 0.5).astype(int), h - 1)
    xs = np.minimum(np.floor((np.arange(int(np.ceil(w * 0.5))) + 0.5) / 0.5).astype(int), w - 1)
    full = render_mask(src, {}) if plugin == MASK_ID else src  # Swap without a model: the plate
    np.testing.assert_allclose(read_f32(out), full[ys][:, xs], rtol=0, atol=FLOAT_TOL)
    assert js["leaked_images"] == 0 and js["destroy_status"] == 0


def test_swap_render_is_watermarked(built: tuple[Path, Path], tmp_path: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue #6 acceptance 2 (OFX path): a frame rendered by Faceplate Swap with a really trained
    model carries the watermark with the model's id, found from the pixels alone."""
    from faceplate.convert.swap import model_id
    from faceplate.core.colorspace import linear_to_display_u8, srgb_to_linear
    from faceplate.io.media import open_source
    from faceplate.io.model_files import read_manifest
    from faceplate.provenance import watermark
    from tests.convert_model import trained_model

    model = trained_model(tmp_path_factory)
    with open_source(samples.path("single_face.mp4")) as src_clip:
        rgb = src_clip.read(10).rgb
    lin = srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))
    src = rgba(lin)
    assert not any(m.detected for m in watermark.detect_frame(rgb))  # the plate is unmarked
    rc, js, out = render(built, tmp_path, src, "--param", f"model={model}", plugin=SWAP_ID)
    assert rc == 0 and js["persistent_message"] is None, js
    got = read_f32(out)
    shown, _ = linear_to_display_u8(np.ascontiguousarray(got, dtype=np.float32))
    marks = watermark.detect_frame(np.ascontiguousarray(shown[..., :3]))
    assert marks and marks[0].detected, marks
    assert marks[0].payload == model_id(read_manifest(model), model)


def test_in_process_swap_runs_the_model_inside_the_host(built: tuple[Path, Path],
                                                        tmp_path: Path, obama: np.ndarray,
                                                        model_dir: Path) -> None:
    """The in-process placement runs torch inside the host process too, with the same result."""
    from faceplate.ofx.render import render as py_render

    src = rgba(obama)
    rc, js, err, out = _run_env(built, tmp_path, src, {"FACEPLATE_OFX_PLACEMENT": "inprocess"},
                                "--param", f"model={model_dir}", plugin=SWAP_ID)
    assert rc == 0 and "rendering in-process" in err, (js, err)
    assert js["persistent_message"] is None and js["unload_status"] == 0, js
    want = py_render(SWAP_ID, src, {"model": str(model_dir)})
    assert want.faces == 1
    diff = np.abs(read_f32(out) - want.image)
    assert (diff <= 1e-4).mean() >= 0.998 and diff.max() <= 0.02 + 1e-4  # as test_swap_matches


# ------------------------------------------------- where the test host behaves as Natron 2.5
def worker_pids(children: list[dict[str, Any]]) -> list[int]:
    """The pids of the faceplate-worker processes among the host's children (comm is cut to 15
    characters)."""
    return [c["pid"] for c in children if c["name"].startswith("faceplate-work")]


def test_mask_on_rgb_source_with_offset_mask_on_fresh_threads(built: tuple[Path, Path],
                                                              tmp_path: Path,
                                                              obama: np.ndarray) -> None:
    """Faceplate Mask (output=alpha) on an RGB Source (a JPEG in Natron) gives an RGBA Output
    whose alpha is the matte; a Mask input whose RoD is away from the origin (a Roto) limits it;
    three frames, each on a thread that exits after it, are served by one worker (tied to the
    host process, not to the thread that started it), still alive when every render thread is
    gone."""
    src = obama  # RGB, 3 channels
    h, w = src.shape[:2]
    x1, y1, x2, y2 = w // 4, h // 5, (3 * w) // 4, h  # OFX pixels, y up: reaches the top edge
    m = np.ones((y2 - y1, x2 - x1, 1), np.float32)
    m[:, : (x2 - x1) // 3] = 0.5
    mpath = write_f32(tmp_path / "roto.f32", m)
    rc, js, out = render(built, tmp_path, src, "--mask", str(mpath), "--mask-rod",
                         f"{x1},{y1},{x2},{y2}", "--frames", "1-3", "--threads", "1",
                         comps="RGB", name="rgb_###")
    assert rc == 0, js
    frames = js["frames"]
    assert [f["status"] for f in frames] == ["ok"] * 3
    pids = [worker_pids(f["children"]) for f in frames]
    assert len(pids[0]) == 1 and pids == [pids[0]] * 3, pids
    assert worker_pids(js["children_at_end"]) == pids[0]
    assert len({f["thread"] for f in frames} | {js["main_thread"]}) == 4
    assert js["clip_preferences"]["OfxImageClipPropComponents_Output"] == "OfxImageComponentRGBA"
    assert js["clips"]["Output"]["components"] == "OfxImageComponentRGBA"
    full = np.zeros((h, w, 1), np.float32)
    full[h - y2: h - y1, x1:x2] = m  # the mask placed in the frame (top-down rows)
    matte = render_mask(rgba(src), {})[..., 3:]
    assert matte[full > 0].mean() > 0.05  # the face is inside the mask's RoD
    want_alpha = full * matte + (1 - full) * np.float32(1.0)  # an RGB Source is opaque
    for k in (1, 3):
        got = read_f32(tmp_path / f"rgb_{k:03d}.f32")
        assert got.shape == (h, w, 4)
        np.testing.assert_allclose(got[..., :3], src, rtol=0, atol=FLOAT_TOL)  # alpha only
        np.testing.assert_allclose(got[..., 3:], want_alpha, rtol=0, atol=FLOAT_TOL)
    assert (read_f32(tmp_path / "rgb_001.f32")[..., 3][full[..., 0] == 0] == 1.0).all()


def test_render_waiting_for_the_worker_is_aborted(built: tuple[Path, Path], tmp_path: Path,
                                                  obama: np.ndarray) -> None:
    """Two render threads: frame 1 holds the worker (its first request starts it), frame 2 waits
    for it holding no host image, polling abort; the host aborts frame 2 after 200 ms and it
    returns at once, long before frame 1 ends."""
    src = rgba(obama[::4, ::4])
    rc, js, _ = render(built, tmp_path, src, "--frames", "1-2", "--threads", "2",
                       "--stagger-ms", "100", "--abort-at", "2:200")
    assert rc == 4, js
    f1, f2 = js["frames"]
    assert f1["status"] == "ok" and f2["status"] == "aborted"
    assert f2["end_ms"] + 500 < f1["end_ms"]  # it did not wait for frame 1 (a cold worker)
    assert f2["abort_calls"] >= 3  # polled while waiting for the worker
    assert f2["host_image_ms"] == 0  # it never fetched an image
    assert js["leaked_images"] == 0 and js["destroy_status"] == 0


def test_swap_analyze_sequence_while_frames_render(built: tuple[Path, Path], tmp_path: Path,
                                                   obama: np.ndarray, model_dir: Path) -> None:
    """Analyze Sequence pressed (InstanceChanged, main thread) while frames render: it shares the
    worker with the renders, stores a track per frame and bumps the revision; no frame fails."""
    from faceplate.io.store import AlignmentsStore

    src = rgba(obama[::2, ::2])
    store = tmp_path / "busy.fpstore"
    rc, js, _ = render(built, tmp_path, src, "--param", f"model={model_dir}", "--param",
                       f"alignments={store}", "--frames", "1-3",
                       "--instance-changed-during-render", "analyzeSequence", plugin=SWAP_ID)
    assert rc == 0, js
    (ic,) = js["instance_changed_during_render"]
    assert ic["status"] == 0 and ic["frames_in_flight"] >= 1, ic
    assert [f["status"] for f in js["frames"]] == ["ok"] * 3
    assert js["params"]["revision"] >= 1
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.frame_numbers() == [1, 2, 3]
    assert js["leaked_images"] == 0 and js["destroy_status"] == 0
