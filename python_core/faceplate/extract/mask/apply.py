"""``faceplate mask apply``: a mask model's prediction for every face of a store, stored beside
the other masks.

Every face of the store gets the ``occlusion`` mask (a :class:`~faceplate.core.types.StoredMask`
at the model's crop, with its matrix and centering), predicted from the store's own clip (or,
when the clip is not where the store says, from the faces' PNGs in ``faces_dir``); with
``faces_dir``, the face PNGs of the store there get it in their records too (their pixels are
not rewritten), so training (``--mask occlusion``), convert, the Studio and the OpenFX nodes all
read the same mask. The store's extraction settings then list ``occlusion:MODEL_DIR``, so faces
the extractor or the Studio makes later get it as well.

Resumable: frames are done in fixed chunks in index order, each chunk written in one transaction,
and a pointer in the store's meta (``occlusion_apply``: model digest, next frame) moves after each
chunk. A run killed at any instant resumes at the first chunk not committed and ends with the
same masks as an uninterrupted run; a different model starts over.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceplate.core.errors import InputError
from faceplate.core.records import encode_mask
from faceplate.core.types import FaceRecord, FrameInfo, StoredMask
from faceplate.extract.crops import warp_to_crop
from faceplate.extract.mask.occlusion import OcclusionConfig, OcclusionMasker
from faceplate.io.faceset import FaceMeta, recut_face, scan_faceset, update_face_meta
from faceplate.io.labelled import face_store
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore

NAME = "occlusion"
#: Store meta key of the resume pointer.
POINTER = "occlusion_apply"
#: Frames per committed chunk.
CHUNK = 16


@dataclass
class ApplyStats:
    """What :func:`apply_mask_model` did.

    Attributes:
        faces: Faces predicted this run.
        frames: Frames written this run.
        resumed_at: The frame index the run started at (0: from the start).
        pngs: Face PNGs whose record got the mask.
        pixels: Where the pixels came from: ``"clip"`` or ``"faces"``.
        warnings: Human-readable notes.
    """

    faces: int = 0
    frames: int = 0
    resumed_at: int = 0
    pngs: int = 0
    pixels: str = "clip"
    warnings: list[str] = field(default_factory=list)


def _faces_of_store(faces_dir: Path, store: Path) -> dict[tuple[int, int], tuple[Path, FaceMeta]]:
    good, _ = scan_faceset(faces_dir)
    out = {}
    for path, meta in good:
        if face_store(path, meta) == store:
            out[(int(meta.record.frame_index), int(meta.record.face_index))] = (path, meta)
    return out


def apply_mask_model(model_dir: str | os.PathLike[str], store_path: str | os.PathLike[str],
                     faces_dir: str | os.PathLike[str] | None = None, *, engine: str = "auto",
                     on_start: Callable[[int, int], None] | None = None,
                     on_faces: Callable[[int], None] | None = None) -> ApplyStats:
    """Predict the ``occlusion`` mask of every face of a store and store it.

    Args:
        model_dir: A mask model directory (``faceplate mask train``).
        store_path: The alignments store.
        faces_dir: A faceset folder whose PNGs of this store get the mask in their records too
            (and whose pixels are used when the store's clip is missing).
        engine: ``auto``, ``onnx`` or ``torch``.
        on_start: Called with (faces to do, faces already done).
        on_faces: Called with the number of faces each committed chunk held.

    Raises:
        InputError: no store, or neither the clip nor the faces to predict from.
        ModelError: not a mask model.
    """
    masker = OcclusionMasker(OcclusionConfig(model=str(model_dir), engine=engine))  # type: ignore[arg-type]
    pred = masker.predictor
    stats = ApplyStats()
    store_path = Path(store_path)
    faces_path = Path(faces_dir) if faces_dir is not None else None
    pngs = _faces_of_store(faces_path, store_path.resolve()) if faces_path else {}
    with AlignmentsStore.open(store_path) as st:
        frames = st.frames()
        counts = {info.index: len(faces) for info, faces in st.iter_frames()}
        ptr = st.get_meta(POINTER) or {}
        start = 0
        if isinstance(ptr, dict) and ptr.get("digest") == pred.digest:
            start = int(ptr.get("next_frame", 0))
        elif ptr:
            stats.warnings.append("the store's occlusion masks came from another mask model: "
                                  "predicting every face again")
        stats.resumed_at = start
        todo = [f for f in frames if f.index >= start]
        done_faces = sum(counts.get(f.index, 0) for f in frames if f.index < start)
        total = sum(counts.get(f.index, 0) for f in todo)
        if on_start is not None:
            on_start(total, done_faces)
        st.set_meta(POINTER, {"model": str(pred.model_dir.resolve()), "digest": pred.digest,
                              "next_frame": start, "complete": False})
        source_path = st.get_meta("source")
        clip = Path(source_path) if isinstance(source_path, str) else None
        use_clip = clip is not None and clip.exists()
        if not use_clip:
            if not pngs and total:
                raise InputError(f"the store's clip {source_path!r} is not found and no face "
                                 "PNGs of it were given: pass --faces DIR", store_path)
            stats.pixels = "faces"
            stats.warnings.append(f"the clip {source_path!r} is not found: predicting from the "
                                  "face PNGs")
        # chunks are fixed by frame index (CHUNK frames of the whole store each), so a resumed
        # run predicts exactly the batches an uninterrupted one would
        order = [f.index for f in frames]
        position = {index: i for i, index in enumerate(order)}
        chunks: dict[int, list[FrameInfo]] = {}
        for f in todo:
            chunks.setdefault(position[f.index] // CHUNK, []).append(f)
        src = open_source(clip) if use_clip and clip is not None else None
        try:
            for _, infos in sorted(chunks.items()):
                batch = _predict_chunk(st, infos, masker, src, pngs)
                st.put_frames(batch)
                nxt = max(f.index for f in infos) + 1
                st.set_meta(POINTER, {"model": str(pred.model_dir.resolve()),
                                      "digest": pred.digest, "next_frame": nxt,
                                      "complete": False})
                n = sum(len(faces) for _, faces in batch)
                stats.faces += n
                stats.frames += len(batch)
                if on_faces is not None:
                    on_faces(n)
        finally:
            if src is not None:
                src.close()
        st.set_meta(POINTER, {"model": str(pred.model_dir.resolve()), "digest": pred.digest,
                              "next_frame": (max(order) + 1) if order else 0, "complete": True})
        cfg = st.get_meta("extract_config")
        if isinstance(cfg, dict):
            masks = [m for m in cfg.get("masks", []) if str(m).split(":", 1)[0] != NAME]
            cfg["masks"] = [*masks, masker.spec()]
            st.set_meta("extract_config", cfg)
        if pngs:
            stats.pngs = _update_pngs(st, pngs)
    return stats


def _predict_chunk(st: AlignmentsStore, infos: list[FrameInfo], masker: OcclusionMasker,
                   src: object | None, pngs: dict[tuple[int, int], tuple[Path, FaceMeta]]
                   ) -> list[tuple[FrameInfo, list[FaceRecord]]]:
    pred = masker.predictor
    s = pred.size
    recs: list[FaceRecord] = []
    crops: list[np.ndarray] = []
    mats: list[np.ndarray] = []
    per_frame: list[tuple[FrameInfo, list[FaceRecord]]] = []
    frames = {}
    if src is not None and any(st.faces(f.index) for f in infos):
        frames = {fr.info.index: fr.rgb
                  for fr in src.frames([f.index for f in infos])}  # type: ignore[attr-defined]
    for info in infos:
        faces = st.faces(info.index)
        per_frame.append((info, faces))
        for rec in faces:
            m = pred.crop_matrix(rec.landmarks)
            if src is not None:
                rgb = frames.get(info.index)
                if rgb is None:
                    raise InputError(f"frame {info.index} cannot be decoded from the clip",
                                     st.path)
                crop = warp_to_crop(rgb, m, s)
            else:
                hit = pngs.get((info.index, rec.face_index))
                if hit is None:
                    raise InputError(f"frame {info.index} face {rec.face_index}: no face PNG "
                                     "of it in the faces folder, and no clip", st.path)
                crop, m, _, _ = recut_face(hit[0], hit[1], s, pred.centering, pred.coverage)
            recs.append(rec)
            crops.append(crop)
            mats.append(m)
    masks = masker.mask_batch(np.stack(crops), [r.landmarks for r in recs], mats) \
        if crops else []
    stored = {(r.frame_index, r.face_index): StoredMask(NAME, encode_mask(mk), s, m,
                                                         pred.centering)
              for r, mk, m in zip(recs, masks, mats)}
    return [(info, [dataclasses.replace(r, masks={**r.masks,
                                                   NAME: stored[(r.frame_index, r.face_index)]})
                    for r in faces]) for info, faces in per_frame]


def _update_pngs(st: AlignmentsStore,
                 pngs: dict[tuple[int, int], tuple[Path, FaceMeta]]) -> int:
    """Give each face PNG the store's ``occlusion`` mask (skipping those that have it)."""
    n = 0
    for (fi, xi), (path, meta) in sorted(pngs.items()):
        rec = st.get_face(fi, xi)
        if rec is None or NAME not in rec.masks:
            continue
        sm = rec.masks[NAME]
        have = meta.record.masks.get(NAME)
        if have is not None and have.data == sm.data and np.array_equal(have.affine, sm.affine):
            continue
        new = dataclasses.replace(meta.record, masks={**meta.record.masks, NAME: sm})
        update_face_meta(path, dataclasses.replace(meta, record=new))
        n += 1
    return n


__all__ = ["CHUNK", "POINTER", "ApplyStats", "apply_mask_model"]
