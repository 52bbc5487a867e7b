"""Face tracks across frames: where a face seen in the last frames should be in this one.

:class:`FaceTracks` follows faces through a clip processed in order. After each frame it is
told the boxes of the faces kept there (:meth:`FaceTracks.update`); before a frame it says where
each face it follows should be (:meth:`FaceTracks.predict`): constant velocity of the box
centre and constant rate of change of its size, from the face's last two sightings. A face
unseen for more than ``max_gap`` processed frames is forgotten.

The extraction pipeline uses the predictions to look again, with the detector's own standard
(``Detector.search``), for a face that per-frame detection lost in a hard frame; later work can
use the same predictions to detect every Nth frame and track in between.

:class:`TrackWindow` is what a run keeps: the kept boxes of the last few processed frames;
its predictions replay them into fresh :class:`FaceTracks`. Predictions for a frame are
therefore a function of the faces kept in a fixed number of processed frames before it, so a
run that resumes from an alignments store gets exactly the same predictions from the stored
faces of those frames as an uninterrupted run got from memory.

Boxes are :class:`~faceplate.core.types.BBox` in frame pixels (x right, y down, pixel centres at
+0.5), any convention as long as it is the same throughout; frame positions are the store's
frame indices (any increasing integers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.types import BBox

#: A sighting links to a track when its centre is within this many box sizes of the prediction
#: and its size within this factor of it.
LINK_CENTRE = 0.5
LINK_SIZE = 1.6
#: Limit on the predicted change of size per frame (faces do not grow 25 % a frame).
MAX_SCALE_STEP = 1.25


@dataclass(frozen=True)
class TrackConfig(Config):
    """Options of the track search during extraction."""

    track_search: bool = option(
        True, "Where a face seen in the last frames is not found, search for it where its track "
              "predicts it (the detector's own verification applies).")
    track_gap: int = option(
        2, "Frames a lost face is searched for after its last sighting.", minimum=1, maximum=30)


@dataclass(frozen=True)
class Prediction:
    """Where a followed face should be in a frame.

    Attributes:
        track: Track id (0-based, in order of first sighting).
        box: Predicted box.
        age: Frames (processed frames) since the face was last seen (1 = seen in the previous).
    """

    track: int
    box: BBox
    age: int


@dataclass
class _Track:
    id: int
    seen: list[tuple[int, BBox]] = field(default_factory=list)
    age: int = 0  # processed frames since last seen


def links(a: BBox, b: BBox) -> bool:
    """Do boxes ``a`` (a prediction) and ``b`` (a sighting) belong to the same face?"""
    (ax, ay), (bx, by) = a.center, b.center
    s = max(a.size, 1e-9)
    return (float(np.hypot(ax - bx, ay - by)) <= LINK_CENTRE * s
            and 1.0 / LINK_SIZE <= b.size / s <= LINK_SIZE)


class FaceTracks:
    """The faces followed through a clip (see the module docstring).

    Args:
        max_gap: Processed frames a face may go unseen before it is forgotten.
    """

    def __init__(self, max_gap: int = 2) -> None:
        if max_gap < 1:
            raise ValueError(f"max_gap must be at least 1, got {max_gap}")
        self.max_gap = max_gap
        self._tracks: list[_Track] = []
        self._next = 0
        self._last: int | None = None

    def _box_at(self, t: _Track, index: int) -> BBox:
        (i1, b1) = t.seen[-1]
        if len(t.seen) < 2 or index <= i1:
            return b1
        i0, b0 = t.seen[-2]
        step = (index - i1) / max(i1 - i0, 1)
        (x0, y0), (x1, y1) = b0.center, b1.center
        cx, cy = x1 + (x1 - x0) * step, y1 + (y1 - y0) * step
        rate = float(np.clip(b1.size / max(b0.size, 1e-9), 1 / MAX_SCALE_STEP, MAX_SCALE_STEP))
        k = rate ** step
        w, h = b1.w * k, b1.h * k
        return BBox(cx - w / 2, cy - h / 2, w, h)

    def predict(self, index: int) -> list[Prediction]:
        """Where each followed face should be in frame ``index`` (after the last update)."""
        if self._last is not None and index <= self._last:
            return []  # not a frame after the ones seen: no prediction (order matters)
        return [Prediction(t.id, self._box_at(t, index), t.age + 1) for t in self._tracks]

    def update(self, index: int, boxes: Sequence[BBox]) -> None:
        """Tell the tracks which faces frame ``index`` kept (frames in increasing order)."""
        if self._last is not None and index <= self._last:
            raise ValueError(f"frame {index} comes after frame {self._last}: tracks need the "
                             "frames in order")
        preds = {t.id: self._box_at(t, index) for t in self._tracks}
        pairs = []
        for t in self._tracks:
            for j, b in enumerate(boxes):
                if links(preds[t.id], b):
                    (px, py), (bx, by) = preds[t.id].center, b.center
                    pairs.append((float(np.hypot(px - bx, py - by)), t.age, t.id, j))
        pairs.sort()
        taken_t: set[int] = set()
        taken_b: set[int] = set()
        by_id = {t.id: t for t in self._tracks}
        for _, _, tid, j in pairs:
            if tid in taken_t or j in taken_b:
                continue
            taken_t.add(tid)
            taken_b.add(j)
            tr = by_id[tid]
            tr.seen = [*tr.seen[-1:], (index, boxes[j])]
            tr.age = 0
        for t in self._tracks:
            if t.id not in taken_t:
                t.age += 1
        self._tracks = [t for t in self._tracks if t.age <= self.max_gap]
        for j, b in enumerate(boxes):
            if j not in taken_b:
                self._tracks.append(_Track(self._next, [(index, b)]))
                self._next += 1
        self._last = index

    def __len__(self) -> int:
        return len(self._tracks)


class TrackWindow:
    """The kept boxes of the last processed frames, and the predictions they give.

    Args:
        max_gap: As for :class:`FaceTracks`.

    The window holds ``2 * (max_gap + 1)`` frames: enough for the last two sightings of every
    face still followed.
    """

    def __init__(self, max_gap: int = 2) -> None:
        FaceTracks(max_gap)  # validates
        self.max_gap = max_gap
        self.frames: deque[tuple[int, tuple[BBox, ...]]] = deque(maxlen=2 * (max_gap + 1))

    def add(self, index: int, boxes: Sequence[BBox]) -> None:
        """Record the faces kept in processed frame ``index`` (frames in increasing order)."""
        if self.frames and index <= self.frames[-1][0]:
            raise ValueError(f"frame {index} comes after frame {self.frames[-1][0]}")
        self.frames.append((index, tuple(boxes)))

    def predict(self, index: int) -> list[Prediction]:
        """Where the faces of the window's frames should be in frame ``index``."""
        tracks = FaceTracks(self.max_gap)
        for i, boxes in self.frames:
            if i < index:
                tracks.update(i, boxes)
        return tracks.predict(index)
