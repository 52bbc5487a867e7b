"""Matching face PNG records to store faces (by record content, never by file name)."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceplate.core.types import FaceRecord

#: Largest landmark difference (pixels) still counted as "the same record". Records travel as
#: float32 values printed exactly in JSON, so equal records differ by 0; the slack only absorbs
#: re-encoding through other tools.
LANDMARK_TOLERANCE = 1e-3


def face_key(rec: FaceRecord) -> tuple[int, int]:
    """``(frame_index, face_index)``: a face's address in its store."""
    return (int(rec.frame_index), int(rec.face_index))


def index_store_faces(store: Any) -> dict[tuple[int, int], FaceRecord]:
    """Every face of an open store keyed by :func:`face_key`."""
    return {face_key(r): r for r in store.iter_faces()}


def record_matches(rec: FaceRecord, other: FaceRecord | None,
                   tol: float = LANDMARK_TOLERANCE) -> bool:
    """True when ``other`` is the same face: same frame index, name, face index and landmarks."""
    if other is None:
        return False
    if face_key(rec) != face_key(other) or rec.frame_name != other.frame_name:
        return False
    a = np.asarray(rec.landmarks, np.float64)
    b = np.asarray(other.landmarks, np.float64)
    return bool(a.shape == b.shape and np.max(np.abs(a - b)) <= tol)
