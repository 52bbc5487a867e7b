"""Real alignments stores + facesets for tests, built with the real extraction stages.

``build_faceset`` runs dlib HOG detection, the dlib 68-point aligner and the landmark maskers
(``faceplate.extract.pipeline.Extractor``) on the first frames of a real clip or still, then writes
the store (``AlignmentsStore.put_frame``) and the face PNGs (``write_face_png``) through the public
APIs, exactly as ``faceplate extract`` lays them out. Build once per module and copy per test
with :func:`copy_built`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.io.faceset import FaceMeta, face_filename, write_face_png
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore


@dataclass(frozen=True)
class Built:
    """A store, its face folder and the media it came from."""

    input: Path
    store: Path
    faces: Path
    frames: int
    n_faces: int


def build_faceset(media: Path, root: Path, n_frames: int | None = None, size: int = 128,
                  masks: tuple[str, ...] = ("components",)) -> Built:
    """Extract the first ``n_frames`` frames (all when None) of ``media`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    store_path = root / f"{media.stem}.fpstore"
    faces_dir = root / "faces"
    faces_dir.mkdir(exist_ok=True)
    cfg = ExtractConfig(detector="dlib_hog", aligner="dlib68", masks=masks, size=size,
                        thumbnails=False)
    ex = Extractor(cfg)
    n_faces = 0
    with open_source(media) as source, AlignmentsStore.open(store_path, create=True) as store:
        store.set_meta("source", str(media))
        store.set_meta("width", source.width)
        store.set_meta("height", source.height)
        store.set_meta("fps", source.fps)
        store.set_meta("total_frames", source.total_frames)
        store.set_meta("kind", source.kind)
        store.set_meta("extract_config", cfg.to_dict())
        meta_source = {"store": str(store_path), "source": str(media),
                       "frame_width": source.width, "frame_height": source.height,
                       "is_video": source.kind == "video"}
        count = source.total_frames if n_frames is None else n_frames
        done = 0
        for frame in source.frames(indices=range(count)):
            res = ex.process(frame)
            for rec, (crop, matrix) in zip(res.records, res.crops):
                meta = FaceMeta(record=rec, matrix=matrix, size=size, centering="face",
                                source=meta_source)
                write_face_png(faces_dir / face_filename(rec), crop, meta)
            store.put_frame(res.frame_info, res.records)
            n_faces += len(res.records)
            done += 1
    return Built(media, store_path, faces_dir, done, n_faces)


def copy_built(b: Built, dest: Path) -> Built:
    """An independent copy (store file + face folder) under ``dest``; the media is shared."""
    dest.mkdir(parents=True, exist_ok=True)
    store = dest / b.store.name
    shutil.copyfile(b.store, store)
    faces = dest / "faces"
    shutil.copytree(b.faces, faces)
    return Built(b.input, store, faces, b.frames, b.n_faces)
