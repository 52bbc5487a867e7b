"""Identity embeddings (dlib 128-d) and the reference-image face filter."""

from faceplate.extract.identity.embed import (
    EMBEDDING_SIZE,
    SAME_PERSON,
    IdentityConfig,
    IdentityEncoder,
    identity_distance,
)
from faceplate.extract.identity.filter import (
    DlibLandmarker,
    FilterDistances,
    Landmarker,
    ReferenceFilter,
    load_rgb,
)

__all__ = [
    "EMBEDDING_SIZE",
    "SAME_PERSON",
    "DlibLandmarker",
    "FilterDistances",
    "IdentityConfig",
    "IdentityEncoder",
    "Landmarker",
    "ReferenceFilter",
    "identity_distance",
    "load_rgb",
]
