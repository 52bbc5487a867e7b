"""Contract tests for every registered aligner (real models, real sample faces)."""

from __future__ import annotations

import dataclasses

import cv2
import dlib
import numpy as np
import pytest

from faceplate.core.errors import ConfigError
from faceplate.core.geometry import to_cv2, transform_points
from faceplate.core.types import BBox, Detection
from faceplate.extract.align import ALIGNERS, Aligner, AlignerConfig
from faceplate.extract.align.base import mean_face_in_box
from faceplate.extract.align.dlib68 import bbox_from_dlib, dlib_rect
from faceplate.extract.align.normalize import NORMALIZATIONS, normalize_crop
from faceplate.io import samples

NAMES = ALIGNERS.names()


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[36] - lm[45]))


def _nme(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(a - b, axis=1)) / _iod(b))


@pytest.fixture(scope="module")
def obama() -> tuple[np.ndarray, Detection]:
    img = cv2.cvtColor(cv2.imread(str(samples.path("obama.jpg"))), cv2.COLOR_BGR2RGB)
    rect = dlib.get_frontal_face_detector()(img, 1)[0]
    return img, Detection(bbox_from_dlib(rect), 1.0, "dlib")


@pytest.fixture(scope="module", params=NAMES)
def aligner(request: pytest.FixtureRequest) -> Aligner:
    return ALIGNERS.create(request.param)


def test_registry_has_both_aligners() -> None:
    assert {"dlib68", "mesh68"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_frozen_and_validated(name: str) -> None:
    cls = ALIGNERS.config_class(name)
    cfg = cls()
    assert isinstance(cfg, AlignerConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.refeed = 2  # type: ignore[misc]
    with pytest.raises(ConfigError):
        cls(refeed=11)
    with pytest.raises(ConfigError):
        cls(normalization="gamma")
    with pytest.raises(ConfigError):
        ALIGNERS.create(name, object())


def test_output_contract(aligner: Aligner, obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    before = img.copy()
    # A second detection on a textureless patch: still one finite alignment for it.
    blank = Detection(BBox(5.0, 900.0, 150.0, 150.0), 0.5, "test")
    out = aligner.align(img, [det, blank])
    assert np.array_equal(img, before)
    assert len(out) == 2
    for a in out:
        assert a.landmarks.shape == (68, 2) and a.landmarks.dtype == np.float32
        assert np.all(np.isfinite(a.landmarks))
        assert 0.0 <= a.confidence <= 1.0
    lm = out[0].landmarks
    assert out[0].confidence > 0.5
    # The landmarks lie on the face: inside the (generous) box, eyes above mouth, right eye
    # (subject's right) on the image left.
    b = det.bbox
    assert np.all(lm[:, 0] > b.x - 0.3 * b.w) and np.all(lm[:, 0] < b.x + 1.3 * b.w)
    assert np.all(lm[:, 1] > b.y - 0.3 * b.h) and np.all(lm[:, 1] < b.y + 1.3 * b.h)
    assert lm[36:42, 1].mean() < lm[48:68, 1].mean()
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    assert aligner.align(img, []) == []


def test_mesh_output(obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    a = ALIGNERS.create("mesh68").align(img, [det])[0]
    assert a.mesh is not None and a.mesh.shape == (468, 3) and a.mesh.dtype == np.float32
    assert np.all(np.isfinite(a.mesh))
    # z is in the x pixel scale: the face's depth range is a sizeable fraction of its width.
    width = np.ptp(a.mesh[:, 0])
    assert 0.2 * width < np.ptp(a.mesh[:, 2]) < 1.2 * width
    # The nose tip (mesh vertex 4) is the nearest point to the camera (smallest z) region.
    assert a.mesh[4, 2] < np.percentile(a.mesh[:, 2], 5)


def test_odd_size_frame(aligner: Aligner, obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    b = det.bbox
    # Cut a 2×-box region around the face and resize it to 101 wide × 99 high.
    x0, y0, side = b.x - 0.5 * b.w, b.y - 0.5 * b.h, 2.0 * b.size
    sx, sy = 101 / side, 99 / side
    m = np.array([[sx, 0.0, -sx * x0], [0.0, sy, -sy * y0]])
    small = cv2.warpAffine(img, to_cv2(m), (101, 99), flags=cv2.INTER_AREA)
    assert small.shape == (99, 101, 3)
    ref = aligner.align(img, [det])[0].landmarks
    cx, cy = transform_points(np.array([b.center]), m)[0]
    w, h = b.w * sx, b.h * sy
    out = aligner.align(small, [Detection(BBox(cx - w / 2, cy - h / 2, w, h), 1.0, "t")])
    lm = out[0].landmarks
    assert lm.shape == (68, 2) and np.all(np.isfinite(lm))
    assert _nme(lm, transform_points(ref, m)) < 0.15


@pytest.mark.parametrize("norm", NORMALIZATIONS)
def test_normalization_variants(norm: str, aligner: Aligner,
                                obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    name = aligner.registry_name
    cfg = ALIGNERS.config_class(name)(normalization=norm)
    got = ALIGNERS.create(name, cfg).align(img, [det])[0]
    ref = aligner.align(img, [det])[0]
    assert got.landmarks.shape == (68, 2) and np.all(np.isfinite(got.landmarks))
    assert got.confidence > 0.5
    assert _nme(got.landmarks, ref.landmarks) < 0.06


def test_refeed_is_deterministic_and_averages(aligner: Aligner,
                                              obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    name = aligner.registry_name
    cfg = ALIGNERS.config_class(name)(refeed=3)
    a1 = ALIGNERS.create(name, cfg).align(img, [det])[0].landmarks
    a2 = ALIGNERS.create(name, cfg).align(img, [det])[0].landmarks
    assert np.array_equal(a1, a2)
    plain = aligner.align(img, [det])[0].landmarks
    assert not np.array_equal(a1, plain)  # the jittered passes did run
    assert _nme(a1, plain) < 0.03


def test_failed_alignment_falls_back_to_box() -> None:
    # A flat grey frame: mesh68 finds no face and must return the mean face in the box with
    # confidence 0; dlib always returns a shape.
    img = np.full((240, 320, 3), 128, np.uint8)
    box = BBox(100.0, 60.0, 120.0, 120.0)
    out = ALIGNERS.create("mesh68").align(img, [Detection(box, 1.0, "t")])[0]
    assert out.confidence == 0.0 and out.mesh is None
    np.testing.assert_allclose(out.landmarks, mean_face_in_box(box))


def test_mean_face_in_box_matches_dlib(obama: tuple[np.ndarray, Detection]) -> None:
    img, det = obama
    lm = ALIGNERS.create("dlib68").align(img, [det])[0].landmarks
    assert _nme(mean_face_in_box(det.bbox), lm) < 0.15


def test_dlib_rect_round_trip() -> None:
    r = dlib.rectangle(10, 20, 109, 139)
    b = bbox_from_dlib(r)
    assert (b.x, b.y, b.w, b.h) == (10.0, 20.0, 100.0, 120.0)
    assert dlib_rect(b) == r


@pytest.mark.parametrize("norm", NORMALIZATIONS)
def test_normalize_crop(norm: str) -> None:
    rng = np.random.default_rng(3)
    crop = (rng.random((37, 53, 3)) * 90 + 40).astype(np.uint8)
    before = crop.copy()
    out = normalize_crop(crop, norm)
    assert np.array_equal(crop, before)
    assert out.shape == crop.shape and out.dtype == np.uint8 and out is not crop
    if norm == "none":
        assert np.array_equal(out, crop)
    else:
        # Every method stretches this low-contrast crop.
        assert out.std() > crop.std() * 1.2
    if norm == "mean":
        np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 127.5, atol=2.0)


def test_normalize_crop_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="normalization"):
        normalize_crop(np.zeros((4, 4, 3), np.uint8), "gamma")
