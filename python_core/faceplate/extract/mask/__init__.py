"""Face maskers (registry ``MASKERS``) and mask storage.

Importing this package registers every masker: ``components`` and ``extended`` (landmark hulls),
``mesh_oval``, ``mesh_skin``, ``mesh_eyes``, ``mesh_brows``, ``mesh_mouth`` (face-mesh regions)
and ``occlusion`` (a segmenter trained on labelled faces of the shot: ``occlusion:MODEL_DIR``).
"""

from faceplate.extract.mask import landmarks, mesh, occlusion  # noqa: F401  (registers them)
from faceplate.extract.mask.base import (
    MASKERS,
    Masker,
    blank_crop,
    create_masker,
    split_mask_spec,
)
from faceplate.extract.mask.store import make_stored_mask, mask_to_frame

__all__ = ["MASKERS", "Masker", "blank_crop", "create_masker", "make_stored_mask", "mask_to_frame",
           "split_mask_spec"]
