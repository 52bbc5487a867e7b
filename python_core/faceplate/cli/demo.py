"""``faceplate demo``: the whole pipeline on the sample media, in a few minutes on 2 cores.

Fetches the sample media (MEDIA.md); extracts the woman's clip, the man's clip and the
Obama/Biden stills (with identity embeddings); smooths the tracks; sorts the man's faces by
sharpness, groups the woman's by yaw and the stills by identity; trains a small ``original``
model (A = the woman, B = the man) briefly; converts the man's clip with it; evaluates the result
against the woman's faceset; writes a contact sheet of converter settings; learns the woman's
occlusion mask (her hands) from the sample hand labels and a few generated ones (imported as mask
images), applies it to both clips, evaluates it against held-out hand labels beside the landmark
hull, uses it in a preview of the convert and writes a face | landmark mask | occlusion mask
sheet; with a NatronRenderer (``--natron``, default ``$FACEPLATE_NATRON``) and the OpenFX
bundle built (``make ofx``), renders the man's clip again through Natron (Read → Faceplate
Swap → Write, the README's example script) and checks its watermark; prints where every result
is. The model is tiny and trained for minutes, so the swap is soft: the demo shows the
pipeline, not a finished shot.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from faceplate.io import samples
from faceplate.io.media import open_source

STILLS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the sample media", description=__doc__)
    p.add_argument("--output", type=Path, default=Path("demo_out"),
                   help="folder for everything the demo writes (default: demo_out)")
    p.add_argument("--size", type=int, default=256, help="aligned face size (default: 256)")
    p.add_argument("--iterations", type=int, default=600,
                   help="training iterations of the demo model (default: 600)")
    p.add_argument("--mask-iterations", type=int, default=150,
                   help="training iterations of the demo's occlusion mask (default: 150)")
    p.add_argument("--natron", type=Path, default=os.environ.get("FACEPLATE_NATRON") or None,
                   help="a NatronRenderer to render the clip through Faceplate Swap too "
                        "(default: $FACEPLATE_NATRON; skipped without one)")
    p.add_argument("--ofx-plugins", type=Path, default=CHECKOUT / "build" / "ofx" / "ofx_plugin",
                   help="the folder holding Faceplate.ofx.bundle (default: make ofx's)")
    p.set_defaults(func=run)


#: The checkout the package runs from (an editable install): the example Natron script is there.
CHECKOUT = Path(__file__).resolve().parents[3]


def _natron_render(natron: Path, plugins: Path, clip: Path, model: Path, store: Path,
                   out: Path, last: int) -> None:
    """Render ``clip``'s frames 1..last through NatronRenderer with the README's example
    script (Read → Faceplate Swap → Write, float EXR) into ``out``."""
    import subprocess

    script = CHECKOUT / "ofx_plugin" / "examples" / "natron_swap.py"
    out.mkdir(parents=True, exist_ok=True)
    (out / "home").mkdir(exist_ok=True)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHOME": "/usr", "LANG": "C.UTF-8",
           "HOME": str((out / "home").resolve()), "OFX_PLUGIN_PATH": str(plugins.resolve()),
           "FACEPLATE_PLATE": str(clip.resolve()), "FACEPLATE_MODEL": str(model.resolve()),
           "FACEPLATE_ALIGNMENTS": str(store.resolve()),
           "FACEPLATE_OUT": str((out / "man_as_woman.####.exr").resolve())}
    argv = [str(natron), "-w", "Write1", f"1-{last}", str(script)]
    shown = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("FACEPLATE_"))
    print(f"\n== render the man's clip through Natron: Read -> Faceplate Swap -> Write\n"
          f"$ {shown} {' '.join(argv)}", flush=True)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    frames = sorted(out.glob("man_as_woman.*.exr"))
    if len(frames) != last:
        from faceplate.core.errors import FaceplateError

        said = (proc.stdout + proc.stderr)[-3000:]
        raise FaceplateError(f"demo step failed (Natron render): {len(frames)} of {last} "
                             f"frames written; NatronRenderer said:\n{said}")
    print(f"{len(frames)} frames written by Natron", flush=True)


def _step(title: str, argv: list[str]) -> None:
    from faceplate.cli.main import main

    print(f"\n== {title}\n$ faceplate {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        from faceplate.core.errors import FaceplateError

        raise FaceplateError(f"demo step failed ({title}), exit code {code}")


#: Unoccluded frames of the woman's clip labelled with their landmark hull in the demo.
HULL_FRAMES = (0, 8, 16, 24, 32, 40, 48, 240, 280, 320)


def _occlusion(out: Path, man_clip: Path, swap_model: Path, iterations: int) -> Path:
    """The occlusion mask steps: labels as mask images → import-labels → mask train → apply →
    eval → preview with it → sheet. Returns the mask model directory."""
    import cv2

    from faceplate.extract.mask.labels import hull_labels, labels_to_mask
    from faceplate.io.faceset import read_face_meta
    from faceplate.io.sample_labels import sample_labels

    faces = out / "faces" / "woman"
    labels_dir = out / "mask_labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    wanted = {(f["frame"], f["face"]): f["labels"] for f in sample_labels()["faces"]}
    hand_frames = sorted(f for f, _ in wanted)
    for frame in HULL_FRAMES:
        wanted.setdefault((frame, 0), None)
    for path in sorted(faces.glob("*.png")):
        meta = read_face_meta(path)
        key = (meta.record.frame_index, meta.record.face_index)
        if key not in wanted:
            continue
        lab = wanted[key] or hull_labels(meta.record.landmarks)
        mask = labels_to_mask(lab, meta.size, meta.matrix)
        cv2.imwrite(str(labels_dir / f"{path.stem}.png"), mask)
    _step("import the mask labels (the woman's hands, drawn by us; hulls of unoccluded faces)",
          ["mask", "import-labels", str(faces), str(labels_dir)])
    mask_model = out / "models" / "occlusion"
    if mask_model.exists():
        shutil.rmtree(mask_model)
    _step("train the occlusion mask on them, every third labelled face held out",
          ["mask", "train", "--faces", str(faces), "--output", str(mask_model), "--size", "128",
           "--iterations", str(iterations), "--lr", "1e-2", "--warmup", "20",
           "--threads", "1", "--hold-out", "0.3", "--save-every", str(iterations),
           "--preview-every", str(iterations), "--log-every", "25"])
    for who in ("woman", "man"):
        _step(f"store the occlusion mask of every face of the {who}'s clip",
              ["mask", "apply", str(mask_model), "--alignments", str(out / f"{who}.fpstore")])
    _step("evaluate it on the held-out hand labels, beside the landmark hull",
          ["mask", "eval", str(mask_model), "--faces", str(faces), "--json",
           str(out / "mask_eval.json")])
    _step("the convert with the occlusion mask (a preview: landmark mask, then ∩ occlusion)",
          ["preview", "--model", str(swap_model), "--input", str(man_clip),
           "--alignments", str(out / "man.fpstore"), "--frames", "0", "48",
           "--mask-model", str(mask_model), "--settings", "mask=extended",
           "mask=extended,occlusion combine=min", "-o", str(out / "contact_sheet_occlusion.png")])
    _occlusion_sheet(out, faces, hand_frames[::3])
    return mask_model


def _occlusion_sheet(out: Path, faces: Path, frames: list[int]) -> None:
    """face | landmark mask | occlusion mask, one row per frame, from the woman's store."""
    import cv2
    import numpy as np

    from faceplate.core.records import decode_mask
    from faceplate.io.faceset import decode_face_pixels, read_face_meta
    from faceplate.io.store import AlignmentsStore

    rows = []
    with AlignmentsStore.open(out / "woman.fpstore", readonly=True) as st:
        for frame in frames:
            path = next(iter(faces.glob(f"*_{frame:06d}_0.png")), None)
            rec = st.get_face(frame, 0)
            if path is None or rec is None or "occlusion" not in rec.masks:
                continue
            meta = read_face_meta(path)
            rgb = decode_face_pixels(path, meta)
            s = rgb.shape[0]
            cells = [rgb]
            for name in ("extended", "occlusion"):
                sm = rec.masks.get(name)
                if sm is None:
                    cells.append(np.zeros_like(rgb))
                    continue
                m = decode_mask(sm)
                # the stored mask's crop → this face's crop, through the frame
                a = np.vstack([np.asarray(sm.affine, np.float64), [0, 0, 1]])
                b = np.vstack([np.asarray(meta.matrix, np.float64), [0, 0, 1]])
                warp = (b @ np.linalg.inv(a))[:2]
                m = cv2.warpAffine(m, warp, (s, s), flags=cv2.INTER_LINEAR)
                cells.append(np.repeat(m[..., None], 3, axis=2))
            rows.append(np.hstack(cells))
    if rows:
        sheet = np.vstack(rows)
        cv2.imwrite(str(out / "occlusion_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def run(args: argparse.Namespace) -> int:
    out: Path = args.output
    media = samples.fetch()
    inputs = out / "inputs"
    stills = inputs / "stills"
    stills.mkdir(parents=True, exist_ok=True)
    for name in STILLS:
        if not (stills / name).exists():
            shutil.copyfile(media[name], stills / name)
    clips = {"woman": media["WolfgangLanger_Pexels.mp4"], "man": media["single_face.mp4"]}
    size = str(args.size)
    for who, clip in clips.items():
        _step(f"extract the {who}'s clip",
              ["extract", str(clip), "-o", str(out / "faces" / who),
               "--alignments", str(out / f"{who}.fpstore"), "--size", size])
    _step("extract the stills with identity embeddings",
          ["extract", str(stills), "-o", str(out / "faces" / "stills"),
           "--alignments", str(out / "stills.fpstore"), "--size", size, "--identity"])
    _step("smooth the woman's landmark tracks",
          ["faceset", "smooth", "--alignments", str(out / "woman.fpstore")])
    if (out / "sorted").exists():  # sort refuses to overwrite: a second run starts afresh
        shutil.rmtree(out / "sorted")
    _step("sort the man's faces by sharpness (a copy, with an undo log)",
          ["sort", str(out / "faces" / "man"), "-o", str(out / "sorted" / "man_by_blur"),
           "--sort-by", "blur", "--keep"])
    _step("group the woman's faces by yaw",
          ["sort", str(out / "faces" / "woman"), "-o", str(out / "sorted" / "woman_by_yaw"),
           "--group-by", "yaw", "--bins", "5", "--keep"])
    _step("group the stills by identity",
          ["sort", str(out / "faces" / "stills"), "-o", str(out / "sorted" / "stills_by_identity"),
           "--group-by", "identity", "--keep"])
    _step("export the man's alignments as JSON",
          ["faceset", "export-json", str(out / "man.fpstore"), str(out / "man_alignments.json")])
    model = out / "models" / "woman_from_man"
    if model.exists():
        shutil.rmtree(model)
    _step("train a small model (A = the woman, B = the man) briefly",
          ["train", "--a", str(out / "faces" / "woman"), "--b", str(out / "faces" / "man"),
           "--model", "original", "--size", "64", "--original-encoder-dim", "512",
           "--original-dims", "64", "--iterations", str(args.iterations), "--batch-size", "8",
           "--lr", "1e-4", "--save-every", str(max(args.iterations // 2, 1)),
           "--preview-every", str(max(args.iterations // 3, 1)), "--output", str(model)])
    converted = out / "converted" / "man_as_woman.mp4"
    _step("convert the man's clip with the model",
          ["convert", "--model", str(model), "--input", str(clips["man"]),
           "--alignments", str(out / "man.fpstore"), "--output", str(converted),
           "--color", "rct", "--blend", "overlay"])
    _step("check its provenance: the watermark in the frames, the metadata, the C2PA manifest",
          ["verify", str(converted), "--every", "8", "--json", str(out / "verify.json")])
    _step("evaluate the conversion",
          ["evaluate", str(clips["man"]), str(converted), "--source", str(out / "faces" / "woman"),
           "--alignments", str(out / "man.fpstore"), "--json", str(out / "evaluate.json"),
           "--plot", str(out / "evaluate.png")])
    _step("contact sheet of converter settings",
          ["preview", "--model", str(model), "--input", str(clips["man"]),
           "--alignments", str(out / "man.fpstore"), "--frames", "0", "24", "48",
           "--settings", "color=rct blend=overlay", "color=avg-color blend=seamless",
           "color=none blend=overlay", "-o", str(out / "contact_sheet.png")])
    mask_model = _occlusion(out, clips["man"], model, args.mask_iterations)
    natron_out = out / "natron"
    natron = args.natron if args.natron and (args.ofx_plugins / "Faceplate.ofx.bundle").is_dir() \
        else None
    if natron is not None:
        with open_source(clips["man"]) as src:
            last = src.total_frames
        _natron_render(natron, args.ofx_plugins, clips["man"], model, out / "man.fpstore",
                       natron_out, last)
        _step("check the watermark in Natron's frames",
              ["verify", str(natron_out), "--every", "8", "--json",
               str(out / "verify_natron.json")])
    print("\n== results")
    for who in (*clips, "stills"):
        print(f"  {who}: alignments {(out / f'{who}.fpstore').resolve()}")
        print(f"  {who}: aligned faces {(out / 'faces' / who).resolve()}")
    print(f"  sorted copies (each with a sort log for --undo): {(out / 'sorted').resolve()}")
    print(f"  alignments as JSON: {(out / 'man_alignments.json').resolve()}")
    print(f"  model (previews, loss.png, TensorBoard logs/): {model.resolve()}")
    print(f"  converted video: {converted.resolve()}")
    print(f"  provenance check: {(out / 'verify.json').resolve()}")
    print(f"  evaluation: {(out / 'evaluate.json').resolve()} and evaluate.png")
    print(f"  contact sheet: {(out / 'contact_sheet.png').resolve()}")
    print(f"  occlusion mask model: {mask_model.resolve()}; its evaluation on held-out hand "
          f"labels: {(out / 'mask_eval.json').resolve()}; sheet face | landmark mask | "
          f"occlusion mask: {(out / 'occlusion_sheet.png').resolve()}; in the convert: "
          f"{(out / 'contact_sheet_occlusion.png').resolve()}")
    if natron is not None:
        print(f"  rendered in Natron (Faceplate Swap, EXR): {natron_out.resolve()} "
              f"(watermark check: {(out / 'verify_natron.json').resolve()})")
    else:
        print("  Natron: not rendered (no NatronRenderer: `make natron`, then `make demo`)")
    return 0
