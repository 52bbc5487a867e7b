"""The watermark on REAL swaps: marked faces survive each attack of issue #6, unmarked faces
of the sample media are not detected.

Frames are swapped by the real ``swap_frame`` with a really trained model
(``tests.convert_model.trained_model``: B = the man → A = the woman, 64 px; it converts any
face), faces found by the default ``Extractor``; attacked; and looked for with
``detect_frame`` (its own detection and landmarks, nothing from the swap). 640×360 frames of
both sample videos and 1920×1080 frames of the upscaled test footage.
``benchmarks/provenance.py`` runs the same on more frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceplate.convert.swap import ConvertConfig, TorchPredictor, swap_frame
from faceplate.core.colorspace import linear_to_srgb, srgb_to_linear
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.io import samples
from faceplate.io.media import open_source, read_image
from faceplate.provenance import watermark as wm
from tests import provenance_attacks as attacks
from tests.convert_model import trained_model

#: The least detection rate each attack must keep on this test's frames (measured: all of
#: them; the benchmark reports the rates on more frames).
MIN_RATE = {"none": 1.0, "jpeg75": 0.95, "h264_crf23": 0.9, "downscale_0.5": 0.95,
            "grade_dark": 0.95, "grade_bright": 0.95}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> TorchPredictor:
    return TorchPredictor(trained_model(tmp_path_factory))


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(ExtractConfig(masks=("extended",), write_faces=False, thumbnails=False))


def _swaps(path: Path, step: int, pred: TorchPredictor, ex: Extractor) -> list[attacks.Swapped]:
    return [attacks.real_swap(rgb, recs, pred)
            for rgb, recs in attacks.one_face_frames(ex, path, step)]


@pytest.fixture(scope="module")
def clips(predictor: TorchPredictor, extractor: Extractor) -> dict[str, list[attacks.Swapped]]:
    """Real swaps: 640×360 (both sample videos) and 1920×1080 (the upscaled test clip)."""
    small = (_swaps(samples.path("WolfgangLanger_Pexels.mp4"), 40, predictor, extractor)
             + _swaps(samples.path("single_face.mp4"), 12, predictor, extractor))
    big = _swaps(samples.upscaled_clip("single_face.mp4", 48), 12, predictor, extractor)
    assert len(small) >= 15 and len(big) >= 3
    for sw in small + big:
        assert attacks.face_psnr(sw.marked, sw.plain, sw.matte) >= 45.0
        # The mark stays inside the matte: bit-exact elsewhere.
        assert not np.any(sw.marked[sw.matte == 0.0] != sw.plain[sw.matte == 0.0])
    return {"small": small, "big": big}


def test_real_swap_is_marked_and_detected(clips: dict[str, list[attacks.Swapped]],
                                          predictor: TorchPredictor) -> None:
    """The un-attacked swaps (both resolutions): detected with the model's id; the same swaps
    without the mark are not."""
    for sw in clips["small"][::4] + clips["big"]:
        marks = wm.detect_frame(sw.marked)
        assert len(marks) == 1 and marks[0].detected, marks
        assert marks[0].payload == predictor.model_id
        (plain,) = wm.detect_frame(sw.plain)
        assert not plain.detected and plain.payload is None


def test_linear_float_frame_is_marked_inside_the_matte(predictor: TorchPredictor,
                                                       extractor: Extractor) -> None:
    """A scene-linear float frame (the OFX path): values beyond [0, 1] outside the face are
    kept exactly, and the displayed result carries the mark."""
    with open_source(samples.path("single_face.mp4")) as src:
        rgb = src.read(20).rgb
    recs = attacks.face_records(extractor, rgb)
    lin = srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))
    lin[:40, :40] = 6.0
    lin[-20:, -20:, 1] = -0.5
    res = swap_frame(lin, recs, predictor, ConvertConfig(), frame_is_linear=True)
    matte = res.matte()
    assert np.array_equal(res.frame[matte == 0.0], lin[matte == 0.0])
    disp = (np.clip(linear_to_srgb(res.frame), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    (mark,) = wm.detect_frame(disp)
    assert mark.detected and mark.payload == predictor.model_id


def test_head_turn_frame_found_by_the_second_pass(predictor: TorchPredictor,
                                                  extractor: Extractor) -> None:
    """Frame 112 of the woman's clip at 1080p (head turned, hand on the face): the swapped,
    blurred face fails the extractor's detector check upright and its rotation retry finds
    an upside-down "face" above it (score ≈ 4, no mark there). The verifier's second pass
    (raw upright BlazeFace candidates, landmarks by the embedder's own procedure, stricter
    threshold) finds the mark."""
    with open_source(samples.upscaled_clip("WolfgangLanger_Pexels.mp4", 120)) as src:
        rgb = src.read(112).rgb
    sw = attacks.real_swap(rgb, attacks.face_records(extractor, rgb), predictor)
    found = [m for m in wm.detect_frame(sw.marked) if m.detected]
    assert len(found) == 1 and found[0].payload in (None, predictor.model_id)
    assert not any(m.detected for m in wm.detect_frame(sw.plain))


@pytest.mark.slow
@pytest.mark.parametrize("attack", attacks.ATTACKS)
def test_marked_faces_survive(clips: dict[str, list[attacks.Swapped]], attack: str,
                              predictor: TorchPredictor) -> None:
    for res, clip in clips.items():
        frames = attacks.attack(attack, [s.marked for s in clip])
        found = payloads = 0
        for f in frames:
            best = max(wm.detect_frame(f), key=lambda m: m.score, default=None)
            if best is not None and best.detected:
                found += 1
                payloads += best.payload == predictor.model_id
                # A decoded payload is never a wrong one.
                assert best.payload in (None, predictor.model_id)
        rate = found / len(frames)
        assert rate >= MIN_RATE[attack], f"{attack} {res}: detected {found}/{len(frames)}"
        # The id is weaker than the marker (16 + 8 bits decoded one by one, no search of its
        # own): H.264 at 640×360 blurs it most (measured: about half the frames).
        assert payloads >= (0.3 if attack == "h264_crf23" else 0.8) * found


def test_unmarked_sample_media_not_detected() -> None:
    """Every face of single_face.mp4, every 6th frame of the woman's clip, and the photos."""
    faces = 0
    detected = []
    frames: list[tuple[str, np.ndarray]] = []
    with open_source(samples.path("single_face.mp4")) as src:
        frames += [(f.info.name, f.rgb) for f in src]
    with open_source(samples.path("WolfgangLanger_Pexels.mp4")) as src:
        frames += [(f.info.name, f.rgb) for f in src if f.info.index % 6 == 0]
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "single_face.jpg",
                 "multi_face.jpg", "einstein.jpg"):
        frames.append((name, read_image(samples.path(name)).rgb))
    for name, rgb in frames:
        for mark in wm.detect_frame(rgb):
            faces += 1
            if mark.detected:
                detected.append((name, mark.score))
    assert faces >= 150
    assert detected == []
