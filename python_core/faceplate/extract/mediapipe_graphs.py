"""Building mediapipe's legacy solution graphs (BlazeFace, face mesh) in one place.

mediapipe 0.10.21 ships the models inside its wheel; its graphs are built here so that every
caller gets the same error handling (:class:`ModelError`) and the same quiet start: importing
mediapipe with protobuf 6 prints a harmless ``MessageFactory ... GetPrototype`` traceback line
and absl start-up warnings on the process's stderr, which would alarm users on every run. The
native stderr is silenced only while mediapipe is imported and a graph is built and run once
on a blank image (its first run starts the inference calculators, which log warnings too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from faceplate.core.errors import ModelError

_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _build(what: str, factory: str, **kwargs: Any) -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    with _lock, _quiet_native_stderr():
        try:
            import mediapipe as mp

            solution = getattr(mp.solutions, factory)
            cls = solution.FaceDetection if factory == "face_detection" else solution.FaceMesh
            graph = cls(**kwargs)
            # The first run starts the inference calculators, which log their own warnings.
            graph.process(np.zeros((64, 64, 3), np.uint8))
            return graph
        except Exception as err:  # mediapipe raises bare RuntimeError / missing-file errors
            raise ModelError(f"cannot build the mediapipe {what} graph: {err}") from err


def face_detection(min_confidence: float) -> Any:
    """BlazeFace full-range (``model_selection=1``) detection graph."""
    return _build("BlazeFace", "face_detection", model_selection=1,
                  min_detection_confidence=min_confidence)


def face_mesh(max_faces: int, min_confidence: float) -> Any:
    """468-point face-mesh graph in still-image mode (no tracking carried between calls)."""
    return _build("face-mesh", "face_mesh", static_image_mode=True, max_num_faces=max_faces,
                  refine_landmarks=False, min_detection_confidence=min_confidence)
