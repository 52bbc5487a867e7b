"""Contract tests for every registered verifier of the detector chain (extract/detect/verify.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceplate.core.errors import ConfigError
from faceplate.core.types import BBox, Detection
from faceplate.extract.detect import DETECTORS
from faceplate.extract.detect.verify import VERIFIERS, Verdict, VerifyConfig, level_angle
from faceplate.io import samples

NAMES = VERIFIERS.names()


def rgb(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(samples.path(name)))[:, :, ::-1])


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, Detection]:
    img = rgb("obama.jpg")
    return img, DETECTORS.create("blazeface").detect(img)[0]


def test_registry() -> None:
    assert {"agreement", "families", "presence", "hog_landmarks"} <= set(NAMES)
    assert DETECTORS.default_config("chain").verifier == "families"
    with pytest.raises(ConfigError):
        VerifyConfig(presence_threshold=1.5)


@pytest.mark.parametrize("name", NAMES)
def test_accepts_a_real_face(name: str, face: tuple[np.ndarray, Detection]) -> None:
    img, det = face
    v = VERIFIERS.create(name).verify(img, det)
    assert isinstance(v, Verdict)
    assert v.accepted and v.reason == ""
    assert abs(v.roll) < 10
    assert np.hypot(*np.subtract(v.box.center, det.bbox.center)) < 0.2 * det.bbox.size


@pytest.mark.parametrize("name", NAMES)
def test_rejects_texture_with_a_reason(name: str) -> None:
    img = rgb("gravel.png")
    cand = Detection(BBox(180, 180, 150, 150), 0.9, "blazeface",
                     np.array([[220, 230], [290, 230], [255, 260], [255, 300], [190, 240],
                               [320, 240]], np.float32))
    v = VERIFIERS.create(name).verify(img, cand)
    assert not v.accepted
    assert len(v.reason) > 10
    again = VERIFIERS.create(name).verify(img.copy(), cand)
    assert (again.accepted, again.reason) == (v.accepted, v.reason)  # deterministic


def test_levelling_follows_the_eyes() -> None:
    kp = np.array([[100, 100], [140, 140], [110, 130], [110, 160], [0, 0], [0, 0]], np.float32)
    det = Detection(BBox(80, 80, 80, 80), 0.9, "blazeface", kp)
    assert np.degrees(level_angle(det)) == pytest.approx(45.0)
    upside = Detection(det.bbox, 0.9, "blazeface", kp[[1, 0, 2, 3, 4, 5]])
    # The eyes' order says the face is upside down, but the mouth lies below the eye line
    # only when turned the other way: 180° more.
    assert np.degrees(level_angle(upside)) % 360 == pytest.approx(45.0)
    assert level_angle(Detection(det.bbox, 0.9, "dlib_hog")) == 0.0
