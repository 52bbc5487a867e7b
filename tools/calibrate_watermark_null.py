"""Calibrate the watermark detector's null distribution of each pattern set (``watermark.NULLS``).

On unmarked faces of the sample media, the registration search's best marker score for many
random stand-in markers (``watermark.null_scores``) samples the score the detector gives a
face that carries no mark, for each pattern set (``watermark.PATTERN_SETS``: ``full`` and the
upper-face ``upper``; the same stand-in markers for both). Prints, per set, the mean, the s.d.,
the tail P(score ≥ x) at the table's points and where the tail falls below a few targets;
paste each table into ``NULLS`` and set the thresholds from it whenever the scheme or the
search changes. Faces: every 4th frame of single_face.mp4 and every 10th of the woman's
head-turn clip (WolfgangLanger_Pexels.mp4), 640×360, one face each (66 faces:
``watermark.calibration.CALIBRATION_CLIPS``).

Held out (issue 16, point 3): the faces alternate between a fitting half (even positions in
that list: ``watermark.calibration.calibration_half``) and a held-out half; the tables and
the thresholds come from the fitting half, and the held-out half's tail at the same points is
printed beside it (``--json`` writes both), so the thresholds are measured on faces they
were not fitted on. The false-positive counts on real markers, split the same way (the
calibration frames vs every other frame and photo of the sample media), are in
``benchmarks/provenance.py``'s ``false_positives.split``;
``tests/unit/test_watermark_calibration.py`` checks the shipped thresholds on held-out faces.

Model profiles (issue 16, point 7): ``--fix-points`` names the watermark's landmark fix points
the verifier tries (``dlib68``, ``mesh68``, or both: ``dlib68,mesh68``, what the default
profile's verify does). Each face's landmarks are re-found with each, every marker is searched
at each, and the null sample is the best of them per marker: the statistic the verifier
thresholds when it tries them in turn (with one fix point: the shipped tables' statistic).

Usage: python tools/calibrate_watermark_null.py [--markers 96] [--seed 7] [--sets full,upper]
           [--fix-points dlib68,mesh68] [--every-scale 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

POINTS = (2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0, 5.125, 5.25, 5.375, 5.5, 5.625,
          5.75)


def faces(fix_points: Sequence[str] = ("dlib68",), every_scale: int = 1
          ) -> Iterator[tuple[str, int, Any, list[np.ndarray]]]:
    """(clip, frame index, frame, its one face's landmarks at each fix point) of the
    calibration faces, in order (frames where a fix point does not find exactly one face are
    skipped; ``every_scale`` > 1 keeps every Nth calibration frame only)."""
    from faceplate.io import samples
    from faceplate.io.media import open_source
    from faceplate.provenance import watermark as wm
    from faceplate.provenance.watermark.calibration import CALIBRATION_CLIPS

    for name, every in CALIBRATION_CLIPS:
        with open_source(samples.path(name)) as src:
            for frame in src:
                if frame.info.index % (every * every_scale):
                    continue
                per_fp = [wm.frame_landmarks(frame.rgb, fix_point=fp) for fp in fix_points]
                if all(len(lms) == 1 for lms in per_fp):
                    yield name, frame.info.index, frame.rgb, [lms[0] for lms in per_fp]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markers", type=int, default=96)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sets", default=None,
                    help="comma-separated pattern sets (default: every one)")
    ap.add_argument("--fix-points", default="dlib68",
                    help="landmark fix points the verifier tries, comma-separated "
                         "(dlib68, mesh68); the null is the best over them per marker")
    ap.add_argument("--every-scale", type=int, default=1,
                    help="use every Nth of the faces only (quick runs)")
    ap.add_argument("--json", default=None, help="also write the tables of both halves here")
    args = ap.parse_args()
    fix_points = [f.strip() for f in args.fix_points.split(",") if f.strip()]

    from faceplate.provenance import watermark as wm
    from faceplate.provenance.watermark.calibration import calibration_half

    sets = args.sets.split(",") if args.sets else [p.name for p in wm.PATTERN_SETS]
    rng = np.random.default_rng(args.seed)
    scores: dict[str, dict[str, list[np.ndarray]]] = {
        s: {"fit": [], "held_out": []} for s in sets}
    where: dict[str, list[str]] = {"fit": [], "held_out": []}
    count = 0
    for pos, (name, index, rgb, lms) in enumerate(faces(fix_points, args.every_scale)):
        markers = rng.integers(0, 2, (args.markers, wm.MARKER_BITS)).astype(np.uint8)
        half = calibration_half(pos)
        where[half].append(f"{name}:{index}")
        for s in sets:
            # The best over the fix points, per marker.
            scores[s][half].append(np.max([wm.null_scores(rgb, lm, markers, s) for lm in lms],
                                          axis=0))
        count += 1
    out: dict[str, Any] = {"faces": count, "markers": args.markers, "fix_points": fix_points,
                           "frames": where, "sets": {}}
    for s in sets:
        print(f"== pattern set {s!r}, fix points {'+'.join(fix_points)}")
        res: dict[str, Any] = {}
        thr, thr2 = wm.verify_thresholds(len(fix_points), s)
        for half in ("fit", "held_out"):
            x = np.concatenate(scores[s][half])
            table = [(p, float((x >= p).mean())) for p in POINTS]
            print(f"{half}: {x.size // args.markers} faces × {args.markers} markers = {x.size} "
                  f"searches; mean {x.mean():.3f}, s.d. {x.std():.3f}, max {x.max():.3f}")
            print("  tail = (" + ", ".join(f"({p}, {v:.3g})" for p, v in table if v > 0) + ")")
            res[half] = {"searches": int(x.size), "mean": float(x.mean()),
                         "sd": float(x.std()), "max": float(x.max()), "tail": table,
                         "at_threshold": float((x >= thr).mean()),
                         "at_second_pass_threshold": float((x >= thr2).mean())}
            print(f"  at the shipped threshold {thr}: {res[half]['at_threshold']:.3g}")
            if half == "fit":
                for target in (wm.FP_TARGET, 1e-4, 5e-5, 2e-5):
                    above = [p for p, v in table if v <= target]
                    print(f"  tail ≤ {target:g} from score "
                          f"{above[0] if above else '> ' + str(POINTS[-1])}")
        out["sets"][s] = res
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
