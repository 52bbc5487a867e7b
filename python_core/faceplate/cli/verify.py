"""``faceplate verify PATH [--json REPORT] [--frames N | --every K] [--track R] [--quiet]``: look
for Faceplate's marks in an image, a folder of images or a video.

Checks, per frame and face, the invisible watermark (detected, confidence, payload = the model's
short id) and, per file, the provenance metadata statement and the C2PA manifest (its validation
state: "Trusted" = signature and content hashes valid and the signer chains to a trust anchor
known here; "Valid" = valid but the signer is in no trust list, as with Faceplate's locally
generated certificate on another machine; "Invalid" = the file or the manifest changed after
signing). Prints a per-frame table (a summary only when there are more than 50 frames) and a
summary line. Videos and folders get the video verdict (``--track R``, default 2): a face also
counts as marked when its track's mean score over the R checked frames on each side reaches
the threshold (shown as "by its track").

Exit status (for scripts): 0 when a Faceplate mark is found (a watermarked face, a Faceplate
C2PA manifest or the metadata statement), 1 when none is, 2 on an error (missing or unreadable
file, nothing found and some file could not be checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args

#: Above this many checked frames the per-frame table is left out (the JSON has every row).
TABLE_LIMIT = 50


def register(sub: Any) -> None:
    from faceplate.provenance.verify import VerifyConfig

    p = sub.add_parser("verify", help="look for Faceplate's watermark, metadata and C2PA "
                       "manifest", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, metavar="PATH",
                   help="an image file, a folder of images or a video")
    p.add_argument("--json", type=Path, default=None, metavar="REPORT.json",
                   help="also write the full report as JSON")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only the summary line")
    add_config(p, VerifyConfig, title="frames")
    p.set_defaults(func=run)


def _manifest_line(m: dict[str, Any] | None) -> str:
    if m is None:
        return "none"
    state = m.get("validation_state")
    parts = [str(state)]
    if m.get("untrusted"):
        parts.append("(signer not in a trust list here)")
    if m.get("failures"):
        parts.append("failures: " + ", ".join(m["failures"]))
    if m.get("error"):
        parts.append(f"error: {m['error']}")
    who = "Faceplate manifest" if m.get("ours") else f"manifest by {m.get('claim_generator')}"
    parts.append(f"— {who}")
    if m.get("digital_source_type"):
        parts.append(str(m["digital_source_type"]).rsplit("/", 1)[-1])
    if m.get("model_id"):
        parts.append(f"model {m['model_id']}")
    if m.get("signer"):
        parts.append(f"signed by {m['signer']}")
    return " ".join(parts)


def _meta_line(meta: dict[str, Any] | None) -> str:
    if meta is None:
        return "none"
    model = meta["attributes"].get("faceplate:model_id")
    extra = f", model {model}" if model else ""
    if meta.get("model_profile"):
        extra += f", model profile {meta['model_profile']}"
    return f"{meta['synthetic']} [{meta.get('software') or '?'}{extra}]"


def print_report(report: Any, quiet: bool = False) -> None:
    s = report.summary()
    if not quiet:
        print(f"faceplate verify: {report.path} ({report.kind}, {report.total_frames} "
              f"frame(s), {s['frames_checked']} checked)")
        if report.watermark_note:
            print(f"  note: {report.watermark_note}")
        many_files = len(report.files) > 1
        if not many_files:
            f = report.files[0]
            print(f"  metadata: {_meta_line(f.metadata)}")
            print(f"  C2PA:     {_manifest_line(f.manifest)}")
        by_file = {f.path: f for f in report.files}
        if len(report.frames) <= TABLE_LIMIT:
            head = (f"  {'frame':>6}  {'faces':>5}  {'marked':>6}  {'confidence':>10}  "
                    f"{'score':>6}  payload")
            if many_files:
                head += "   metadata  C2PA        file"
            print(head)
            for fr in report.frames:
                if fr.error:
                    print(f"  {fr.index:>6}  error: {fr.error}  ({Path(fr.file).name})")
                    continue
                n = marked = conf = score = payload = "-"
                if fr.faces is not None:
                    hits = [f for f in fr.faces if f.detected]
                    n, marked = str(len(fr.faces)), str(len(hits))
                    # Confidence of marked faces only (an unmarked face can score 0.99: the
                    # detection threshold is 1 - 1e-3); the score is the raw statistic.
                    if hits:
                        conf = f"{max(f.confidence for f in hits):.4f}"
                    if fr.faces:
                        score = f"{max(f.score for f in fr.faces):.2f}"
                    payload = ",".join(sorted({f.payload for f in hits if f.payload})) or "-"
                    if any(f.by_track for f in hits):
                        payload += " (by its track)"
                row = (f"  {fr.index:>6}  {n:>5}  {marked:>6}  {conf:>10}  {score:>6}  "
                       f"{payload:<7}")
                if many_files:
                    fm = by_file.get(fr.file)
                    meta = "yes" if fm is not None and fm.metadata is not None else "no"
                    man = (fm.manifest or {}).get("validation_state") if fm else None
                    row += f"   {meta:<8}  {man or 'none':<10}  {Path(fr.file).name}"
                print(row)
        else:
            print(f"  ({len(report.frames)} frames checked: per-frame table left out; "
                  "--json has every row)")
        for err in report.errors[:10]:
            print(f"  error: {err}")
    states = ", ".join(f"{k} {v}" for k, v in sorted(s["manifest_states"].items())) or "-"
    verdict = "Faceplate provenance FOUND" if s["found"] else "no Faceplate mark found"
    wm = (f"watermark in {s['frames_watermarked']}/{s['frames_checked']} frames "
          f"({s['faces_watermarked']}/{s['faces']} faces"
          + (f", payload {','.join(s['payloads'])}" if s["payloads"] else "") + ")"
          if report.watermark_available else "watermark not checked")
    print(f"summary: {wm}; metadata in {s['files_with_metadata']}/{s['files']} file(s); "
          f"C2PA manifest in {s['files_with_manifest']}/{s['files']} ({states}); "
          f"{s['errors']} error(s) -> {verdict}")


def run(args: argparse.Namespace) -> int:
    from faceplate.io.paths import ensure_output_dir
    from faceplate.provenance.verify import VerifyConfig, verify

    cfg = config_from_args(VerifyConfig, args)
    if args.json is not None:
        ensure_output_dir(Path(args.json).parent, probe=True)
    report = verify(args.path, cfg)
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1) + "\n")
    print_report(report, quiet=args.quiet)
    sys.stdout.flush()
    if report.found:
        return 0
    return 2 if report.errors else 1
