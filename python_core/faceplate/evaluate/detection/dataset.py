"""The detection benchmark's items: annotated real images, synthetic variants, clips.

:func:`items` lists every still item of one part of the split (:mod:`.split`) and :func:`clips`
every clip, without making any image. An item makes its image and truth on first use
(:meth:`Item.load`) and caches both under ``$FACEPLATE_CACHE/derived/detect_eval/`` (JPEG
quality 95 + JSON), keyed by :data:`VERSION` and the annotations' hash, so every machine
builds the same set and builds it once.

Real images carry the annotations of ``annotations.json`` (``tools/annotate_detect.py``).
Synthetic items start from a real face of the same part (its *subject*: a face marked neither
ignored nor cut by the frame edge, at least 40 px wide) and carry that face's truth through the
exact transform that made them (:mod:`.synth`):

=================  ===============================================================
recipe             what it makes
=================  ===============================================================
``turn``           the head re-rendered through its face mesh to a yaw of 20–60° (either side),
                   pitch within ±10°
``turn_glasses``   turned to 30–55°, with glasses (clear or dark), placed on a 1920×1080 frame
                   with an inner-face width of 200–330 px: the issue's large, sharp, turned face
``glasses``        glasses on the face as it is
``rotate``         the image turned in-plane by 15–45° either way about the face
``small``          the image scaled so the face is 48–72 px wide, on a 1920×1080 frame over a
                   non-face image of the same part
``blur``           Gaussian (1–2.5 % of the face width) or motion blur (5–12 %)
``relight``        under- or over-exposed, a strong directional fall-off, a colour cast
``group``          six faces of the part (some turned) on one 1920×1080 frame, 70–140 px wide
``animal``         the cat (held part only): scaled, turned, re-lit, blurred on a 1920×1080 frame
``drawing``        pen drawings of the part's faces (from their landmarks) and cartoon smileys
``canvas``         each non-face image enlarged to 1920×1080
=================  ===============================================================

Faces other than the subject keep their truth where the variant is an affine map of the whole
image; after a turn (which bends the image around the subject) they are marked ignored. A face
whose inner landmarks do not all lie inside the new frame is marked ignored too, as the real
annotations mark faces cut by the frame edge.

Clips (:func:`clips`): the real head-turn clip of the part, every frame annotated, and
synthetic head-turn clips: a still's face re-rendered through its mesh over 40 frames swinging
between −55° and +55° yaw with slow pitch, roll, scale and shift, one of them with glasses.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.geometry import transform_points
from faceplate.core.types import BBox, Detection
from faceplate.evaluate.detection import media, synth
from faceplate.evaluate.detection.score import TruthFace, inner_width, truth_box
from faceplate.evaluate.detection.split import SPLIT, Part

#: Bump when a recipe changes: cached images of other versions are not reused.
#: 2: faces a variant moves (partly) out of the frame are marked ignored, as the real
#: annotations mark faces cut by the frame edge (version 1 counted them as faces to find).
VERSION = 2
ANNOTATIONS = Path(__file__).with_name("annotations.json")

#: Canvas of the large synthetic frames.
HD = (1080, 1920)
CLIP_SIZE = (720, 1280)
CLIP_FRAMES = 40

RECIPES = ("turn", "turn", "turn_glasses", "glasses", "rotate", "small", "blur", "relight")


@cache
def truth_doc() -> dict[str, Any]:
    """The parsed ``annotations.json``."""
    return dict(json.loads(ANNOTATIONS.read_text()))


def annotations_hash() -> str:
    return hashlib.sha256(ANNOTATIONS.read_bytes()).hexdigest()[:12]


def cache_root() -> Path:
    from faceplate.io import samples

    return samples.cache_dir().parent / "derived" / "detect_eval" / \
        f"v{VERSION}_{annotations_hash()}"


def _truth_from(rec: dict[str, Any], extra_tags: tuple[str, ...] = ()) -> list[TruthFace]:
    out = []
    for f in rec["faces"]:
        lm = np.asarray(f["landmarks"], np.float64) if "landmarks" in f else None
        box = truth_box(lm) if lm is not None else BBox(*f["box"])
        out.append(TruthFace(box, lm, float(f["yaw"]), float(f["width"]), bool(f.get("ignore")),
                             extra_tags))
    return out


def _moved(faces: list[TruthFace], fn: Callable[[np.ndarray], np.ndarray],
           tags: tuple[str, ...] = ()) -> list[TruthFace]:
    """Truth faces carried through a point map ``fn`` (N×2 → N×2)."""
    from faceplate.extract.pose import estimate_pose

    out = []
    for f in faces:
        if f.landmarks is None:
            continue
        lm = fn(f.landmarks)
        yaw = float(estimate_pose(lm.astype(np.float32), (1000, 1000))[0])
        out.append(TruthFace(truth_box(lm), lm, yaw, inner_width(lm), f.ignore, tags))
    return out


def _encode(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("cannot encode a benchmark image")
    return buf.tobytes()


def _truth_json(faces: list[TruthFace]) -> list[dict[str, Any]]:
    return [{"box": list(f.box.as_tuple()), "yaw": f.yaw, "width": f.width,
             "ignore": f.ignore, "tags": list(f.tags),
             "landmarks": None if f.landmarks is None else np.round(f.landmarks, 3).tolist()}
            for f in faces]


def _truth_parse(doc: list[dict[str, Any]]) -> list[TruthFace]:
    return [TruthFace(BBox(*d["box"]), None if d["landmarks"] is None
                      else np.asarray(d["landmarks"], np.float64), float(d["yaw"]),
                      float(d["width"]), bool(d["ignore"]), tuple(d["tags"])) for d in doc]


@dataclass(frozen=True, eq=False)
class Item:
    """One benchmark image.

    Attributes:
        id: ``still:…``, ``frame:…``, ``neg:…`` for real images; ``syn:RECIPE:…`` otherwise.
        part: ``tune`` or ``held``.
        synthetic: Made by a recipe (its figures are reported apart).
        negative: Holds no face a detector should report (every detection is a false face).
        tags: What the image shows (recipe name, ``animal``, ``drawing`` …).
    """

    id: str
    part: Part
    synthetic: bool
    negative: bool
    tags: tuple[str, ...]
    make: Callable[[], tuple[np.ndarray, list[TruthFace]]] = field(repr=False)

    def _paths(self) -> tuple[Path, Path]:
        stem = self.id.replace(":", "__").replace("/", "_")
        root = cache_root() / self.part
        return root / f"{stem}.jpg", root / f"{stem}.json"

    def load(self) -> tuple[np.ndarray, list[TruthFace]]:
        """``(H×W×3 uint8 RGB image, truth faces)``, made and cached on first use."""
        if not self.synthetic:
            return self.make()
        img_path, truth_path = self._paths()
        if img_path.exists() and truth_path.exists():
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is not None:
                return np.ascontiguousarray(img[:, :, ::-1]), \
                    _truth_parse(json.loads(truth_path.read_text()))
        rgb, truth = self.make()
        truth = _mark_cut(truth, rgb.shape[1], rgb.shape[0])
        img_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = img_path.with_suffix(".part")
        tmp.write_bytes(_encode(rgb))
        tmp.replace(img_path)
        truth_path.write_text(json.dumps(_truth_json(truth)))
        # Read back: the JPEG's pixels are what every later run sees.
        back = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if back is None:
            raise ValueError(f"{img_path}: cannot read back the cached image")
        return np.ascontiguousarray(back[:, :, ::-1]), truth


def _mark_cut(faces: list[TruthFace], width: int, height: int) -> list[TruthFace]:
    """``faces`` with those cut by the frame edge (an inner landmark outside) ignored."""
    out = []
    for f in faces:
        if f.landmarks is not None and not f.ignore:
            p = f.landmarks[17:]
            if p.min() < 0 or p[:, 0].max() >= width or p[:, 1].max() >= height:
                f = dataclass_replace(f, ignore=True)
        out.append(f)
    return out


def _rng(part: Part, *key: object) -> np.random.Generator:
    return np.random.default_rng([SPLIT[part].seed,
                                  zlib.crc32(":".join(map(str, key)).encode())])


# --------------------------------------------------------------------------- subjects

@dataclass(frozen=True)
class Subject:
    """A real face synthetic variants start from."""

    item: str
    face: int


def _real(item: str) -> tuple[np.ndarray, list[TruthFace]]:
    return media.load(item), _truth_from(truth_doc()["items"][item])


def subjects(part: Part) -> list[Subject]:
    """The faces of ``part`` that synthetic variants are made from (see the module doc)."""
    spec = SPLIT[part]
    ann = truth_doc()["items"]
    ids = [f"still:{n}" for n in spec.stills]
    for v in spec.videos:
        frames = [f"frame:{v.name}:{i}" for i in v.frames]
        ids += frames[::spec.synth_every]
    out = []
    for item in ids:
        rec = ann[item]
        w, h = rec["size"]
        for j, f in enumerate(rec["faces"]):
            lm = np.asarray(f["landmarks"] if f.get("landmarks") else np.zeros((0, 2)),
                            np.float64)
            if f.get("ignore") or len(lm) != 68 or f["width"] < 40:
                continue
            if lm.min() < 0 or lm[:, 0].max() >= w or lm[:, 1].max() >= h:
                continue
            out.append(Subject(item, j))
    return out


@cache
def _mesh(item: str, face: int) -> np.ndarray:
    from faceplate.extract.align import ALIGNERS

    rgb, truth = _real(item)
    det = Detection(truth[face].box, 1.0, "truth")
    al = ALIGNERS.create("mesh68").align(rgb, [det])[0]
    if al.mesh is None:
        raise ValueError(f"{item}: the face mesh found no face {face}")
    return al.mesh.astype(np.float64)


def _backgrounds(part: Part) -> list[str]:
    return [n for n in SPLIT[part].negatives if n != "chelsea.png"]


def _fill(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` scaled and centre-cropped to fill ``size`` (height, width)."""
    h, w = size
    k = max(h / rgb.shape[0], w / rgb.shape[1])
    big = cv2.resize(rgb, (int(np.ceil(rgb.shape[1] * k)), int(np.ceil(rgb.shape[0] * k))),
                     interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


def _onto(rgb: np.ndarray, faces: list[TruthFace], centre: np.ndarray, scale: float,
          angle: float, size: tuple[int, int], background: np.ndarray | None,
          tags: tuple[str, ...]) -> tuple[np.ndarray, list[TruthFace]]:
    h, w = size
    m = synth.rotate_scale_matrix((float(centre[0]), float(centre[1])), angle, scale,
                                  (w / 2.0, h / 2.0))
    out, _ = synth.affine_variant(rgb, np.zeros((0, 2)), m, size, background)
    return out, _moved(faces, lambda p: transform_points(p, m), tags)


def _variant(part: Part, recipe: str, sub: Subject, k: int
             ) -> tuple[np.ndarray, list[TruthFace]]:
    rng = _rng(part, recipe, sub.item, sub.face, k)
    rgb, truth = _real(sub.item)
    face = truth[sub.face]
    assert face.landmarks is not None
    lm = face.landmarks
    others = [dataclass_replace(t, ignore=True) for i, t in enumerate(truth) if i != sub.face]
    same = [t for i, t in enumerate(truth) if i != sub.face]
    centre = np.array(face.box.center)
    if recipe in ("turn", "turn_glasses"):
        lo, hi = (20.0, 60.0) if recipe == "turn" else (30.0, 55.0)
        target = float(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0]))
        pitch = float(rng.uniform(-10.0, 10.0))
        src = rgb
        tags: tuple[str, ...] = ("turned",)
        if recipe == "turn_glasses":
            src = synth.add_eyewear(rgb, lm, rng, "sun" if rng.uniform() < 0.4 else "clear")
            tags = ("turned", "glasses")
        img, pts = synth.turn_head(src, _mesh(sub.item, sub.face), lm, target - face.yaw, pitch)
        subject = _moved([face], lambda _p: pts, tags)
        if recipe == "turn":
            return img, subject + others
        width = float(rng.uniform(200.0, 330.0))
        scale = width / subject[0].width
        return _onto(img, subject, np.array(subject[0].box.center), scale, 0.0, HD,
                     _fill(img, HD), tags)
    if recipe == "glasses":
        img = synth.add_eyewear(rgb, lm, rng, "sun" if rng.uniform() < 0.4 else "clear")
        return img, _moved([face], lambda p: p, ("glasses",)) + same
    if recipe == "rotate":
        angle = float(rng.uniform(15.0, 45.0) * rng.choice([-1.0, 1.0]))
        out, moved = _onto(rgb, [face, *same], centre, 1.0, angle, rgb.shape[:2],
                           None, ("rotated",))
        return out, moved
    if recipe == "small":
        width = float(rng.uniform(48.0, 72.0))
        bg = _fill(media.still(str(rng.choice(_backgrounds(part)))), HD)
        return _onto(rgb, [face, *same], centre, width / face.width, 0.0, HD, bg, ("small",))
    if recipe == "blur":
        if rng.uniform() < 0.5:
            img = synth.blur(rgb, float(rng.uniform(0.01, 0.025)) * face.width)
        else:
            img = synth.blur(rgb, 0.0, float(rng.uniform(0.05, 0.12)) * face.width,
                             float(rng.uniform(0, 180)))
        return img, _moved([face, *same], lambda p: p, ("blurred",))
    if recipe == "relight":
        gain = float(rng.choice([rng.uniform(0.25, 0.6), rng.uniform(1.4, 2.0)]))
        tint = tuple(float(v) for v in rng.uniform(0.75, 1.2, 3))
        img = synth.relight(rgb, gain, float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.4, 0.85)),
                            float(rng.uniform(0, 360)), tint)  # type: ignore[arg-type]
        return img, _moved([face, *same], lambda p: p, ("relit",))
    raise ValueError(f"unknown recipe {recipe}")


def dataclass_replace(face: TruthFace, **changes: Any) -> TruthFace:
    import dataclasses

    return dataclasses.replace(face, **changes)


def _group(part: Part, k: int) -> tuple[np.ndarray, list[TruthFace]]:
    """Six faces of the part in a 3×2 layout on a 1920×1080 frame over a non-face image."""
    rng = _rng(part, "group", k)
    subs = subjects(part)
    pick = rng.choice(len(subs), size=min(6, len(subs)), replace=False)
    canvas: np.ndarray = _fill(media.still(str(rng.choice(_backgrounds(part)))), HD)
    faces: list[TruthFace] = []
    cell_w, cell_h = HD[1] // 3, HD[0] // 2
    for slot, si in enumerate(pick):
        sub = subs[int(si)]
        if rng.uniform() < 0.5:
            rgb, truth = _variant(part, "turn", sub, 100 + k)
            face = truth[0]
        else:
            rgb, truth = _real(sub.item)
            face = truth[sub.face]
        width = float(rng.uniform(70.0, 140.0))
        scale = width / face.width
        cx = (slot % 3 + 0.5) * cell_w + rng.uniform(-0.15, 0.15) * cell_w
        cy = (slot // 3 + 0.5) * cell_h + rng.uniform(-0.1, 0.1) * cell_h
        m = synth.rotate_scale_matrix(face.box.center, float(rng.uniform(-8, 8)), scale, (cx, cy))
        # Paste a head-and-shoulders ellipse of the face's image, feathered.
        patch, _ = synth.affine_variant(rgb, np.zeros((0, 2)), m, HD)
        mask: np.ndarray = np.zeros(HD, np.float32)
        cv2.ellipse(mask, (int(cx), int(cy + 0.2 * face.box.size * scale)),
                    (int(1.0 * face.box.size * scale), int(1.35 * face.box.size * scale)),
                    0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.08 * face.box.size * scale)[..., None]
        canvas = (patch * mask + canvas * (1 - mask) + 0.5).astype(np.uint8)
        faces += _moved([face], partial(transform_points, m=m), ("group",))
    return canvas, faces


def _animal(part: Part, k: int) -> tuple[np.ndarray, list[TruthFace]]:
    rng = _rng(part, "animal", k)
    cat = media.still("chelsea.png")
    centre = np.array([300.0, 110.0])  # between the cat's eyes
    scale = float(rng.uniform(0.6, 4.0))
    angle = float(rng.uniform(-25, 25))
    bg = _fill(media.still(str(rng.choice(_backgrounds(part)))), HD)
    src = cat[:, ::-1].copy() if rng.uniform() < 0.5 else cat
    if src is not cat:
        centre = np.array([cat.shape[1] - centre[0], centre[1]])
    img, _ = _onto(src, [], centre, scale, angle, HD, bg, ())
    if rng.uniform() < 0.5:
        img = synth.relight(img, float(rng.uniform(0.4, 1.6)), 1.0, float(rng.uniform(0, 0.7)),
                            float(rng.uniform(0, 360)))
    if rng.uniform() < 0.3:
        img = synth.blur(img, float(rng.uniform(1.0, 3.0)))
    return img, []


def _drawing(part: Part, k: int) -> tuple[np.ndarray, list[TruthFace]]:
    rng = _rng(part, "drawing", k)
    size = (720, 1280)
    if k % 3 == 2:
        return synth.smiley(size, rng, n=int(rng.integers(1, 5))), []
    subs = subjects(part)
    sub = subs[int(rng.integers(len(subs)))]
    face = _real(sub.item)[1][sub.face]
    assert face.landmarks is not None
    width = float(rng.uniform(100.0, 400.0))
    m = synth.rotate_scale_matrix(face.box.center, float(rng.uniform(-10, 10)),
                                  width / face.width, (640.0, 360.0))
    return synth.line_drawing(transform_points(face.landmarks, m), size, rng), []


def _canvas(name: str) -> tuple[np.ndarray, list[TruthFace]]:
    return _fill(media.still(name), HD), []


def items(part: Part) -> list[Item]:
    """Every still item of ``part``, real first (see the module docstring)."""
    spec = SPLIT[part]
    ann = truth_doc()["items"]
    out: list[Item] = []
    for n in spec.stills:
        out.append(Item(f"still:{n}", part, False, False, ("real",),
                        partial(_real, f"still:{n}")))
    for v in spec.videos:
        for i in v.frames:
            iid = f"frame:{v.name}:{i}"
            neg = not ann[iid]["faces"]
            out.append(Item(iid, part, False, neg, ("real", "video"),
                            partial(_real, iid)))
    for n in spec.negatives:
        tag = "animal" if n == "chelsea.png" else "object"
        out.append(Item(f"neg:{n}", part, False, True, ("real", tag),
                        partial(_real, f"neg:{n}")))
    for v in spec.negative_videos:
        for i in v.frames:
            iid = f"frame:{v.name}:{i}"
            out.append(Item(iid, part, False, True, ("real", "title card"),
                            partial(_real, iid)))
    for sub in subjects(part):
        for k, recipe in enumerate(RECIPES):
            out.append(Item(f"syn:{recipe}:{sub.item}:{sub.face}:{k}", part, True, False,
                            (recipe,), partial(_variant, part, recipe, sub, k)))
    for k in range(2):
        out.append(Item(f"syn:group:{k}", part, True, False, ("group",),
                        partial(_group, part, k)))
    if "chelsea.png" in spec.negatives:
        for k in range(8):
            out.append(Item(f"syn:animal:{k}", part, True, True, ("animal",),
                            partial(_animal, part, k)))
    for k in range(9):
        out.append(Item(f"syn:drawing:{k}", part, True, True, ("drawing",),
                        partial(_drawing, part, k)))
    for n in spec.negatives:
        out.append(Item(f"syn:canvas:{n}", part, True, True, ("canvas",),
                        partial(_canvas, n)))
    return out


# --------------------------------------------------------------------------- clips

@dataclass(frozen=True, eq=False)
class Clip:
    """A sequence of frames with their truth.

    Attributes:
        id: ``clip:NAME`` (real) or ``syn:clip:STILL:K``.
        part: ``tune`` or ``held``.
        synthetic: Made by re-rendering a still.
        length: Number of frames.
    """

    id: str
    part: Part
    synthetic: bool
    length: int
    frames: Callable[[], Iterator[tuple[np.ndarray, list[TruthFace]]]] = field(repr=False)


def _real_clip(name: str) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    truth = truth_doc()["clips"][name]["frames"]
    for i, rgb in media.clip_frames(name):
        faces = [TruthFace(BBox(*f["box"]), None, float(f["yaw"]), float(f["width"]),
                           bool(f.get("ignore")), ("clip",)) for f in truth[str(i)]]
        yield rgb, faces


def _synth_clip_frame(part: Part, still: str, k: int, t: int
                      ) -> tuple[np.ndarray, list[TruthFace]]:
    rng = _rng(part, "clip", still, k)
    item = f"still:{still}"
    rgb, truth = _real(item)
    j = max(range(len(truth)), key=lambda i: truth[i].width)
    face = truth[j]
    assert face.landmarks is not None
    src = rgb
    tags: tuple[str, ...] = ("turned", "clip")
    if k == 1:
        src = synth.add_eyewear(rgb, face.landmarks, rng, "clear")
        tags = ("turned", "glasses", "clip")
    phase = rng.uniform(0, 2 * np.pi, 4)
    yaw = 55.0 * np.sin(2 * np.pi * t / CLIP_FRAMES + phase[0])
    pitch = 6.0 * np.sin(2 * np.pi * t / 27 + phase[1])
    roll = 5.0 * np.sin(2 * np.pi * t / 33 + phase[2])
    scale = 1.0 + 0.06 * np.sin(2 * np.pi * t / 23 + phase[3])
    shift = 0.02 * np.array([CLIP_SIZE[1], CLIP_SIZE[0]]) * np.sin(2 * np.pi * t / 31)
    img, pts = synth.turn_head(src, _mesh(item, j), face.landmarks, yaw - face.yaw, pitch)
    width = 150.0 * scale
    m = synth.rotate_scale_matrix(face.box.center, roll, width / face.width,
                                  (CLIP_SIZE[1] / 2 + shift[0], CLIP_SIZE[0] / 2 + shift[1]))
    out, _ = synth.affine_variant(img, np.zeros((0, 2)), m, CLIP_SIZE, _fill(img, CLIP_SIZE))
    return out, _moved([face], lambda _p: transform_points(pts, m), tags)


def _synth_clip(part: Part, still: str, k: int) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    cid = f"syn:clip:{still}:{k}"
    for t in range(CLIP_FRAMES):
        yield Item(f"{cid}:{t}", part, True, False, ("clip",),
                   partial(_synth_clip_frame, part, still, k, t)).load()


def clips(part: Part) -> list[Clip]:
    """The real and synthetic head-turn clips of ``part``."""
    spec = SPLIT[part]
    out = []
    for name in spec.clips:
        n = len(truth_doc()["clips"][name]["frames"])
        out.append(Clip(f"clip:{name}", part, False, n, partial(_real_clip, name)))
    for k, still in enumerate(spec.clip_sources):
        cid = f"syn:clip:{still}:{k}"
        out.append(Clip(cid, part, True, CLIP_FRAMES, partial(_synth_clip, part, still, k)))
    return out
