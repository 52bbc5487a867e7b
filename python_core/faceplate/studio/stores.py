"""An alignments store as the Studio edits it: frames, faces, hand edits, labels, undo/redo.

Every change is one :meth:`AlignmentsStore.edit` call (one transaction, logged with the faces'
states before and after), so undo and redo work after a restart and a change made meanwhile by
another program (``faceplate faceset smooth``, ``extract``) is refused with a clear conflict
instead of being overwritten. A change the page asks for names the face's ``etag`` (a digest of
the state the page showed); a face that changed since gives a conflict too.

Hand-edited faces are pinned. Their record is rebuilt by the extractor's own
:meth:`~faceplate.extract.pipeline.Extractor.describe` (pose, crop, the store's masks, thumbnail)
from the new landmarks, and the face PNGs of the open facesets cut from this store are rewritten
(or moved to the faceset's trash for a deleted face, or written anew for an added one).

Coordinates: (x, y) frame pixels, x right, y down, pixel centres at +0.5.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.errors import (
    FaceplateError,
    InputError,
    StoreConflictError,
    StoreError,
)
from faceplate.core.geometry import crop_matrix, invert_affine, transform_points
from faceplate.core.profile import configured
from faceplate.core.records import decode_mask
from faceplate.core.types import BBox, Detection, FaceRecord, Frame
from faceplate.extract.smoothing import face_size, move_box, similarity_between
from faceplate.io.media import FrameSource, open_source
from faceplate.io.store import AlignmentsStore, EditEntry, FaceChange, FaceState

#: Mean landmark step between neighbouring frames, in face sizes, that the timeline flags.
JUMP_THRESHOLD = 0.12
#: Detection scores below this are flagged on the timeline.
LOW_SCORE = 0.5
#: Landmark groups the page moves together (iBUG 68 indices).
GROUPS: dict[str, list[int]] = {
    "jaw": list(range(17)), "brows": list(range(17, 27)), "nose": list(range(27, 36)),
    "eyes": list(range(36, 48)), "mouth": list(range(48, 68)), "face": list(range(68)),
}

#: Encoded frames kept per store (JPEG at the clip's size: about 0.3 MB a 1080p frame).
FRAME_CACHE_BYTES = 384 << 20

#: Called after a store change with the changed faces' new states (None: gone), to rewrite PNGs.
PngSync = Callable[["StoreDoc", list[tuple[int, int, FaceState | None]], Frame | None], None]


def etag(state: FaceState | None) -> str:
    """Digest of a face's state as the page saw it (changes whenever anything in it does)."""
    if state is None:
        return "none"
    text = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class StoreDoc:
    """One alignments store opened for editing (thread-safe: one lock around the store)."""

    def __init__(self, path: Path, doc_id: int, *, prefetch: bool = True) -> None:
        self.path = Path(path).resolve()
        self.id = doc_id
        self.lock = threading.RLock()
        self.store = AlignmentsStore.open(self.path)
        self._source: FrameSource | None = None
        self._extractor: Any = None
        self.png_sync: PngSync | None = None
        self.prefetch = prefetch
        self._frames: OrderedDict[int, bytes] = OrderedDict()
        self._frames_bytes = 0
        self._frames_lock = threading.Lock()
        self._stop = threading.Event()
        self._proxy: threading.Thread | None = None

    def close(self) -> None:
        self._stop.set()
        if self._proxy is not None:
            self._proxy.join(timeout=10)
        with self.lock:
            if self._source is not None:
                self._source.close()
            self.store.close()

    # ----------------------------------------------------------------------- media

    @property
    def source_path(self) -> Path | None:
        src = self.store.get_meta("source")
        if not isinstance(src, str) or not src:
            return None
        p = Path(src)
        return p if p.is_absolute() else (self.path.parent / p)

    def source(self) -> FrameSource:
        """The clip the store was extracted from (the store's ``source`` meta), opened once.

        Raises:
            InputError: The store names no source, or it cannot be opened or decoded.
        """
        with self.lock:
            if self._source is not None:
                return self._source
            src = self.source_path
            if src is None:
                raise InputError("the store does not name the clip it was extracted from",
                                 self.path)
            self._source = open_source(src)
            return self._source

    def frame(self, index: int) -> Frame:
        info = self.store.frame(index)
        if info is None:
            raise InputError(f"frame {index} is not in the store", self.path)
        with self.lock:
            src = self.source()
            try:
                return src.read(index)
            except IndexError:
                raise InputError(f"frame {index} is beyond the end of the clip",
                                 src.path) from None

    def frame_jpeg(self, index: int) -> bytes:
        """Frame ``index`` as a JPEG for the page.

        Long-GOP video (H.264) decodes from the previous key frame on every random seek, so
        the first request also starts a background pass that decodes the clip once, in
        order, with its own decoder, into a bounded cache of encoded frames (a proxy, as
        editing software keeps): scrubbing and seeking then cost no decoding.
        """
        with self._frames_lock:
            hit = self._frames.get(index)
            if hit is not None:
                self._frames.move_to_end(index)
        if hit is None:
            hit = _encode_frame(self.frame(index).rgb, self.path, index)
            self._keep(index, hit)
        if self.prefetch and self._proxy is None:
            self._proxy = threading.Thread(target=self._build_proxy, args=(index,),
                                           name=f"studio-proxy-{self.id}", daemon=True)
            self._proxy.start()
        return hit

    def _keep(self, index: int, data: bytes) -> bool:
        with self._frames_lock:
            if index in self._frames:
                return True
            if self._frames_bytes + len(data) > FRAME_CACHE_BYTES:
                if not self._frames:
                    return False
                _, old = self._frames.popitem(last=False)
                self._frames_bytes -= len(old)
            self._frames[index] = data
            self._frames_bytes += len(data)
            return self._frames_bytes < FRAME_CACHE_BYTES

    def cached_frames(self) -> int:
        with self._frames_lock:
            return len(self._frames)

    def _build_proxy(self, start: int) -> None:
        """Decode the store's frames from ``start`` to the end, then from 0, into the cache."""
        src = self.source_path
        if src is None:
            return
        with self.lock:
            wanted = [i.index for i in self.store.frames()]
        parts = ([i for i in wanted if i >= start], [i for i in wanted if i < start])
        try:
            with open_source(src) as source:
                for part in parts:  # from the first frame asked for to the end, then the rest
                    for fr in source.frames(indices=part):
                        if self._stop.is_set():
                            return
                        idx = fr.info.index
                        with self._frames_lock:
                            have = idx in self._frames
                        if not have and not self._keep(
                                idx, _encode_frame(fr.rgb, self.path, idx)):
                            return  # the cache is full
        except (FaceplateError, OSError):
            return  # the page's own requests report what is wrong with the clip

    # ----------------------------------------------------------------------- reading

    def info(self) -> dict[str, Any]:
        """The store for the page: meta, counts, history, and one timeline entry per frame."""
        with self.lock:
            st = self.store
            timeline = []
            notes = st.notes()
            prev: list[FaceRecord] = []
            for info, faces in st.iter_frames():
                jump = 0.0
                for r in faces:
                    if not prev:
                        break
                    lm = np.asarray(r.landmarks, np.float64)
                    d = min(float(np.linalg.norm(lm - np.asarray(p.landmarks, np.float64),
                                                 axis=1).mean()) for p in prev)
                    jump = max(jump, d / max(float(face_size(lm)), 1e-6))
                pins = sum(1 for r in faces
                           if notes.get((r.frame_index, r.face_index), (False, None))[0])
                labelled = sum(1 for r in faces if notes.get(
                    (r.frame_index, r.face_index), (False, None))[1] is not None)
                timeline.append([info.index, len(faces),
                                 round(min((r.score for r in faces), default=1.0), 3),
                                 round(jump, 3), pins, labelled])
                prev = faces
            done, undone = st.history_counts()
            src = self.source_path
            return {
                "id": self.id, "kind": "store", "path": str(self.path), "name": self.path.name,
                "source": None if src is None else str(src),
                "width": st.get_meta("width"), "height": st.get_meta("height"),
                "fps": st.get_meta("fps"), "media": st.get_meta("kind"),
                "frames": st.frame_count(), "faces": st.face_count(),
                "labelled": st.labelled_count(), "undo": [done, undone],
                "timeline": timeline, "jump_threshold": JUMP_THRESHOLD, "low_score": LOW_SCORE,
                "groups": GROUPS, "revision": st.revision(), "cached": self.cached_frames(),
                "history": [{"id": e.id, "label": e.label, "state": e.state, "time": e.time}
                            for e in st.history(30)],
            }

    def _state(self, fi: int, xi: int) -> FaceState:
        state = self.store.face_state(fi, xi)
        if state is None:
            raise InputError(f"frame {fi} has no face {xi}", self.path)
        return state

    def face_json(self, state: FaceState, crop_size: int = 256) -> dict[str, Any]:
        """A face as the page shows it; ``mask_outlines`` holds every mask the store keeps for
        it (``extended``, ``occlusion``, ...: name → the contours of its > 127 region, outer ones
        and holes, polygons of (x, y) frame pixels)."""
        r = state.record
        centering = self.extract_cfg().centering
        m = crop_matrix(r.landmarks, crop_size, centering)
        outlines: dict[str, list[list[list[float]]]] = {}
        for name, sm in sorted(r.masks.items()):
            mask = decode_mask(sm, str(self.path))
            # every contour, holes too: an occluder inside the face is a hole in its mask
            contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_LIST,
                                           cv2.CHAIN_APPROX_SIMPLE)
            inv = invert_affine(sm.affine)
            outlines[name] = [
                np.round(transform_points(c.reshape(-1, 2).astype(np.float64) + 0.5, inv),
                         2).tolist() for c in contours]
        return {
            "face": r.face_index, "bbox": [round(float(v), 2) for v in r.bbox.as_tuple()],
            "landmarks": np.round(np.asarray(r.landmarks, np.float64), 3).tolist(),
            "score": round(float(r.score), 4), "detector": r.detector, "aligner": r.aligner,
            "yaw": round(float(r.yaw), 2), "pitch": round(float(r.pitch), 2),
            "roll": round(float(r.roll), 2), "pinned": state.pinned, "labels": state.labels,
            "etag": etag(state), "mask_outlines": outlines,
            "crop": {"size": crop_size, "centering": centering, "matrix": m.tolist()},
        }

    def frame_faces(self, fi: int) -> dict[str, Any]:
        with self.lock:
            info = self.store.frame(fi)
            if info is None:
                raise InputError(f"frame {fi} is not in the store", self.path)
            notes = self.store.notes(fi)
            faces = []
            for r in self.store.faces(fi):
                pinned, labels = notes.get((fi, r.face_index), (False, None))
                faces.append(self.face_json(FaceState(r, pinned, labels)))
            return {"frame": fi, "name": info.name, "width": info.width, "height": info.height,
                    "frame_number": info.frame_number, "faces": faces,
                    "revision": self.store.revision()}

    def face_crop_jpeg(self, fi: int, xi: int, size: int) -> bytes:
        """The face's aligned crop at ``size`` px (the canvas mask labels are drawn on)."""
        from faceplate.extract.crops import warp_to_crop

        state = self._state(fi, xi)
        fr = self.frame(fi)
        m = crop_matrix(state.record.landmarks, size, self.extract_cfg().centering)
        crop = warp_to_crop(fr.rgb, m, size)
        ok, buf = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise InputError("cannot encode the crop", self.path)
        return buf.tobytes()

    # ----------------------------------------------------------------------- models

    def extract_cfg(self) -> Any:
        from faceplate.extract.pipeline import ExtractConfig

        saved = self.store.get_meta("extract_config") or {}
        keep = {}
        for k in ("aligner", "size", "centering", "mask_size", "thumbnails"):
            if k in saved:
                keep[k] = saved[k]
        if "masks" in saved:
            keep["masks"] = tuple(saved["masks"])
        try:
            return configured(ExtractConfig, **keep)
        except FaceplateError:
            return configured(ExtractConfig)

    def extractor(self) -> Any:
        """The store's own extraction settings (aligner, masks, crop), loaded once."""
        with self.lock:
            if self._extractor is None:
                from faceplate.extract.pipeline import Extractor

                self._extractor = Extractor(self.extract_cfg().replace(detector="blazeface"))
            return self._extractor

    def _describe(self, fr: Frame, lm: np.ndarray, face_index: int, bbox: BBox, score: float,
                  detector: str, aligner: str | None = None,
                  identity: np.ndarray | None = None) -> FaceRecord:
        rec, _crop, _m = self.extractor().describe(
            fr.rgb, fr.info, lm, face_index=face_index, bbox=bbox, score=score,
            detector=detector, aligner=aligner, identity=identity)
        return rec

    # ----------------------------------------------------------------------- edits

    def _commit(self, label: str, changes: list[FaceChange], fr: Frame | None) -> dict[str, Any]:
        self.store.edit(label, changes)
        self._sync([(c.frame_index, c.face_index, c.after) for c in changes], fr)
        return {"label": label, "undo": list(self.store.history_counts())}

    def _sync(self, states: list[tuple[int, int, FaceState | None]], fr: Frame | None) -> None:
        if self.png_sync is not None:
            self.png_sync(self, states, fr)

    def _check(self, state: FaceState, tag: str | None) -> None:
        if tag is not None and tag != etag(state):
            r = state.record
            raise StoreConflictError(
                f"frame {r.frame_index} face {r.face_index} changed since the page loaded it "
                "(another program or window wrote it); reload the frame", self.path)

    def set_landmarks(self, fi: int, xi: int, landmarks: Any, tag: str | None) -> dict[str, Any]:
        """Replace a face's 68 landmarks (dragged points or groups); pins the face."""
        lm = _landmarks(landmarks, self.path)
        with self.lock:
            before = self._state(fi, xi)
            self._check(before, tag)
            fr = self.frame(fi)
            old = before.record
            o2n = similarity_between(np.asarray(old.landmarks, np.float64), lm)
            rec = self._describe(fr, lm, xi, move_box(old.bbox, o2n), old.score,
                                 old.detector, "manual", old.identity)
            after = FaceState(rec, True, before.labels)
            return self._commit("move landmarks", [FaceChange(fi, xi, before, after)], fr)

    def _align_box(self, fr: Frame, box: BBox) -> np.ndarray:
        ex = self.extractor()
        al = ex.aligner.align(fr.rgb, [Detection(box, 1.0, "manual")])[0]
        return np.asarray(al.landmarks, np.float64)

    def add_face(self, fi: int, bbox: Any) -> dict[str, Any]:
        """A face missed by the detector: the aligner fits landmarks in a drawn box."""
        box = _bbox(bbox, self.path)
        with self.lock:
            fr = self.frame(fi)
            if box.w < 8 or box.h < 8:
                raise InputError("the box is too small (at least 8×8 pixels)")
            taken = {r.face_index for r in self.store.faces(fi)}
            xi = 0
            while xi in taken:
                xi += 1
            lm = self._align_box(fr, box)
            rec = self._describe(fr, lm, xi, box, 1.0, "manual")
            after = FaceState(rec, True, None)
            out = self._commit("add a face", [FaceChange(fi, xi, None, after)], fr)
            out["face"] = xi
            return out

    def realign(self, fi: int, xi: int, tag: str | None) -> dict[str, Any]:
        """Run the aligner again in the face's box."""
        with self.lock:
            before = self._state(fi, xi)
            self._check(before, tag)
            fr = self.frame(fi)
            old = before.record
            lm = self._align_box(fr, old.bbox)
            rec = self._describe(fr, lm, xi, old.bbox, old.score, old.detector, None,
                                 old.identity)
            return self._commit("re-align", [FaceChange(fi, xi, before,
                                                        FaceState(rec, True, before.labels))], fr)

    def delete_face(self, fi: int, xi: int, tag: str | None) -> dict[str, Any]:
        with self.lock:
            before = self._state(fi, xi)
            self._check(before, tag)
            return self._commit("delete a face", [FaceChange(fi, xi, before, None)], None)

    def keep_only(self, fi: int, xi: int) -> dict[str, Any]:
        """Choose the person of the shot in this frame: every other face of it is removed."""
        with self.lock:
            self._state(fi, xi)
            changes = [FaceChange(fi, r.face_index, self._state(fi, r.face_index), None)
                       for r in self.store.faces(fi) if r.face_index != xi]
            if not changes:
                raise InputError(f"frame {fi} has no other face")
            return self._commit("keep only this face", changes, None)

    def copy_face(self, fi: int, from_fi: int, from_xi: int) -> dict[str, Any]:
        """Copy a face's landmarks from another (the previous or next) frame into this one."""
        if abs(from_fi - fi) != 1:
            raise InputError("copy a face from the previous or the next frame")
        with self.lock:
            src = self._state(from_fi, from_xi).record
            fr = self.frame(fi)
            taken = {r.face_index for r in self.store.faces(fi)}
            xi = 0
            while xi in taken:
                xi += 1
            rec = self._describe(fr, np.asarray(src.landmarks, np.float64), xi, src.bbox,
                                 src.score, src.detector, "copied", src.identity)
            out = self._commit(f"copy a face from frame {from_fi}",
                               [FaceChange(fi, xi, None, FaceState(rec, True, None))], fr)
            out["face"] = xi
            return out

    def set_labels(self, fi: int, xi: int, labels: Any, tag: str | None) -> dict[str, Any]:
        """Store (or clear, with None) a face's mask labels."""
        from faceplate.core.labels import validate_labels

        lab = None if labels is None else validate_labels(labels, "request")
        with self.lock:
            before = self._state(fi, xi)
            self._check(before, tag)
            after = dataclasses.replace(before, labels=lab)
            self.store.edit("mask labels" if lab else "clear mask labels",
                            [FaceChange(fi, xi, before, after)])
            return {"label": "mask labels", "undo": list(self.store.history_counts())}

    def step(self, undo: bool) -> dict[str, Any]:
        with self.lock:
            entry: EditEntry | None = self.store.undo() if undo else self.store.redo()
            if entry is None:
                return {"label": None, "undo": list(self.store.history_counts())}
            states = [(c.frame_index, c.face_index, c.before if undo else c.after)
                      for c in entry.changes]
            fr = None
            frames = {fi for fi, _, s in states if s is not None}
            if len(frames) == 1:
                fr = self.frame(next(iter(frames)))
            self._sync(states, fr)
            return {"label": entry.label, "frame": entry.changes[0].frame_index,
                    "undo": list(self.store.history_counts())}

    # ----------------------------------------------------------------------- mask images

    def export_labels(self, folder: Path, size: int = 256) -> int:
        """Write every labelled face's mask as ``<frame name stem>_<face>.png`` (size px, the
        store's centering; 255 = face). Returns the number written."""
        from faceplate.extract.mask.labels import labels_to_mask
        from faceplate.io.paths import ensure_output_dir, write_bytes_atomic

        ensure_output_dir(folder)
        centering = self.extract_cfg().centering
        n = 0
        with self.lock:
            for (fi, xi), (_pinned, labels) in sorted(self.store.notes().items()):
                if labels is None:
                    continue
                rec = self.store.get_face(fi, xi)
                if rec is None:
                    continue
                m = crop_matrix(rec.landmarks, size, centering)
                mask = labels_to_mask(labels, size, m)
                ok, buf = cv2.imencode(".png", mask)
                if ok:
                    write_bytes_atomic(folder / f"{rec.key}.png", buf.tobytes())
                    n += 1
        return n

    def import_labels(self, folder: Path) -> int:
        """Read ``<frame stem>_<face>.png`` mask images (the export's layout) as labels; one
        undoable step. Returns the number of faces labelled."""
        from faceplate.extract.mask.labels import mask_to_labels

        if not folder.is_dir():
            raise InputError("no exported mask images here", folder)
        centering = self.extract_cfg().centering
        changes: list[FaceChange] = []
        with self.lock:
            for rec in self.store.iter_faces():
                p = folder / f"{rec.key}.png"
                if not p.exists():
                    continue
                img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                if img is None or img.shape[0] != img.shape[1]:
                    raise InputError("not a square grey mask image", p)
                m = crop_matrix(rec.landmarks, img.shape[0], centering)
                before = self._state(rec.frame_index, rec.face_index)
                after = dataclasses.replace(before, labels=mask_to_labels(img, m, centering))
                changes.append(FaceChange(rec.frame_index, rec.face_index, before, after))
            if not changes:
                raise InputError("no mask image here matches a face of this store", folder)
            self.store.edit(f"import {len(changes)} mask label(s)", changes)
            return len(changes)


def _encode_frame(rgb: np.ndarray, where: Path, index: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise InputError(f"cannot encode frame {index}", where)
    return buf.tobytes()


def _landmarks(v: Any, where: Path) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("landmarks: expected 68 [x, y] pairs", where) from None
    if a.shape != (68, 2) or not np.all(np.isfinite(a)):
        raise InputError(f"landmarks: expected 68 finite [x, y] pairs, got shape {a.shape}",
                         where)
    return a


def _bbox(v: Any, where: Path) -> BBox:
    try:
        a = [float(x) for x in v]
    except (TypeError, ValueError):
        raise InputError("bbox: expected [x, y, w, h]", where) from None
    if len(a) != 4 or not all(np.isfinite(a)) or a[2] <= 0 or a[3] <= 0:
        raise InputError("bbox: expected [x, y, w, h] with a positive size", where)
    return BBox(*a)


__all__ = ["GROUPS", "StoreDoc", "StoreError", "etag"]
