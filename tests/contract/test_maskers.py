"""Contract tests for every entry of the MASKERS registry, plus mask storage and rasterisation.

The face is real: obama.jpg through dlib's HOG detector and 68-point predictor, aligned with
``crop_matrix`` and warped with ``cv2.warpAffine(..., to_cv2(M))``.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from faceplate.core.errors import ConfigError
from faceplate.core.geometry import crop_matrix, invert_affine, to_cv2, transform_points
from faceplate.core.records import decode_mask
from faceplate.core.types import CENTERINGS, StoredMask
from faceplate.extract.identity import DlibLandmarker, load_rgb
from faceplate.extract.mask import MASKERS, Masker, blank_crop, make_stored_mask, mask_to_frame
from faceplate.extract.mask import mesh_topology as topo
from faceplate.extract.mask.landmarks import component_groups
from faceplate.extract.mask.mesh import MeshConfig, MeshRegionMasker
from faceplate.extract.mask.raster import Raster
from faceplate.io import samples

NAMES = MASKERS.names()
MESH_NAMES = [n for n in NAMES if n.startswith("mesh_")]
#: Maskers that learn what is face (their model here has random weights: the shape, dtype and
#: input contract holds, what lands inside does not; a trained one is tested on real faces in
#: tests/integration/test_mask.py).
LEARNED = ["occlusion"]


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """(frame RGB, 68×2 landmarks) of obama.jpg."""
    rgb = load_rgb(samples.path("obama.jpg"))
    faces = DlibLandmarker()(rgb)
    assert len(faces) == 1
    return rgb, faces[0]


@pytest.fixture(scope="module")
def frame_mesh(face: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """468×3 float32 frame-pixel face mesh of obama.jpg, as an aligner would supply it."""
    import mediapipe as mp

    rgb, _ = face
    h, w = rgb.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        res = fm.process(rgb)
    assert res.multi_face_landmarks
    return np.array([(p.x * w, p.y * h, p.z * w) for p in res.multi_face_landmarks[0].landmark],
                    dtype=np.float32)


@pytest.fixture(scope="module")
def maskers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Masker]:
    import dataclasses

    import torch

    from faceplate.extract.mask import create_masker
    from faceplate.io.model_files import MaskManifest, save_mask_model
    from faceplate.models.occlusion import LiteUNetConfig, build_mask_model

    model_dir = tmp_path_factory.mktemp("mask_model")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_mask_model("lite_unet", LiteUNetConfig(size=64, widths=(4, 4, 4, 4, 4)))
    cfg = {f.name: getattr(net.cfg, f.name) for f in dataclasses.fields(net.cfg)}
    save_mask_model(model_dir, net.state_dict(),
                    MaskManifest("lite_unet", cfg, 64, "face", 1.0, {}, {}))
    out: dict[str, Masker] = {n: MASKERS.create(n) for n in NAMES if n not in LEARNED}
    out["occlusion"] = create_masker(f"occlusion:{model_dir}")
    return out


def aligned(face: tuple[np.ndarray, np.ndarray], size: int, centering: str = "face"
            ) -> tuple[np.ndarray, np.ndarray]:
    rgb, lm = face
    m = crop_matrix(lm, size, centering)  # type: ignore[arg-type]
    crop = cv2.warpAffine(rgb, to_cv2(m), (size, size), flags=cv2.INTER_AREA)
    return crop, m


# --- the contract ------------------------------------------------------------------------------


def test_registry_lists_all_maskers() -> None:
    assert set(NAMES) >= {"components", "extended", "mesh_oval", "mesh_skin", "mesh_eyes",
                          "mesh_brows", "mesh_mouth"}
    for entry in MASKERS:
        entry.config()  # every config has valid defaults


@pytest.mark.parametrize("size", [101, 256])
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_inputs_untouched(name: str, size: int, face, maskers) -> None:
    crop, m = aligned(face, size)
    lm = face[1].copy()
    crop_before, lm_before, m_before = crop.copy(), lm.copy(), m.copy()
    crop.setflags(write=False)
    out = maskers[name].mask(crop, lm, m)
    assert out.shape == (size, size) and out.dtype == np.uint8
    if name not in LEARNED:
        assert out.min() == 0 and out.max() == 255
        fill = float((out > 127).mean())
        assert 0.002 < fill < 0.9, f"{name}: {fill:.3f} of the crop"
    np.testing.assert_array_equal(crop, crop_before)
    np.testing.assert_array_equal(lm, lm_before)
    np.testing.assert_array_equal(m, m_before)


@pytest.mark.parametrize("size", [64, 101])
@pytest.mark.parametrize("name", [n for n in NAMES if not MASKERS.entry(n).cls.reads_pixels])
def test_maskers_that_read_no_pixels_draw_the_same_mask_on_a_blank_crop(name: str, size: int,
                                                                        face, maskers) -> None:
    """A masker declaring ``reads_pixels = False`` is given a blank crop by the extractor:
    its mask must not change (one that reads pixels fails here if it claims otherwise)."""
    crop, m = aligned(face, size)
    blank = blank_crop(size)
    assert blank.shape == (size, size, 3) and blank.dtype == np.uint8 and not blank.flags.writeable
    masker = maskers[name]
    np.testing.assert_array_equal(masker.mask(blank, face[1], m), masker.mask(crop, face[1], m))


def test_the_hull_maskers_read_no_pixels_and_the_pixel_maskers_do(face, maskers) -> None:
    """The flag is right in both directions: the hulls skip the crop; every other masker's
    mask changes when the crop's pixels do (so none may be handed a blank crop)."""
    assert {n for n in NAMES if not maskers[n].reads_pixels} == {"components", "extended"}
    crop, m = aligned(face, 128)
    for name in NAMES:
        if maskers[name].reads_pixels and name not in LEARNED:
            moved = maskers[name].mask(np.ascontiguousarray(crop[::-1]), face[1], m)
            assert not np.array_equal(moved, maskers[name].mask(crop, face[1], m)), name


@pytest.mark.parametrize("name", NAMES)
def test_rejects_bad_inputs(name: str, face, maskers) -> None:
    crop, m = aligned(face, 64)
    lm = face[1]
    with pytest.raises(ValueError):
        maskers[name].mask(crop[:, :60], lm, m)  # not square
    with pytest.raises(ValueError):
        maskers[name].mask(crop, lm[:5], m)
    with pytest.raises(ValueError):
        maskers[name].mask(crop, lm, m[:1])
    with pytest.raises(ValueError):
        maskers[name].mask(crop.astype(np.float32), lm, m)


def _probe_points(pts: np.ndarray) -> dict[str, np.ndarray]:
    """Named crop-space probe points derived from the 68 landmarks."""
    reye, leye = pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)
    brow_h = pts[8, 1] - pts[17:27, 1].mean()
    return {
        "nose_tip": pts[30],
        "nose_base": pts[33],
        "right_eye": reye,
        "left_eye": leye,
        "right_brow": pts[19] + 0.15 * (reye - pts[19]),
        "left_brow": pts[24] + 0.15 * (leye - pts[24]),
        "upper_lip": pts[51] + 0.3 * (pts[62] - pts[51]),
        "lower_lip": pts[57] + 0.3 * (pts[66] - pts[57]),
        "mouth": pts[60:68].mean(axis=0),
        "right_cheek": (pts[31] + pts[2]) / 2,
        "left_cheek": (pts[35] + pts[14]) / 2,
        "forehead": pts[17:27].mean(axis=0) - np.array([0.0, 0.2 * brow_h]),
        "above_head": pts[17:27].mean(axis=0) - np.array([0.0, 0.9 * brow_h]),
    }


_FACE_IN = ["nose_tip", "right_eye", "left_eye", "right_brow", "left_brow", "upper_lip",
            "lower_lip", "mouth", "right_cheek", "left_cheek"]
#: masker → (probes that must be inside, probes that must be outside)
EXPECT: dict[str, tuple[list[str], list[str]]] = {
    "components": (_FACE_IN, ["forehead", "above_head"]),
    "extended": (_FACE_IN + ["forehead"], ["above_head"]),
    "mesh_oval": (_FACE_IN + ["forehead"], ["above_head"]),
    "mesh_skin": (["nose_tip", "right_cheek", "left_cheek", "forehead"],
                  ["right_eye", "left_eye", "upper_lip", "lower_lip", "mouth", "above_head"]),
    "mesh_eyes": (["right_eye", "left_eye"],
                  ["nose_tip", "right_brow", "left_brow", "mouth", "upper_lip", "right_cheek",
                   "forehead"]),
    "mesh_brows": (["right_brow", "left_brow"],
                   ["right_eye", "left_eye", "nose_tip", "mouth", "forehead"]),
    "mesh_mouth": (["upper_lip", "lower_lip", "mouth"],
                   ["right_eye", "left_eye", "nose_tip", "right_cheek", "right_brow"]),
}


def test_expectations_cover_registry() -> None:
    assert set(EXPECT) == set(NAMES) - set(LEARNED)


#: (masker, mesh source): landmark maskers take no mesh; mesh maskers are run on the crop's own
#: mesh, on a mesh supplied in frame pixels, and on a faceless crop (68-point fallback).
SOURCES = [(n, s) for n in NAMES if n not in LEARNED
           for s in (("crop", "supplied", "fallback") if n in MESH_NAMES else ("crop",))]


@pytest.mark.parametrize("centering", ["face", "head"])
@pytest.mark.parametrize(("name", "source"), SOURCES)
def test_region_covers_the_right_landmarks(name: str, source: str, centering: str, face,
                                           frame_mesh, maskers) -> None:
    crop, m = aligned(face, 256, centering)
    mesh = frame_mesh if source == "supplied" else None
    if source == "fallback":
        crop = np.full_like(crop, 128)  # no face in the crop: the mesh fails, landmarks remain
    masker = maskers[name]
    if isinstance(masker, MeshRegionMasker):
        found = masker.mesh_in_crop(crop, face[1], m, mesh)
        assert (found is None) == (source == "fallback")
    out = masker.mask(crop, face[1], m, mesh)
    probes = _probe_points(transform_points(face[1], m))
    inside, outside = EXPECT[name]

    def value(p: np.ndarray) -> int:
        x, y = int(np.floor(p[0])), int(np.floor(p[1]))
        return int(out[y, x]) if 0 <= x < 256 and 0 <= y < 256 else 0

    for key in inside:
        assert value(probes[key]) > 127, f"{name}/{source}: {key} should be inside"
    for key in outside:
        assert value(probes[key]) < 128, f"{name}/{source}: {key} should be outside"


def test_extended_contains_components_and_reaches_higher(face, maskers) -> None:
    for size in (101, 256):
        crop, m = aligned(face, size)
        comp = maskers["components"].mask(crop, face[1], m)
        ext = maskers["extended"].mask(crop, face[1], m)
        assert np.all(ext >= comp)
        assert (ext > 127).sum() > 1.15 * (comp > 127).sum()
        top_c = np.argmax((comp > 127).any(axis=1))
        top_e = np.argmax((ext > 127).any(axis=1))
        assert top_c - top_e > 0.08 * size


def test_extended_forehead_option(face) -> None:
    crop, m = aligned(face, 256)
    low = MASKERS.create("extended", MASKERS.config_class("extended")(forehead=0.1))
    high = MASKERS.create("extended", MASKERS.config_class("extended")(forehead=0.5))
    a, b = low.mask(crop, face[1], m), high.mask(crop, face[1], m)
    assert np.all(b >= a) and (b > 127).sum() > 1.1 * (a > 127).sum()
    with pytest.raises(ConfigError):
        MASKERS.config_class("extended")(forehead=2.0)


@pytest.mark.parametrize("name", MESH_NAMES)
def test_supplied_mesh_matches_crop_mesh(name: str, face, frame_mesh, maskers) -> None:
    crop, m = aligned(face, 256)
    a = maskers[name].mask(crop, face[1], m) > 127
    b = maskers[name].mask(crop, face[1], m, frame_mesh) > 127
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.75, f"{name}: IoU {iou:.3f}"
    # a refined mesh (478 points, irises appended) is accepted too
    refined = np.vstack([frame_mesh, np.repeat(frame_mesh[:1], 10, axis=0)])
    np.testing.assert_array_equal(maskers[name].mask(crop, face[1], m, refined),
                                  maskers[name].mask(crop, face[1], m, frame_mesh))
    with pytest.raises(ValueError):
        maskers[name].mask(crop, face[1], m, frame_mesh[:100])


def test_disagreeing_mesh_is_replaced_by_the_crop_mesh(face, frame_mesh, maskers) -> None:
    crop, m = aligned(face, 128)
    wrong = frame_mesh + np.array([300.0, 0.0, 0.0], np.float32)  # someone else's position
    np.testing.assert_array_equal(maskers["mesh_mouth"].mask(crop, face[1], m, wrong),
                                  maskers["mesh_mouth"].mask(crop, face[1], m))


def test_mesh_grow_option(face) -> None:
    crop, m = aligned(face, 128)
    base = MASKERS.create("mesh_eyes").mask(crop, face[1], m)
    grown = MASKERS.create("mesh_eyes", MeshConfig(grow=3.0)).mask(crop, face[1], m)
    shrunk = MASKERS.create("mesh_oval", MeshConfig(grow=-3.0)).mask(crop, face[1], m)
    oval = MASKERS.create("mesh_oval").mask(crop, face[1], m)
    assert np.all(grown >= base) and (grown > 127).sum() > 1.5 * (base > 127).sum()
    assert np.all(shrunk <= oval) and (shrunk > 127).sum() < (oval > 127).sum()
    with pytest.raises(ConfigError):
        MeshConfig(grow=50.0)


def test_skin_exclude_brows(face) -> None:
    crop, m = aligned(face, 256)
    skin = MASKERS.create("mesh_skin").mask(crop, face[1], m)
    cfg = MASKERS.config_class("mesh_skin")(exclude_brows=True)
    no_brows = MASKERS.create("mesh_skin", cfg).mask(crop, face[1], m)
    brows = MASKERS.create("mesh_brows").mask(crop, face[1], m)
    assert np.all(no_brows <= skin)
    assert no_brows[brows == 255].max() == 0 and skin[brows == 255].min() == 255


def test_mesh_masker_is_thread_safe(face) -> None:
    crop, m = aligned(face, 128)
    masker = MASKERS.create("mesh_oval")
    want = masker.mask(crop, face[1], m)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(masker.mask(crop, face[1], m))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 12
    for r in results:
        np.testing.assert_array_equal(r, want)
    masker.close()
    np.testing.assert_array_equal(masker.mask(crop, face[1], m), want)


# --- mesh topology -----------------------------------------------------------------------------


def test_region_loops_match_the_mesh_topology() -> None:
    import mediapipe as mp

    edges = mp.solutions.face_mesh.FACEMESH_TESSELATION
    derived = topo.derive_region_loops(edges)
    for key, loop in derived.items():
        assert getattr(topo, key.upper()) == loop, key
    edge_set = {(min(a, b), max(a, b)) for a, b in edges}
    for loop in derived.values():
        assert len(set(loop)) == len(loop)
        for a, b in zip(loop, loop[1:] + loop[:1]):
            assert (min(a, b), max(a, b)) in edge_set
    assert 10 in topo.FACE_OVAL and 152 in topo.FACE_OVAL  # forehead top, chin
    assert 33 in topo.RIGHT_EYE and 263 in topo.LEFT_EYE


def test_normalise_loop() -> None:
    assert topo.normalise_loop([5, 9, 2, 7]) == (2, 7, 5, 9)
    assert topo.normalise_loop([5, 7, 2, 9]) == (2, 7, 5, 9)


# --- rasterisation convention --------------------------------------------------------------------


def _centroid(mask: np.ndarray) -> np.ndarray:
    """Weighted centroid in +0.5-centred pixel coordinates."""
    w = mask.astype(np.float64)
    ys, xs = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    return np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.5, 0.0), (0.25, 0.75), (0.1, 0.3)])
def test_polygons_use_half_pixel_centres(offset: tuple[float, float]) -> None:
    square = np.array([[4.0, 3.0], [12.0, 3.0], [12.0, 11.0], [4.0, 11.0]]) + offset
    triangle = np.array([[3.0, 2.0], [14.0, 5.0], [6.0, 13.0]]) + offset
    for shape, area in ((square, 64.0), (triangle, 56.0)):
        for method in ("fill_hull", "fill_polygon"):
            raster = Raster(17)
            getattr(raster, method)(shape)
            out = raster.result()
            assert out.shape == (17, 17) and out.dtype == np.uint8
            # the centroid is the polygon's (a drawing without the -0.5 shift is 0.5 px off);
            # OpenCV's fill rounds exact half-pixel ties outward on the right/bottom: ≤ 1/8 px
            np.testing.assert_allclose(_centroid(out), shape.mean(axis=0), atol=0.15)
            assert 0.0 <= out.sum() / 255.0 - area < 0.15 * area  # edges ≤ 0.18 px outside
    raster = Raster(17).fill_polygon(square - offset)
    out = raster.result()
    # a pixel-aligned square: the pixels it covers are full, the ring around them nearly empty
    assert out[3:11, 4:12].min() == 255
    ring = np.ones_like(out, bool)
    ring[3:11, 4:12] = False
    assert out[ring].max() <= 64 and out[:2].max() == 0 and out[:, 14:].max() == 0


def test_raster_holes_and_order() -> None:
    r = Raster(20).fill_polygon(np.array([[2.0, 2.0], [18.0, 2.0], [18.0, 18.0], [2.0, 18.0]]))
    r.fill_hull(np.array([[8.0, 8.0], [12.0, 8.0], [12.0, 12.0], [8.0, 12.0]]), 0)
    out = r.result()
    assert out[9:11, 9:11].max() == 0 and out[4, 4] == 255
    with pytest.raises(ValueError):
        Raster(0)


# --- storage and mapping back to the frame --------------------------------------------------------


def test_make_stored_mask_round_trip(face, maskers) -> None:
    crop, m = aligned(face, 101)
    mk = maskers["components"].mask(crop, face[1], m)
    sm = make_stored_mask("components", mk, m, "face")
    assert isinstance(sm, StoredMask) and sm.size == 101 and sm.centering == "face"
    assert len(sm.data) < mk.size
    np.testing.assert_array_equal(decode_mask(sm), mk)
    np.testing.assert_array_equal(sm.affine, m)
    small = make_stored_mask("components", mk, m, "face", storage_size=48)
    assert small.size == 48 and decode_mask(small).shape == (48, 48)
    with pytest.raises(ValueError):
        make_stored_mask("components", mk[:, :50], m, "face")
    with pytest.raises(ValueError):
        make_stored_mask("components", mk, m, "sideways")  # type: ignore[arg-type]


def _components_in_frame(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    side = max(shape)
    raster = Raster(side)
    for g in component_groups(lm.astype(np.float64)):
        raster.fill_hull(g)
    return raster.result()[: shape[0], : shape[1]].astype(np.float32) / 255.0


@pytest.mark.parametrize("storage", [None, 128])
@pytest.mark.parametrize("centering", CENTERINGS)
def test_mask_to_frame_lands_on_the_face(centering: str, storage: int | None, face,
                                         maskers) -> None:
    rgb, lm = face
    crop, m = aligned(face, 256, centering)
    h, w = rgb.shape[:2]
    direct = _components_in_frame(lm, (h, w))
    mk = maskers["components"].mask(crop, lm, m)
    back = mask_to_frame(make_stored_mask("components", mk, m, centering,  # type: ignore[arg-type]
                                          storage_size=storage), (h, w))
    assert back.shape == (h, w) and back.dtype == np.float32
    assert back.min() >= 0.0 and back.max() <= 1.0
    scale = float(np.sqrt(abs(np.linalg.det(invert_affine(m)[:, :2]))))  # frame px per crop px
    # the centroid of the mapped-back mask matches the one drawn directly in the frame; a
    # half-pixel slip in either convention would move it by 0.5 crop px = 0.5 * scale frame px
    assert scale > 1.0
    err = np.linalg.norm(_centroid(back) - _centroid(direct))
    assert err < 0.2, f"centroid off by {err:.2f} px (scale {scale:.2f})"
    a, b = back > 0.5, direct > 0.5
    assert (a & b).sum() / (a | b).sum() > 0.97
    # and it sits on the face: centroid within a few px of the landmark centroid
    assert np.linalg.norm(_centroid(back) - lm.mean(axis=0)) < 0.08 * np.ptp(lm[:, 0])


@pytest.mark.parametrize("centering", CENTERINGS)
@pytest.mark.parametrize("name", ["mesh_eyes", "mesh_mouth", "mesh_oval"])
def test_mesh_masks_map_back_onto_their_features(name: str, centering: str, face,
                                                 maskers) -> None:
    rgb, lm = face
    crop, m = aligned(face, 192, centering)
    back = mask_to_frame(make_stored_mask(name, maskers[name].mask(crop, lm, m), m,
                                          centering), rgb.shape[:2])  # type: ignore[arg-type]
    feature = {"mesh_eyes": lm[36:48], "mesh_mouth": lm[48:68], "mesh_oval": lm[27:36]}[name]
    c = _centroid(back)
    assert np.linalg.norm(c - feature.mean(axis=0)) < 0.06 * np.ptp(lm[:, 0]) + 2.0
    centres = [lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)] if name == "mesh_eyes" \
        else [feature.mean(axis=0)]
    for x, y in np.floor(centres).astype(int):
        assert back[y, x] > 0.5
    if name == "mesh_eyes":
        x, y = np.floor(lm[36:48].mean(axis=0)).astype(int)  # between the eyes
        assert back[y, x] < 0.5


def test_mask_to_frame_rejects_bad_size(face, maskers) -> None:
    crop, m = aligned(face, 64)
    sm = make_stored_mask("components", maskers["components"].mask(crop, face[1], m), m, "face")
    with pytest.raises(ValueError):
        mask_to_frame(sm, (0, 10))
