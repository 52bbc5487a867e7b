"""Who owns the models the watermark's detector runs: a :class:`DetectSession` per pipeline.

Detecting the mark on a frame runs an :class:`~faceplate.extract.pipeline.Extractor` (its
detectors and aligner) and, for the second pass, a BlazeFace detector; mediapipe's graphs are
not thread-safe, so they must not be shared by callers that do not know of each other. A
session builds its models on first use (under its own lock) and each model serialises its own
graph, so one session may be used by several threads of one pipeline, and two pipelines that
want to be independent each make their own. :func:`default_session` is the session of callers
that pass none (one per process, built once under a lock).
"""

from __future__ import annotations

import threading
from typing import Any


class DetectSession:
    """The models of one detection pipeline, built on first use.

    Args:
        extractor: The :class:`~faceplate.extract.pipeline.Extractor` to find faces with; None:
            the default detector and aligner, no masks (built on first use).
    """

    def __init__(self, extractor: Any | None = None) -> None:
        self._lock = threading.Lock()
        self._extractor = extractor
        self._second: Any = None

    def extractor(self) -> Any:
        """The extractor whose faces the first pass scores."""
        with self._lock:
            if self._extractor is None:
                from faceplate.core.profile import configured
                from faceplate.extract.pipeline import ExtractConfig, Extractor

                self._extractor = Extractor(configured(ExtractConfig, masks=(),
                                                       write_faces=False, thumbnails=False))
            return self._extractor

    def second_detector(self) -> Any:
        """The raw upright BlazeFace candidates of the second pass."""
        with self._lock:
            if self._second is None:
                from faceplate.extract.detect.base import DETECTORS

                self._second = DETECTORS.create("blazeface")
            return self._second


_DEFAULT: DetectSession | None = None
_DEFAULT_LOCK = threading.Lock()


def default_session() -> DetectSession:
    """The process's shared session (for callers that pass none)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = DetectSession()
        return _DEFAULT


__all__ = ["DetectSession", "default_session"]
