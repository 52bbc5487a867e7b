"""`faceplate evaluate` end to end on real footage: each metric moves the right way.

OUTPUT variants are made from real frames without any model (issue #4, acceptance 3):

* **identical** — a copy of INPUT;
* **shifted** — the face cut out (aligned crop + ``components`` mask) and pasted back 10 px off
  with ``convert.composite.paste_back`` and a translated matrix;
* **colour** — the same paste, unshifted, with the face's colour pushed towards red;
* **jitter** — the paste shifted by a different random offset in every frame;
* **other face** — Obama's aligned face pasted onto Biden's still along Biden's crop matrix.

INPUT is the first frames of ``single_face.mp4`` as a PNG sequence; faceset A is Obama
(``obama2.jpg`` + ``obama3.jpg`` extracted with the real pipeline). Detection uses dlib HOG (the
pipeline's ``dlib_hog``) to keep the module fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.convert.composite import paste_back
from faceplate.core.errors import InputError
from faceplate.core.geometry import compose_affine, crop_matrix
from faceplate.evaluate import EvaluateConfig, Evaluator
from faceplate.extract.crops import warp_to_crop
from faceplate.extract.mask.landmarks import ComponentsMasker
from faceplate.io.media import open_source, read_image
from tests.store_fixtures import build_faceset

N_FRAMES = 10
CROP = 256
SHIFT = (8.0, 6.0)
COLOUR = (0.10, 0.02, -0.08)
DETECT = ("--detector", "dlib_hog")


def paste_face(frame: np.ndarray, face_rgb: np.ndarray, face_lm: np.ndarray,
               target_lm: np.ndarray, shift: tuple[float, float] = (0.0, 0.0),
               colour: tuple[float, float, float] | None = None) -> np.ndarray:
    """Cut the face at ``face_lm`` from ``face_rgb`` and paste it onto ``frame`` where
    ``target_lm`` is, moved by ``shift`` pixels (uint8 in, uint8 out)."""
    m_src = crop_matrix(face_lm, CROP, "face")
    crop_u8 = warp_to_crop(face_rgb, m_src, CROP)
    mask = ComponentsMasker(None).mask(crop_u8, face_lm, m_src).astype(np.float32) / 255.0
    crop = crop_u8.astype(np.float32) / 255.0
    if colour is not None:
        crop = crop + np.array(colour, np.float32)
    move = np.array([[1.0, 0.0, -shift[0]], [0.0, 1.0, -shift[1]]])
    matrix = compose_affine(crop_matrix(target_lm, CROP, "face"), move)
    out = paste_back(frame.astype(np.float32) / 255.0, crop, mask, matrix)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(EvaluateConfig(detector="dlib_hog"))


@pytest.fixture(scope="module")
def faceset_a(tmp_path_factory, media) -> Path:
    root = tmp_path_factory.mktemp("obama")
    build_faceset(media["obama2.jpg"], root, size=256)
    build_faceset(media["obama3.jpg"], root, size=256)
    return root / "faces"


@pytest.fixture(scope="module")
def clip(tmp_path_factory, media, evaluator) -> dict[str, Path]:
    """INPUT sequence and its OUTPUT variants, one folder each."""
    root = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(7)
    with open_source(media["single_face.mp4"]) as src:
        for fr in src.frames(indices=range(N_FRAMES)):
            rgb = fr.rgb
            faces = evaluator.faces(fr)
            assert len(faces) == 1
            lm = faces[0].landmarks
            name = f"frame_{fr.info.index:04d}.png"
            jig = (float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4)))
            for kind, img in (("input", rgb), ("identical", rgb),
                              ("shifted", paste_face(rgb, rgb, lm, lm, SHIFT)),
                              ("colour", paste_face(rgb, rgb, lm, lm, colour=COLOUR)),
                              ("jitter", paste_face(rgb, rgb, lm, lm, jig))):
                write_png(root / kind / name, img)
    return {k: root / k for k in ("input", "identical", "shifted", "colour", "jitter")}


def run_cli(tmp: Path, inp: Path, out: Path, source: Path, *extra: str) -> tuple[int, dict]:
    js = tmp / "report.json"
    code = main(["evaluate", str(inp), str(out), "--source", str(source), "--json", str(js),
                 *DETECT, *extra])
    return code, json.loads(js.read_text()) if js.exists() else {}


@pytest.fixture(scope="module")
def reports(clip, faceset_a, evaluator, tmp_path_factory) -> dict[str, dict]:
    """JSON reports: identical and shifted through the CLI (with a plot), the rest through
    :meth:`Evaluator.run`."""
    out: dict[str, dict] = {}
    for kind in ("identical", "shifted"):
        tmp = tmp_path_factory.mktemp(kind)
        code, rep = run_cli(tmp, clip["input"], clip[kind], faceset_a, "--plot",
                            str(tmp / "plot.png"))
        assert code == 0
        png = (tmp / "plot.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        out[kind] = rep
    for kind in ("colour", "jitter"):
        out[kind] = evaluator.run(clip["input"], clip[kind], faceset_a).to_dict()
    return out


def overall(rep: dict, metric: str) -> float:
    return float(rep["overall"][metric]["mean"])


def per_frame(rep: dict, metric: str) -> np.ndarray:
    return np.array([fr["faces"][0][metric] if fr["faces"][0][metric] is not None else np.nan
                     for fr in rep["frames"]], dtype=np.float64)


# --------------------------------------------------------------------------- the report


def test_report_lists_every_metric_per_frame(reports, clip, faceset_a):
    rep = reports["identical"]
    assert rep["version"] == 1
    assert rep["input"] == str(clip["input"]) and rep["source"] == str(faceset_a)
    assert rep["counts"]["frames"] == N_FRAMES and rep["counts"]["matched_faces"] == N_FRAMES
    assert rep["counts"]["source_faces"] == 2
    assert rep["settings"]["detector"] == "dlib_hog"
    names = set(rep["metrics"])
    assert {"identity_to_source", "identity_to_original", "landmark_error", "delta_e", "seam",
            "jitter_output", "jitter_input"} <= names
    assert len(rep["frames"]) == N_FRAMES
    for fr in rep["frames"]:
        assert fr["input_faces"] == 1 and fr["output_faces"] == 1
        (face,) = fr["faces"]
        assert set(names) <= set(face)
        for m in names - {"jitter_output", "jitter_input"}:
            assert face[m] is not None and math.isfinite(face[m]), m
    # jitter needs both neighbours: every frame but the two ends
    assert rep["overall"]["jitter_output"]["count"] == N_FRAMES - 2
    for m in names:
        st = rep["overall"][m]
        assert st["min"] <= st["median"] <= st["max"]
    assert rep["timing"]["ms_per_frame"] > 0


# --------------------------------------------------------------------------- each metric


def test_identical_copy_scores_as_unchanged(reports):
    rep = reports["identical"]
    assert overall(rep, "identity_to_original") == pytest.approx(0.0, abs=1e-6)
    assert overall(rep, "landmark_error") == 0.0
    assert overall(rep, "seam") == 1.0 and overall(rep, "gradient_ratio") == 1.0
    assert overall(rep, "delta_e") == overall(rep, "delta_e_input")
    assert overall(rep, "delta_e") < 20.0
    assert overall(rep, "jitter_output") == overall(rep, "jitter_input")
    # the clip's man is not Obama
    assert overall(rep, "identity_to_source") > 0.6
    assert overall(rep, "identity_to_source") == overall(rep, "identity_input_to_source")


def test_shifted_paste_raises_landmark_error_and_seam(reports):
    same, moved = reports["identical"], reports["shifted"]
    shift = math.hypot(*SHIFT)
    # the output landmarks follow the pasted face: about |shift| / inter-ocular distance
    err = per_frame(moved, "landmark_error")
    assert np.all(err > 0.05) and np.all(err < 0.2)
    assert overall(moved, "landmark_error") > overall(same, "landmark_error") + 0.05
    assert np.all(per_frame(moved, "seam") > 1.15)
    assert overall(moved, "seam") > overall(same, "seam") + 0.15
    assert shift > 0


def test_colour_shift_raises_delta_e(reports):
    same, tinted = reports["identical"], reports["colour"]
    de = per_frame(tinted, "delta_e")
    base = per_frame(tinted, "delta_e_input")
    assert np.all(de > base + 1.0)
    assert overall(tinted, "delta_e") > overall(same, "delta_e") + 1.0
    # pose and expression are kept: landmarks barely move
    assert overall(tinted, "landmark_error") < 0.03
    # the colour step at the mask edge is a (colour) seam
    assert overall(tinted, "seam") > 1.02


def test_jittered_paste_raises_output_jitter(reports):
    rep = reports["jitter"]
    assert overall(rep, "jitter_output") > 2.0 * overall(rep, "jitter_input")
    steady = reports["shifted"]  # a constant offset adds no jitter to speak of
    assert overall(steady, "jitter_output") < 1.5 * overall(steady, "jitter_input")


def test_other_persons_face_moves_identity(tmp_path, media, faceset_a, evaluator):
    biden = read_image(media["biden.jpg"])
    obama = read_image(media["obama.jpg"])
    (fb,), (fo,) = evaluator.faces(biden), evaluator.faces(obama)
    inp, same, swap = tmp_path / "biden.png", tmp_path / "same.png", tmp_path / "swap.png"
    write_png(inp, biden.rgb)
    write_png(same, biden.rgb)
    write_png(swap, paste_face(biden.rgb, obama.rgb, fo.landmarks, fb.landmarks))
    before = evaluator.run(inp, same, faceset_a).to_dict()
    after = evaluator.run(inp, swap, faceset_a).to_dict()
    assert before["counts"]["frames"] == 1 and after["counts"]["matched_faces"] == 1
    # further from Biden...
    assert overall(before, "identity_to_original") == pytest.approx(0.0, abs=1e-6)
    assert overall(after, "identity_to_original") > 0.6
    # ...and closer to Obama's faceset
    assert overall(after, "identity_to_source") < overall(before, "identity_to_source") - 0.2
    assert overall(after, "identity_to_source") < 0.6
    assert overall(after, "identity_input_to_source") == \
        pytest.approx(overall(before, "identity_to_source"), abs=1e-6)
    # a single still has no temporal neighbours
    assert after["overall"]["jitter_output"]["count"] == 0
    # without a source faceset the other metrics are still measured
    rep = evaluator.run(inp, swap, None)
    assert rep.source is None and rep.source_faces == 0
    assert rep.overall()["identity_to_source"]["count"] == 0
    assert rep.overall()["identity_to_original"]["mean"] == \
        pytest.approx(overall(after, "identity_to_original"), abs=1e-6)
    assert {"detect", "identity", "metrics"} <= set(rep.stage_ms)


# --------------------------------------------------------------------------- bad input, gaps


def test_frames_without_faces_are_counted(tmp_path, clip, faceset_a, evaluator, media):
    """INPUT: face, face, face, blank; OUTPUT: face, blank, face, blank."""
    frames = sorted(clip["input"].iterdir())[:3]
    blank = np.zeros_like(cv2.imread(str(frames[0])))
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (inp, out):
        d.mkdir()
    for i in range(4):
        img = cv2.imread(str(frames[i])) if i < 3 else blank
        cv2.imwrite(str(inp / f"f_{i}.png"), img)
        cv2.imwrite(str(out / f"f_{i}.png"), blank if i in (1, 3) else img)
    code, rep = run_cli(tmp_path, inp, out, faceset_a)
    assert code == 0
    c = rep["counts"]
    assert c["frames"] == 4 and c["frames_without_input_face"] == 1
    assert c["frames_without_output_face"] == 2
    assert c["input_faces"] == 3 and c["matched_faces"] == 2 and c["unmatched_faces"] == 1
    lost = rep["frames"][1]["faces"][0]
    assert lost["output_face_index"] is None and lost["landmark_error"] is None
    assert lost["seam"] is not None  # colour and seam need only the input face
    assert rep["frames"][3]["faces"] == []

    # the same input through its alignments store gives the same scores
    store_root = tmp_path / "store"
    built = build_faceset(inp, store_root)
    assert built.n_faces == 3
    code, rep2 = run_cli(tmp_path, inp, out, faceset_a, "--alignments", str(built.store))
    assert code == 0 and rep2["alignments"] == str(built.store)
    for a, b in zip(rep["frames"], rep2["frames"]):
        for fa, fb in zip(a["faces"], b["faces"]):
            assert fa["landmark_error"] == pytest.approx(fb["landmark_error"], abs=1e-4) \
                if fa["landmark_error"] is not None else fb["landmark_error"] is None
            assert fa["seam"] == pytest.approx(fb["seam"], abs=1e-3)

    # an input without any face: the report is written, exit status 1
    only_blank = tmp_path / "blank"
    only_blank.mkdir()
    cv2.imwrite(str(only_blank / "f_0.png"), blank)
    code, rep3 = run_cli(tmp_path, only_blank, only_blank, faceset_a)
    assert code == 1 and rep3["counts"]["input_faces"] == 0


def test_mismatched_input_and_output(tmp_path, clip, faceset_a, media, capsys):
    short = tmp_path / "short"
    short.mkdir()
    for p in sorted(clip["input"].iterdir())[:N_FRAMES - 1]:
        (short / p.name).write_bytes(p.read_bytes())
    with pytest.raises(InputError) as err:
        Evaluator(EvaluateConfig(detector="dlib_hog")).run(clip["input"], short, faceset_a)
    msg = str(err.value)
    assert str(clip["input"]) in msg and str(short) in msg and "frame count" in msg
    # a different frame size, through the CLI: exit 2 naming both files
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(clip["input"].iterdir()):
        img = cv2.imread(str(p))
        cv2.imwrite(str(small / p.name), cv2.resize(img, (321, 181)))
    code, _ = run_cli(tmp_path, clip["input"], small, faceset_a)
    assert code == 2
    text = capsys.readouterr().err
    assert "frame size" in text and str(small) in text and str(clip["input"]) in text
    # a video against a sequence with other frame counts
    code, _ = run_cli(tmp_path, media["single_face.mp4"], clip["input"], faceset_a)
    assert code == 2
    assert "72 vs 10" in capsys.readouterr().err
    # a store made for other footage
    other = build_faceset(media["biden.jpg"], tmp_path / "bstore")
    code, _ = run_cli(tmp_path, clip["input"], clip["identical"], faceset_a, "--alignments",
                      str(other.store))
    assert code == 2
    assert str(other.store) in capsys.readouterr().err
    # a source folder without faces
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _ = run_cli(tmp_path, clip["input"], clip["identical"], empty)
    assert code == 2
    assert "no Faceplate face" in capsys.readouterr().err

