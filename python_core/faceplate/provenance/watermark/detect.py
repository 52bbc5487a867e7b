"""Detection: find the faces, re-find their landmarks, search, score, decode the payload.

:func:`detect_faces` scores faces whose landmarks are known; :func:`detect_frame` finds the
faces itself (the extractor, then the landmark fixed point of :mod:`.landmarks`), in two
passes (below). A :class:`DetectSession` owns the models the detector runs (the extractor and
the second-pass detector) and serialises their use; one per pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.geometry import compose_affine, invert_affine
from faceplate.core.profile import PROFILES, active_profile
from faceplate.core.types import Frame, FrameInfo
from faceplate.core.validate import check_image, check_points
from faceplate.provenance.watermark.calibration import null_tail, verify_thresholds
from faceplate.provenance.watermark.embed import FrameMark, Unmarked, mark_face
from faceplate.provenance.watermark.landmarks import refine_landmarks
from faceplate.provenance.watermark.registration import CENTRE_ONLY, _search, _soft_bits
from faceplate.provenance.watermark.sampling import (
    _area_factor,
    _display_region,
    _luma,
    _source,
    _translate,
    _u8_rgb,
)
from faceplate.provenance.watermark.scheme import (
    _FRAME_DTYPES,
    _ID_HEX,
    CANON_SIZE,
    ID_BITS,
    MARKER_BITS,
    PATTERN_SETS,
    _bank,
    _crc8,
    _value,
    canonical_matrix,
)
from faceplate.provenance.watermark.session import DetectSession, default_session


@dataclass(frozen=True)
class FaceMark:
    """The watermark verdict for one face.

    Every pattern set (:data:`~.scheme.PATTERN_SETS`) is searched; a face is detected when
    any set's score reaches that set's threshold (:data:`~.calibration.NULLS`).

    Attributes:
        detected: Whether the Faceplate marker is present (``score`` ≥ its set's threshold).
        confidence: 1 − the calibrated p-value under "no mark" of the best set's score, times
            the number of sets searched (:func:`null_tail`), in [0, 1].
        payload: The model id (4 hex digits) when detected and its CRC checks, else None.
        box: The face's box in frame pixels (x, y, w, h), from its landmarks.
        score: The marker statistic after the registration search, of the set that detected
            the mark, or of the ``full`` set when none did (unmarked faces: mean ≈ 3.6, s.d. ≈
            0.39; marked faces: ≈ 7).
        marker_errors: Marker bits decoded wrong at the best offset (0 on a clean mark).
        offset: The canonical sub-pixel offset (dx, dy) that scored best.
        track_score: The mean score of the face's track over neighbouring checked frames
            (:func:`pool_tracks`; None for a single image or a face with no neighbour).
        by_track: Detected through its track only (its own score is below the threshold).
        pattern_set: The set ``score`` belongs to.
        set_scores: Every set's score, in :data:`~.scheme.PATTERN_SETS` order (empty for a
            mark built by hand: then ``score`` is the ``full`` set's).
    """

    detected: bool
    confidence: float
    payload: str | None
    box: tuple[int, int, int, int]
    score: float = 0.0
    marker_errors: int = MARKER_BITS
    offset: tuple[float, float] = (0.0, 0.0)
    track_score: float | None = None
    by_track: bool = False
    pattern_set: str = "full"
    set_scores: tuple[float, ...] = ()


def _face_bounds(landmarks: np.ndarray, frame_hw: tuple[int, int]
                 ) -> tuple[tuple[int, int, int, int], np.ndarray, tuple[int, int, int, int]]:
    """(face box x, y, w, h; the canonical → frame matrix; the frame pixels
    ``(x0, y0, x1, y1)``, half-open, that :func:`_face_source` reads the luma of)."""
    lm = check_points(landmarks, 68).astype(np.float64)
    x0, y0 = np.floor(lm.min(axis=0))
    x1, y1 = np.ceil(lm.max(axis=0))
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    to_src = invert_affine(canonical_matrix(lm))
    n = CANON_SIZE
    corners = np.array([[0.0, 0.0], [n, 0.0], [0.0, n], [n, n]])
    pts = corners @ to_src[:, :2].T + to_src[:, 2]
    h, w = frame_hw
    pad = 8 * _area_factor(to_src)
    bx0 = max(0, int(math.floor(pts[:, 0].min())) - pad)
    by0 = max(0, int(math.floor(pts[:, 1].min())) - pad)
    bx1 = min(w, int(math.ceil(pts[:, 0].max())) + pad)
    by1 = min(h, int(math.ceil(pts[:, 1].max())) + pad)
    return box, to_src, (bx0, by0, bx1, by1)


def _face_source(luma: np.ndarray, landmarks: np.ndarray, *,
                 region: tuple[int, int, int, int] | None = None
                 ) -> tuple[tuple[int, int, int, int], np.ndarray | None, np.ndarray]:
    """(face box x, y, w, h; the image the canonical crop is sampled from (:func:`_source` of
    the frame's luma around it) or None; the canonical → image matrix).

    ``luma`` is the whole frame's H×W luma, or, with ``region`` = (x0, y0, W, H), the luma
    of frame pixels ``[x0, x0 + w) × [y0, y0 + h)`` only (at least those
    :func:`_face_bounds` names) of a W×H frame: the result is the same."""
    ox, oy, fw, fh = (0, 0, luma.shape[1], luma.shape[0]) if region is None else region
    box, to_src, (bx0, by0, bx1, by1) = _face_bounds(landmarks, (fh, fw))
    if bx1 - bx0 < 4 or by1 - by0 < 4:
        return box, None, compose_affine(_translate(-bx0, -by0), to_src)
    piece = luma[by0 - oy:by1 - oy, bx0 - ox:bx1 - ox]
    src, to_img = _source(np.ascontiguousarray(piece), (bx0, by0), to_src)
    return box, src, to_img


def _score_face(luma: np.ndarray, landmarks: np.ndarray, second_pass: bool = False,
                fix_points: int = 1) -> FaceMark:
    """Search every pattern set on one face; report the detecting set (the one whose score is
    least likely under its null), else the full set. Thresholds and tails are those of a
    verifier trying ``fix_points`` fix points (:func:`verify_thresholds`)."""
    box, sub, to_sub = _face_source(luma, landmarks)
    if sub is None:
        return FaceMark(False, 0.0, None, box)
    found = []
    for ps in PATTERN_SETS:
        bank = _bank(ps.name)
        scores, params, c = _search(sub, to_sub, bank.marker[None, :], bank)
        score = float(scores[0])
        threshold = verify_thresholds(fix_points, ps.name)[1 if second_pass else 0]
        found.append((score >= threshold, null_tail(score, ps.name, fix_points), score,
                      params[0], c, bank))
    set_scores = tuple(f[2] for f in found)
    hits = [f for f in found if f[0]]
    detected, _, score, p, c, bank = min(hits, key=lambda f: f[1]) if hits else found[0]
    confidence = 1.0 - min(1.0, len(found) * min(f[1] for f in found))
    s = _soft_bits(c, bank)
    bits = (s < 0).astype(np.uint8)
    marker_errors = int(np.count_nonzero(bits[:MARKER_BITS] != bank.marker))
    payload = None
    if detected:
        ident = _value(bits[MARKER_BITS:MARKER_BITS + ID_BITS])
        if _crc8(ident, ID_BITS) == _value(bits[MARKER_BITS + ID_BITS:]):
            payload = f"{ident:0{_ID_HEX}x}"
    return FaceMark(bool(detected), float(confidence), payload, box, score, marker_errors,
                    (float(p[0]), float(p[1])), pattern_set=bank.name, set_scores=set_scores)


def null_scores(frame: np.ndarray, landmarks: np.ndarray, markers: np.ndarray,
                pattern_set: str = "full") -> np.ndarray:
    """The search's best score on one face for each of R stand-in markers (R×MARKER_BITS 0/1)
    with one pattern set's patterns: on an unmarked face these are samples of that set's
    null distribution (calibration)."""
    luma = _luma(frame)
    _, sub, to_sub = _face_source(luma, landmarks)
    if sub is None:
        return np.zeros(0)
    return _search(sub, to_sub, np.asarray(markers, np.uint8), _bank(pattern_set))[0]


def detect_faces(frame: np.ndarray, landmarks: Sequence[np.ndarray]) -> list[FaceMark]:
    """Look for the mark on faces whose landmarks are known.

    Args:
        frame: H×W×3 (or ×4, alpha ignored) ``uint8`` or ``float32`` display sRGB.
        landmarks: 68×2 (x, y) frame-pixel landmarks per face (pixel centres at +0.5).

    Returns:
        One :class:`FaceMark` per landmark set, in the same order.
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    if not landmarks:
        return []
    luma = _luma(frame)
    return [_score_face(luma, lm) for lm in landmarks]


#: A mark whose matte covers at least this much of the patterns' area (:attr:`FrameMark.cover`)
#: and whose patterns span at least :data:`CHECK_SPAN` pixels is taken as detectable without
#: scoring it (a full matte on a face of ordinary size); others are scored
#: (:func:`mark_detectable`), so only they pay for it.
FULL_COVER = 0.999
#: Patterns' area's smaller side (frame pixels) below which a mark is scored after embedding
#: (obama.jpg scaled down, full matte: still detected at 27 pixels; faces of the sample clips
#: span over 100).
CHECK_SPAN = 32.0


def mark_detectable(frame: np.ndarray, mark: FrameMark, *, frame_is_linear: bool) -> FaceMark:
    """Score a mark just embedded, on the frame's final pixels, at the landmarks it was
    embedded at: what the verifier will find there (its own landmarks come from the same
    aligner, so this is the score it reads, up to their difference).

    Args:
        frame: The marked H×W×3/4 frame (``uint8`` display sRGB, or ``float32`` display sRGB or
            scene-linear with ``frame_is_linear``).
        mark: What :func:`mark_face` returned for the face.
        frame_is_linear: Whether a float frame is scene-linear.

    Returns:
        The face's :class:`FaceMark` (``detected`` is the verdict).
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    view = frame[..., :3]
    if view.dtype != np.uint8 and frame_is_linear:
        view = _display_region(view, True)
    # Judged against the strictest verifier of any profile (a mark made under one profile is
    # also checked by the others' verify).
    n = max(len(p.verify_landmarks) for p in PROFILES.values())
    return _score_face(_luma(view), check_points(mark.landmarks, 68).astype(np.float64),
                       False, n)


def mark_found(frame: np.ndarray, mark: FrameMark, *, frame_is_linear: bool) -> bool:
    """Whether the verifier will find a mark just embedded: the verdict of
    :func:`mark_detectable` (``.detected``), found with less work.

    Only the face's region of the frame is converted to luma (a per-pixel operation, so the
    values are those of the whole frame's luma), the set the mark was embedded with is scored
    first, and each set is first searched around the landmarks' own alignment only
    (:data:`~.registration.CENTRE_ONLY`): that search's best is one of the full search's
    candidates, so when it reaches the threshold the full search does too; otherwise the full
    search decides. Any set reaching its threshold is a detection, as in
    :func:`mark_detectable`.

    Args:
        frame: The marked H×W×3/4 frame (``uint8`` display sRGB, or ``float32`` display sRGB or
            scene-linear with ``frame_is_linear``).
        mark: What :func:`mark_face` returned for the face.
        frame_is_linear: Whether a float frame is scene-linear.
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    lm = check_points(mark.landmarks, 68).astype(np.float64)
    h, w = frame.shape[:2]
    _, _, (x0, y0, x1, y1) = _face_bounds(lm, (h, w))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return False
    view = frame[y0:y1, x0:x1, :3]
    if view.dtype != np.uint8 and frame_is_linear:
        view = _display_region(view, True)
    _, sub, to_sub = _face_source(_luma(view), lm, region=(x0, y0, w, h))
    if sub is None:
        return False
    n = max(len(p.verify_landmarks) for p in PROFILES.values())
    sets = sorted(PATTERN_SETS, key=lambda ps: ps.name != mark.pattern_set)
    for coarse in (CENTRE_ONLY, None):
        for ps in sets:
            bank = _bank(ps.name)
            score = float(_search(sub, to_sub, bank.marker[None, :], bank, coarse)[0][0])
            if score >= verify_thresholds(n, ps.name)[0]:
                return True
    return False


def mark_fitted(frame: np.ndarray, box: tuple[int, int, int, int], matte_box: np.ndarray,
                landmarks: np.ndarray, model_id: str, *, frame_is_linear: bool,
                seed_box: Any = None, seen: np.ndarray | None = None,
                by_hand: bool = False, pattern_sets: Sequence[str] | None = None
                ) -> tuple[FrameMark | Unmarked, bool]:
    """Mark a face with the first pattern set the verifier will find, in place.

    :func:`~.embed.mark_face` with the ``full`` set. A mark whose matte covers its whole area
    on a face of ordinary size (``cover`` ≥ :data:`FULL_COVER`, ``span`` ≥
    :data:`CHECK_SPAN`), or one composited by hand (``by_hand``: its matte is the user's), is
    taken as found. Others are scored where the verifier will look
    (:func:`mark_detectable`); when the full set's mark would not be found and its matte
    leaves part of its area uncovered, the box is put back and each further set
    (:data:`~.scheme.PATTERN_SETS`: ``upper``, over the upper face that a matte eroded from
    below leaves) is tried the same way. When none is found the full set's mark is put back.

    Arguments as :func:`~.embed.mark_face`, and ``pattern_sets``: the sets to try, in order
    (default: every one, :data:`~.scheme.PATTERN_SETS`; the benchmark compares
    ``("full",)``).

    Returns:
        (the :class:`FrameMark` kept, or :class:`Unmarked` with why (the frame unchanged);
        whether the verifier will find it: False means the face counts as unmarked, the
        full set's ``cover`` and ``span`` saying why).
    """
    def mark(name: str) -> FrameMark | Unmarked:
        return mark_face(frame, box, matte_box, landmarks, model_id,
                         frame_is_linear=frame_is_linear, seed_box=seed_box, seen=seen,
                         by_hand=by_hand, pattern_set=name)

    h, w = frame.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(box[2])), min(h, int(box[3]))
    keep = frame[y0:y1, x0:x1].copy() if x1 > x0 and y1 > y0 else None
    names = [p.name for p in PATTERN_SETS] if pattern_sets is None else list(pattern_sets)
    first = mark(names[0])
    if not isinstance(first, FrameMark) or by_hand:
        return first, True
    if first.cover >= FULL_COVER and first.span >= CHECK_SPAN:
        return first, True
    if mark_found(frame, first, frame_is_linear=frame_is_linear):
        return first, True
    if first.cover >= FULL_COVER or keep is None:  # small, fully matted: no set is larger
        return first, False
    for name in names[1:]:
        frame[y0:y1, x0:x1] = keep
        other = mark(name)
        if isinstance(other, FrameMark) and mark_found(
                frame, other, frame_is_linear=frame_is_linear):
            return other, True
    if len(names) > 1:
        frame[y0:y1, x0:x1] = keep
        first = mark(names[0])
    return first, False


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two landmark sets are one registration hypothesis (within 2 canonical px RMS)."""
    m = canonical_matrix(b)
    d = (a - b) @ m[:, :2].T
    return bool(np.sqrt((d**2).sum(axis=1).mean()) < 2.0)



def detect_frame(frame: np.ndarray, extractor: Any | None = None, *,
                 session: DetectSession | None = None) -> list[FaceMark]:
    """Find every face in ``frame`` and look for the mark on each.

    Args:
        frame: H×W×3/4 ``uint8`` or ``float32`` display sRGB.
        extractor: A :class:`faceplate.extract.pipeline.Extractor` to detect and align with;
            when None, the session's.
        session: The :class:`DetectSession` whose models run (default:
            :func:`default_session`, shared by the process's callers that pass none).

    Returns:
        One :class:`FaceMark` per face found, left to right (empty when there is none).

    Two passes. First, every face the extractor finds (its detector verifies candidates), its
    landmarks re-found from its box as the embedder does (:func:`refine_landmarks`) with each
    fix point of the active profile's ``verify_landmarks`` in turn (the default profile: dlib68,
    then mesh68, so marks made under either profile are found; the first that detects the mark
    ends the search, else the best score is kept), every pattern set searched at each and
    scored against its threshold (raised by ``FIX_POINT_RAISE`` per extra fix point:
    :func:`verify_thresholds`).
    Second, the raw upright candidates of the fast detector
    (BlazeFace, no verification: a swapped face, e.g. blurred by a small model or half
    hidden by a hand, can fail the extractor's check and be found only upside down by its
    rotation retries), aligned the same way; those that are not a first-pass face are scored
    against each set's stricter ``second_pass_threshold`` and reported only when detected.
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    ses = session if session is not None else default_session()
    fix_points = active_profile().verify_landmarks
    rgb = _u8_rgb(frame)  # once: the landmarks of both passes are found on it
    ex = extractor if extractor is not None else ses.extractor()
    h, w = rgb.shape[:2]
    records = ex.process(Frame(FrameInfo(0, "frame", None, w, h, 0), rgb)).records
    luma = _luma(frame) if records else None  # once: both passes score on it
    seen: list[np.ndarray] = []
    marks = []
    for r in records:
        mark, lms = _best_fix_point(rgb, luma, r.bbox, fix_points, False,
                                    r.landmarks.astype(np.float64))
        seen += lms
        marks.append(mark)
    for det in ses.second_detector().detect(rgb):
        if det.angle != 0.0:
            continue
        first = refine_landmarks(rgb, det.bbox, fix_point=fix_points[0])
        if first is None or any(_same_face(first, o) for o in seen):
            continue
        luma = _luma(frame) if luma is None else luma
        mark, lms = _best_fix_point(rgb, luma, det.bbox, fix_points, True, None, first)
        seen += lms
        if mark is not None and mark.detected:
            marks.append(mark)
    return sorted(marks, key=lambda m: m.box[0])


def _best_fix_point(rgb: np.ndarray, luma: Any, box: Any, fix_points: Sequence[str],
                    second_pass: bool, fallback: np.ndarray | None,
                    first: np.ndarray | None = None) -> tuple[Any, list[np.ndarray]]:
    """Score one face at the landmarks of each fix point in turn (stopping at the first that
    detects the mark); the best-scoring :class:`FaceMark` and the landmark sets tried.

    ``fallback`` (the extractor's landmarks) stands in where a fix point finds no face;
    ``first`` is the first fix point's landmarks when already known; ``second_pass`` picks
    the second pass's thresholds.
    """
    best: FaceMark | None = None
    tried: list[np.ndarray] = []
    for i, fp in enumerate(fix_points):
        lm = first if (i == 0 and first is not None) else refine_landmarks(rgb, box,
                                                                           fix_point=fp)
        if lm is None:
            lm = fallback
        if lm is None or any(np.array_equal(lm, t) for t in tried):
            continue
        tried.append(lm)
        mark = _score_face(luma, lm, second_pass, len(fix_points))
        if best is None or mark.score > best.score:
            best = mark
        if mark.detected:
            break
    return best, tried
