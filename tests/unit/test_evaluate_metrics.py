"""Unit tests of the evaluation metrics on synthetic arrays (no model, no file).

ΔE2000 is checked against the 34 published pairs of Sharma, Wu & Dalal (2005), Table 1; the
region, colour, seam, landmark and jitter functions against constructions whose answer is known.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from faceplate.core.colorspace import srgb_to_lab
from faceplate.core.geometry import MEAN_FACE_68
from faceplate.core.types import BBox, FaceRecord
from faceplate.evaluate.metrics import (
    colour_delta,
    delta_e_2000,
    face_regions,
    gradient_energy,
    inter_ocular,
    jitter_per_frame,
    landmark_error,
    seam_score,
)
from faceplate.evaluate.report import METRICS, FaceScores, FrameScores, Report
from faceplate.evaluate.run import pair_faces
from faceplate.extract.smoothing import landmark_jitter

# Sharma, Wu & Dalal, Color Res. Appl. 30(1) 2005, Table 1: (Lab1, Lab2, ΔE00).
SHARMA = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def face_at(cx: float, cy: float, size: float, angle: float = 0.0) -> np.ndarray:
    """68×2 mean-face landmarks centred at (cx, cy), ``size`` px across, rotated by ``angle``."""
    pts = (MEAN_FACE_68 - MEAN_FACE_68.mean(axis=0)) * size
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, -s], [s, c]]).T
    return (pts + np.array([cx, cy])).astype(np.float32)


# --------------------------------------------------------------------------- ΔE2000


@pytest.mark.parametrize("lab1, lab2, expected", SHARMA, ids=[f"pair{i + 1}"
                                                             for i in range(len(SHARMA))])
def test_delta_e_2000_matches_sharma_table(lab1, lab2, expected):
    assert float(delta_e_2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected,
                                                                                 abs=1e-4)


def test_delta_e_2000_vectorised_symmetric_and_zero():
    a = np.array([s[0] for s in SHARMA])
    b = np.array([s[1] for s in SHARMA])
    d = delta_e_2000(a, b)
    assert d.shape == (34,) and d.dtype == np.float64
    np.testing.assert_allclose(d, [s[2] for s in SHARMA], atol=1e-4)
    np.testing.assert_allclose(delta_e_2000(b, a), d, atol=1e-12)
    np.testing.assert_array_equal(delta_e_2000(a, a), 0.0)
    # broadcasting: one colour against an image of colours
    img = a.reshape(2, 17, 3)
    out = delta_e_2000(img, np.array([50.0, 0.0, 0.0]))
    assert out.shape == (2, 17)
    # ΔE00 is not ΔE76: a lightness step of 10 around L=50 is exactly 10, away from it less
    assert float(delta_e_2000(np.array([50.0, 0, 0]), np.array([60.0, 0, 0]))) < 10.0
    assert float(delta_e_2000(np.array([45.0, 0, 0]), np.array([55.0, 0, 0]))) == \
        pytest.approx(10.0, abs=1e-9)  # S_L = 1 at a mean lightness of 50
    with pytest.raises(ValueError):
        delta_e_2000(np.zeros(2), np.zeros(3))


# --------------------------------------------------------------------------- landmarks


def test_landmark_error_translation_and_scale():
    lm = face_at(150.0, 120.0, 100.0)
    iod = inter_ocular(lm)
    assert iod == pytest.approx(100.0 * (MEAN_FACE_68[45, 0] - MEAN_FACE_68[36, 0]), rel=1e-5)
    assert landmark_error(lm, lm) == 0.0
    moved = lm + np.array([3.0, 4.0], np.float32)
    assert landmark_error(lm, moved) == pytest.approx(5.0 / iod, rel=1e-5)
    # normalised: the same relative error on a face twice as large gives the same number
    big = face_at(300.0, 240.0, 200.0)
    assert landmark_error(big, big + np.array([6.0, 8.0], np.float32)) == \
        pytest.approx(landmark_error(lm, moved), rel=1e-5)
    with pytest.raises(ValueError):
        landmark_error(lm[:60], lm[:60])


def test_pair_faces_by_iou():
    def rec(lm, i):
        return FaceRecord(0, "f", i, BBox.from_points(lm), lm, 1.0)

    a = [rec(face_at(100, 100, 60), 0), rec(face_at(300, 100, 60), 1)]
    b = [rec(face_at(302, 101, 60), 0), rec(face_at(600, 300, 60), 1)]
    pairs = pair_faces(a, b, 0.3)
    assert pairs[0] == (None, 0.0)
    assert pairs[1][0] == 0 and pairs[1][1] > 0.8
    assert pair_faces(a, [], 0.3) == [(None, 0.0), (None, 0.0)]


# --------------------------------------------------------------------------- regions


def test_face_regions_geometry_odd_frame():
    shape = (301, 299, 3)  # odd, non-square: catches H/W swaps
    lm = face_at(140.0, 160.0, 110.0, angle=0.2)
    reg = face_regions(lm, shape)
    x0, y0, x1, y1 = reg.box
    assert 0 <= x0 < x1 <= 299 and 0 <= y0 < y1 <= 301
    for arr in (reg.mask, reg.skin, reg.ring, reg.band):
        assert arr.shape == (y1 - y0, x1 - x0)
    inside = reg.mask >= 0.5
    assert reg.skin.any() and reg.ring.any() and reg.band.any()
    assert not (reg.skin & ~inside).any()  # skin within the hull
    assert not (reg.ring & inside).any()  # ring outside it
    assert (reg.band & inside).any() and (reg.band & ~inside).any()  # band straddles it
    assert not (reg.skin & reg.ring).any()
    # the hull's centroid is the face's centroid (no H/W swap, no half-pixel slip)
    ys, xs = np.nonzero(inside)
    cx, cy = xs.mean() + 0.5 + x0, ys.mean() + 0.5 + y0
    hull_pts = lm[:27]  # jaw and brows bound the hull
    assert abs(cx - 140.0) < 6 and hull_pts[:, 1].min() < cy < hull_pts[:, 1].max()
    # regions scale with the face
    small = face_regions(face_at(140.0, 160.0, 55.0), shape)
    assert small.scale == pytest.approx(reg.scale / 2, rel=0.02)
    assert small.ring.sum() < reg.ring.sum()


def test_face_regions_clipped_and_outside_frame():
    lm = face_at(10.0, 12.0, 100.0)  # mostly off the top-left corner
    reg = face_regions(lm, (120, 90, 3))
    assert reg.box[0] == 0 and reg.box[1] == 0
    assert reg.mask.shape == (reg.box[3], reg.box[2])
    gone = face_regions(face_at(-500.0, -500.0, 50.0), (120, 90, 3))
    assert gone.mask.size == 0 and not gone.band.any()
    img = np.zeros((120, 90, 3), np.uint8)
    assert math.isnan(colour_delta(img, gone).delta_e)
    assert math.isnan(seam_score(img, img, gone).score)


def test_face_regions_other_face_widens_band():
    lm = face_at(150.0, 150.0, 100.0)
    one = face_regions(lm, (300, 300, 3))
    both = face_regions(lm, (300, 300, 3), other=lm + np.float32(15.0))
    # the same skin and ring (drawn from the input face) in a box that covers both faces
    assert both.skin.sum() == one.skin.sum() and both.ring.sum() == one.ring.sum()
    assert both.band.sum() > one.band.sum()


# --------------------------------------------------------------------------- colour


def _two_tone(shape, reg, inside_rgb, outside_rgb):
    img = np.empty(shape, np.float32)
    img[:] = outside_rgb
    view = img[reg.slices]
    view[reg.mask >= 0.5] = inside_rgb
    return img


def test_colour_delta_measures_the_two_colours():
    shape = (257, 263, 3)
    lm = face_at(130.0, 125.0, 100.0)
    reg = face_regions(lm, shape)
    skin, plate = (0.80, 0.60, 0.50), (0.70, 0.62, 0.55)
    img = _two_tone(shape, reg, skin, plate)
    got = colour_delta(img, reg)
    want = float(delta_e_2000(srgb_to_lab(np.array(skin, np.float32)),
                              srgb_to_lab(np.array(plate, np.float32))))
    assert got.delta_e == pytest.approx(want, rel=1e-3)
    np.testing.assert_allclose(got.skin_lab, srgb_to_lab(np.array(skin, np.float32)), atol=1e-3)
    # one colour everywhere: 0; uint8 and float agree
    flat = _two_tone(shape, reg, plate, plate)
    assert colour_delta(flat, reg).delta_e == pytest.approx(0.0, abs=1e-4)
    u8 = (img * 255 + 0.5).astype(np.uint8)
    assert colour_delta(u8, reg).delta_e == pytest.approx(got.delta_e, abs=0.5)
    # a larger shift inside the mask gives a larger ΔE
    far = _two_tone(shape, reg, (0.95, 0.45, 0.35), plate)
    assert colour_delta(far, reg).delta_e > got.delta_e + 5


# --------------------------------------------------------------------------- seam


def _texture(shape, rng):
    import cv2

    noise = rng.random(shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 0.6 + 0.2, 0, 1)


def test_seam_score_identical_step_and_blur(rng):
    import cv2

    shape = (211, 199, 3)
    lm = face_at(100.0, 105.0, 90.0)
    reg = face_regions(lm, shape)
    plate = _texture(shape, rng)
    same = seam_score(plate, plate.copy(), reg)
    assert same.score == 1.0 and same.ratio == 1.0
    assert same.energy_input == pytest.approx(gradient_energy(plate, reg))
    # a hard brightness step inside the hull: an added edge along the whole border
    step = plate.copy()
    step[reg.slices][reg.mask >= 0.5] += 0.15
    s = seam_score(plate, step, reg)
    assert s.score > 1.3 and s.ratio > 1.3
    # a pure chroma step (luma unchanged) is a seam too
    chroma = plate.copy()
    chroma[reg.slices][reg.mask >= 0.5] += np.array([0.1, -0.0297, 0.0], np.float32)
    assert seam_score(plate, chroma, reg).score > 1.15
    # blurring the border lowers the plain ratio but adds no edge
    blur = cv2.GaussianBlur(plate, (0, 0), 2.0)
    b = seam_score(plate, blur, reg)
    assert b.ratio < 0.8 and b.score == pytest.approx(1.0, abs=0.05)
    # moving the content by a few pixels inside the band: the plain ratio barely moves, the
    # seam score sees the moved edges
    band_img = plate.copy()
    band_img[reg.slices][reg.mask >= 0.5] = 0.9
    moved = np.roll(band_img, 4, axis=1)
    m = seam_score(band_img, moved, reg)
    assert m.score > 1.2


# --------------------------------------------------------------------------- jitter


def test_jitter_per_frame_reuses_landmark_jitter(rng):
    base = face_at(200.0, 150.0, 120.0)
    t = 9
    steady = np.stack([base + np.array([2.0 * k, 1.0 * k], np.float32) for k in range(t)])
    np.testing.assert_allclose(np.nan_to_num(jitter_per_frame(steady)), 0.0, atol=1e-9)
    noisy = steady + rng.normal(0, 1.5, steady.shape)
    per = jitter_per_frame(noisy)
    assert math.isnan(per[0]) and math.isnan(per[-1])
    assert np.nanmean(per) == pytest.approx(landmark_jitter(noisy), rel=1e-9)
    assert np.nanmean(per) > 0.01
    gap = noisy.copy()
    gap[4] = np.nan
    pg = jitter_per_frame(gap)
    assert np.isnan(pg[3:6]).all() and np.isfinite(pg[1:3]).all()


# --------------------------------------------------------------------------- report


def test_report_json_stats_and_plot(tmp_path):
    rep = Report(input="in.mp4", output="out.mp4", source="A", alignments=None,
                 settings={"detector": "chain"})
    for i in range(6):
        faces = [] if i == 2 else [FaceScores(0, 0 if i != 4 else None, 0.9, 0,
                                              landmark_error=0.01 * i, seam=1.0 + i,
                                              delta_e=math.nan if i == 5 else 2.0 * i)]
        rep.frames.append(FrameScores(i, f"f{i}", len(faces), len(faces) if i != 4 else 0,
                                      faces))
    ov = rep.overall()
    assert set(ov) == set(METRICS)
    assert ov["landmark_error"]["count"] == 5
    assert ov["landmark_error"]["mean"] == pytest.approx(0.01 * (0 + 1 + 3 + 4 + 5) / 5)
    assert ov["delta_e"]["median"] == pytest.approx(4.0)  # 0, 2, 6, 8
    assert ov["jitter_output"]["count"] == 0 and ov["jitter_output"]["mean"] is None
    c = rep.counts()
    assert c["frames"] == 6 and c["frames_without_input_face"] == 1
    assert c["frames_without_output_face"] == 2 and c["unmatched_faces"] == 1
    path = rep.write_json(tmp_path / "r.json")
    data = json.loads(path.read_text())  # strict JSON: NaN became null
    assert data["frames"][5]["faces"][0]["delta_e"] is None
    assert data["frames"][2]["faces"] == []
    assert data["overall"]["seam"]["max"] == 6.0
    png = rep.write_plot(tmp_path / "p.png")
    blob = png.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 10_000
