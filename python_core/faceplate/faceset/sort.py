"""Sort and group a faceset: sort keys (registry ``SORT_KEYS``) and reversible file moves.

A faceset is a folder of aligned face PNGs, each carrying its :class:`~faceplate.io.faceset.
FaceMeta` (record, frame → crop matrix, size, centering), so its files can be renamed and moved
freely. Sorting works in two steps:

1. A sort key **measures** every face: a score (one float, for the numeric keys such as
   ``blur`` or ``yaw``) or a feature vector (for the similarity keys ``identity`` and ``hist``),
   then turns the measurements into an **order** (a permutation of the faces) or into
   **groups** (bins for numeric keys, clusters for similarity keys).
2. :func:`sort_faceset` turns the order or groups into file changes (rename with a rank prefix,
   or move into bin folders), writes a JSON log of every change *before* touching a file, then
   applies the changes without ever overwriting a file. :func:`undo_sort` reverts a log exactly.

Crop conventions: pixels are H×W×3 ``uint8`` sRGB; crop landmarks are (x, y) crop pixels,
x right, y down, pixel centres at +0.5 (``transform_points(record.landmarks, meta.matrix)``).

Log format (``faceplate-sort-log`` version 1)::

    {"format": "faceplate-sort-log", "version": 1, "status": "in-progress" | "complete" |
     "undoing", "phase": 1 | 2, "time": ISO-8601, "input": str, "output": str | null,
     "mode": "move" | "copy",
     "sort_by": str | null, "group_by": str | null, "options": {...}, "configs": {...},
     "created_dirs": [str], "changes": [{"from": str, "to": str, "tmp": str | null,
     "undo_tmp": str | null, "sha256": str | null}]}

Paths in the log are relative to the log file's folder, so a faceset moved together with its
log can still be undone. ``tmp`` is the temporary name a file holds between the two phases of a
rename (phase 1: every source → its ``tmp``; phase 2: every ``tmp`` → its destination), or the
name a copy is written under before it gets its own; ``undo_tmp`` the same for an undo;
``sha256`` is the content hash of a copy (undo deletes a copy only when it is unchanged). With
the status and phase, the log always says where each file can be, so an interrupted sort or
undo can be undone (or resumed) with ``faceplate sort --undo LOG``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, InputError, NoFacesError, OutputError
from faceplate.core.geometry import (
    distance_from_mean,
    matrix_scale,
    template_matrix,
    transform_points,
)
from faceplate.core.registry import Registry
from faceplate.io.faceset import FaceMeta, face_filename, read_face_png, scan_faceset
from faceplate.io.paths import sha256_file

LOG_FORMAT = "faceplate-sort-log"
LOG_VERSION = 1


# --------------------------------------------------------------------------- faces


class SortFace:
    """One face file of a faceset: its path, its metadata and (lazily) its pixels.

    Args:
        path: The face PNG.
        meta: Its metadata (from ``scan_faceset`` / ``read_face_meta``).
    """

    def __init__(self, path: Path, meta: FaceMeta) -> None:
        self.path = Path(path)
        self.meta = meta
        self._rgb: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        """The aligned crop, size×size×3 ``uint8`` sRGB (decoded on first use)."""
        if self._rgb is None:
            self._rgb, _ = read_face_png(self.path)
        return self._rgb

    @property
    def crop_landmarks(self) -> np.ndarray:
        """68×2 float64 (x, y) crop pixels, pixel centres at +0.5."""
        return transform_points(np.asarray(self.meta.record.landmarks, np.float64),
                                self.meta.matrix)

    @property
    def mask(self) -> np.ndarray:
        """H×W ``bool``: inside the convex hull of the 68 crop landmarks (brows to chin).

        Falls back to the whole crop when the hull covers fewer than 16 pixels (a face whose
        landmarks lie outside its own crop cannot happen for extracted faces, but a hand-edited
        record could do it).
        """
        if self._mask is None:
            h, w = self.rgb.shape[:2]
            pts = self.crop_landmarks - 0.5  # OpenCV: integer pixel centres
            hull = cv2.convexHull(np.round(pts * 16.0).astype(np.int32))
            m = np.zeros((h, w), np.uint8)
            cv2.fillConvexPoly(m, hull, 1, lineType=cv2.LINE_8, shift=4)
            mask = m.astype(bool)
            self._mask = mask if int(mask.sum()) >= 16 else np.ones((h, w), bool)
        return self._mask

    def release(self) -> None:
        """Drop the decoded pixels (measuring a large faceset keeps one face in memory)."""
        self._rgb = None
        self._mask = None

    def __repr__(self) -> str:
        return f"SortFace({str(self.path)!r})"


def load_faceset(folder: str | Path) -> tuple[list[SortFace], list[tuple[Path, str]]]:
    """The faces of ``folder`` (not recursive) in file-name order, and the files left out.

    Returns:
        ``(faces, others)``: faces sorted by file name (the deterministic base order every key
        breaks ties with), and ``(path, reason)`` for every other file (hidden files aside).

    Raises:
        InputError: ``folder`` is missing or not a folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError("no such folder", folder)
    if not folder.is_dir():
        raise InputError("not a folder (sort takes a faceset folder)", folder)
    found, rejected = scan_faceset(folder)
    faces = sorted((SortFace(p, m) for p, m in found), key=lambda f: f.path.name)
    seen = {p.name for p, _ in found} | {p.name for p, _ in rejected}
    others = list(rejected) + [(p, "not a PNG") for p in sorted(folder.iterdir())
                               if p.is_file() and p.name not in seen and not p.name.startswith(".")]
    return faces, sorted(others, key=lambda o: o[0].name)


# --------------------------------------------------------------------------- keys


class ProgressBar(Protocol):
    """What a progress bar offers (tqdm fits)."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


#: ``factory(total, description)`` → a bar; the CLI passes ``faceplate.cli.progress.bar``.
ProgressFactory = Callable[[int, str], ProgressBar]


@dataclass(frozen=True)
class Group:
    """One bin of a group-by: its folder name and the indices of its faces (input order)."""

    name: str
    indices: tuple[int, ...]


class SortKey(ABC):
    """A way to order and bin faces.

    Subclasses implement :meth:`measure` (one face → a float score or a 1-D feature vector),
    :meth:`order` and :meth:`group`. The base runs the measurement over a faceset.
    """

    registry_name: str = ""
    #: Whether :meth:`measure` decodes pixels (False: it reads the record only, which is fast).
    needs_pixels: ClassVar[bool] = True

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def measure(self, face: SortFace) -> float | np.ndarray:
        """The score (float) or feature vector (1-D float array) of one face."""

    def measure_all(self, faces: Sequence[SortFace],
                    progress: ProgressFactory | None = None) -> np.ndarray:
        """Measure every face: (N,) float64 scores or (N, D) float64 features.

        Pixels are released after each face, so memory stays flat on large facesets.
        """
        bar = progress(len(faces), f"measuring {self.registry_name}") if progress else None
        out: list[Any] = []
        try:
            for face in faces:
                out.append(self.measure(face))
                face.release()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if not out:
            return np.zeros((0,), np.float64)
        return np.asarray(out, dtype=np.float64)

    @abstractmethod
    def order(self, values: np.ndarray) -> np.ndarray:
        """A permutation of ``range(N)``: the faces in sorted order (ties keep input order)."""

    @abstractmethod
    def group(self, values: np.ndarray, bins: int | None,
              binning: Literal["width", "quantile"] = "width") -> list[Group]:
        """Bins covering every face exactly once (empty bins are left out).

        Args:
            values: The output of :meth:`measure_all`.
            bins: Number of bins (numeric keys; default 5) or the largest number of clusters
                (similarity keys; default: cut the cluster tree at the key's threshold).
            binning: Numeric keys: equal-width bins over the range, or quantile bins (each
                holding about the same number of faces).
        """


SORT_KEYS: Registry[SortKey] = Registry("sort key")


# ----------------------------------------------------------------- numeric keys


@dataclass(frozen=True)
class NoOptions(Config):
    """A sort key without options."""


class ScoreKey(SortKey):
    """A key that gives each face one number; sorts by it and bins its range."""

    #: Highest score first (e.g. sharpest, brightest, largest).
    descending: ClassVar[bool] = False
    #: How bin edges are written in bin folder names.
    edge_format: ClassVar[str] = "{:.0f}"

    @abstractmethod
    def score(self, face: SortFace) -> float:
        """The face's score."""

    def measure(self, face: SortFace) -> float:
        return float(self.score(face))

    def order(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, np.float64)
        key = np.where(np.isnan(v), np.inf, -v if self.descending else v)
        return np.argsort(key, kind="stable")

    def group(self, values: np.ndarray, bins: int | None,
              binning: Literal["width", "quantile"] = "width") -> list[Group]:
        return numeric_groups(self.registry_name, values, 5 if bins is None else bins, binning,
                              self.edge_format)


def numeric_groups(prefix: str, values: np.ndarray, bins: int,
                   binning: Literal["width", "quantile"], edge_format: str = "{:.0f}"
                   ) -> list[Group]:
    """Bin scores into ``bins`` equal-width or quantile bins named ``<prefix>_<lo>_<hi>``.

    Faces whose score is NaN go to ``<prefix>_unknown``. Empty bins are left out; bin names are
    made unique (a ``_<n>`` suffix) when two ranges print the same.
    """
    if bins < 1:
        raise ConfigError(f"bins: {bins} is below the minimum 1")
    v = np.asarray(values, np.float64)
    ok = ~np.isnan(v)
    groups: list[Group] = []
    if ok.any():
        lo, hi = float(v[ok].min()), float(v[ok].max())
        if binning == "quantile":
            edges = np.unique(np.quantile(v[ok], np.linspace(0.0, 1.0, bins + 1)))
        else:
            edges = np.linspace(lo, hi, bins + 1)
        if len(edges) < 2 or hi <= lo:
            edges = np.array([lo, hi])
        n = len(edges) - 1
        idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n - 1)
        for b in range(n):
            members = np.flatnonzero(ok & (idx == b))
            if len(members):
                name = (f"{prefix}_{edge_format.format(edges[b])}_"
                        f"{edge_format.format(edges[b + 1])}")
                groups.append(Group(name, tuple(int(i) for i in members)))
    unknown = np.flatnonzero(~ok)
    if len(unknown):
        groups.append(Group(f"{prefix}_unknown", tuple(int(i) for i in unknown)))
    return _unique_names(groups)


def _unique_names(groups: list[Group]) -> list[Group]:
    seen: dict[str, int] = {}
    out = []
    for g in groups:
        n = seen.get(g.name, 0)
        seen[g.name] = n + 1
        out.append(g if n == 0 else Group(f"{g.name}_{n}", g.indices))
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma Y' of display sRGB values, H×W float32 in [0, 255]."""
    f = rgb.astype(np.float32)
    return 0.2126 * f[..., 0] + 0.7152 * f[..., 1] + 0.0722 * f[..., 2]


@dataclass(frozen=True)
class BlurConfig(Config):
    kernel: int = option(3, "Laplacian aperture in pixels.", choices=(1, 3, 5, 7))


@SORT_KEYS.register("blur", config=BlurConfig)
class BlurKey(ScoreKey):
    """Sharpness: variance of the Laplacian of luma inside the face, sharpest first."""

    descending = True
    edge_format = "{:.1f}"

    def score(self, face: SortFace) -> float:
        lap = cv2.Laplacian(_luma(face.rgb), cv2.CV_32F, ksize=self.cfg.kernel)
        return float(np.var(lap[face.mask], dtype=np.float64))


@dataclass(frozen=True)
class BlurFftConfig(Config):
    cutoff: float = option(0.12, "Spatial frequency (cycles per pixel) above which energy "
                           "counts as detail.", minimum=0.01, maximum=0.5)


@SORT_KEYS.register("blur-fft", config=BlurFftConfig)
class BlurFftKey(ScoreKey):
    """Sharpness: share of spectral energy above a cut-off frequency, in dB, sharpest first.

    The luma crop is cut to the face's bounding square, mean-removed and Hann-windowed (no
    edge leakage), then ``10·log10(E(|f| > cutoff) / E(|f| > 0))``; brightness and contrast
    cancel out.
    """

    descending = True
    edge_format = "{:.1f}"

    def score(self, face: SortFace) -> float:
        ys, xs = np.nonzero(face.mask)
        grey = _luma(face.rgb)[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float64)
        grey -= grey.mean()
        h, w = grey.shape
        grey *= np.outer(np.hanning(h), np.hanning(w))
        power = np.abs(np.fft.fft2(grey)) ** 2
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.fftfreq(w)[None, :]
        radius = np.sqrt(fx * fx + fy * fy)
        total = float(power[radius > 0].sum())
        high = float(power[radius > self.cfg.cutoff].sum())
        if total <= 0.0:
            return -200.0  # a flat crop: no detail at all
        return 10.0 * math.log10(max(high / total, 1e-20))


@SORT_KEYS.register("brightness", config=NoOptions)
class BrightnessKey(ScoreKey):
    """Mean Rec. 709 luma (0–255 on the sRGB values) inside the face, brightest first."""

    descending = True

    def score(self, face: SortFace) -> float:
        return float(_luma(face.rgb)[face.mask].mean())


@SORT_KEYS.register("hue", config=NoOptions)
class HueKey(ScoreKey):
    """Mean hue inside the face in degrees (−180, 180], red at 0, yellow +60, magenta −60.

    A circular mean weighted by saturation (grey pixels carry no hue), so skin tones, which sit
    just either side of red, stay contiguous instead of wrapping round at 0/360.
    """

    def score(self, face: SortFace) -> float:
        hsv = cv2.cvtColor(face.rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
        h = np.radians(hsv[..., 0][face.mask].astype(np.float64))
        s = hsv[..., 1][face.mask].astype(np.float64)
        x, y = float((s * np.cos(h)).sum()), float((s * np.sin(h)).sum())
        if math.hypot(x, y) < 1e-9:
            return 0.0
        return math.degrees(math.atan2(y, x))


class _RecordKey(ScoreKey):
    needs_pixels = False


@SORT_KEYS.register("yaw", config=NoOptions)
class YawKey(_RecordKey):
    """Head yaw from the record (degrees, + when the face turns towards image right)."""

    def score(self, face: SortFace) -> float:
        return float(face.meta.record.yaw)


@SORT_KEYS.register("pitch", config=NoOptions)
class PitchKey(_RecordKey):
    """Head pitch from the record (degrees, + looking up)."""

    def score(self, face: SortFace) -> float:
        return float(face.meta.record.pitch)


@SORT_KEYS.register("roll", config=NoOptions)
class RollKey(_RecordKey):
    """Head roll from the record (degrees, + counter-clockwise in the image)."""

    def score(self, face: SortFace) -> float:
        return float(face.meta.record.roll)


@SORT_KEYS.register("size", config=NoOptions)
class SizeKey(_RecordKey):
    """Face size in the source frame (inner-face width in frame pixels), largest first.

    Measured from the record's 68 landmarks through the mean-face fit, so it does not depend on
    the crop size the faceset was written at.
    """

    descending = True

    def score(self, face: SortFace) -> float:
        return 1.0 / matrix_scale(template_matrix(face.meta.record.landmarks))


@SORT_KEYS.register("distance", config=NoOptions)
class DistanceKey(_RecordKey):
    """Landmark distance from the mean face (template units), most typical first.

    High values flag extreme expressions, profiles and misaligned faces.
    """

    edge_format = "{:.3f}"

    def score(self, face: SortFace) -> float:
        return distance_from_mean(face.meta.record.landmarks)


# ------------------------------------------------------------------ similarity keys


def cluster_labels(features: np.ndarray, threshold: float, max_clusters: int | None,
                   linkage: str = "average") -> np.ndarray:
    """Agglomerative clustering on Euclidean distance; labels 0..K-1, largest cluster first.

    Args:
        features: (N, D) float vectors.
        threshold: Cut the tree where clusters are further apart than this (when
            ``max_clusters`` is None).
        max_clusters: Cut the tree into at most this many clusters instead.
        linkage: SciPy linkage method ("average", "complete", "single", "ward").

    Returns:
        (N,) int64 labels; clusters are numbered by size (descending), ties by their first face.
    """
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage

    n = len(features)
    if n == 0:
        return np.zeros((0,), np.int64)
    if n == 1:
        return np.zeros((1,), np.int64)
    tree = scipy_linkage(np.asarray(features, np.float64), method=linkage, metric="euclidean")
    if max_clusters is not None:
        raw = fcluster(tree, t=max_clusters, criterion="maxclust")
    else:
        raw = fcluster(tree, t=threshold, criterion="distance")
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for i, lab in enumerate(raw.tolist()):
        first.setdefault(lab, i)
        count[lab] = count.get(lab, 0) + 1
    ranked = sorted(count, key=lambda lab: (-count[lab], first[lab]))
    remap = {lab: k for k, lab in enumerate(ranked)}
    return np.array([remap[lab] for lab in raw.tolist()], np.int64)


def _groups_from_labels(prefix: str, labels: np.ndarray) -> list[Group]:
    k = int(labels.max()) + 1 if len(labels) else 0
    return [Group(f"{prefix}_{c:03d}", tuple(int(i) for i in np.flatnonzero(labels == c)))
            for c in range(k)]


class ClusterKey(SortKey):
    """A key that gives each face a feature vector and groups faces by clustering."""

    cfg: Any

    def labels(self, values: np.ndarray, max_clusters: int | None = None) -> np.ndarray:
        return cluster_labels(values, self.cfg.threshold, max_clusters, self.cfg.linkage)

    def group(self, values: np.ndarray, bins: int | None,
              binning: Literal["width", "quantile"] = "width") -> list[Group]:
        return _groups_from_labels(self.registry_name, self.labels(values, bins))


Linkage = Literal["average", "complete", "single"]


@dataclass(frozen=True)
class IdentityConfig(Config):
    threshold: float = option(0.55, "Embedding distance above which two clusters are different "
                              "people (dlib: same person is usually below 0.6).",
                              minimum=0.0, maximum=2.0)
    linkage: Linkage = option("average", "How the distance between two clusters is taken.")
    use_stored: bool = option(True, "Use the identity stored in each face's record when there "
                              "is one (else compute it from the crop, ~75 ms a face).")


@SORT_KEYS.register("identity", config=IdentityConfig)
class IdentityKey(ClusterKey):
    """Identity: clusters of dlib 128-d embeddings; the largest cluster first.

    Faces of one person end up contiguous; within a cluster the faces nearest its centre come
    first. Embeddings stored in the records are used as they are; missing ones are computed on
    the crop (the file is not rewritten, so a sort never changes a face's bytes).
    """

    def __init__(self, cfg: IdentityConfig) -> None:
        super().__init__(cfg)
        self._encoder: Any = None

    def measure(self, face: SortFace) -> np.ndarray:
        stored = face.meta.record.identity
        if self.cfg.use_stored and stored is not None:
            return np.asarray(stored, np.float64)
        if self._encoder is None:
            from faceplate.extract.identity.embed import IdentityEncoder

            self._encoder = IdentityEncoder()
        vec = self._encoder.embed(face.rgb, face.crop_landmarks)
        return np.asarray(vec, np.float64)

    def order(self, values: np.ndarray) -> np.ndarray:
        labels = self.labels(values)
        out: list[int] = []
        for c in range(int(labels.max()) + 1 if len(labels) else 0):
            members = np.flatnonzero(labels == c)
            centre = values[members].mean(axis=0)
            d = np.linalg.norm(values[members] - centre, axis=1)
            out.extend(int(i) for i in members[np.argsort(d, kind="stable")])
        return np.array(out, np.int64)


@dataclass(frozen=True)
class HistConfig(Config):
    bins_per_channel: int = option(32, "Histogram bins per RGB channel.", minimum=4,
                                   maximum=256)
    threshold: float = option(0.3, "Hellinger distance (0–1) above which two clusters of "
                              "colour histograms are kept apart.", minimum=0.0, maximum=1.0)
    linkage: Linkage = option("average", "How the distance between two clusters is taken.")


@SORT_KEYS.register("hist", config=HistConfig)
class HistKey(ClusterKey):
    """Colour similarity: RGB histograms inside the face, nearest-neighbour chain order.

    Features are square roots of the normalised histograms (R, G, B concatenated), so their
    Euclidean distance divided by √2 is the Hellinger distance (0 same colours, 1 disjoint).
    The order starts at the face nearest the mean histogram and always steps to the most
    similar face not yet placed.
    """

    def measure(self, face: SortFace) -> np.ndarray:
        n = self.cfg.bins_per_channel
        px = face.rgb[face.mask]
        hists = [np.bincount((px[:, c].astype(np.int64) * n) // 256, minlength=n)
                 for c in range(3)]
        h = np.concatenate(hists).astype(np.float64)
        return np.sqrt(h / max(h.sum(), 1.0)) / math.sqrt(2.0)

    def order(self, values: np.ndarray) -> np.ndarray:
        n = len(values)
        if n == 0:
            return np.zeros((0,), np.int64)
        v = np.asarray(values, np.float64)
        left = np.ones(n, bool)
        cur = int(np.argmin(np.linalg.norm(v - v.mean(axis=0), axis=1)))
        out = [cur]
        left[cur] = False
        for _ in range(n - 1):
            d = np.linalg.norm(v - v[cur], axis=1)
            d[~left] = np.inf
            cur = int(np.argmin(d))
            out.append(cur)
            left[cur] = False
        return np.array(out, np.int64)


# --------------------------------------------------------------------------- file moves


@dataclass(frozen=True)
class SortOptions(Config):
    """How ``faceplate sort`` applies an order or grouping to the files."""

    bins: int | None = option(None, "Group-by: number of bins for numeric keys (default 5), "
                              "or the most clusters for identity/hist (default: cut at the "
                              "threshold).", minimum=1, maximum=10000)
    binning: Literal["width", "quantile"] = option(
        "width", "Group-by with numeric keys: equal-width bins, or quantile bins holding about "
        "the same number of faces each.")
    threshold: float | None = option(None, "Clustering threshold of the identity/hist keys "
                                     "(overrides --identity-threshold / --hist-threshold).",
                                     minimum=0.0)
    naming: Literal["prefix", "index"] = option(
        "prefix", "Sort-by file names: rank prefix + the face's name (00012_clip_000042_0.png), "
        "or the rank alone (00012.png); the log keeps the original names either way.")
    reverse: bool = option(False, "Reverse the sort order.")
    keep: bool = option(False, "Copy the faces instead of moving them (originals stay put).")


@dataclass(frozen=True)
class Change:
    """One file change: ``src`` becomes ``dst`` (moved, or copied when the run keeps originals).

    ``tmp`` is the temporary name a moved file holds between the two phases of a rename.
    """

    src: Path
    dst: Path
    tmp: Path | None = None
    sha256: str | None = None


@dataclass
class SortResult:
    """What :func:`sort_faceset` did."""

    faces: int
    changed: int
    others: list[tuple[Path, str]]
    log_path: Path
    groups: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0


_PREFIX_RE = re.compile(r"^(\d+)_(.+)$")


def _base_name(face: SortFace) -> str:
    """The face's name without a rank prefix this tool added earlier.

    A leading ``<digits>_`` is removed only when what remains is the name extraction gave the
    face (``face_filename(record)``), so names that merely start with digits are kept whole.
    """
    name = face.path.name
    m = _PREFIX_RE.match(name)
    if m:
        canonical = face_filename(face.meta.record)
        if m.group(2) == canonical:
            return canonical
    return name


def _ranked_names(faces: Sequence[SortFace], order: Sequence[int],
                  naming: Literal["prefix", "index"]) -> dict[int, str]:
    width = max(5, len(str(max(len(order) - 1, 0))))
    out: dict[int, str] = {}
    for rank, i in enumerate(order):
        face = faces[i]
        if naming == "index":
            out[i] = f"{rank:0{width}d}{face.path.suffix}"
        else:
            out[i] = f"{rank:0{width}d}_{_base_name(face)}"
    return out


def _tmp_name(dst_dir: Path, name: str, token: str, tag: str) -> Path:
    return dst_dir / f".{name}.{tag}-{token}.tmp"


def _link_or_rename(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst`` without ever replacing an existing ``dst``.

    A hard link then an unlink (atomic refusal when ``dst`` exists; if interrupted, the file
    has both names and nothing is lost); on another filesystem, a copy to a temporary name
    beside ``dst``, then the same; where hard links are not supported, check then rename.

    Raises:
        OutputError: ``dst`` exists.
    """
    try:
        os.link(src, dst)
    except FileExistsError:
        raise OutputError(f"already exists; refusing to overwrite it with {src}", dst) from None
    except OSError as err:
        if err.errno == errno.EXDEV:
            tmp = _tmp_name(dst.parent, dst.name, uuid.uuid4().hex[:8], "fpcopy")
            shutil.copy2(src, tmp)
            try:
                _link_or_rename(tmp, dst)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.unlink(src)
            return
        if os.path.lexists(dst):
            raise OutputError(f"already exists; refusing to overwrite it with {src}",
                              dst) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _copy_noclobber(src: Path, dst: Path, tmp: Path) -> None:
    """Copy ``src`` to ``dst`` through ``tmp`` (beside ``dst``); never replaces ``dst``."""
    shutil.copy2(src, tmp)
    try:
        _link_or_rename(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the sort log: {err.strerror or err}", path) from None


class _Log:
    """The JSON change log, rewritten atomically at each state change."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.base = path.parent
        self.data = dict(header)

    def set_changes(self, changes: Sequence[Change], created_dirs: Sequence[Path]) -> None:
        b = self.base
        self.data["created_dirs"] = [_rel(d, b) for d in created_dirs]
        self.data["changes"] = [
            {"from": _rel(c.src, b), "to": _rel(c.dst, b),
             "tmp": None if c.tmp is None else _rel(c.tmp, b), "undo_tmp": None,
             "sha256": c.sha256}
            for c in changes
        ]

    def write(self, status: str) -> None:
        self.data["status"] = status
        _write_json_atomic(self.path, self.data)


def _default_log_path(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"sort_log_{stamp}.json"
    n = 1
    while path.exists():
        path = folder / f"sort_log_{stamp}_{n}.json"
        n += 1
    return path


def _make_dir(path: Path, created: list[Path]) -> None:
    if path.exists():
        if not path.is_dir():
            raise OutputError("exists and is not a folder", path)
        return
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        path.mkdir(parents=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder: {err.strerror or err}", path) from None
    created.extend(reversed(missing))


def plan_changes(faces: Sequence[SortFace], dest: Path, *, order: Sequence[int] | None,
                 groups: Sequence[Group] | None, naming: Literal["prefix", "index"]
                 ) -> list[tuple[int, Path]]:
    """Where each face goes: ``(face index, destination path)`` in application order.

    Args:
        faces: The faces, in input order.
        dest: The output folder (the input folder for an in-place run).
        order: Sort order (a permutation of the face indices), or None to keep the names.
        groups: Bins; each face goes into ``dest/<bin name>/``. None: no bin folders.
        naming: Sort-by file names (see :class:`SortOptions`).
    """
    if order is None and groups is None:
        raise ConfigError("nothing to do: choose --sort-by and/or --group-by")
    out: list[tuple[int, Path]] = []
    if groups is None:
        assert order is not None
        names = _ranked_names(faces, order, naming)
        return [(i, dest / names[i]) for i in order]
    rank = {int(i): r for r, i in enumerate(order)} if order is not None else None
    for g in groups:
        members = list(g.indices)
        if rank is not None:
            members.sort(key=lambda i: rank[i])
            names = _ranked_names(faces, members, naming)
        else:
            names = {i: faces[i].path.name for i in members}
        out.extend((i, dest / g.name / names[i]) for i in members)
    return out


def sort_faceset(input_dir: str | Path, output_dir: str | Path | None = None, *,
                 sort_by: str | None = None, group_by: str | None = None,
                 configs: Mapping[str, Any] | None = None,
                 options: SortOptions | None = None, log_path: str | Path | None = None,
                 progress: ProgressFactory | None = None) -> SortResult:
    """Sort and/or group the faces of ``input_dir``, logging every change for :func:`undo_sort`.

    Sort-by renames the faces with a rank prefix (in place, or into ``output_dir``); group-by
    moves them into one sub-folder per bin (of ``output_dir``, or of ``input_dir``); with both,
    faces are grouped and ranked within each bin. Files that are not Faceplate faces stay where
    they are. No file is ever overwritten: every destination is checked before the first move,
    moves go through a temporary name, and the log is written before any file is touched.

    Args:
        input_dir: The faceset folder.
        output_dir: Where the faces go (None or the input folder: in place).
        sort_by: A :data:`SORT_KEYS` name, or None.
        group_by: A :data:`SORT_KEYS` name, or None.
        configs: Key name → its config (missing keys use their defaults).
        options: Run options (bins, naming, keep...).
        log_path: The JSON log (default: ``sort_log_<time>.json`` in the output folder).
        progress: Progress-bar factory, or None.

    Raises:
        InputError: ``input_dir`` is missing or not a folder.
        NoFacesError: ``input_dir`` holds no Faceplate face.
        ConfigError: Unknown key, or neither ``sort_by`` nor ``group_by``.
        OutputError: A destination exists or cannot be written (nothing has moved then).
    """
    t0 = time.perf_counter()
    opts = options or SortOptions()
    if sort_by is None and group_by is None:
        raise ConfigError("nothing to do: choose --sort-by and/or --group-by")
    keys: dict[str, SortKey] = {}
    used_cfgs: dict[str, Any] = {}
    for name in dict.fromkeys(n for n in (sort_by, group_by) if n is not None):
        cfg = (configs or {}).get(name) or SORT_KEYS.default_config(name)
        if opts.threshold is not None and hasattr(cfg, "threshold"):
            cfg = cfg.replace(threshold=opts.threshold)
        used_cfgs[name] = cfg
        keys[name] = SORT_KEYS.create(name, cfg)

    in_dir = Path(input_dir)
    faces, others = load_faceset(in_dir)
    if not faces:
        raise NoFacesError(f"no Faceplate face PNGs here ({len(others)} other files)", in_dir)
    out_dir = Path(output_dir) if output_dir is not None else in_dir
    in_place = out_dir.exists() and os.path.samefile(out_dir, in_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", out_dir)

    measured: dict[str, np.ndarray] = {n: k.measure_all(faces, progress) for n, k in keys.items()}
    order: np.ndarray | None = None
    if sort_by is not None:
        order = keys[sort_by].order(measured[sort_by])
        if opts.reverse:
            order = order[::-1]
        if sorted(order.tolist()) != list(range(len(faces))):
            raise AssertionError(f"sort key {sort_by!r} returned an order that is not a "
                                 "permutation of the faces")
    groups: list[Group] | None = None
    if group_by is not None:
        groups = keys[group_by].group(measured[group_by], opts.bins, opts.binning)

    plan = plan_changes(faces, out_dir, order=None if order is None else order.tolist(),
                        groups=groups, naming=opts.naming)
    copy = opts.keep
    changes = _check_plan(faces, plan, copy)
    token = uuid.uuid4().hex[:8]

    log_file = Path(log_path) if log_path is not None else _default_log_path(out_dir)
    if os.path.lexists(log_file):
        raise OutputError("a file with this name exists; choose another --log", log_file)
    created: list[Path] = []
    _make_dir(out_dir, created)
    for d in sorted({c.dst.parent for c in changes}):
        _make_dir(d, created)
    _make_dir(log_file.parent, created)
    log = _Log(log_file, {
        "format": LOG_FORMAT, "version": LOG_VERSION,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input": str(in_dir.resolve()), "output": None if in_place else str(out_dir.resolve()),
        "mode": "copy" if copy else "move", "sort_by": sort_by, "group_by": group_by,
        "options": opts.to_dict(), "configs": {n: c.to_dict() for n, c in used_cfgs.items()},
        "groups": [] if groups is None else [[g.name, len(g.indices)] for g in groups],
    })
    if copy:
        changes = [Change(c.src, c.dst, _tmp_name(c.dst.parent, c.dst.name, token, "fpcopy"),
                          sha256_file(c.src)) for c in changes]
    else:
        changes = [Change(c.src, c.dst, _tmp_name(c.src.parent, c.src.name, token, "fpsort"))
                   for c in changes]
    log.set_changes(changes, created)
    log.data["phase"] = 1
    log.write("in-progress")

    bar = progress(len(changes), "copying" if copy else "moving") if progress else None
    try:
        if copy:
            for c in changes:
                assert c.tmp is not None
                _copy_noclobber(c.src, c.dst, c.tmp)
                if bar is not None:
                    bar.update(1)
        else:
            for c in changes:  # phase 1: out of the way, within the source folder
                assert c.tmp is not None
                _link_or_rename(c.src, c.tmp)
            log.data["phase"] = 2
            log.write("in-progress")
            for c in changes:  # phase 2: temporary name → final name
                assert c.tmp is not None
                _link_or_rename(c.tmp, c.dst)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    log.write("complete")
    return SortResult(
        faces=len(faces), changed=len(changes), others=others, log_path=log.path,
        groups=[] if groups is None else [(g.name, len(g.indices)) for g in groups],
        seconds=time.perf_counter() - t0)


def _check_plan(faces: Sequence[SortFace], plan: Sequence[tuple[int, Path]],
                copy: bool) -> list[Change]:
    """Refuse a plan that would overwrite anything; drop changes that change nothing."""
    sources = {os.path.abspath(f.path) for f in faces}
    seen: set[str] = set()
    out = []
    for i, dst in plan:
        src = faces[i].path
        a_dst = os.path.abspath(dst)
        if a_dst in seen:
            raise AssertionError(f"two faces planned onto {dst}")
        seen.add(a_dst)
        if a_dst == os.path.abspath(src):
            continue
        if os.path.lexists(dst) and (copy or a_dst not in sources):
            raise OutputError(f"already exists; refusing to overwrite it (it would receive "
                              f"{src.name}); nothing was moved", dst)
        out.append(Change(src, Path(dst)))
    return out


# --------------------------------------------------------------------------- undo


@dataclass
class UndoResult:
    """What :func:`undo_sort` did."""

    restored: int
    removed_copies: int
    removed_dirs: int
    seconds: float


def _read_log(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError("no such sort log", path)
    if not path.is_file():
        raise InputError("not a file (--undo takes the JSON log a sort wrote)", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not a readable sort log: {err}", path) from None
    if not isinstance(data, dict) or data.get("format") != LOG_FORMAT:
        raise InputError(f"not a sort log (no \"format\": \"{LOG_FORMAT}\")", path)
    if not isinstance(data.get("version"), int) or data["version"] > LOG_VERSION:
        raise InputError(f"sort log version {data.get('version')!r} is not one this Faceplate "
                         f"understands ({LOG_VERSION})", path)
    changes = data.get("changes")
    ok = isinstance(changes, list) and all(
        isinstance(c, dict) and isinstance(c.get("from"), str) and isinstance(c.get("to"), str)
        for c in changes)
    if not ok or data.get("mode") not in ("move", "copy"):
        raise InputError("malformed sort log (changes or mode)", path)
    return data


def undo_sort(log_path: str | Path, progress: ProgressFactory | None = None) -> UndoResult:
    """Revert the changes recorded in a sort log, in reverse order, then delete the log.

    Everything is checked before the first file moves: each moved face must be at its new name
    (or its temporary name, when the sort was interrupted) and its old name must be free (or
    about to be freed by another face of the same log); each copy must still exist unchanged.
    Moves go back through temporary names in two phases, so a cycle of renames undoes cleanly
    and nothing is ever overwritten. Folders the sort created are removed when empty.

    Raises:
        InputError: The log is missing or malformed, or a file it needs is missing or changed
            (nothing has moved then); the message names the file.
        OutputError: An original name is occupied by another file (nothing has moved then).
    """
    t0 = time.perf_counter()
    path = Path(log_path)
    data = _read_log(path)
    base = path.parent
    complete = data.get("status") == "complete"
    copy = data["mode"] == "copy"

    def p(s: str | None) -> Path | None:
        return None if s is None else Path(os.path.normpath(base / s))

    entries = [(p(c["from"]), p(c["to"]), p(c.get("tmp")), p(c.get("undo_tmp")),
                c.get("sha256")) for c in data["changes"]]
    token = uuid.uuid4().hex[:8]

    if copy:
        to_delete: list[Path] = []
        for src, dst, tmp, _utmp, digest in entries:
            assert src is not None and dst is not None
            if tmp is not None and tmp.exists():
                to_delete.append(tmp)  # a copy interrupted before it got its name
            if not dst.exists():
                if complete:
                    raise InputError(f"the copy of {src.name} is missing; nothing was undone",
                                     dst)
                continue
            if digest is not None and sha256_file(dst) != digest:
                raise InputError("this copy was changed after the sort; not deleting it "
                                 "(nothing was undone)", dst)
            to_delete.append(dst)
        for d in reversed(to_delete):
            d.unlink()
        path.unlink()
        removed_dirs = _remove_dirs(data, base)
        copies = sum(1 for d in to_delete if d.suffix != ".tmp")
        return UndoResult(0, copies, removed_dirs, time.perf_counter() - t0)

    # Where is each moved file now? A file's names follow src → tmp → dst (the sort), then
    # dst → undo_tmp → src (an undo); the log's status says which names are possible.
    status, phase = data.get("status"), data.get("phase", 2)
    moves: list[tuple[Path, Path, Path]] = []  # (current, original, undo temporary)
    for src, dst, tmp, utmp, _ in reversed(entries):
        assert src is not None and dst is not None
        chain = [n for n in (src, tmp, dst, utmp, src) if n is not None]
        for a, b in zip(chain, chain[1:]):
            # an interrupted link-then-unlink leaves one file under two names: finish the step
            if a != b and a.exists() and b.exists() and os.path.samefile(a, b):
                a.unlink()
        if status == "in-progress":
            cands = [tmp] if phase == 1 else [tmp, dst]
        elif status == "undoing":
            cands = [utmp, dst]
        else:
            cands = [dst]
        here = next((c for c in cands if c is not None and c.exists()), None)
        if here is None:
            if status != "complete" and src.exists():
                continue  # never moved, or already moved back by an interrupted undo
            raise InputError(f"{src.name} was moved here by the sort but is missing; nothing "
                             "was undone", dst)
        moves.append((here, src, utmp or _tmp_name(src.parent, src.name, token, "fpundo")))
    leaving = {os.path.abspath(cur) for cur, _, _ in moves}
    for cur, src, _ in moves:
        if os.path.lexists(src) and os.path.abspath(src) not in leaving:
            raise OutputError(f"another file now has this name, so {cur.name} cannot be moved "
                              "back; nothing was undone", src)
        if not src.parent.is_dir():
            raise OutputError("the original folder is gone; nothing was undone", src.parent)

    # record the undo temporaries so an interrupted undo can be resumed
    by_pair = {(os.path.abspath(src)): utmp for _, src, utmp in moves}
    for c in data["changes"]:
        a = os.path.abspath(base / c["from"])
        if a in by_pair:
            c["undo_tmp"] = _rel(by_pair[a], base)
    data["status"] = "undoing"
    _write_json_atomic(path, data)

    bar = progress(len(moves), "undoing") if progress else None
    try:
        for cur, _src, utmp in moves:
            if cur != utmp:
                _link_or_rename(cur, utmp)
        for _cur, src, utmp in moves:
            _link_or_rename(utmp, src)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    path.unlink()
    removed_dirs = _remove_dirs(data, base)
    return UndoResult(len(moves), 0, removed_dirs, time.perf_counter() - t0)


def _remove_dirs(data: dict[str, Any], base: Path) -> int:
    """Remove the folders the sort created, deepest first, when they are empty."""
    n = 0
    dirs = [Path(os.path.normpath(base / d)) for d in data.get("created_dirs") or []
            if isinstance(d, str)]
    for d in sorted(dirs, key=lambda x: len(x.parts), reverse=True):
        try:
            d.rmdir()
            n += 1
        except OSError:
            pass  # not empty (the log itself, or files added since): leave it
    return n
