"""The invisible face watermark: embedded in every swapped face, detected on any frame.

Why not the ``invisible-watermark`` package (DWT-DCT): it marks fixed blocks of the frame's own
pixel grid, so a 0.5× downscale (or any crop/re-frame) moves every coefficient to another block
and the mark is gone, and it is blind to where the face is. We build our own, in **face-aligned
canonical coordinates**, so frame size, face size and a resize do not matter.

The package, by concern:

* :mod:`.scheme` — the constants, the pattern sets and their banks (``K`` band-limited,
  windowed, high-passed, orthonormal patterns over the inner face — ``full`` — or over the
  upper face — ``upper``, for a face whose matte leaves the lower face out; the quantiser
  step Δ from the energy budget), the payload (a 32-bit Faceplate marker, a 16-bit model
  id, a CRC-8) and the canonical frame;
* :mod:`.sampling` — how both sides read a face: display-sRGB luma, f×f block means on the
  frame's own grid, the canonical warp;
* :mod:`.landmarks` — the landmark fixed point both sides reach from a box (the face's 68
  points re-found on the pasted result by the embedder, on the output by the verifier);
* :mod:`.embed` — the informed (QIM) embedding on the frame's final pixels, inside the matte;
* :mod:`.registration` — the alignment search that finds where the marker fits best;
* :mod:`.calibration` — each pattern set's calibrated null tail and thresholds;
* :mod:`.detect` — finding, scoring and decoding the faces of a frame;
* :mod:`.tracks` — the video verdict (a face's score pooled along its track);
* :mod:`.session` — who owns the detector's models (a :class:`DetectSession` per pipeline).

Gain: projections are divided by the window's mean luma (+0.055, the sRGB offset): an exposure
change of k in linear light scales display values by about k^(1/2.4) around −0.055, so a grade
leaves the normalised projections almost unchanged.

Second pass (:func:`detect_frame`): a swapped face can fail the extractor's detector check
(e.g. a small model's blurred face half hidden by a hand, read upside down by the rotation
retries), so the raw upright BlazeFace candidates are also aligned and scored when they are not
a first-pass face, against the stricter ``SECOND_PASS_THRESHOLD``; only detections are
reported.

What a detection proves, and what it does not:
    a detected mark says that this face was, with overwhelming likelihood (calibrated
    false-positive rate ≤ ``FP_TARGET`` per face), output by Faceplate's swap, and the payload
    (when its CRC checks) names the model by 4 hex digits of its sha256 (65,536 values: a hint
    to match against a manifest, not an identity). It is not cryptographic: the pattern seed is
    public in this source, so anyone can embed, remove or forge the mark on purpose; it proves
    nothing about who ran the swap or when (that is the signed C2PA manifest's job,
    :mod:`faceplate.provenance.c2pa_sign`). An absent mark proves nothing either: heavy
    compression, a strong re-grade, a crop that loses the face, a re-detection that fails, or
    another tool's swap all read as "not found".

What it survives, what it costs and how often it is found are measured by
``benchmarks/provenance.py`` (its JSON output) and summarised in the README.
"""

from __future__ import annotations

from faceplate.provenance.watermark.calibration import (
    FIX_POINT_RAISE,
    FP_TARGET,
    N_EFFECTIVE,
    NULL_TAIL,
    NULLS,
    SCORE_THRESHOLD,
    SECOND_PASS_THRESHOLD,
    Null,
    combined_rate,
    null_tail,
    verify_thresholds,
)
from faceplate.provenance.watermark.detect import (
    CHECK_SPAN,
    FULL_COVER,
    FaceMark,
    detect_faces,
    detect_frame,
    mark_detectable,
    mark_fitted,
    mark_found,
    null_scores,
)
from faceplate.provenance.watermark.embed import (
    EMBED_PASSES,
    UNMARKED_MATTE,
    UNMARKED_OUTSIDE,
    UNMARKED_SMALL,
    FrameMark,
    Unmarked,
    embed_face,
    embed_in_frame,
    mark_crop,
    mark_face,
    prepare,
)
from faceplate.provenance.watermark.landmarks import (
    FIX_POINTS,
    REFINE_BOX,
    REFINE_ITERATIONS,
    fix_point_model,
    frame_landmarks,
    refine_landmarks,
)
from faceplate.provenance.watermark.scheme import (
    BAND,
    CANON_SIZE,
    CRC_BITS,
    ID_BITS,
    MARKER_BITS,
    PATTERN_SETS,
    PSNR_FLOOR,
    PSNR_TARGET,
    PatternSet,
    canon_to_crop,
    canonical_matrix,
    payload_bits,
    payload_id,
)
from faceplate.provenance.watermark.session import DetectSession, default_session
from faceplate.provenance.watermark.tracks import TRACK_MIN_IOU, TRACK_RADIUS, pool_tracks

__all__ = [
    "BAND",
    "CANON_SIZE",
    "CRC_BITS",
    "EMBED_PASSES",
    "FIX_POINT_RAISE",
    "FP_TARGET",
    "ID_BITS",
    "MARKER_BITS",
    "NULL_TAIL",
    "NULLS",
    "Null",
    "PATTERN_SETS",
    "PatternSet",
    "combined_rate",
    "mark_fitted",
    "N_EFFECTIVE",
    "PSNR_FLOOR",
    "PSNR_TARGET",
    "REFINE_BOX",
    "REFINE_ITERATIONS",
    "SCORE_THRESHOLD",
    "SECOND_PASS_THRESHOLD",
    "TRACK_MIN_IOU",
    "TRACK_RADIUS",
    "FIX_POINTS",
    "DetectSession",
    "FaceMark",
    "FrameMark",
    "canon_to_crop",
    "canonical_matrix",
    "detect_faces",
    "default_session",
    "detect_frame",
    "embed_face",
    "embed_in_frame",
    "mark_face",
    "mark_detectable",
    "mark_found",
    "FULL_COVER",
    "CHECK_SPAN",
    "Unmarked",
    "UNMARKED_MATTE",
    "UNMARKED_OUTSIDE",
    "UNMARKED_SMALL",
    "fix_point_model",
    "frame_landmarks",
    "mark_crop",
    "null_scores",
    "null_tail",
    "verify_thresholds",
    "payload_bits",
    "payload_id",
    "pool_tracks",
    "prepare",
    "refine_landmarks",
]
