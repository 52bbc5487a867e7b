"""Mask sequence writer (``masks``): the frame-sized compositing matte, one file per frame.

Input: H×W or H×W×1 float32 coverage in [0, 1] (no colour conversion: a matte is linear
coverage). Output: single-channel 8- or 16-bit PNG (rounded to the nearest code) or an EXR with one
``Y`` channel (half or float, the values as given). Named like the ``images`` writer, by default
``<stem>_mask_<frame_number:06d>.<ext>`` so it can share a folder with the frames without a name
clash (give it its own folder to re-read it with :func:`faceplate.io.media.open_source`).
Written atomically per file, like every sequence writer, with the provenance metadata of
:func:`~faceplate.convert.writers.images.encode_file` (``extra["provenance"]`` adds facts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceplate.convert.writers.base import (
    WRITERS,
    FrameWriter,
    SequenceConfig,
    file_name,
    prepare_folder,
    resolve_stem,
)
from faceplate.convert.writers.images import (
    IMAGE_FORMATS,
    ExrCompression,
    encode_file,
    frame_provenance,
)
from faceplate.core.config import option
from faceplate.core.errors import OutputError
from faceplate.core.types import FrameInfo

MaskFormat = Literal["png8", "png16", "exr-half", "exr-float"]


@dataclass(frozen=True)
class MasksConfig(SequenceConfig):
    """Options of the ``masks`` sequence writer."""

    pattern: str = option(
        "{stem}_mask_{frame}",
        "File name without extension: {stem} is the stem, {frame} the zero-padded frame number.")
    format: MaskFormat = option("png8", "File format and bit depth of the matte.")
    png_compression: int = option(1, "PNG zlib level (0 fastest, 9 smallest).", minimum=0,
                                  maximum=9)
    exr_compression: ExrCompression = option("zip", "EXR compression (b44/dwa/pxr24 are lossy).")


@WRITERS.register("masks", config=MasksConfig)
class MaskSequenceWriter(FrameWriter):
    """Separate matte sequence: single-channel PNG 8/16-bit or EXR half/float per frame."""

    channels = (1,)

    def __init__(self, cfg: MasksConfig) -> None:
        super().__init__(cfg)
        self.cfg: MasksConfig = cfg
        self.stem = "frame"

    def _open(self) -> None:
        assert self.path is not None
        if self.path.suffix.lower() in {".png", ".exr"} and not self.path.is_dir():
            raise OutputError("the masks writer writes into a folder; give a folder, not a "
                              "file name", self.path)
        prepare_folder(self.path)
        self.stem = resolve_stem(self.cfg.stem, self.source)

    def path_for(self, index: int, info: FrameInfo | None = None) -> Path:
        """The file frame ``index``'s matte is (or would be) written to."""
        assert self.path is not None
        ext = IMAGE_FORMATS[self.cfg.format].ext
        return self.path / file_name(self.cfg, self.stem, self.frame_number(index, info), ext)

    def _write(self, index: int, frame: np.ndarray, info: FrameInfo | None,
               extra: dict[str, Any]) -> None:
        target = self.path_for(index, info)
        encode_file(target, frame, self.cfg.format, png_compression=self.cfg.png_compression,
                    exr_compression=self.cfg.exr_compression,
                    provenance=frame_provenance(self, index, info, extra))
        self.written.append(target)

    def _close(self) -> None:
        pass
