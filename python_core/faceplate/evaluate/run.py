"""Running the evaluation: INPUT and OUTPUT frames in lockstep → per-face scores → a Report.

Per frame pair:

1. Faces: the project's detector + aligner (``faceplate.extract.pipeline.Extractor`` without
   masks) on both frames; the input's faces come from the alignments store instead when one is
   given and holds the frame.
2. Pairing: each input face is paired with the output face whose landmark box overlaps it most
   (a linear assignment on box IoU, pairs below ``min_iou`` dropped).
3. Scores (:mod:`faceplate.evaluate.metrics`): colour ΔE2000 and the seam score for every input
   face (they need only the input's landmarks: the regions are drawn from the input face, where
   the conversion pasted); identity distances and the landmark error for paired faces.
4. After the last frame the input faces are linked into tracks
   (``faceplate.extract.smoothing.build_tracks``) and the jitter of each track, input and output,
   is scored per frame.

Frames without a face on either side are counted in the report, never an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from faceplate.core.config import Config, option
from faceplate.core.errors import InputError
from faceplate.core.geometry import transform_points
from faceplate.core.profile import configured
from faceplate.core.types import BBox, FaceRecord, Frame, FrameInfo
from faceplate.evaluate.metrics import (
    colour_delta,
    face_regions,
    jitter_per_frame,
    landmark_error,
    seam_score,
)
from faceplate.evaluate.report import FaceScores, FrameScores, Report
from faceplate.extract.identity.embed import IdentityEncoder, identity_distance
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.extract.smoothing import build_tracks
from faceplate.io.faceset import read_face_png, scan_faceset
from faceplate.io.media import FrameSource, open_source
from faceplate.io.store import AlignmentsStore

#: Longest run of frames without the face that still continues its track.
TRACK_GAP = 2


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """How ``faceplate evaluate`` finds faces and draws its measuring regions."""

    detector: str = option("chain", "Face detector run on both clips (as in extract).")
    aligner: str = option("dlib68", "Landmark aligner run on both clips (dlib68 or mesh68).")
    min_iou: float = option(0.3, "Landmark-box overlap needed to pair an output face with an "
                            "input face.", minimum=0.01, maximum=1.0)
    source_samples: int = option(
        32, "Faces of the source faceset embedded for its mean identity (evenly spaced by file "
        "name).", minimum=1, maximum=100000)
    skin_erode: float = option(0.08, "Erosion of the face hull for the skin colour, in face "
                               "sizes.", minimum=0.0, maximum=0.5)
    ring_gap: float = option(0.03, "Gap between the face hull and the plate ring, in face "
                             "sizes.", minimum=0.0, maximum=0.5)
    ring_width: float = option(0.12, "Width of the plate ring around the face, in face sizes.",
                               minimum=0.01, maximum=1.0)
    band_width: float = option(0.06, "Half-width of the mask border band scored for seams, in "
                               "face sizes.", minimum=0.005, maximum=0.5)


def _landmark_box(rec: FaceRecord) -> BBox:
    return BBox.from_points(np.asarray(rec.landmarks, dtype=np.float64))


def pair_faces(inputs: list[FaceRecord], outputs: list[FaceRecord],
               min_iou: float) -> list[tuple[int | None, float]]:
    """For each input face: (index of its output face or None, IoU of their landmark boxes)."""
    result: list[tuple[int | None, float]] = [(None, 0.0)] * len(inputs)
    if not inputs or not outputs:
        return result
    iou = np.array([[_landmark_box(a).iou(_landmark_box(b)) for b in outputs] for a in inputs])
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols):
        if iou[r, c] >= min_iou:
            result[int(r)] = (int(c), float(iou[r, c]))
    return result


class Evaluator:
    """Scores conversions; holds the detector, aligner and identity network between runs.

    Args:
        cfg: Options (defaults when None).
        encoder: A shared identity encoder (a new one when None).
    """

    def __init__(self, cfg: EvaluateConfig | None = None, *,
                 encoder: IdentityEncoder | None = None) -> None:
        self.cfg = cfg if cfg is not None else EvaluateConfig()
        self.extractor = Extractor(configured(ExtractConfig,
            detector=self.cfg.detector, aligner=self.cfg.aligner, masks=(), size=64,
            thumbnails=False, write_faces=False))
        self.encoder = encoder if encoder is not None else IdentityEncoder()
        self.times: dict[str, float] = {}

    def _time(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + (t1 - t0) * 1000.0
        return t1

    # ------------------------------------------------------------------ pieces

    def source_identity(self, folder: str | Path) -> tuple[np.ndarray, int]:
        """Mean dlib embedding of up to ``source_samples`` faces of a faceset.

        Each face is embedded on its aligned crop, with its landmarks mapped into the crop
        (``transform_points(record.landmarks, meta.matrix)``).

        Returns:
            ((128,) float32 mean embedding, number of faces used).

        Raises:
            InputError: not a folder, or no readable Faceplate face in it (names the folder).
        """
        folder = Path(folder)
        good, _bad = scan_faceset(folder)
        if not good:
            raise InputError("no Faceplate face PNGs in the source faceset", folder)
        n = min(self.cfg.source_samples, len(good))
        picks = np.unique(np.linspace(0, len(good) - 1, n).round().astype(int))
        vecs = []
        for i in picks:
            path, meta = good[int(i)]
            img, meta = read_face_png(path)
            crop_lm = transform_points(np.asarray(meta.record.landmarks, np.float64),
                                       meta.matrix)
            vecs.append(self.encoder.embed(img, crop_lm.astype(np.float32)))
        return np.mean(np.stack(vecs), axis=0).astype(np.float32), len(vecs)

    def faces(self, frame: Frame) -> list[FaceRecord]:
        """Detected and aligned faces of one frame (left to right)."""
        return self.extractor.process(frame).records

    def score_faces(self, input_rgb: np.ndarray, output_rgb: np.ndarray,
                    input_faces: list[FaceRecord], output_faces: list[FaceRecord],
                    source: np.ndarray | None = None) -> list[FaceScores]:
        """Scores of every input face of one frame pair (jitter not included).

        Args:
            input_rgb: H×W×3 uint8 sRGB input frame.
            output_rgb: H×W×3 uint8 sRGB output frame, same size.
            input_faces: The input frame's faces (frame pixels).
            output_faces: The output frame's faces.
            source: (128,) mean embedding of faceset A, or None (no identity-to-source).
        """
        cfg = self.cfg
        t = time.perf_counter()
        pairs = pair_faces(input_faces, output_faces, cfg.min_iou)
        scores = [FaceScores(face_index=rec.face_index, output_face_index=j, iou=iou)
                  for rec, (j, iou) in zip(input_faces, pairs)]
        paired = [(i, j) for i, (j, _) in enumerate(pairs) if j is not None]
        if paired:
            emb_in = self.encoder.embed_many(input_rgb, [input_faces[i].landmarks
                                                         for i, _ in paired])
            emb_out = self.encoder.embed_many(output_rgb, [output_faces[j].landmarks
                                                           for _, j in paired])
            for k, (i, j) in enumerate(paired):
                s = scores[i]
                s.identity_to_original = identity_distance(emb_out[k], emb_in[k])
                if source is not None:
                    s.identity_to_source = identity_distance(emb_out[k], source)
                    s.identity_input_to_source = identity_distance(emb_in[k], source)
                s.landmark_error = landmark_error(input_faces[i].landmarks,
                                                  output_faces[j].landmarks)
        t = self._time("identity", t)
        for s, rec in zip(scores, input_faces):
            other = None if s.output_face_index is None \
                else output_faces[s.output_face_index].landmarks
            reg = face_regions(rec.landmarks, input_rgb.shape, other=other,
                               skin_erode=cfg.skin_erode, ring_gap=cfg.ring_gap,
                               ring_width=cfg.ring_width, band_width=cfg.band_width)
            s.delta_e = colour_delta(output_rgb, reg).delta_e
            s.delta_e_input = colour_delta(input_rgb, reg).delta_e
            seam = seam_score(input_rgb, output_rgb, reg)
            s.seam, s.gradient_ratio = seam.score, seam.ratio
        self._time("metrics", t)
        return scores

    # ------------------------------------------------------------------ whole clips

    def run(self, input_path: str | Path, output_path: str | Path,
            source: str | Path | None = None, alignments: str | Path | None = None, *,
            on_frame: Callable[[FrameScores], None] | None = None,
            on_start: Callable[[int], None] | None = None) -> Report:
        """Evaluate OUTPUT (the converted footage) against INPUT (the original).

        Args:
            input_path: Original footage: video, image sequence (folder or pattern) or still.
            output_path: Converted footage with the same frames and size.
            source: Faceset folder of person A (the face put in), or None.
            alignments: Alignments store of INPUT (its faces replace detection on INPUT).
            on_frame: Called after each frame pair with its scores.
            on_start: Called once with the number of frames.

        Raises:
            InputError: a file cannot be read, INPUT and OUTPUT differ in size or frame count
                (the message names both), the store does not match INPUT, or the faceset has
                no faces.
        """
        start = time.perf_counter()
        self.times = {}
        in_p, out_p = Path(input_path), Path(output_path)
        kept: list[tuple[FrameInfo, list[FaceRecord], list[FaceRecord]]] = []
        with open_source(in_p) as a, open_source(out_p) as b:
            _check_match(a, b, in_p, out_p)
            store = None if alignments is None else _open_store(Path(alignments), a, in_p)
            try:
                t_src = time.perf_counter()
                src_vec, n_src = (None, 0) if source is None else self.source_identity(source)
                self._time("source", t_src)
                report = Report(input=str(in_p), output=str(out_p),
                                source=None if source is None else str(source),
                                alignments=None if alignments is None else str(alignments),
                                settings=self.cfg.to_dict(), source_faces=n_src)
                if on_start is not None:
                    on_start(len(a))
                pairs = zip_longest(a.frames(), b.frames())
                while True:
                    t0 = time.perf_counter()
                    pair = next(pairs, None)
                    if pair is None:
                        break
                    fa, fb = pair
                    if fa is None or fb is None or fa.info.index != fb.info.index:
                        raise InputError(_mismatch_text(
                            in_p, out_p, "frame count",
                            f"they diverge after {len(report.frames)} frames"), out_p)
                    t = self._time("decode", t0)
                    stored = (None if store is None
                              else store.faces_at(fa.info.frame_number))
                    in_faces = self.faces(fa) if stored is None else stored
                    out_faces = self.faces(fb)
                    self._time("detect", t)
                    scores = self.score_faces(fa.rgb, fb.rgb, in_faces, out_faces, src_vec)
                    fs = FrameScores(fa.info.index, fa.info.name, len(in_faces), len(out_faces),
                                     scores, (time.perf_counter() - t0) * 1000.0)
                    report.frames.append(fs)
                    kept.append((fa.info, in_faces, out_faces))
                    if on_frame is not None:
                        on_frame(fs)
            finally:
                if store is not None:
                    store.close()
        _score_jitter(report, kept)
        report.seconds = time.perf_counter() - start
        report.stage_ms = dict(self.times)
        return report


def evaluate(input_path: str | Path, output_path: str | Path,
             source: str | Path | None = None, alignments: str | Path | None = None, *,
             cfg: EvaluateConfig | None = None) -> Report:
    """One-shot :meth:`Evaluator.run` with a fresh :class:`Evaluator`."""
    return Evaluator(cfg).run(input_path, output_path, source, alignments)


# --------------------------------------------------------------------------- helpers


def _mismatch_text(in_p: Path, out_p: Path, what: str, detail: Any) -> str:
    return (f"INPUT {in_p} and OUTPUT {out_p} do not match ({what}: {detail}); evaluate needs "
            "the converted footage of the same frames")


def _check_match(a: FrameSource, b: FrameSource, in_p: Path, out_p: Path) -> None:
    if (a.width, a.height) != (b.width, b.height):
        raise InputError(_mismatch_text(in_p, out_p, "frame size",
                                        f"{a.width}×{a.height} vs {b.width}×{b.height}"), out_p)
    if len(a) != len(b):
        raise InputError(_mismatch_text(in_p, out_p, "frame count", f"{len(a)} vs {len(b)}"),
                         out_p)


def _open_store(path: Path, source: FrameSource, in_p: Path) -> AlignmentsStore:
    store = AlignmentsStore.open(path, readonly=True, upgrade=True)
    w, h = store.get_meta("width"), store.get_meta("height")
    if w is not None and h is not None and (int(w), int(h)) != (source.width, source.height):
        store.close()
        raise InputError(f"the store is for {w}×{h} frames but INPUT {in_p} is "
                         f"{source.width}×{source.height}", path)
    n = store.get_meta("total_frames")
    if n is not None and int(n) != source.total_frames:
        store.close()
        raise InputError(f"the store is for {n} frames but INPUT {in_p} has "
                         f"{source.total_frames}", path)
    return store


def _score_jitter(report: Report,
                  kept: list[tuple[FrameInfo, list[FaceRecord], list[FaceRecord]]]) -> None:
    """Track the input faces and fill ``jitter_input`` / ``jitter_output`` and ``track``."""
    tracks = build_tracks([(info, faces) for info, faces, _ in kept], TRACK_GAP)
    # Track members name faces by record face_index; scores are stored in list order.
    where = [{f.face_index: i for i, f in enumerate(fr.faces)} for fr in report.frames]
    for tr in tracks:
        t_len = len(tr.members)
        out_lm = np.full((t_len, 68, 2), np.nan)
        for k, member in enumerate(tr.members):
            if member is None:
                continue
            pos = tr.start + k
            s = report.frames[pos].faces[where[pos][member[1]]]
            if s.output_face_index is not None:
                out_lm[k] = kept[pos][2][s.output_face_index].landmarks
        j_in = jitter_per_frame(tr.landmarks)
        j_out = jitter_per_frame(out_lm)
        for k, member in enumerate(tr.members):
            if member is None:
                continue
            pos = tr.start + k
            s = report.frames[pos].faces[where[pos][member[1]]]
            s.track = tr.track_id
            s.jitter_input = float(j_in[k])
            s.jitter_output = float(j_out[k])


__all__ = ["TRACK_GAP", "EvaluateConfig", "Evaluator", "evaluate", "pair_faces"]
