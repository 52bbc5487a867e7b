"""Unit tests of the face watermark (faceplate.provenance.watermark) on one real photo."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.geometry import compose_affine, crop_matrix, to_cv2
from faceplate.io import samples
from faceplate.io.media import read_image
from faceplate.provenance import watermark as wm
from faceplate.provenance.watermark import embed as wm_embed
from faceplate.provenance.watermark import sampling as wm_sampling
from faceplate.provenance.watermark import scheme as wm_scheme
from tests import provenance_attacks as attacks

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
    inner = ((face > 0.03) & (face < 0.97)).all(axis=2)  # not clipped (changes < 8/255)
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
        # One null sample: below the threshold's tail (measured 0.9967 here: score 4.81).
        assert 0.0 <= m0.confidence < 0.999


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


# --------------------------------------------------------------------------------------------
# embed_in_frame: the mark on the frame's final pixels, inside the matte only


def _pasted(rgb: np.ndarray, lm: np.ndarray) -> tuple[attacks.Swapped, tuple[int, int, int, int],
                                                     np.ndarray]:
    sw = attacks.swap_face(rgb, lm, SHA, 128)
    ys, xs = np.nonzero(sw.matte > 0.0)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return sw, box, np.ascontiguousarray(sw.matte[box[1]:box[3], box[0]:box[2]])


def test_embed_in_frame_uint8_only_inside_the_matte(photo: tuple[np.ndarray, np.ndarray]
                                                    ) -> None:
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    frame = sw.plain.copy()
    mark = wm.embed_in_frame(frame, box, matte, lm, SHA, frame_is_linear=False)
    assert mark is not None and mark.refined
    assert mark.change.shape == (wm.CANON_SIZE, wm.CANON_SIZE)
    changed = np.any(frame != sw.plain, axis=2)
    assert changed.sum() > 1000
    assert not changed[sw.matte == 0.0].any()  # bit-exact outside the matte
    assert np.array_equal(frame, sw.marked)  # the stand-in swap is this very call
    assert attacks.face_psnr(frame, sw.plain, sw.matte) >= 45.0
    # Re-found landmarks stay near the record's (same face).
    assert np.abs(mark.landmarks - lm).max() < 10.0
    (m,) = wm.detect_faces(frame, [mark.landmarks])
    assert m.detected and m.payload == SHA[:4] and m.marker_errors == 0


def test_embed_in_frame_uint8_bytes_follow_the_float_change(photo: tuple[np.ndarray, np.ndarray]
                                                            ) -> None:
    # The uint8 path adds round(255 · change · matte) to the bytes with saturation; the float
    # path adds the change itself: on the same display-sRGB pixels the two agree to the byte
    # (a rare rounding tie aside), saturation at 0 and 255 included.
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    plain = sw.plain.copy()
    plain[::7, ::5] = 255  # saturated and black specks inside the face
    plain[3::7, 2::5] = 0
    frame = plain.copy()
    as_float = plain.astype(np.float32) / np.float32(255.0)
    wm.embed_in_frame(frame, box, matte, lm, SHA, frame_is_linear=False)
    wm.embed_in_frame(as_float, box, matte, lm, SHA, frame_is_linear=False)
    want = np.clip(np.round(as_float * 255.0), 0, 255).astype(np.int16)
    diff = np.abs(frame.astype(np.int16) - want)
    assert (frame != plain).sum() > 1000
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # RGBA bytes (the RGB channels are not packed): the same RGB, alpha untouched.
    rgba = np.dstack([plain, np.full(plain.shape[:2], 77, np.uint8)])
    wm.embed_in_frame(rgba, box, matte, lm, SHA, frame_is_linear=False)
    assert np.array_equal(rgba[..., :3], frame) and (rgba[..., 3] == 77).all()


def test_second_pass_runs_only_where_the_matte_attenuates(photo: tuple[np.ndarray, np.ndarray],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # A matte of 1 under the patterns leaves nothing for a second pass (skipped); a matte that
    # halves the lower face does, and the second pass brings its projections back onto the
    # lattice (closer than one pass alone).
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    passes: list[int] = []
    gain = wm_scheme._gain

    def counted(*args: object) -> float:
        passes[-1] += 1
        return gain(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(wm_embed, "_gain", counted)
    # Without the energy cap (a capped pass always gets another: the cap changes the move).
    import dataclasses

    uncapped = dataclasses.replace(wm_scheme._bank(), max_energy=float("inf"))
    monkeypatch.setattr(wm_embed, "_bank", lambda name="full": uncapped)

    def lattice_error(frame: np.ndarray, mark: wm.FrameMark) -> float:
        b = uncapped
        src, m = wm_sampling._source(wm_sampling._luma(frame), (0, 0), np.linalg.inv(
            np.vstack([mark.to_canon, [0.0, 0.0, 1.0]]))[:2])
        h = wm_sampling._warp_box(src, m, b).ravel()
        u = (b.patterns_box @ h / gain(h, b.window_box) - b.dither) / b.delta \
            - wm.payload_bits(SHA) * 0.5
        return float(np.abs(u - np.round(u)).mean())

    frame = sw.plain.copy()
    passes.append(0)
    full = wm.embed_in_frame(frame, box, np.ones_like(matte), lm, SHA, frame_is_linear=False)
    assert full is not None and passes[-1] == 1
    half = np.ones_like(matte)
    half[half.shape[0] // 2:] *= 0.5
    errors = []
    for n in (1, 2):
        monkeypatch.setattr(wm_embed, "EMBED_PASSES", n)
        frame = sw.plain.copy()
        passes.append(0)
        mark = wm.embed_in_frame(frame, box, half, lm, SHA, frame_is_linear=False)
        assert mark is not None and passes[-1] == n
        errors.append(lattice_error(frame, mark))
    assert errors[1] < 0.5 * errors[0]


def test_embed_in_frame_float_linear_and_rgba(photo: tuple[np.ndarray, np.ndarray]) -> None:
    from faceplate.core.colorspace import linear_to_srgb, srgb_to_linear

    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    disp = sw.plain.astype(np.float32) / np.float32(255.0)
    # Scene-linear RGBA with values above 1 and below 0 away from the face.
    lin = np.dstack([srgb_to_linear(disp), np.full(disp.shape[:2], 0.5, np.float32)])
    lin[:10, :10, :3] = 7.5
    lin[-5:, -5:, 0] = -0.25
    before = lin.copy()
    wm.embed_in_frame(lin, box, matte, lm, SHA, frame_is_linear=True)
    outside = np.broadcast_to((sw.matte == 0.0)[..., None], lin.shape)
    assert np.array_equal(lin[outside], before[outside])
    assert np.array_equal(lin[..., 3], before[..., 3])  # alpha untouched
    assert np.any(lin != before)
    back = (np.clip(linear_to_srgb(lin[..., :3]), 0, 1) * 255.0 + 0.5).astype(np.uint8)
    (m,) = wm.detect_faces(back, [lm])
    assert m.detected and m.payload == SHA[:4]
    # Float display sRGB: the same mark as the uint8 frame (same picture, same landmarks).
    f32 = disp.copy()
    wm.embed_in_frame(f32, box, matte, lm, SHA, frame_is_linear=False)
    u8 = sw.plain.copy()
    wm.embed_in_frame(u8, box, matte, lm, SHA, frame_is_linear=False)
    assert np.abs(f32 * 255.0 - u8.astype(np.float32)).max() <= 0.51
    with pytest.raises(ValueError):
        wm.embed_in_frame(sw.plain.copy(), box, matte, lm, SHA, frame_is_linear=True)
    with pytest.raises(ValueError):
        wm.embed_in_frame(sw.plain.copy(), box, matte[1:], lm, SHA, frame_is_linear=False)


def test_embed_by_hand_composites_to_the_same_mark(photo: tuple[np.ndarray, np.ndarray]
                                                   ) -> None:
    """A raw paste (straight face + matte, composited later by the user) carries the mark the
    overlay blend gives once composited."""
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    x0, y0, x1, y1 = box
    plate = rgb.astype(np.float32) / np.float32(255.0)
    over = sw.plain.astype(np.float32) / np.float32(255.0)
    # The straight face where the matte is > 0 (recovered from the overlay composite).
    m3 = sw.matte[..., None]
    raw = np.where(m3 > 0.0, (over - plate * (1.0 - m3)) / np.maximum(m3, 1e-6), plate)
    raw = np.where(m3 > 0.02, raw, over).astype(np.float32)
    comp = (raw * m3 + plate * (1.0 - m3)).astype(np.float32)
    a = comp.copy()
    wm.embed_in_frame(a, box, matte, lm, SHA, frame_is_linear=False)
    b = raw.copy()
    wm.embed_in_frame(b, box, matte, lm, SHA, frame_is_linear=False,
                      seen=np.ascontiguousarray(comp[y0:y1, x0:x1]), by_hand=True)
    by_hand = b * m3 + plate * (1.0 - m3)
    sel = sw.matte > 0.02
    assert np.abs(by_hand[sel] - a[sel]).max() < 1e-4
    with pytest.raises(ValueError):
        wm.embed_in_frame(raw.copy(), box, matte, lm, SHA, frame_is_linear=False, by_hand=True)


def test_mark_crop_matches_the_frame_mark(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    frame = sw.plain.copy()
    mark = wm.embed_in_frame(frame, box, matte, lm, SHA, frame_is_linear=False)
    assert mark is not None
    face, m = _crop(sw.plain, lm, 256)
    marked = wm.mark_crop(face, mark, m)
    assert marked.shape == face.shape and marked is not face
    # The crop of the marked frame ≈ the marked crop (resampling aside).
    ref, _ = _crop(frame, lm, 256)
    inner = np.zeros((256, 256), bool)
    inner[80:180, 70:186] = True
    err_marked = np.abs(marked - ref)[inner].mean()
    err_plain = np.abs(face - ref)[inner].mean()
    assert err_marked < 0.6 * err_plain


def test_refine_landmarks_from_a_box(photo: tuple[np.ndarray, np.ndarray]) -> None:
    from faceplate.core.types import BBox

    rgb, lm = photo
    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    box = BBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    a = wm.refine_landmarks(rgb, box)
    b = wm.refine_landmarks(rgb.astype(np.float32) / np.float32(255.0), box)
    assert a is not None and b is not None and a.shape == (68, 2)
    assert np.array_equal(a, b)  # the float frame is aligned on its uint8 rendering
    assert np.sqrt(np.mean(np.sum((a - lm) ** 2, axis=1))) < 5.0
    assert wm.refine_landmarks(rgb, BBox(0.0, 0.0, 2.0, 2.0)) is None


def _mark(score: float, box: tuple[int, int, int, int] = (100, 100, 80, 80),
          payload: str | None = None) -> wm.FaceMark:
    detected = score >= wm.SCORE_THRESHOLD
    return wm.FaceMark(detected, 1.0 - wm.null_tail(score), payload if detected else None, box,
                       score)


def test_pool_tracks_lifts_a_weak_frame_between_marked_neighbours() -> None:
    far = (400, 100, 80, 80)  # another face, no overlap with the first
    frames = [[_mark(7.0, payload="ab12"), _mark(3.6, far)],
              [_mark(6.8, (104, 101, 80, 80), "ab12"), _mark(3.5, far)],
              [_mark(4.4, (108, 102, 81, 80)), _mark(3.7, far)],
              [_mark(6.9, (112, 103, 80, 80), "ab12"), _mark(3.4, far)],
              [_mark(7.1, (116, 104, 80, 80), "ab12")]]
    out = wm.pool_tracks(frames)
    weak = out[2][0]
    assert weak.detected and weak.by_track and weak.payload is None and weak.score == 4.4
    assert weak.track_score == pytest.approx(np.mean([7.0, 6.8, 4.4, 6.9, 7.1]))
    assert weak.confidence > 1.0 - wm.FP_TARGET
    # The unmarked face beside it pools only with itself across frames (box overlap).
    assert not any(row[1].detected for row in out[:4])
    assert all(row[1].track_score is not None and row[1].track_score < 4.0 for row in out[:4])
    assert [m.by_track for row in out for m in row].count(True) == 1
    # Judged alone (radius 0) nothing changes.
    assert wm.pool_tracks(frames, radius=0) == [list(r) for r in frames]
    # A face with no neighbour keeps track_score None.
    (lone,) = wm.pool_tracks([[_mark(4.0)], [], [_mark(4.0, far)]])[0]
    assert lone.track_score is None and not lone.detected


def test_pool_tracks_needs_a_face_detected_on_its_own() -> None:
    # The false-positive bound: a detection through the track always has a window member at
    # or above the threshold by itself (a mean can only reach it that way).
    rng = np.random.default_rng(7)
    lifted = 0
    for _ in range(300):
        scores = rng.normal(4.6, 0.6, 12)
        frames = [[_mark(float(s), (100 + i, 100, 80, 80))] for i, s in enumerate(scores)]
        for t, row in enumerate(wm.pool_tracks(frames)):
            if row[0].by_track:
                lifted += 1
                window = scores[max(0, t - wm.TRACK_RADIUS):t + wm.TRACK_RADIUS + 1]
                assert window.max() >= wm.SCORE_THRESHOLD > scores[t]
    assert lifted > 0  # the property was exercised



def test_mark_face_says_why_a_face_is_left_unmarked(photo: tuple[np.ndarray, np.ndarray]
                                                    ) -> None:
    """Issue 16, point 1: each way the mark cannot fit comes back as a reason, the frame
    untouched; a partial matte gives a mark with its cover below 1, a full one cover 1."""
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    full = sw.plain.copy()
    mark = wm.mark_face(full, box, matte, lm, SHA, frame_is_linear=False)
    assert isinstance(mark, wm.FrameMark) and mark.cover > wm.FULL_COVER
    assert wm.mark_detectable(full, mark, frame_is_linear=False).detected
    # A matte only along the box's rim (a mouth-only mask is the same: 0 where the patterns go).
    rim = np.zeros_like(matte)
    rim[:3], rim[-3:] = 1.0, 1.0
    frame = sw.plain.copy()
    got = wm.mark_face(frame, box, rim, lm, SHA, frame_is_linear=False)
    assert got == wm.Unmarked(wm.UNMARKED_MATTE) and np.array_equal(frame, sw.plain)
    assert wm.embed_in_frame(frame, box, rim, lm, SHA, frame_is_linear=False) is None
    # The box outside the frame.
    h, w = frame.shape[:2]
    out = (w + 10, 0, w + 10 + matte.shape[1], matte.shape[0])
    assert wm.mark_face(frame, out, matte, lm, SHA, frame_is_linear=False) == \
        wm.Unmarked(wm.UNMARKED_OUTSIDE)
    # A face a few pixels wide: too small for the patterns at all; a small one gets a mark
    # the detector does not find (swap_frame scores faces this small).
    for scale, size in ((0.01, 4), (0.1, 24)):
        small_lm = ((lm - lm.mean(axis=0)) * scale + lm.mean(axis=0)).astype(np.float32)
        x0, y0 = (int(v) - 2 for v in small_lm.min(axis=0))
        sb = (x0, y0, x0 + size, y0 + size)
        frame = sw.plain.copy()
        got = wm.mark_face(frame, sb, np.ones((size, size), np.float32), small_lm, SHA,
                           frame_is_linear=False)
        if size == 4:
            assert got == wm.Unmarked(wm.UNMARKED_SMALL) and np.array_equal(frame, sw.plain)
        else:
            assert isinstance(got, wm.FrameMark) and got.span < wm.CHECK_SPAN
            assert not wm.mark_detectable(frame, got, frame_is_linear=False).detected
    frame = sw.plain.copy()
    # Half the matte: a mark, but its cover says so.
    half = matte.copy()
    half[: half.shape[0] // 2] = 0.0
    frame = sw.plain.copy()
    part = wm.mark_face(frame, box, half, lm, SHA, frame_is_linear=False)
    assert isinstance(part, wm.FrameMark) and 0.2 < part.cover < 0.8


def test_mark_found_gives_mark_detectable_s_verdict(photo: tuple[np.ndarray, np.ndarray]
                                                   ) -> None:
    """``mark_found`` (the quick check swap_frame runs on each partly matted face) gives the
    verdict of ``mark_detectable`` (the full search on the whole frame's luma), on marks the
    check finds and marks it does not: mattes eroded from below, a small face, a linear float
    frame; and the face's luma read from its region alone equals the whole frame's."""
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    verdicts = []
    for cut in (0.0, 0.3, 0.45, 0.55, 0.7):
        m = matte.copy()
        m[int(m.shape[0] * (1.0 - cut)):] = 0.0
        for linear in (False, True):
            frame = sw.plain.copy()
            if linear:
                frame = srgb_to_linear(frame.astype(np.float32) / np.float32(255.0))
            mark = wm.mark_face(frame, box, m, lm, SHA, frame_is_linear=linear)
            if not isinstance(mark, wm.FrameMark):
                continue
            want = wm.mark_detectable(frame, mark, frame_is_linear=linear).detected
            assert wm.mark_found(frame, mark, frame_is_linear=linear) == want, (cut, linear)
            verdicts.append(want)
    small = ((lm - lm.mean(axis=0)) * 0.1 + lm.mean(axis=0)).astype(np.float32)
    x0, y0 = (int(v) - 2 for v in small.min(axis=0))
    frame = sw.plain.copy()
    got = wm.mark_face(frame, (x0, y0, x0 + 24, y0 + 24), np.ones((24, 24), np.float32), small,
                       SHA, frame_is_linear=False)
    assert isinstance(got, wm.FrameMark)
    assert wm.mark_found(frame, got, frame_is_linear=False) is \
        wm.mark_detectable(frame, got, frame_is_linear=False).detected is False
    assert True in verdicts and False in verdicts  # both verdicts were exercised
    from faceplate.provenance.watermark import detect as wm_detect

    luma = wm_sampling._luma(sw.plain)
    _, _, (x0, y0, x1, y1) = wm_detect._face_bounds(lm.astype(np.float64), luma.shape)
    whole = wm_detect._face_source(luma, lm)
    part = wm_detect._face_source(wm_sampling._luma(sw.plain[y0:y1, x0:x1]), lm,
                                  region=(x0, y0, luma.shape[1], luma.shape[0]))
    assert np.array_equal(whole[1], part[1]) and np.array_equal(whole[2], part[2])


def test_mark_flicker_on_a_static_face_stays_under_the_grain(photo: tuple[np.ndarray, np.ndarray]
                                                             ) -> None:
    """Issue 16, point 4: PSNR says nothing about flicker. On a static face over a clip,
    after a grade (×1.1 exposure and saturation), the frame-to-frame change the mark adds
    stays below the footage's own grain change (σ 1.5 code values); without grain the mark
    is the same on every frame. Measured here (2 cores): flicker RMS 0.8–1.3 code values
    with the face's landmarks held (a smoothed store), 1.1–1.7 with landmarks found on each
    frame; the grain's own change 1.9; the mark's RMS 1.2. See also the benchmark's
    ``flicker`` section."""
    rgb, lm = photo
    still = attacks.mark_flicker(rgb, lm, SHA, frames=3, grain=0.0)
    assert still["flicker_rms"] == [0.0, 0.0] and min(still["mark_rms"]) > 0.5
    held = attacks.mark_flicker(rgb, lm, SHA, frames=6)
    assert max(held["flicker_rms"]) <= 1.5
    assert np.mean(held["flicker_rms"]) <= 0.75 * np.mean(held["grain_rms"])
    tracked = attacks.mark_flicker(rgb, lm, SHA, frames=6, track=True)
    assert max(tracked["flicker_rms"]) <= 2.0


# --------------------------------------------------------------------------------------------
# Pattern sets: the full set and the reduced upper-face set (issue 16, point 1)


@pytest.mark.parametrize("name", [p.name for p in wm.PATTERN_SETS])
def test_every_pattern_set_round_trips(photo: tuple[np.ndarray, np.ndarray], name: str) -> None:
    """Contract over the pattern sets: each embeds the whole payload within the PSNR budget,
    and the verifier, searching every set without being told, finds it with that set."""
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    frame = sw.plain.copy()
    mark = wm.mark_face(frame, box, matte, lm, SHA, frame_is_linear=False, pattern_set=name)
    assert isinstance(mark, wm.FrameMark) and mark.pattern_set == name
    assert mark.cover > wm.FULL_COVER
    assert attacks.face_psnr(frame, sw.plain, sw.matte) >= 45.0
    (got,) = wm.detect_faces(frame, [lm])
    assert got.detected and got.pattern_set == name and got.payload == SHA[:4]
    assert len(got.set_scores) == len(wm.PATTERN_SETS)
    for ps, score in zip(wm.PATTERN_SETS, got.set_scores):
        if ps.name != name:  # another set's patterns see no mark
            assert score < wm.NULLS[ps.name].threshold
    bank = wm_scheme._bank(name)
    gram = bank.patterns @ bank.patterns.T
    assert np.abs(gram - np.eye(len(gram))).max() < 1e-4
    assert np.array_equal(bank.marker, wm_scheme._bank().marker)  # one payload layout
    with pytest.raises(ValueError, match="pattern set"):
        wm.mark_face(frame, box, matte, lm, SHA, frame_is_linear=False, pattern_set="lower")


def test_mark_fitted_uses_the_upper_set_where_the_matte_leaves_the_lower_face(
        photo: tuple[np.ndarray, np.ndarray]) -> None:
    """A matte eroded from below (here: nothing under the nose tip) leaves the full set's
    mark too weak to find; mark_fitted then marks with the upper-face set, which the verifier
    finds with its own detection and landmarks. A matte over the lower face only fits
    neither: the full set's mark is kept and the face counts as unmarked."""
    rgb, lm = photo
    sw, box, matte = _pasted(rgb, lm)
    nose = int(lm[33, 1]) - box[1]
    low_cut = matte.copy()
    low_cut[nose + 4:] = 0.0
    full_only = sw.plain.copy()
    mark, found = wm.mark_fitted(full_only, box, low_cut, lm, SHA, frame_is_linear=False,
                                 pattern_sets=("full",))
    assert isinstance(mark, wm.FrameMark) and mark.pattern_set == "full" and not found
    assert 0.3 < mark.cover < wm.FULL_COVER
    assert not any(m.detected for m in wm.detect_frame(full_only))
    frame = sw.plain.copy()
    mark, found = wm.mark_fitted(frame, box, low_cut, lm, SHA, frame_is_linear=False)
    assert isinstance(mark, wm.FrameMark) and mark.pattern_set == "upper" and found
    (got,) = wm.detect_frame(frame)
    assert got.detected and got.pattern_set == "upper" and got.payload == SHA[:4]
    outside = np.zeros(frame.shape[:2], bool)
    outside[box[1]:box[3], box[0]:box[2]] = low_cut == 0.0
    assert np.array_equal(frame[outside], sw.plain[outside])  # bit-exact outside the matte
    # The lower face only: neither set is found; the full set's mark stays, reported unmarked.
    high_cut = matte.copy()
    high_cut[:nose] = 0.0
    frame = sw.plain.copy()
    mark, found = wm.mark_fitted(frame, box, high_cut, lm, SHA, frame_is_linear=False)
    assert isinstance(mark, wm.FrameMark) and mark.pattern_set == "full" and not found
    again = sw.plain.copy()
    wm.mark_face(again, box, high_cut, lm, SHA, frame_is_linear=False)
    assert np.array_equal(frame, again)


def test_pool_tracks_pools_each_pattern_set_on_its_own() -> None:
    """The video verdict pools a set's scores with the same set's only: an upper-set mark
    lifts a weak frame through its upper scores; scores of different sets never mix (a mean
    of each face's best set would pass here, the per-set means do not)."""
    def face(full: float, upper: float) -> wm.FaceMark:
        up = upper >= wm.NULLS["upper"].threshold
        hit = up or full >= wm.NULLS["full"].threshold
        score, name = (upper, "upper") if up else (full, "full")
        return wm.FaceMark(hit, 1.0 - wm.null_tail(score, name), "ab12" if hit else None,
                           (100, 100, 80, 80), score, pattern_set=name,
                           set_scores=(full, upper))

    ups = [7.0, 6.9, 5.3, 7.1, 6.8]
    out = wm.pool_tracks([[face(3.6, u)] for u in ups])
    weak = out[2][0]
    assert weak.detected and weak.by_track and weak.score == 3.6
    assert weak.track_score == pytest.approx(np.mean(ups))
    assert weak.confidence > 1.0 - wm.FP_TARGET
    mixed = [face(6.0, 3.5), face(3.5, 6.0), face(5.0, 5.0), face(6.0, 3.5), face(3.5, 6.0)]
    assert not wm.pool_tracks([[m] for m in mixed])[2][0].detected
