"""``faceplate mask train|apply|eval|import-labels``: the occlusion mask, learned per shot.

Label a few faces (Faceplate Studio's mask view, or mask images imported with
``import-labels``), train a small segmenter on them (``train``), store its mask for every face as
``occlusion`` beside the landmark masks (``apply``), and measure it against labelled faces it was
not trained on (``eval``)::

  faceplate mask import-labels FACES_DIR MASKS_DIR
  faceplate mask train --faces FACES_DIR [DIR ...] --output MODEL_DIR [--size 256]
                       [--iterations N] [--resume]
  faceplate mask apply MODEL_DIR --alignments STORE [--faces FACES_DIR]
  faceplate mask eval MODEL_DIR --faces FACES_DIR [--json REPORT]

Then ``faceplate convert --mask occlusion`` (or ``--mask extended occlusion``), ``faceplate
train --mask occlusion``, ``faceplate extract --masks occlusion:MODEL_DIR``, and the OpenFX
nodes' ``occlusion`` source with their Mask model parameter all use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import bar
from faceplate.core.config import params

_TRAIN = "mtrain_"
_DATA = "mdata_"


def register(sub: Any) -> None:
    from faceplate.models.occlusion import MASK_MODELS
    from faceplate.train.occlusion import MaskTrainConfig
    from faceplate.train.occlusion_data import MaskDataConfig

    p = sub.add_parser("mask", help="the occlusion mask: label faces, train, apply, evaluate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)

    j = jobs.add_parser("train", help="train an occlusion mask model on labelled faces",
                        description="Train the occlusion segmenter on the faces of FACES_DIR "
                        "that carry mask labels in their stores (synthetic occluders from the "
                        "footage are pasted over them as it trains). MODEL_DIR receives "
                        "manifest.json, model.safetensors, model.onnx (checked with "
                        "onnxruntime), checkpoints/, previews/ (face | label | mask), loss.png "
                        "and logs/ (TensorBoard).")
    j.add_argument("--faces", type=Path, nargs="+", required=True, metavar="DIR",
                   help="faceset folders (their labelled faces are the training set)")
    j.add_argument("--output", "-o", type=Path, required=True, metavar="MODEL_DIR",
                   help="mask model directory")
    j.add_argument("--resume", action="store_true",
                   help="continue the model in MODEL_DIR from its latest checkpoint (more "
                        "labels may have been added meanwhile)")
    add_config(j, MaskTrainConfig, prefix=_TRAIN, title="training")
    add_config(j, MaskDataConfig, prefix=_DATA, title="data and augmentation")
    for entry in MASK_MODELS:
        add_config(j, entry.config, prefix=f"mmodel_{entry.name}_",
                   flag_prefix=f"{entry.name.replace('_', '-')}-", exclude=("size",),
                   title=f"mask model '{entry.name}': {entry.summary}")
    j.set_defaults(func=run_train)

    j = jobs.add_parser("apply", help="store the model's occlusion mask for every face",
                        description="Predict the occlusion mask of every face of STORE (from "
                        "its clip, or the face PNGs when the clip is gone) and store it as "
                        "'occlusion' beside the other masks; with --faces, the face PNGs of the "
                        "store get it in their records too. Resumable.")
    j.add_argument("model", type=Path, metavar="MODEL_DIR", help="mask model directory")
    j.add_argument("--alignments", "-a", type=Path, required=True, metavar="STORE",
                   help="alignments store (.fpstore)")
    j.add_argument("--faces", type=Path, default=None, metavar="DIR",
                   help="faceset folder cut from the store (its PNG records get the mask)")
    j.add_argument("--engine", choices=("auto", "onnx", "torch"), default="auto",
                   help="inference engine (default: auto, the ONNX export when there is one)")
    j.set_defaults(func=run_apply)

    j = jobs.add_parser("eval", help="IoU and boundary F-score against labelled faces",
                        description="Compare the model's mask and the landmark hull (extended) "
                        "with the labels of the faces in FACES_DIR it was not trained on: IoU "
                        "and boundary F-score, over all faces and over the occluded ones; JSON "
                        "to stdout or --json.")
    j.add_argument("model", type=Path, metavar="MODEL_DIR", help="mask model directory")
    j.add_argument("--faces", type=Path, nargs="+", required=True, metavar="DIR",
                   help="faceset folders with labelled faces")
    j.add_argument("--json", type=Path, default=None, metavar="REPORT",
                   help="write the report here (default: print it)")
    j.add_argument("--include-trained", action="store_true",
                   help="also evaluate the faces the model was trained on")
    j.set_defaults(func=run_eval)

    j = jobs.add_parser("import-labels", help="import black-and-white mask images as labels",
                        description="Import MASKS_DIR/<face file stem>.png (white = face, "
                        "black = occluder or background; any square size of the face's crop) "
                        "as the mask labels of the faces of FACES_DIR, into their stores. Empty, "
                        "all-white and non-square images are reported and not imported.")
    j.add_argument("faces_dir", type=Path, metavar="FACES_DIR", help="faceset folder")
    j.add_argument("masks_dir", type=Path, metavar="MASKS_DIR", help="mask images")
    j.set_defaults(func=run_import)


def _given(cls: type, ns: argparse.Namespace, prefix: str) -> set[str]:
    return {pr.name for pr in params(cls) if hasattr(ns, prefix + pr.name)}


def run_train(args: argparse.Namespace) -> int:
    from faceplate.models.occlusion import MASK_MODELS
    from faceplate.train import checkpoint as ckpt_io
    from faceplate.train.occlusion import MaskTrainConfig, MaskTrainer
    from faceplate.train.occlusion_data import MaskDataConfig

    over_t: dict[str, Any] = {}
    over_d: dict[str, Any] = {}
    if args.resume:
        ck = ckpt_io.latest_checkpoint(args.output)
        if ck is not None:
            st = ckpt_io.read_state(ck)["trainer"]
            given_t = _given(MaskTrainConfig, args, _TRAIN)
            given_d = _given(MaskDataConfig, args, _DATA)
            over_t = {k: v for k, v in st.get("train_config", {}).items()
                      if k in {p.name for p in params(MaskTrainConfig)} and k not in given_t}
            over_d = {k: v for k, v in st.get("data_config", {}).items()
                      if k in {p.name for p in params(MaskDataConfig)} and k not in given_d}
    cfg = config_from_args(MaskTrainConfig, args, prefix=_TRAIN, **over_t)
    data_cfg = config_from_args(MaskDataConfig, args, prefix=_DATA, **over_d)
    model_cls = MASK_MODELS.config_class(cfg.model)
    model_cfg: Any = config_from_args(model_cls, args, prefix=f"mmodel_{cfg.model}_",
                                      size=cfg.size)
    trainer = MaskTrainer(cfg, args.faces, args.output, data_cfg=data_cfg, model_cfg=model_cfg,
                          resume=args.resume, log=_say)
    res = trainer.run()
    last = res.history[-1]["mask"] if res.history else {}
    print(f"mask train: iterations {res.start_iteration} → {res.iteration}, "
          f"{res.faces_per_second:.1f} faces/s, {res.faces} labelled faces"
          + (f" ({res.held_out} held out)" if res.held_out else "")
          + (f", loss {last.get('total', float('nan')):.4f}, batch IoU "
             f"{last.get('iou', float('nan')):.3f}" if last else ""), flush=True)
    print(f"model: {res.model_dir}")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from faceplate.extract.mask.apply import apply_mask_model

    progress: list[Any] = []

    def on_start(todo: int, done: int) -> None:
        if done:
            print(f"resuming: {done} faces already done, {todo} to do", flush=True)
        progress.append(bar(todo, "mask apply", unit="face"))

    def on_faces(n: int) -> None:
        if progress:
            progress[0].update(n)

    try:
        stats = apply_mask_model(args.model, args.alignments, args.faces, engine=args.engine,
                                 on_start=on_start, on_faces=on_faces)
    finally:
        for b in progress:
            b.close()
    for w in stats.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"mask apply: {stats.faces} faces in {stats.frames} frames (pixels from the "
          f"{stats.pixels})" + (f", {stats.pngs} face PNGs updated" if args.faces else ""),
          flush=True)
    print(f"alignments: {args.alignments} (mask 'occlusion')")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from faceplate.evaluate.masks import evaluate_mask_model
    from faceplate.io.paths import write_bytes_atomic

    report = evaluate_mask_model(args.model, args.faces, include_trained=args.include_trained)
    text = json.dumps(report, indent=1) + "\n"
    if args.json is not None:
        write_bytes_atomic(args.json, text.encode("utf-8"))
        a, o = report["all"], report["occluded"]
        print(f"mask eval: {report['faces']} faces ({report['left_out']} trained on, left out): "
              f"IoU {a['occlusion']['iou']['mean']} (hull {a['hull']['iou']['mean']}); "
              f"{o['faces']} occluded: IoU {o['occlusion']['iou']['mean']} (hull "
              f"{o['hull']['iou']['mean']})")
        print(f"report: {args.json}")
    else:
        sys.stdout.write(text)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from faceplate.extract.mask.labels import import_label_images

    n, skipped = import_label_images(args.faces_dir, args.masks_dir)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(f"import-labels: {n} faces labelled, {len(skipped)} mask image(s) skipped")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


__all__ = ["register"]
