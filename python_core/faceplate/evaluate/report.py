"""The evaluation report: per-frame scores, overall statistics, JSON and a PNG plot.

JSON layout (``Report.to_dict``; NaN and ±Inf are written as ``null``)::

    {"version": 1, "input": str, "output": str, "source": str | null, "alignments": str | null,
     "settings": {...EvaluateConfig...},
     "counts": {"frames", "frames_without_input_face", "frames_without_output_face",
                "input_faces", "matched_faces", "unmatched_faces", "source_faces"},
     "overall": {metric: {"mean", "median", "min", "max", "count"}},
     "timing": {"seconds", "ms_per_frame", "stage_ms": {stage: total ms}},
     "metrics": {metric: description},
     "frames": [{"index", "name", "input_faces", "output_faces", "ms",
                 "faces": [{"face_index", "output_face_index", "iou", "track", metric: value}]}]}

``overall`` pools every face of every frame (for one face per frame: the mean over frames).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceplate.convert.writers.base import atomic_write_bytes

#: Report format version.
REPORT_VERSION = 1

#: Metric key → what it measures and which way is good.
METRICS: dict[str, str] = {
    "identity_to_source": "dlib identity distance from the output face to the mean of faceset A "
                          "(lower: looks more like A; < 0.6 is dlib's same-person threshold)",
    "identity_to_original": "dlib identity distance from the output face to the input face "
                            "(higher: the original person is replaced)",
    "identity_input_to_source": "dlib identity distance from the input face to faceset A "
                                "(baseline for identity_to_source)",
    "landmark_error": "mean landmark distance between input and output faces over the input's "
                      "inter-ocular distance (lower: pose and expression kept)",
    "delta_e": "CIEDE2000 between the mean colour of the output face's skin and of the plate "
               "ring around it (lower: the face matches the plate)",
    "delta_e_input": "the same ΔE2000 measured on the input (baseline for delta_e)",
    "seam": "colour-gradient energy on the mask border band, output (where it exceeds the "
            "input) against input (1: no visible seam, > 1: an edge was added or moved)",
    "gradient_ratio": "plain gradient energy ratio on the same band, output / input "
                      "(< 1: the border got smoother, > 1: busier)",
    "jitter_output": "second difference of the output landmark track over face size "
                     "(temporal jitter of the output)",
    "jitter_input": "the same jitter measured on the input landmark track (baseline)",
}


@dataclass
class FaceScores:
    """Scores of one input face in one frame (NaN where a metric cannot be measured).

    Attributes:
        face_index: Index of the face among the input frame's faces.
        output_face_index: Index of the output face paired with it (box IoU), or None.
        iou: IoU of the two faces' landmark boxes (0 when unpaired).
        track: Id of the input face's track through the clip (-1 before tracking).
    """

    face_index: int
    output_face_index: int | None
    iou: float
    track: int = -1
    identity_to_source: float = math.nan
    identity_to_original: float = math.nan
    identity_input_to_source: float = math.nan
    landmark_error: float = math.nan
    delta_e: float = math.nan
    delta_e_input: float = math.nan
    seam: float = math.nan
    gradient_ratio: float = math.nan
    jitter_output: float = math.nan
    jitter_input: float = math.nan

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass
class FrameScores:
    """One frame pair: how many faces each side had, and the scores of each input face."""

    index: int
    name: str
    input_faces: int
    output_faces: int
    faces: list[FaceScores] = field(default_factory=list)
    ms: float = 0.0

    def value(self, metric: str) -> float:
        """Mean of ``metric`` over the frame's faces (NaN when none has it)."""
        vals = [f.metric(metric) for f in self.faces]
        vals = [v for v in vals if math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan


@dataclass
class Report:
    """Everything ``faceplate evaluate`` measured."""

    input: str
    output: str
    source: str | None
    alignments: str | None
    settings: dict[str, Any]
    frames: list[FrameScores] = field(default_factory=list)
    source_faces: int = 0
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ statistics

    def values(self, metric: str) -> np.ndarray:
        """Finite values of ``metric`` over every face of every frame (float64)."""
        vals = [f.metric(metric) for fr in self.frames for f in fr.faces]
        arr = np.array(vals, dtype=np.float64)
        return arr[np.isfinite(arr)]

    def overall(self) -> dict[str, dict[str, float | int | None]]:
        """Per metric: mean, median, min, max (None when never measured) and count."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name in METRICS:
            v = self.values(name)
            if v.size:
                out[name] = {"mean": float(v.mean()), "median": float(np.median(v)),
                             "min": float(v.min()), "max": float(v.max()), "count": int(v.size)}
            else:
                out[name] = {"mean": None, "median": None, "min": None, "max": None, "count": 0}
        return out

    def counts(self) -> dict[str, int]:
        faces = [f for fr in self.frames for f in fr.faces]
        matched = sum(f.output_face_index is not None for f in faces)
        return {
            "frames": len(self.frames),
            "frames_without_input_face": sum(fr.input_faces == 0 for fr in self.frames),
            "frames_without_output_face": sum(fr.output_faces == 0 for fr in self.frames),
            "input_faces": len(faces),
            "matched_faces": matched,
            "unmatched_faces": len(faces) - matched,
            "source_faces": self.source_faces,
        }

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report (see the module docstring); non-finite numbers become None."""
        n = len(self.frames)
        body = {
            "version": REPORT_VERSION,
            "input": self.input, "output": self.output, "source": self.source,
            "alignments": self.alignments,
            "settings": dict(self.settings),
            "counts": self.counts(),
            "overall": self.overall(),
            "timing": {"seconds": self.seconds,
                       "ms_per_frame": self.seconds * 1000.0 / n if n else None,
                       "stage_ms": dict(self.stage_ms)},
            "metrics": dict(METRICS),
            "frames": [{"index": fr.index, "name": fr.name, "input_faces": fr.input_faces,
                        "output_faces": fr.output_faces, "ms": fr.ms,
                        "faces": [dataclasses.asdict(f) for f in fr.faces]}
                       for fr in self.frames],
        }
        return _finite(body)

    def write_json(self, path: str | Path) -> Path:
        """Write the report as indented JSON (atomically); returns the path.

        Raises:
            OutputError: the file cannot be written (names it).
        """
        p = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        atomic_write_bytes(p, (text + "\n").encode("utf-8"))
        return p

    def write_plot(self, path: str | Path, dpi: int = 100) -> Path:
        """Write a PNG of the per-frame curves of every metric (matplotlib, Agg canvas).

        One panel per metric group (identity, landmark error, colour, seam, jitter); x is the
        frame index, y the frame's mean over its faces; gaps are frames where the metric could
        not be measured.

        Raises:
            OutputError: the file cannot be written (names it).
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        panels: list[tuple[str, list[tuple[str, str]], float | None]] = [
            ("identity distance", [("identity_to_source", "output → A"),
                                   ("identity_to_original", "output → input"),
                                   ("identity_input_to_source", "input → A")], 0.6),
            ("landmark error (/ inter-ocular)", [("landmark_error", "input vs output")], None),
            ("colour ΔE2000 skin vs ring", [("delta_e", "output"), ("delta_e_input", "input")],
             None),
            ("seam (output / input)", [("seam", "seam score"),
                                       ("gradient_ratio", "gradient ratio")], 1.0),
            ("landmark jitter (/ face size)", [("jitter_output", "output"),
                                               ("jitter_input", "input")], None),
        ]
        x = np.array([fr.index for fr in self.frames], dtype=np.float64)
        fig = Figure(figsize=(9.0, 2.1 * len(panels) + 0.6), dpi=dpi)
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, sharex=True)
        for ax, (title, lines, ref) in zip(axes, panels):
            for key, label in lines:
                y = np.array([fr.value(key) for fr in self.frames], dtype=np.float64)
                ax.plot(x, y, marker="." if len(x) < 60 else None, linewidth=1.2, label=label)
            if ref is not None:
                ax.axhline(ref, color="0.5", linewidth=0.8, linestyle="--")
            ax.set_ylabel(title, fontsize=8)
            ax.grid(True, linewidth=0.3)
            ax.legend(fontsize=7, loc="upper right")
        axes[-1].set_xlabel("frame")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"faceplate evaluate: {Path(self.output).name} vs {Path(self.input).name}",
                     fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        p = Path(path)
        atomic_write_bytes(p, buf.getvalue())
        return p

    def summary_lines(self) -> list[str]:
        """Human-readable lines: counts, then mean / median of each metric."""
        c = self.counts()
        lines = [f"frames {c['frames']}, input faces {c['input_faces']}, matched "
                 f"{c['matched_faces']}, frames without an input face "
                 f"{c['frames_without_input_face']}, without an output face "
                 f"{c['frames_without_output_face']}"]
        for name, st in self.overall().items():
            if st["count"]:
                lines.append(f"  {name:<25} mean {st['mean']:.4f}  median {st['median']:.4f}  "
                             f"(n={st['count']})")
            else:
                lines.append(f"  {name:<25} not measured")
        return lines


def _finite(obj: Any) -> Any:
    """Recursively replace non-finite floats with None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


__all__ = ["METRICS", "REPORT_VERSION", "FaceScores", "FrameScores", "Report"]
