"""Calibrate the watermark detector's null distribution (``watermark.NULL_TAIL``).

On unmarked faces of the sample media, the registration search's best marker score for many
random stand-in markers (``watermark.null_scores``) samples the score the detector gives a
face that carries no mark. Prints the mean, the s.d., the tail P(score ≥ x) at the table's
points and where the tail falls below ``FP_TARGET`` and the second-pass target; paste the
table into ``NULL_TAIL`` and set the thresholds from it whenever the scheme or the search
changes. Faces: every 4th frame of single_face.mp4 and every 10th of the woman's head-turn
clip (WolfgangLanger_Pexels.mp4), 640×360, one face each; 96 markers per face.

Held out (issue 16, point 3): the faces alternate between a fitting half and a held-out half;
the table and the thresholds come from the fitting half, and the held-out half's tail at the
same points is printed beside it (``--json`` writes both), so the thresholds are measured on
faces they were not fitted on. The false-positive counts on real markers, split the same way
(the frames above vs every other frame and photo of the sample media), are in
``benchmarks/provenance.py``'s ``false_positives.split``.

Model profiles (issue 16, point 7): ``--fix-points`` names the watermark's landmark fix points
the verifier tries (``dlib68``, ``mesh68``, or both: ``dlib68,mesh68``, what the default
profile's verify does). Each face's landmarks are re-found with each, every marker is searched
at each, and the null sample is the best of them per marker: the statistic the verifier
thresholds when it tries them in turn.

Usage: python tools/calibrate_watermark_null.py [--markers 96] [--seed 7] [--json OUT.json]
           [--fix-points dlib68,mesh68] [--every-scale 1]
"""

from __future__ import annotations

import argparse

import numpy as np

POINTS = (2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75, 5.0, 5.125, 5.25, 5.375, 5.5, 5.625,
          5.75)
CLIPS = (("single_face.mp4", 4), ("WolfgangLanger_Pexels.mp4", 10))


def _report(sc: np.ndarray, markers: int, wm: object, out: dict[str, object]) -> None:
    """Print and store the tail of the fitting half (alternate faces) and the held-out half."""
    fit, held = sc[0::2].ravel(), sc[1::2].ravel()
    thr = float(wm.SCORE_THRESHOLD)  # type: ignore[attr-defined]
    thr2 = float(wm.SECOND_PASS_THRESHOLD)  # type: ignore[attr-defined]
    for name, s in (("fit", fit), ("held_out", held)):
        table = [(x, float((s >= x).mean())) for x in POINTS]
        print(f"{name}: {s.size // markers} faces × {markers} markers = {s.size} "
              f"searches; mean {s.mean():.3f}, s.d. {s.std():.3f}, max {s.max():.3f}")
        print("  tail = (" + ", ".join(f"({x}, {p:.3g})" for x, p in table if p > 0) + ")")
        out[name] = {"searches": int(s.size), "mean": float(s.mean()), "sd": float(s.std()),
                     "max": float(s.max()), "tail": table,
                     "at_threshold": float((s >= thr).mean()),
                     "at_second_pass_threshold": float((s >= thr2).mean())}
        if name == "fit":
            for target in (1e-3, 2e-4):
                above = [x for x, p in table if p <= target]
                print(f"  tail ≤ {target:g} from score "
                      f"{above[0] if above else '> ' + str(POINTS[-1])}")
        print(f"  at SCORE_THRESHOLD {thr}: {(s >= thr).mean():.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markers", type=int, default=96)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the tables of both halves here")
    ap.add_argument("--fix-points", default="dlib68",
                    help="landmark fix points the verifier tries, comma-separated "
                         "(dlib68, mesh68); the null is the best over them per marker")
    ap.add_argument("--every-scale", type=int, default=1,
                    help="use every Nth of the faces only (quick runs)")
    args = ap.parse_args()
    fix_points = [f.strip() for f in args.fix_points.split(",") if f.strip()]

    from faceplate.io import samples
    from faceplate.io.media import open_source
    from faceplate.provenance import watermark as wm

    rng = np.random.default_rng(args.seed)
    per_face: list[np.ndarray] = []  # faces × fix points × markers
    for name, every in CLIPS:
        with open_source(samples.path(name)) as src:
            for frame in src:
                if frame.info.index % (every * args.every_scale):
                    continue
                per_fp = [wm.frame_landmarks(frame.rgb, fix_point=fp) for fp in fix_points]
                if any(len(lms) != 1 for lms in per_fp):
                    continue
                markers = rng.integers(0, 2, (args.markers, wm.MARKER_BITS)).astype(np.uint8)
                per_face.append(np.array([wm.null_scores(frame.rgb, lms[0], markers)
                                          for lms in per_fp]))
    faces = len(per_face)
    stats = np.array(per_face)  # F × P × M
    # The statistic of each single fix point, and (when several) the best over all of them:
    # the last one is what a verifier trying all of them in turn thresholds.
    variants = [(fp, stats[:, i]) for i, fp in enumerate(fix_points)]
    if len(fix_points) > 1:
        variants.append(("+".join(fix_points), stats.max(axis=1)))
    out: dict[str, object] = {"faces": faces, "markers": args.markers,
                              "fix_points": fix_points}
    for label, sc in variants:
        print(f"== fix points: {label}")
        block: dict[str, object] = {}
        out[label] = block
        _report(sc, args.markers, wm, block)
    if len(fix_points) == 1:
        out.update(block)
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
