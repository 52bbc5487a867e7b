"""The reference-image face filter (``--filter`` / ``--nfilter``).

Each reference image must hold exactly one face. Its embedding is compared with every extracted
face: a face is kept when it is closer than ``threshold`` to at least one ``--filter`` reference
(when any are given) and not closer than ``threshold`` to any ``--nfilter`` reference.

Landmarks for the reference images come from a callable ``rgb → list of 68×2 landmarks`` so the
pipeline can pass its own detector and aligner; the default, :class:`DlibLandmarker`, is dlib's
HOG frontal-face detector (upsampled once) followed by dlib's 68-point shape predictor.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceplate.core.errors import ConfigError, InputError
from faceplate.core.validate import check_image
from faceplate.extract import dlib_models
from faceplate.extract.identity.embed import (
    EMBEDDING_SIZE,
    SAME_PERSON,
    IdentityEncoder,
    identity_distance,
)

#: ``rgb`` (H×W×3 uint8) → one 68×2 float32 frame-pixel landmark array per face found.
Landmarker = Callable[[np.ndarray], Sequence[np.ndarray]]


class DlibLandmarker:
    """dlib HOG face detection (upsample 1) + the 68-point shape predictor.

    Calling it returns one 68×2 float32 (x, y) frame-pixel array per face (pixel centres at
    +0.5, converted from dlib's integer centres). Models load on first use, under a lock.
    """

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._lock = threading.Lock()
        self._detector: Any = None
        self._predictor: Any = None

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        img = np.ascontiguousarray(check_image(rgb, "rgb"))
        with self._lock:
            if self._detector is None:
                self._predictor = dlib_models.shape_predictor_68()
                self._detector = dlib_models.hog_detector()
            rects = self._detector(img, self.upsample)
            shapes = [self._predictor(img, r) for r in rects]
        return [np.array([[p.x + 0.5, p.y + 0.5] for p in s.parts()], dtype=np.float32)
                for s in shapes]


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB; :class:`InputError` naming the file otherwise."""
    if not os.path.isfile(path):
        raise InputError("reference image not found", path)
    bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("cannot read the reference image (unknown or corrupt format)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FilterDistances:
    """Distances of one embedding to each reference, in the order the references were given."""

    filter: tuple[float, ...]
    nfilter: tuple[float, ...]


class ReferenceFilter:
    """Keep faces that look like the ``filter`` references and unlike the ``nfilter`` ones.

    Args:
        filter_embeddings: F×128 float32 embeddings of the people to keep (F may be 0).
        nfilter_embeddings: N×128 float32 embeddings of the people to drop (N may be 0).
        threshold: Same-person distance (dlib's convention: 0.6).
        filter_names: Labels of the filter references (file names) for logs.
        nfilter_names: Labels of the nfilter references.
    """

    def __init__(self, filter_embeddings: np.ndarray, nfilter_embeddings: np.ndarray,
                 threshold: float = SAME_PERSON, filter_names: Sequence[str] = (),
                 nfilter_names: Sequence[str] = ()) -> None:
        if not 0.0 < threshold <= 2.0:
            raise ConfigError(f"ref_threshold: {threshold} must be in (0, 2]")
        self.filter = np.asarray(filter_embeddings, dtype=np.float32).reshape(-1, EMBEDDING_SIZE)
        self.nfilter = np.asarray(nfilter_embeddings, dtype=np.float32).reshape(-1,
                                                                                 EMBEDDING_SIZE)
        self.threshold = float(threshold)
        self.filter_names = tuple(filter_names)
        self.nfilter_names = tuple(nfilter_names)

    @classmethod
    def from_images(cls, filter_paths: Sequence[str | os.PathLike[str]],
                    nfilter_paths: Sequence[str | os.PathLike[str]] = (),
                    threshold: float = SAME_PERSON, encoder: IdentityEncoder | None = None,
                    landmarker: Landmarker | None = None) -> ReferenceFilter:
        """Build the filter from reference image files.

        Args:
            filter_paths: Images of people to keep (each with exactly one face).
            nfilter_paths: Images of people to drop (each with exactly one face).
            threshold: Same-person distance.
            encoder: The identity encoder (a default one when None).
            landmarker: ``rgb → [68×2 landmarks per face]`` (a :class:`DlibLandmarker` when None).

        Raises:
            InputError: A reference image is missing, unreadable, or holds no face or several
                faces; the message names the file.
        """
        encoder = encoder if encoder is not None else IdentityEncoder()
        find = landmarker if landmarker is not None else DlibLandmarker()

        def embed_all(paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
            out = np.zeros((len(paths), EMBEDDING_SIZE), dtype=np.float32)
            for i, path in enumerate(paths):
                rgb = load_rgb(path)
                faces = list(find(rgb))
                if not faces:
                    raise InputError("no face found in the reference image", path)
                if len(faces) > 1:
                    raise InputError(f"{len(faces)} faces found in the reference image; "
                                     "use an image showing exactly one face", path)
                out[i] = encoder.embed(rgb, faces[0])
            return out

        return cls(embed_all(filter_paths), embed_all(nfilter_paths), threshold,
                   [os.path.basename(os.fspath(p)) for p in filter_paths],
                   [os.path.basename(os.fspath(p)) for p in nfilter_paths])

    def distances(self, embedding: np.ndarray) -> FilterDistances:
        """Distances from ``embedding`` (128,) to every filter and nfilter reference."""
        return FilterDistances(
            tuple(identity_distance(embedding, r) for r in self.filter),
            tuple(identity_distance(embedding, r) for r in self.nfilter),
        )

    def accept(self, embedding: np.ndarray) -> bool:
        """Whether a face with this (128,) embedding passes the filter (see the module doc)."""
        d = self.distances(embedding)
        if d.filter and min(d.filter) >= self.threshold:
            return False
        return not (d.nfilter and min(d.nfilter) < self.threshold)
