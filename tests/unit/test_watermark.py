"""Unit tests of the face watermark (faceplate.provenance.watermark) on one real photo."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from faceplate.core.geometry import compose_affine, crop_matrix, to_cv2
from faceplate.io import samples
from faceplate.io.media import read_image
from faceplate.provenance import attacks
from faceplate.provenance import watermark as wm

SHA = hashlib.sha256(b"a model").hexdigest()


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, np.ndarray]:
    """(obama.jpg RGB uint8, its 68 landmarks from the default extractor)."""
    rgb = read_image(samples.path("obama.jpg")).rgb
    lms = wm.frame_landmarks(rgb)
    assert len(lms) == 1
    return rgb, lms[0]


def _crop(rgb: np.ndarray, lm: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    m = crop_matrix(lm, size, "face", 1.0)
    crop = cv2.warpAffine(rgb, to_cv2(m), (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32) / np.float32(255.0), m


def test_payload_id() -> None:
    assert wm.payload_id(SHA) == SHA[:4]
    assert wm.payload_id(SHA[:4].upper()) == SHA[:4]
    assert wm.payload_id(wm.payload_id(SHA)) == SHA[:4]
    with pytest.raises(ValueError):
        wm.payload_id("xyz1")
    with pytest.raises(ValueError):
        wm.payload_id("ab")


def test_payload_bits_carry_marker_id_and_crc() -> None:
    a, b = wm.payload_bits("0000"), wm.payload_bits("ffff")
    k = wm.MARKER_BITS + wm.ID_BITS + wm.CRC_BITS
    assert a.shape == b.shape == (k,)
    assert np.array_equal(a[:wm.MARKER_BITS], b[:wm.MARKER_BITS])  # the fixed marker
    assert a[wm.MARKER_BITS:wm.MARKER_BITS + wm.ID_BITS].sum() == 0
    assert b[wm.MARKER_BITS:wm.MARKER_BITS + wm.ID_BITS].sum() == wm.ID_BITS
    assert not np.array_equal(wm.payload_bits("1234")[-wm.CRC_BITS:],
                              wm.payload_bits("1235")[-wm.CRC_BITS:])


def test_canonical_matrix_and_canon_to_crop(photo: tuple[np.ndarray, np.ndarray]) -> None:
    _, lm = photo
    c = wm.canonical_matrix(lm)
    assert c.shape == (2, 3)
    assert np.allclose(c, crop_matrix(lm, wm.CANON_SIZE, "face", 1.0))
    m = crop_matrix(lm, 256, "face", 1.0)
    # Canonical and 256 px crops share the centering: the map is a pure ×2 scale.
    assert np.allclose(wm.canon_to_crop(lm, m), [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], atol=1e-9)
    shifted = compose_affine(np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]), m)
    assert np.allclose(wm.canon_to_crop(lm, shifted)[:, 2], [3.0, -2.0], atol=1e-9)


def test_embed_is_deterministic_new_and_typed(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    face, m = _crop(rgb, lm, 128)
    before = face.copy()
    a = wm.embed_face(face, wm.canon_to_crop(lm, m), SHA)
    b = wm.embed_face(face, wm.canon_to_crop(lm, m), SHA)
    assert np.array_equal(face, before)  # input untouched
    assert a is not face and a.dtype == np.float32 and a.shape == face.shape
    assert np.array_equal(a, b)
    d = a - face
    assert np.abs(d).max() > 0
    inner = ((face > 0.01) & (face < 0.99)).all(axis=2)  # not clipped
    assert np.allclose(d[..., 0][inner], d[..., 1][inner], atol=1e-6)  # same on R, G, B
    assert np.allclose(d[..., 2][inner], d[..., 1][inner], atol=1e-6)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, wm.embed_face(face, wm.canon_to_crop(lm, m), "beef"))


def test_embed_odd_size_and_bad_input(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    face, m = _crop(rgb, lm, 99)
    out = wm.embed_face(face, wm.canon_to_crop(lm, m), SHA)
    assert out.shape == (99, 99, 3) and out.dtype == np.float32
    with pytest.raises(ValueError):
        wm.embed_face(face.astype(np.float64), wm.canon_to_crop(lm, m), SHA)
    with pytest.raises(ValueError):
        wm.embed_face(face[..., :2], wm.canon_to_crop(lm, m), SHA)
    with pytest.raises(ValueError):
        wm.embed_face(face, wm.canon_to_crop(lm, m), "not hex")


@pytest.mark.parametrize("size", [128, 256])
def test_clean_round_trip_psnr_and_unmarked(photo: tuple[np.ndarray, np.ndarray],
                                            size: int) -> None:
    rgb, lm = photo
    sw = attacks.swap_face(rgb, lm, SHA, size)
    assert attacks.face_psnr(sw.marked, sw.plain, sw.matte) >= 45.0
    (mark,) = wm.detect_faces(sw.marked, [lm])
    assert mark.detected and mark.payload == SHA[:4]
    assert mark.score >= wm.SCORE_THRESHOLD and 0.999 <= mark.confidence <= 1.0
    assert mark.marker_errors <= 2
    x, y, w, h = mark.box
    assert w > 50 and h > 50 and 0 <= x < rgb.shape[1] and 0 <= y < rgb.shape[0]
    # The same frame without the mark, and the original photo: not detected.
    for frame in (sw.plain, rgb):
        (m0,) = wm.detect_faces(frame, [lm])
        assert not m0.detected and m0.payload is None
        assert 0.0 <= m0.confidence < 0.99


def test_float_frame_and_validation(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    sw = attacks.swap_face(rgb, lm, SHA, 128)
    f32 = sw.marked.astype(np.float32) / np.float32(255.0)
    (a,) = wm.detect_faces(f32, [lm])
    (b,) = wm.detect_faces(sw.marked, [lm])
    assert a.detected and a.payload == b.payload
    assert a.score == pytest.approx(b.score, abs=1e-3)
    rgba = np.dstack([sw.marked, np.full(sw.marked.shape[:2], 255, np.uint8)])
    assert wm.detect_faces(rgba, [lm])[0].detected
    assert wm.detect_faces(sw.marked, []) == []
    with pytest.raises(ValueError):
        wm.detect_faces(sw.marked[..., 0], [lm])
    with pytest.raises(ValueError):
        wm.detect_faces(sw.marked.astype(np.float64), [lm])


def test_detect_frame_finds_the_face(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    sw = attacks.swap_face(rgb, lm, SHA, 128)
    marks = wm.detect_frame(sw.marked)
    assert len(marks) == 1 and marks[0].detected and marks[0].payload == SHA[:4]
    assert not wm.detect_frame(rgb)[0].detected
    # A face-less crop of the frame gives no faces at all.
    assert wm.detect_frame(np.ascontiguousarray(rgb[:40, :60])) == []


def test_null_scores_are_centred_below_threshold(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    rng = np.random.default_rng(3)
    markers = rng.integers(0, 2, (64, wm.MARKER_BITS)).astype(np.uint8)
    s = wm.null_scores(rgb, lm, markers)
    assert s.shape == (64,)
    assert 2.5 < float(np.median(s)) < 4.5
    assert float(s.max()) < wm.SCORE_THRESHOLD


def test_null_tail_is_monotone() -> None:
    xs = np.linspace(0.0, 9.0, 91)
    p = [wm.null_tail(float(x)) for x in xs]
    assert p[0] == 1.0 and all(a >= b for a, b in zip(p, p[1:]))
    assert wm.null_tail(wm.SCORE_THRESHOLD) <= wm.FP_TARGET
    assert wm.null_tail(8.0) < 1e-6
