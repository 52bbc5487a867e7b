"""Temporal smoothing of face tracks, with gap filling (offline, zero phase).

Pure functions on NumPy arrays and records, reused by ``faceplate faceset smooth`` and later by the
OFX "Analyze" pass:

* :func:`build_tracks` associates faces across frames (box IoU and landmark distance, solved as
  an assignment per frame) into :class:`Track` objects whose landmarks are T×68×2 with NaN where the
  face was not found.
* :func:`smooth_track` splits every observed face into a similarity pose (centre x, centre y,
  log scale, rotation) and a normalised shape (the 68 points in mean-face template units),
  fills gaps of at most ``max_gap`` samples by linear interpolation of those parameters, and
  smooths each parameter with a Gaussian-weighted local polynomial fit over a centred window.
  The fit uses samples on both sides (no phase lag), reproduces polynomials up to its order
  exactly (a face moving at constant speed is not delayed, even at the clip's ends) and simply
  ignores missing samples. Pose and shape are smoothed separately, so a fast head turn does not
  shrink or blur the face shape.
* :func:`smooth_store` applies both to an alignments store and writes the result back
  (after a backup).

Time axis: a track's samples are the frames passed in, in order (the store's processed frames),
assumed evenly spaced. Points are (x, y) frame pixels, x right, y down, pixel centres at +0.5.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from faceplate.core.config import Config, option
from faceplate.core.geometry import INNER, MEAN_FACE_68, roll_degrees, umeyama
from faceplate.core.types import BBox, FaceRecord, FrameInfo, StoredMask

#: Detector/aligner name written on faces created by gap filling.
INTERPOLATED = "interpolated"

#: Store meta key holding the settings and counts of the last smoothing run (JSON).
SMOOTHING_META = "smoothing"

_CENTRE = np.array([0.5, 0.5])  # template point whose frame position is the pose "centre"


@dataclass(frozen=True)
class SmoothConfig(Config):
    """Settings of the temporal smoother."""

    window: int = option(7, "Smoothing window in frames (centred; 1 disables smoothing).",
                         minimum=1, maximum=101)
    max_gap: int = option(3, "Fill gaps of at most this many frames by interpolation "
                          "(0 = no filling); longer gaps split a track.", minimum=0, maximum=100)
    order: int = option(1, "Degree of the local polynomial (1 keeps constant motion exact, "
                        "2 also keeps acceleration, smoothing less).", minimum=0, maximum=2)
    shape_window: int = option(5, "Window for the face shape (expression), kept shorter than "
                               "--window so lip motion survives; 0 = same as --window.",
                               minimum=0, maximum=101)
    min_iou: float = option(0.2, "Box overlap that links a face to a track.",
                            minimum=0.0, maximum=1.0)
    max_distance: float = option(0.5, "Mean landmark distance (in face sizes) that still links "
                                 "a face to a track when the boxes do not overlap enough.",
                                 minimum=0.0)


@dataclass(frozen=True, eq=False)
class Track:
    """One face followed through consecutive samples.

    Attributes:
        track_id: 0-based id, in order of first appearance.
        start: Position (index into the ``frames`` list given to :func:`build_tracks`) of the
            first sample.
        members: One entry per sample from ``start`` on: ``(frame_index, face_index)`` of the
            face in that frame, or ``None`` where the face was not found (a gap).
        landmarks: T×68×2 float64 frame pixels, NaN in gaps; T = ``len(members)``.
    """

    track_id: int
    start: int
    members: list[tuple[int, int] | None]
    landmarks: np.ndarray

    @property
    def positions(self) -> range:
        """Positions covered, from ``start`` to the last sample."""
        return range(self.start, self.start + len(self.members))

    @property
    def observed(self) -> int:
        """Number of samples where the face was found."""
        return sum(m is not None for m in self.members)


@dataclass(frozen=True, eq=False)
class SmoothedTrack:
    """Result of :func:`smooth_track`.

    Attributes:
        landmarks: T×68×2 float64 frame pixels; NaN where a gap was too long to fill.
        filled: T bool, True where the sample was missing and has been interpolated.
    """

    landmarks: np.ndarray
    filled: np.ndarray


# --------------------------------------------------------------------------- geometry helpers


def face_size(landmarks: np.ndarray) -> np.ndarray:
    """Face size in pixels: the similarity scale from the mean face (inner face ≈ 1 unit).

    Args:
        landmarks: ...×68×2 frame pixels (NaN allowed: gives NaN).

    Returns:
        The leading shape, float64: size of the 51 inner points' span in frame pixels.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[..., INNER, :]
    centred = pts - pts.mean(axis=-2, keepdims=True)
    ref = MEAN_FACE_68[INNER] - MEAN_FACE_68[INNER].mean(axis=0)
    return np.sqrt((centred**2).sum(axis=(-2, -1)) / (ref**2).sum())


def decompose(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split 68 frame-pixel points into a similarity pose and a normalised shape.

    Args:
        landmarks: 68×2 frame pixels, finite.

    Returns:
        ``(pose, shape)``: pose = [cx, cy, log scale, angle (radians)], where (cx, cy) is the
        frame position of the template point (0.5, 0.5); shape = 68×2 points in template units.
        :func:`compose` inverts it exactly.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    t = umeyama(MEAN_FACE_68[INNER], pts[INNER], True)  # template → frame
    lin = t[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(lin))))
    angle = float(np.arctan2(lin[1, 0], lin[0, 0]))
    centre = lin @ _CENTRE + t[:2, 2]
    shape = (pts - centre) @ np.linalg.inv(lin).T + _CENTRE
    return np.array([centre[0], centre[1], np.log(scale), angle]), shape


def compose(pose: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decompose`: 68×2 frame-pixel points (float64)."""
    cx, cy, log_s, angle = (float(v) for v in pose)
    s = np.exp(log_s)
    c, n = np.cos(angle), np.sin(angle)
    lin = s * np.array([[c, -n], [n, c]])
    return (np.asarray(shape, dtype=np.float64) - _CENTRE) @ lin.T + np.array([cx, cy])


def similarity_between(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 similarity mapping 68-point set ``src`` onto ``dst`` (fitted on the inner points)."""
    return umeyama(np.asarray(src, np.float64)[INNER], np.asarray(dst, np.float64)[INNER],
                   True)[:2]


def landmark_jitter(landmarks: np.ndarray) -> float:
    """Temporal jitter of a track: mean |second difference| of the points over face size.

    ``mean_t mean_p ‖L[t+1] − 2 L[t] + L[t−1]‖ / size[t]`` over every t whose three samples are
    present. Constant-speed motion scores 0; per-frame noise of σ pixels on a face of size S
    scores about 2.2 σ / S.

    Args:
        landmarks: T×68×2 frame pixels, NaN for missing samples.

    Returns:
        The mean (NaN when no three consecutive samples exist).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[0] < 3:
        return float("nan")
    d2 = lm[2:] - 2.0 * lm[1:-1] + lm[:-2]
    per = np.linalg.norm(d2, axis=-1).mean(axis=-1) / face_size(lm[1:-1])
    per = per[np.isfinite(per)]
    return float(per.mean()) if per.size else float("nan")


# --------------------------------------------------------------------------- tracking


def _box_of(rec: FaceRecord) -> BBox:
    return BBox.from_points(np.asarray(rec.landmarks, dtype=np.float64))


def build_tracks(frames: Sequence[tuple[FrameInfo, Sequence[FaceRecord]]], max_gap: int,
                 *, min_iou: float = 0.2, max_distance: float = 0.5) -> list[Track]:
    """Associate faces across frames into tracks.

    Each frame's faces are matched to the open tracks by a linear assignment on a cost that mixes
    the IoU of the landmark boxes and the mean landmark distance in face sizes; a pair is
    admissible when IoU ≥ ``min_iou`` or distance ≤ ``max_distance``. A track whose face has
    been missing for more than ``max_gap`` samples is closed; unmatched faces open new tracks.

    Args:
        frames: ``(FrameInfo, faces)`` per processed frame, in time order.
        max_gap: Longest run of missing samples a track may bridge.
        min_iou: Minimum box IoU for a match.
        max_distance: Maximum mean landmark distance (face sizes) for a match.

    Returns:
        Tracks in order of first appearance; landmark arrays end at each track's last face.
    """
    open_: list[dict[str, Any]] = []  # {"id", "start", "members", "lm", "last_pos", "last_rec"}
    done: list[dict[str, Any]] = []
    next_id = 0
    for pos, (_info, faces) in enumerate(frames):
        still: list[dict[str, Any]] = []
        for tr in open_:
            (still if pos - tr["last_pos"] - 1 <= max_gap else done).append(tr)
        open_ = still
        faces = list(faces)
        matched_faces: set[int] = set()
        if open_ and faces:
            cost = np.full((len(open_), len(faces)), 1e6)
            for i, tr in enumerate(open_):
                prev: FaceRecord = tr["last_rec"]
                pb = _box_of(prev)
                size = max(float(face_size(prev.landmarks)), 1e-6)
                for j, rec in enumerate(faces):
                    iou = pb.iou(_box_of(rec))
                    dist = float(np.linalg.norm(
                        np.asarray(rec.landmarks, np.float64)
                        - np.asarray(prev.landmarks, np.float64), axis=1).mean()) / size
                    if iou >= min_iou or dist <= max_distance:
                        cost[i, j] = (1.0 - iou) + dist
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] >= 1e6:
                    continue
                tr = open_[i]
                gap = pos - tr["last_pos"] - 1
                tr["members"].extend([None] * gap)
                tr["lm"].extend([None] * gap)
                tr["members"].append((faces[j].frame_index, faces[j].face_index))
                tr["lm"].append(np.asarray(faces[j].landmarks, np.float64))
                tr["last_pos"], tr["last_rec"] = pos, faces[j]
                matched_faces.add(j)
        for j, rec in enumerate(faces):
            if j in matched_faces:
                continue
            open_.append({"id": next_id, "start": pos,
                          "members": [(rec.frame_index, rec.face_index)],
                          "lm": [np.asarray(rec.landmarks, np.float64)],
                          "last_pos": pos, "last_rec": rec})
            next_id += 1
    done.extend(open_)
    tracks = []
    for tr in sorted(done, key=lambda t: t["id"]):
        lm = np.full((len(tr["lm"]), 68, 2), np.nan)
        for k, a in enumerate(tr["lm"]):
            if a is not None:
                lm[k] = a
        tracks.append(Track(tr["id"], tr["start"], tr["members"], lm))
    return tracks


# --------------------------------------------------------------------------- smoothing


#: Weight of a pinned (hand-edited) sample in the local fits, against 1 for the others: the
#: smoothed track passes (almost) through it, so its neighbours bend towards the edit.
PIN_WEIGHT = 50.0


def _local_poly(values: np.ndarray, valid: np.ndarray, window: int, order: int,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Gaussian-weighted local polynomial fit evaluated at every sample (zero phase).

    Args:
        values: T×D float64 (anything where ``valid`` is False).
        valid: T bool.
        window: Odd-ish window in samples; the half width is ``window // 2`` and the Gaussian σ
            is half width / 2 (so the edge weights are e⁻² ≈ 0.14).
        order: Polynomial degree (lowered where too few samples are in the window).
        weights: Optional T per-sample weights multiplying the Gaussian (pinned samples).

    Returns:
        T×D fitted values; NaN where the window holds no valid sample.
    """
    n = values.shape[0]
    out = np.full_like(values, np.nan)
    half = window // 2
    if half == 0:
        out[valid] = values[valid]
        return out
    sigma = max(half / 2.0, 0.5)
    for t in range(n):
        lo, hi = max(0, t - half), min(n, t + half + 1)
        idx = np.arange(lo, hi)[valid[lo:hi]]
        if idx.size == 0:
            continue
        dt = (idx - t).astype(np.float64)
        w = np.exp(-0.5 * (dt / sigma) ** 2)
        if weights is not None:
            w = w * weights[idx]
        # lower the degree when the samples cannot support it (too few, or all on one side
        # for the quadratic term)
        deg = min(order, idx.size - 1, len(np.unique(dt)) - 1)
        x = np.vander(dt, deg + 1, increasing=True)  # columns 1, dt, dt²
        xtw = x.T * w
        gram = xtw @ x
        try:
            coef_row = np.linalg.solve(gram, xtw)[0]  # weights giving the intercept
        except np.linalg.LinAlgError:
            coef_row = w / w.sum()
        out[t] = coef_row @ values[idx]
    return out


def _fill_gaps(values: np.ndarray, valid: np.ndarray, max_gap: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Linear interpolation across interior runs of ≤ ``max_gap`` missing samples.

    Returns the filled values and the mask of samples that were filled.
    """
    filled = np.zeros(valid.shape, dtype=bool)
    out = values.copy()
    idx = np.flatnonzero(valid)
    for a, b in zip(idx[:-1], idx[1:]):
        gap = b - a - 1
        if 0 < gap <= max_gap:
            for k in range(a + 1, b):
                f = (k - a) / (b - a)
                out[k] = (1.0 - f) * values[a] + f * values[b]
                filled[k] = True
    return out, filled


def smooth_track(landmarks: np.ndarray, window: int = 7, max_gap: int = 3, order: int = 1,
                 shape_window: int | None = None,
                 pinned: np.ndarray | None = None) -> SmoothedTrack:
    """Smooth one track's landmarks over time and fill its short gaps.

    Each present sample is split into pose [cx, cy, log s, angle] and a normalised shape
    (:func:`decompose`); the angle is unwrapped; gaps of ≤ ``max_gap`` samples are filled by
    linear interpolation of pose and shape; then pose (``window``) and shape (``shape_window``)
    are smoothed by a Gaussian-weighted local polynomial of degree ``order`` over samples on both
    sides. A gap longer than ``max_gap`` splits the track: the parts are smoothed independently
    and the gap stays NaN.

    Args:
        landmarks: T×68×2 frame pixels, NaN rows for missing samples.
        window: Pose window in samples (1 = no smoothing).
        max_gap: Longest gap to fill.
        order: 0, 1 or 2.
        shape_window: Shape window; ``None`` or 0 = ``window``.
        pinned: Optional T bool: samples edited by hand. They come out exactly as they went in,
            and weigh :data:`PIN_WEIGHT` in their neighbours' fits, so the track is smoothed
            around them and bends towards them.

    Returns:
        :class:`SmoothedTrack` (T×68×2 float64 landmarks, T bool ``filled``).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks: expected T×68×2, got shape {lm.shape}")
    if window < 1 or order not in (0, 1, 2) or max_gap < 0:
        raise ValueError(f"smooth_track: bad window={window}, order={order}, max_gap={max_gap}")
    shape_window = shape_window if shape_window else window
    n = lm.shape[0]
    present = np.all(np.isfinite(lm), axis=(1, 2))
    pin = np.zeros(n, bool) if pinned is None else np.asarray(pinned, bool) & present
    if pin.shape != (n,):
        raise ValueError(f"pinned: expected {n} flags, got shape {pin.shape}")
    pose = np.full((n, 4), np.nan)
    shape = np.full((n, 136), np.nan)
    for k in np.flatnonzero(present):
        p, s = decompose(lm[k])
        pose[k], shape[k] = p, s.ravel()
    if present.any():  # unwrap the angle across the present samples
        ang = pose[present, 3]
        pose[present, 3] = np.unwrap(ang)
    params = np.concatenate([pose, shape], axis=1)
    params, filled = _fill_gaps(params, present, max_gap)
    valid = present | filled
    out = np.full_like(lm, np.nan)
    # split at the gaps that stay open
    t = 0
    while t < n:
        if not valid[t]:
            t += 1
            continue
        end = t
        while end < n and valid[end]:
            end += 1
        seg = params[t:end]
        seg_valid = np.ones(end - t, dtype=bool)
        wts = np.where(pin[t:end], PIN_WEIGHT, 1.0) if pin.any() else None
        sp = _local_poly(seg[:, :4], seg_valid, window, order, wts)
        ss = _local_poly(seg[:, 4:], seg_valid, shape_window, order, wts)
        for j in range(end - t):
            out[t + j] = lm[t + j] if pin[t + j] else compose(sp[j], ss[j].reshape(68, 2))
        t = end
    return SmoothedTrack(out, filled)


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class SmoothReport:
    """What :func:`smooth_store` did.

    Attributes:
        frames: Frames read.
        faces: Faces updated (smoothed).
        pinned: Faces kept as they are (pinned by a hand edit).
        filled: Faces created by gap filling.
        tracks: Tracks found.
        jitter_before: Mean :func:`landmark_jitter` over tracks (weighted by length), before.
        jitter_after: The same after smoothing (on the faces that were present before).
        backup: The store backup written first.
        seconds: Wall time.
    """

    frames: int
    faces: int
    filled: int
    pinned: int
    tracks: int
    jitter_before: float
    jitter_after: float
    backup: str
    seconds: float


def _move_masks(masks: dict[str, StoredMask], new_to_old: np.ndarray) -> dict[str, StoredMask]:
    """Re-anchor stored masks: frame → mask matrices composed with a new → old similarity."""
    from faceplate.core.geometry import compose_affine

    return {k: dataclasses.replace(m, affine=compose_affine(m.affine, new_to_old))
            for k, m in masks.items()}


def move_box(box: BBox, old_to_new: np.ndarray) -> BBox:
    """The box moved by a 2×3 similarity (centre mapped, size scaled), frame pixels."""
    cx, cy = box.center
    s = float(np.sqrt(abs(np.linalg.det(old_to_new[:, :2]))))
    nx, ny = old_to_new[:, :2] @ np.array([cx, cy]) + old_to_new[:, 2]
    w, h = box.w * s, box.h * s
    return BBox(float(nx - w / 2), float(ny - h / 2), float(w), float(h))


def _weighted_mean(vals: list[tuple[float, int]]) -> float:
    good = [(v, w) for v, w in vals if np.isfinite(v) and w > 0]
    if not good:
        return float("nan")
    return float(sum(v * w for v, w in good) / sum(w for _, w in good))


def smooth_store(store: Any, cfg: SmoothConfig | None = None,
                 progress: Callable[[int], None] | None = None) -> SmoothReport:
    """Smooth every track of an alignments store in place, filling short gaps.

    Backs the store up first (``store.backup()``). Present faces get smoothed landmarks, a box
    and stored-mask matrices moved by the same similarity, and a recomputed roll. Faces created in
    gaps get ``detector = aligner = "interpolated"``, score 0, the next free face index of their
    frame, a box interpolated between the neighbours and the masks of the nearer neighbour
    re-anchored to them. Faces pinned in the store (edited by hand in the Studio) are kept
    exactly as they are and the track is smoothed around them. The settings and counts are
    written to the store meta key ``"smoothing"`` (JSON).

    Raises:
        StoreConflictError: Another program (the Studio) changed the store while this ran;
            nothing was written.

    Args:
        store: An open, writable ``faceplate.io.store.AlignmentsStore``.
        cfg: Settings (defaults when None).
        progress: Called with the number of tracks done after each track.

    Returns:
        A :class:`SmoothReport`.
    """
    cfg = cfg or SmoothConfig()
    t0 = time.perf_counter()
    backup = store.backup()
    revision = store.revision()
    pinned_keys = store.pinned_faces()
    frames = [(info, list(faces)) for info, faces in store.iter_frames()]
    tracks = build_tracks(frames, cfg.max_gap, min_iou=cfg.min_iou,
                          max_distance=cfg.max_distance)
    recs: dict[tuple[int, int], FaceRecord] = {
        (r.frame_index, r.face_index): r for _, faces in frames for r in faces}
    updates: dict[tuple[int, int], FaceRecord] = {}
    additions: dict[int, list[FaceRecord]] = {}
    jit_before: list[tuple[float, int]] = []
    jit_after: list[tuple[float, int]] = []
    for done, tr in enumerate(tracks, 1):
        pins = np.array([m is not None and m in pinned_keys for m in tr.members], bool)
        res = smooth_track(tr.landmarks, cfg.window, cfg.max_gap, cfg.order,
                           cfg.shape_window or None, pinned=pins)
        after = np.where(np.isnan(tr.landmarks), np.nan, res.landmarks)
        jit_before.append((landmark_jitter(tr.landmarks), len(tr.members)))
        jit_after.append((landmark_jitter(after), len(tr.members)))
        present = [k for k, m in enumerate(tr.members) if m is not None]
        for k, m in enumerate(tr.members):
            new_lm = res.landmarks[k]
            if m is not None and m in pinned_keys:
                continue  # edited by hand: kept as it is
            if m is not None:
                old = recs[m]
                old_lm = np.asarray(old.landmarks, np.float64)
                o2n = similarity_between(old_lm, new_lm)
                n2o = similarity_between(new_lm, old_lm)
                updates[m] = dataclasses.replace(
                    old, landmarks=new_lm.astype(np.float32), bbox=move_box(old.bbox, o2n),
                    masks=_move_masks(old.masks, n2o), roll=roll_degrees(new_lm))
            elif res.filled[k]:
                info, faces = frames[tr.start + k]
                prev_k = max(p for p in present if p < k)
                next_k = min(p for p in present if p > k)
                a, b = recs[tr.members[prev_k]], recs[tr.members[next_k]]  # type: ignore[index]
                f = (k - prev_k) / (next_k - prev_k)
                box = BBox(*((1 - f) * np.array(a.bbox.as_tuple())
                             + f * np.array(b.bbox.as_tuple())).tolist())
                near = a if f <= 0.5 else b
                n2o = similarity_between(new_lm, np.asarray(near.landmarks, np.float64))
                taken = {r.face_index for r in faces} | {
                    r.face_index for r in additions.get(info.index, [])}
                face_index = 0
                while face_index in taken:
                    face_index += 1
                additions.setdefault(info.index, []).append(FaceRecord(
                    frame_index=info.index, frame_name=info.name, face_index=face_index,
                    bbox=box, landmarks=new_lm.astype(np.float32), score=0.0,
                    yaw=(1 - f) * a.yaw + f * b.yaw, pitch=(1 - f) * a.pitch + f * b.pitch,
                    roll=roll_degrees(new_lm), detector=INTERPOLATED, aligner=INTERPOLATED,
                    masks=_move_masks(near.masks, n2o), identity=None, thumbnail=None,
                    timestamp=info.timestamp))
        if progress is not None:
            progress(done)
    touched = {k[0] for k in updates} | set(additions)
    batch = [(info, [updates.get((r.frame_index, r.face_index), r) for r in faces]
              + additions.get(info.index, []))
             for info, faces in frames if info.index in touched]
    store.put_frames(batch, expect_revision=revision)  # one transaction: all or nothing
    n_filled = sum(len(v) for v in additions.values())
    report = SmoothReport(
        frames=len(frames), faces=len(updates), filled=n_filled, pinned=len(pinned_keys),
        tracks=len(tracks),
        jitter_before=_weighted_mean(jit_before), jitter_after=_weighted_mean(jit_after),
        backup=str(backup), seconds=time.perf_counter() - t0)
    meta = {"config": cfg.to_dict(), "tracks": len(tracks), "smoothed": len(updates),
            "interpolated": n_filled, "jitter_before": report.jitter_before,
            "jitter_after": report.jitter_after}
    store.set_meta(SMOOTHING_META, json.dumps(meta))
    return report
