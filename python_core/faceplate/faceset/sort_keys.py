"""Sort keys (registry ``SORT_KEYS``): measure faces, then order or group them.

A sort key **measures** every face of a faceset: a score (one float, for the numeric keys such
as ``blur`` or ``yaw``) or a feature vector (for the similarity keys ``identity`` and ``hist``),
then turns the measurements into an **order** (a permutation of the faces) or into **groups**
(bins for numeric keys, clusters for similarity keys). ``faceplate.faceset.sort`` turns those
into file changes.

Crop conventions: pixels are H×W×3 ``uint8`` sRGB; crop landmarks are (x, y) crop pixels,
x right, y down, pixel centres at +0.5 (``transform_points(record.landmarks, meta.matrix)``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, InputError
from faceplate.core.geometry import (
    distance_from_mean,
    matrix_scale,
    template_matrix,
    transform_points,
)
from faceplate.core.registry import Registry
from faceplate.io.faceset import FaceMeta, read_face_png, scan_faceset

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
