"""Synthetic occluders: real textures from the footage, in the shapes of what covers faces.

A few labelled faces go a long way when each training step pastes new occluders over them: the
mask model sees fingers, hands, bars (microphones, cups, glasses' arms), blobs and hair strands
it was never labelled on, and the label it must produce is exact (the face label with the
occluder cut out). The textures are real pixels of the footage: *background* texture from the
non-face regions of the faces' crops (walls, hair, clothes, the neck) and *skin* from inside
other faces (the occluders hardest to tell from a face, hands, are skin-coloured); a shape is
filled with a randomly placed, rotated and scaled patch of one source, shaded (a cylinder
profile across fingers and bars, a light gradient across the rest), its edge softened, and a
soft shadow cast on the face beside it. A share of the occluders (``synthetic``, the trainer's
``synthetic_textures``) get a made-up texture instead (:func:`_synthetic_texture`: a flat
colour, a gradient, colour noise or stripes of any hue and brightness), so that the model learns
the occluder's shape against the face rather than the footage's few textures, and cuts out
objects of colours the shot never showed it.

The same code makes the held-out composites the tests and ``benchmarks/mask.py`` evaluate on,
from sources kept out of training (:func:`source_from_image`).

Conventions: images are S×S×3 ``uint8`` RGB display sRGB; labels S×S ``uint8``, 255 = face;
region maps S×S bool; all randomness comes from the ``numpy.random.Generator`` passed in, so a
composite is a function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

SourceKind = Literal["background", "skin"]
#: The shape families, drawn with these relative odds.
SHAPES: dict[str, float] = {"fingers": 0.35, "bar": 0.2, "blob": 0.2, "rect": 0.15,
                            "strands": 0.1}
#: Chance of a skin texture for each shape family (else background texture).
SKIN_CHANCE: dict[str, float] = {"fingers": 0.9, "bar": 0.2, "blob": 0.4, "rect": 0.1,
                                 "strands": 0.0}
_SS = 4  # supersampling of the shape raster (anti-aliased alpha)


@dataclass(frozen=True)
class OccluderSource:
    """Pixels occluder textures may be cut from.

    Attributes:
        image: H×W×3 ``uint8`` RGB.
        region: H×W bool, where texture may be taken.
        kind: ``"background"`` (anything that is not a face) or ``"skin"`` (inside a face,
            away from its eyes, brows and mouth).
    """

    image: np.ndarray
    region: np.ndarray
    kind: SourceKind

    def __post_init__(self) -> None:
        # measured once: make_occluder asks every source for every occluder
        object.__setattr__(self, "_usable", bool(self.region.mean() > 0.02))

    def usable(self) -> bool:
        """Whether the region holds enough pixels to cut textures from (2 % of the image)."""
        return bool(self._usable)  # type: ignore[attr-defined]


def _hull(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(np.round(points - 0.5).astype(np.int32)), 1)
    return out.astype(bool)


def face_regions(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Skin and non-face regions of an image from a face's 68 landmarks (image pixels, x right,
    y down, centres at +0.5).

    Returns:
        ``(skin, outside)``: H×W bool each. ``skin`` is the jaw-and-brow hull shrunk by a tenth
        of the face's size, minus the eyes, brows and mouth grown; ``outside`` is everything
        beyond the hull grown by a fifth (and the forehead above it), i.e. not this face.
    """
    lm = np.asarray(landmarks, np.float64)
    face = float(np.ptp(lm, axis=0).max())
    hull = _hull(lm, shape).astype(np.uint8)
    k = max(3, int(face * 0.1)) | 1
    skin = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
    parts = np.zeros(shape, np.uint8)
    for sl, grow in ((slice(36, 42), 1.8), (slice(42, 48), 1.8), (slice(17, 22), 1.6),
                     (slice(22, 27), 1.6), (slice(48, 60), 1.5), (slice(31, 36), 1.8)):
        p = lm[sl]
        c = p.mean(axis=0)
        cv2.fillConvexPoly(parts, cv2.convexHull(np.round(c + (p - c) * grow - 0.5)
                                                 .astype(np.int32)), 1)
    skin &= ~parts.astype(bool)
    # the face grown by a fifth, plus its forehead (the brows lifted by half the face's height)
    c = lm.mean(axis=0)
    up = lm[17:27] + np.array([0.0, -0.5 * face])
    grown = _hull(np.vstack([c + (lm - c) * 1.2, up]), shape)
    return skin, ~grown


def source_from_image(image: np.ndarray, faces: Sequence[np.ndarray], kind: SourceKind
                      ) -> OccluderSource:
    """An occluder source from a frame or still and the landmarks of the faces in it.

    Args:
        image: H×W×3 ``uint8`` RGB.
        faces: 68×2 landmark arrays of every face in it (image pixels).
        kind: ``"background"``: everything that is no face; ``"skin"``: the faces' skin.
    """
    h, w = image.shape[:2]
    if kind == "skin":
        region = np.zeros((h, w), bool)
        for lm in faces:
            region |= face_regions(lm, (h, w))[0]
    else:
        region = np.ones((h, w), bool)
        for lm in faces:
            region &= face_regions(lm, (h, w))[1]
    return OccluderSource(np.ascontiguousarray(image), region, kind)


# --------------------------------------------------------------------------- shapes


def _capsule(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
    s = _SS
    pa = tuple(int(v) for v in np.round(a * s))
    pb = tuple(int(v) for v in np.round(b * s))
    r = max(1, int(round(radius * s)))
    cv2.line(canvas, pa, pb, 255, 2 * r, cv2.LINE_8)
    cv2.circle(canvas, pa, r, 255, -1, cv2.LINE_8)
    cv2.circle(canvas, pb, r, 255, -1, cv2.LINE_8)


def _poly(canvas: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(canvas, [np.round(pts * _SS).astype(np.int32)], 255, cv2.LINE_8)


def _entry(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A point on (or just beyond) the crop's border and a unit direction into the face."""
    side = rng.choice(4, p=[0.45, 0.2, 0.2, 0.15])  # bottom, left, right, top
    t = rng.uniform(0.1, 0.9) * size
    out = rng.uniform(0.0, 0.15) * size
    start = {0: (t, size + out), 1: (-out, t), 2: (size + out, t), 3: (t, -out)}[int(side)]
    p = np.array(start, np.float64)
    target = np.array([size / 2, size / 2]) + rng.normal(0, 0.15 * size, 2)
    d = target - p
    ang = np.arctan2(d[1], d[0]) + rng.normal(0, 0.35)
    return p, np.array([np.cos(ang), np.sin(ang)])


def _shape(kind: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one occluder shape.

    Returns:
        ``(alpha, axis)``: size×size float32 coverage in [0, 1] (anti-aliased) and the unit
        vector across which cylinder shading runs (zero for flat shading).
    """
    s = size
    canvas = np.zeros((s * _SS, s * _SS), np.uint8)
    axis = np.zeros(2)
    if kind == "fingers":
        p, d = _entry(rng, s)
        n = int(rng.integers(2, 6))
        width = rng.uniform(0.055, 0.1) * s
        across = np.array([-d[1], d[0]])
        reach = rng.uniform(0.35, 0.75) * s
        for i in range(n):
            off = (i - (n - 1) / 2) * width * rng.uniform(1.0, 1.15)
            length = reach * rng.uniform(0.75, 1.05) * (0.85 if i in (0, n - 1) else 1.0)
            a = p + across * off - d * 0.3 * s
            b = p + across * off + d * length
            _capsule(canvas, a, b, width / 2 * rng.uniform(0.9, 1.05))
        if rng.random() < 0.6:  # the palm behind the fingers, beyond the crop's edge
            c = p - d * rng.uniform(0.05, 0.2) * s
            cv2.ellipse(canvas, tuple(int(v) for v in np.round(c * _SS)),
                        (int(n * width * 0.6 * _SS), int(0.25 * s * _SS)),
                        float(np.degrees(np.arctan2(d[1], d[0])) + 90.0), 0, 360, 255, -1)
        axis = across
    elif kind == "bar":
        p, d = _entry(rng, s)
        width = rng.uniform(0.03, 0.16) * s
        _capsule(canvas, p - d * 0.2 * s, p + d * rng.uniform(0.4, 1.3) * s, width / 2)
        axis = np.array([-d[1], d[0]])
    elif kind == "blob":
        c = rng.uniform(0.15, 0.85, 2) * s
        r = rng.uniform(0.1, 0.28) * s
        n = 14
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * np.exp(rng.normal(0, 0.25, n))
        pts = c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
        for _ in range(2):  # Chaikin smoothing
            q = np.roll(pts, -1, axis=0)
            pts = np.concatenate([0.75 * pts + 0.25 * q, 0.25 * pts + 0.75 * q])
            pts = pts.reshape(2, -1, 2).transpose(1, 0, 2).reshape(-1, 2)
        _poly(canvas, pts)
    elif kind == "rect":
        c = rng.uniform(0.1, 0.9, 2) * s
        w, h = rng.uniform(0.12, 0.45, 2) * s
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(w), float(h)),
                             float(rng.uniform(0, 180))))
        _poly(canvas, box)
    else:  # strands of hair over the forehead
        for _ in range(int(rng.integers(3, 12))):
            x0 = rng.uniform(0.1, 0.9) * s
            strand: list[np.ndarray] = [np.array([x0, -0.05 * s])]
            step = np.array([rng.normal(0, 0.4), 1.0])
            for _ in range(8):
                step = step + rng.normal(0, 0.15, 2)
                step[1] = abs(step[1]) + 0.3
                strand.append(strand[-1] + step / np.linalg.norm(step) * rng.uniform(0.03, 0.06)
                              * s)
            thick = max(1, int(round(rng.uniform(0.006, 0.02) * s * _SS)))
            cv2.polylines(canvas, [np.round(np.array(strand) * _SS).astype(np.int32)], False,
                          255, thick, cv2.LINE_8)
    alpha = cv2.resize(canvas, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return alpha, axis


# --------------------------------------------------------------------------- textures


def _texture(src: OccluderSource, rng: np.random.Generator, size: int,
             alpha: np.ndarray) -> np.ndarray:
    """A size×size float32 RGB [0, 255] patch of ``src`` placed so that the occluder's pixels
    fall inside the source's region as far as a few tries allow (the rest takes the region's
    mean colour)."""
    h, w = src.image.shape[:2]
    ys, xs = np.nonzero(src.region)
    cover = alpha > 0.05
    cy, cx = np.argwhere(cover).mean(axis=0) if cover.any() else (size / 2, size / 2)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(6):
        k = int(rng.integers(len(xs)))
        px, py = xs[k] + 0.5, ys[k] + 0.5
        scale = rng.uniform(0.6, 1.5) * max(h, w) / max(size * 2.0, 1.0)
        scale = float(np.clip(scale, 0.4, 3.0))
        th = rng.uniform(0, 2 * np.pi)
        a, b = np.cos(th) * scale, np.sin(th) * scale
        # occluder pixel (x, y) → source (px, py) + R·s·((x, y) − (cx, cy))
        m = np.array([[a, -b, px - a * cx + b * cy], [b, a, py - b * cx - a * cy]])
        inside = cv2.warpAffine(src.region.astype(np.uint8), m, (size, size),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        frac = float(inside[cover].mean()) if cover.any() else 1.0
        if best is None or frac > best[0]:
            best = (frac, m, inside)
        if frac > 0.97:
            break
    assert best is not None
    _, m, inside = best
    tex = cv2.warpAffine(src.image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    if not inside.all():
        mean = src.image[src.region].reshape(-1, 3).mean(axis=0)
        tex[~inside] = mean
    return tex


def _shading(rng: np.random.Generator, size: int, alpha: np.ndarray,
             axis: np.ndarray) -> np.ndarray:
    """size×size float32 multiplicative shading: a cylinder profile across ``axis`` (darker
    edges, as on fingers) or a linear light gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if np.any(axis):
        # distance to the occluder's edge, normalised: 1 in the middle of a finger, 0 at its edge
        dist = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        peak = max(float(dist.max()), 1.0)
        prof = np.clip(dist / min(peak, 0.06 * size + 1.0), 0.0, 1.0)
        edge = rng.uniform(0.6, 0.85)
        return (edge + (1.0 - edge) * np.sqrt(prof)).astype(np.float32) * rng.uniform(0.9, 1.1)
    g = rng.normal(0, 1, 2)
    g = g / (np.linalg.norm(g) + 1e-9)
    ramp = ((xx - size / 2) * g[0] + (yy - size / 2) * g[1]) / size
    return (1.0 + ramp * rng.uniform(0.0, 0.6)).astype(np.float32) * rng.uniform(0.8, 1.15)


def _synthetic_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size×size float32 RGB [0, 255] texture made up from nothing: a flat colour, a two-colour
    gradient, smooth colour noise or stripes, of any hue and brightness."""
    def colour() -> np.ndarray:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(10, 255)]]],
                       np.float32)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)

    a, b = colour(), colour()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    pick = int(rng.integers(4))
    th = rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(th) + yy * np.sin(th)
    t: np.ndarray
    if pick == 0:
        t = np.zeros((size, size), np.float32)
    elif pick == 1:
        t = np.clip(along - along.min(), 0, None) / max(float(along.max() - along.min()), 1e-6)
    elif pick == 2:
        cells = int(rng.integers(2, 16))
        noise = rng.random((cells, cells)).astype(np.float32)
        t = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        t = (np.sin(along * 2 * np.pi * rng.uniform(2, 12)) > 0).astype(np.float32)
    tex = a * (1.0 - t[..., None]) + b * t[..., None]
    tex += rng.normal(0, rng.uniform(0, 12), (size, size, 1)).astype(np.float32)
    return tex.astype(np.float32)


def make_occluder(rng: np.random.Generator, size: int, sources: Sequence[OccluderSource],
                  kind: str | None = None, synthetic: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One textured, shaded occluder.

    Args:
        rng: The random stream.
        size: Side of the crop it will be pasted on.
        sources: Texture sources (at least one usable).
        kind: A shape family of :data:`SHAPES`, or None to draw one.
        synthetic: Chance of a made-up texture instead of a source's (0: never, and no random
            draw for it, so composites made without it stay as they were).

    Returns:
        ``(rgb, alpha)``: size×size×3 float32 [0, 255] colour and size×size float32 coverage in
        [0, 1].
    """
    usable = [s for s in sources if s.usable()]
    if not usable:
        raise ValueError("make_occluder: no usable occluder source")
    if kind is None:
        names = list(SHAPES)
        odds = np.array([SHAPES[n] for n in names])
        kind = names[int(rng.choice(len(names), p=odds / odds.sum()))]
    alpha, axis = _shape(kind, rng, size)
    skins = [s for s in usable if s.kind == "skin"]
    backs = [s for s in usable if s.kind == "background"]
    want_skin = rng.random() < SKIN_CHANCE.get(kind, 0.3)
    pool = (skins if want_skin else backs) or usable
    src = pool[int(rng.integers(len(pool)))]
    if synthetic > 0 and rng.random() < synthetic:
        tex = _synthetic_texture(rng, size)
    else:
        tex = _texture(src, rng, size, alpha)
    tex *= _shading(rng, size, alpha, axis)[..., None]
    tex *= rng.uniform(0.96, 1.04, 3).astype(np.float32)  # a slightly different white balance
    soft = rng.uniform(0.3, 1.2)
    alpha = cv2.GaussianBlur(alpha, (0, 0), soft) if soft > 0.35 else alpha
    return np.clip(tex, 0.0, 255.0), np.clip(alpha, 0.0, 1.0)


def paste_occluders(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                    sources: Sequence[OccluderSource], count: int,
                    kind: str | None = None, synthetic: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste ``count`` occluders over a face, casting soft shadows, and cut them from its label.

    Args:
        image: S×S×3 ``uint8`` RGB face crop.
        label: S×S ``uint8`` label (255 = face).
        rng: The random stream.
        sources: Texture sources.
        count: Occluders to paste.
        kind: Force one shape family (None: drawn per occluder).
        synthetic: Chance of a made-up texture per occluder (:func:`make_occluder`).

    Returns:
        ``(image, label, cover)``: the composite (S×S×3 ``uint8``), its exact label (S×S
        ``uint8``: the input label where no occluder covers more than half a pixel, 0 under
        them) and the occluders' union coverage (S×S float32 in [0, 1]).
    """
    s = image.shape[0]
    out = image.astype(np.float32)
    cover = np.zeros((s, s), np.float32)
    for _ in range(count):
        rgb, alpha = make_occluder(rng, s, sources, kind, synthetic)
        if rng.random() < 0.7:  # a soft shadow on what lies beneath, offset towards the light
            sh = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(2.0, 0.03 * s + 2.0))
            dx, dy = rng.normal(0, 0.015 * s, 2)
            sh = cv2.warpAffine(sh, np.array([[1, 0, dx], [0, 1, dy]], np.float32), (s, s))
            out *= (1.0 - rng.uniform(0.15, 0.45) * sh)[..., None]
        a = alpha[..., None]
        out = out * (1.0 - a) + rgb * a
        cover = np.maximum(cover, alpha)
    lab = np.where(cover > 0.5, 0, label).astype(np.uint8)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), lab, cover




def sources_from_media(paths: Sequence[str], frames_per_video: int = 3
                       ) -> list[OccluderSource]:
    """Skin and background sources from stills and clips (faces found by the default
    detector and aligner): the held-out occluders of the tests and ``benchmarks/mask.py``.

    Args:
        paths: Image or video files.
        frames_per_video: Frames taken from each video, spread over it.

    Returns:
        The usable sources (a skin source per image with a face, a background source per
        image).
    """
    from faceplate.core.profile import configured
    from faceplate.core.types import Frame
    from faceplate.extract.pipeline import ExtractConfig, Extractor
    from faceplate.io.media import open_source

    ex = Extractor(configured(ExtractConfig, masks=(), thumbnails=False, write_faces=False))
    out: list[OccluderSource] = []
    for path in paths:
        with open_source(path) as src:
            n = src.total_frames
            picks = sorted({int(round(v)) for v in np.linspace(0, max(0, n - 1),
                                                                min(n, frames_per_video))})
            for frame in src.frames(picks):
                f: Frame = frame
                lms = [r.landmarks for r in ex.process(f).records]
                kinds: tuple[SourceKind, ...] = ("skin", "background")
                for kind in kinds:
                    if kind == "skin" and not lms:
                        continue
                    s = source_from_image(f.rgb, lms, kind)
                    if s.usable():
                        out.append(s)
    return out


__all__ = ["SHAPES", "OccluderSource", "face_regions", "make_occluder", "paste_occluders",
           "source_from_image", "sources_from_media"]
