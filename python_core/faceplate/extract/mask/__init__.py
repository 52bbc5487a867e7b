"""Face maskers (registry ``MASKERS``) and mask storage.

Importing this package registers every masker: ``components`` and ``extended`` (landmark hulls)
and ``mesh_oval``, ``mesh_skin``, ``mesh_eyes``, ``mesh_brows``, ``mesh_mouth`` (face-mesh regions).
"""

from faceplate.extract.mask import landmarks, mesh  # noqa: F401  (registers the maskers)
from faceplate.extract.mask.base import MASKERS, Masker
from faceplate.extract.mask.store import make_stored_mask, mask_to_frame

__all__ = ["MASKERS", "Masker", "make_stored_mask", "mask_to_frame"]
