"""Face detectors (registry ``DETECTORS``). Importing this package registers every detector.

``chain`` (the default) runs BlazeFace, falls back to CenterFace for small or missing faces and
verifies every candidate; ``blazeface``, ``centerface``, ``dlib_hog`` and ``dlib_cnn`` are the
single detectors. All return boxes mapped to dlib's frontal-HOG convention.
"""

from faceplate.extract.detect import blazeface, centerface, chain, dlib_cnn, dlib_hog
from faceplate.extract.detect.base import DETECTORS, Detector

__all__ = ["DETECTORS", "Detector", "blazeface", "centerface", "chain", "dlib_cnn", "dlib_hog"]
