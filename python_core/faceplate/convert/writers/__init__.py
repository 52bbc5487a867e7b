"""Output writers (registry :data:`WRITERS`): ``video`` (H.264/H.265 through PyAV, audio copied
from the source), ``images`` (PNG 8/16, JPEG, EXR half/float, float TIFF sequences), ``patch``
(the raw swapped face + its mask + the crop↔frame matrix, for compositing by hand) and ``masks``
(a separate matte sequence).

The contract every writer follows is in :mod:`faceplate.convert.writers.base`.
"""

from faceplate.convert.writers import images, masks, patch, video
from faceplate.convert.writers.base import WRITERS, FrameWriter, SequenceConfig
from faceplate.convert.writers.images import ImagesConfig, ImageSequenceWriter
from faceplate.convert.writers.masks import MasksConfig, MaskSequenceWriter
from faceplate.convert.writers.patch import (
    PatchConfig,
    PatchFace,
    PatchWriter,
    convert_origin,
    read_patch,
)
from faceplate.convert.writers.video import VIDEO_ENCODERS, VideoConfig, VideoWriter

__all__ = [
    "VIDEO_ENCODERS",
    "WRITERS",
    "FrameWriter",
    "ImageSequenceWriter",
    "ImagesConfig",
    "MaskSequenceWriter",
    "MasksConfig",
    "PatchConfig",
    "PatchFace",
    "PatchWriter",
    "SequenceConfig",
    "VideoConfig",
    "VideoWriter",
    "convert_origin",
    "images",
    "masks",
    "patch",
    "read_patch",
    "video",
]
