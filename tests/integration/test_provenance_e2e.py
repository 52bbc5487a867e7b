"""Issue #6 end to end: what `faceplate convert` writes verifies as Faceplate output.

A really trained model (``tests.convert_model.trained_model``: its output is recognisably a face,
which the watermark verifier must find) converts the man's clip to an MP4 and to a PNG sequence;
then the C2PA reader validates both manifests (acceptance 3), the metadata statement is there, and
`faceplate verify` exits 0 and finds the watermark in the frames (acceptance 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.provenance.c2pa_sign import read_manifest
from faceplate.provenance.metadata import IPTC_DIGITAL_SOURCE_TYPE, read_provenance
from tests.convert_model import sample_clip, trained_model

N = 24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model(tmp_path_factory)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first N frames of single_face.mp4 (no audio) and their alignments store."""
    root = tmp_path_factory.mktemp("prov_clip")
    video = root / "man.mp4"
    sample_clip(video, N, audio=False)
    store = root / "man.fpstore"
    assert main(["extract", str(video), "--alignments", str(store), "--no-write-faces",
                 "--no-thumbnails"]) == 0
    return video, store


def _verify(path: Path, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    report = tmp_path / f"{path.name}.json"
    code = main(["verify", str(path), "--json", str(report), "--quiet", *extra])
    return code, json.loads(report.read_text())


def _manifest_ok(path: Path) -> dict:
    m = read_manifest(path)
    assert m is not None, path
    assert m["validation_state"] in ("Valid", "Trusted"), m
    assert not m["failures"], m
    assert m["ours"] and m["digital_source_type"] == IPTC_DIGITAL_SOURCE_TYPE, m
    return m


def test_converted_mp4_and_png_verify(clip, model_dir, tmp_path, capsys):
    video, store = clip
    mp4 = tmp_path / "swapped.mp4"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(mp4), "--preset", "ultrafast"]) == 0
    seq = tmp_path / "seq"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(seq), "--format", "png8",
                 "--frame-ranges", "0-5"]) == 0
    capsys.readouterr()

    # Acceptance 3: the C2PA manifests validate with the c2pa reader, and carry the model id.
    m_video = _manifest_ok(mp4)
    pngs = sorted(seq.glob("*.png"))
    assert len(pngs) == 6
    m_png = _manifest_ok(pngs[0])
    assert m_video["model_id"] == m_png["model_id"] and len(m_png["model_id"]) == 4
    for path in (mp4, pngs[0]):
        meta = read_provenance(path)
        assert meta is not None and "synthetic" in json.dumps(meta).lower(), meta

    # Acceptance 2 (CLI): verify exits 0 and finds the watermark in the frames.
    code, rep = _verify(mp4, tmp_path, "--every", "4")
    assert code == 0, rep["summary"]
    s = rep["summary"]
    assert s["frames_checked"] == N // 4 and s["frames_watermarked"] >= s["frames_checked"] - 1, s
    assert m_video["model_id"] in s["payloads"], s
    code, rep = _verify(seq, tmp_path)
    assert code == 0 and rep["summary"]["frames_watermarked"] >= 5, rep["summary"]

    # Stripping every metadata and manifest (a plain re-encode of the pixels) leaves the mark.
    stripped = tmp_path / "stripped.png"
    import cv2

    cv2.imwrite(str(stripped), cv2.imread(str(pngs[0])))
    assert read_manifest(stripped) is None and read_provenance(stripped) is None
    code, rep = _verify(stripped, tmp_path)
    assert code == 0 and rep["summary"]["frames_watermarked"] == 1, rep["summary"]


def test_unswapped_input_does_not_verify(clip, tmp_path):
    video, _ = clip
    code, rep = _verify(video, tmp_path, "--every", "4")
    assert code == 1, rep["summary"]
    assert rep["summary"]["frames_watermarked"] == 0


def test_tampered_png_fails_validation_but_is_reported(clip, model_dir, tmp_path):
    video, store = clip
    seq = tmp_path / "seq"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(seq), "--format", "png8",
                 "--frame-ranges", "0"]) == 0
    png = next(seq.glob("*.png"))
    data = bytearray(png.read_bytes())
    # Flip one byte of the image data (IDAT), not the manifest.
    k = data.index(b"IDAT") + 40
    data[k] ^= 0x01
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    m = read_manifest(bad)
    assert m is not None and m["validation_state"] == "Invalid", m
    shutil.rmtree(seq)


def test_eroded_matte_gets_the_upper_set_and_verifies(clip, model_dir, tmp_path, capsys):
    """Issue 16, point 1: with the matte eroded 30 % from below (it covers 56 % of the full
    pattern set's area, and the full set's mark is not found: every face was left unmarked
    before) every face gets the upper-face pattern set, nothing is reported unmarked, and
    `faceplate verify` finds each mark with its own detection, without being told the set."""
    video, store = clip
    seq = tmp_path / "seq"
    report = tmp_path / "convert.json"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(seq), "--format", "png8", "--frame-ranges", "0-2",
                 "--mask-erode-bottom", "30", "--json", str(report)]) == 0
    out = capsys.readouterr()
    rep = json.loads(report.read_text())
    assert rep["faces"] == 3 and rep["faces_unmarked"] == 0 and rep["unmarked"] == [], rep
    assert "without the watermark" not in out.err
    code, vrep = _verify(seq, tmp_path, "--track", "0")
    faces = [f for fr in vrep["frames"] for f in fr["faces"] or []]
    assert code == 0 and len(faces) == 3, vrep
    assert all(f["detected"] and f["pattern_set"] == "upper" for f in faces), faces
    assert all(f["payload"] == faces[0]["payload"] and f["payload"] for f in faces), faces


def test_faces_left_unmarked_are_counted_everywhere(clip, model_dir, tmp_path, capsys):
    """Issue 16, point 1: a swapped face the mark does not fit (here the matte eroded 50 %
    from above, the most convert allows: the eyes and brows are gone, so neither the full
    pattern set, of whose area it leaves too little, nor the upper-face set is found; at 40 %
    a model trained afresh left one face of three marked, a case too close to call) is named,
    with why, in convert's summary and JSON report, the outputs' provenance metadata, the
    preview and the Natron node's message; and the count is true: the verifier finds no mark
    on those frames. (The
    judgement scores the mark at the landmarks it was embedded at; near the threshold, where
    the verifier's own landmarks differ a little, it may call a face unmarked that the
    verifier still finds. It errs towards reporting.)"""
    video, store = clip
    seq = tmp_path / "seq"
    report = tmp_path / "convert.json"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(seq), "--format", "png8", "--frame-ranges", "0-2",
                 "--mask-erode-top", "50", "--json", str(report)]) == 0
    out = capsys.readouterr()
    rep = json.loads(report.read_text())
    assert rep["faces"] == 3 and rep["faces_unmarked"] == 3, rep
    assert rep["frames_with_unmarked_faces"] == 3
    assert [u["index"] for u in rep["unmarked"]] == [0, 1, 2]  # frame numbers start at 1
    assert [u["frame"] for u in rep["unmarked"]] == [1, 2, 3]
    assert all(u["face"] == 0 and u["reason"].startswith("mark too weak to detect")
               for u in rep["unmarked"]), rep["unmarked"]
    assert "unmarked 3" in out.out
    assert "3 swapped face(s) in 3 frame(s) left without the watermark" in out.err
    assert "(frames 1-3)" in out.err
    pngs = sorted(seq.glob("*.png"))
    meta = read_provenance(pngs[1])
    assert meta is not None
    assert meta["attributes"]["faceplate:unmarked_faces"].startswith(
        "face 0: mark too weak to detect"), meta
    _, vrep = _verify(pngs[1], tmp_path)  # (found all the same: by metadata and C2PA)
    assert vrep["frames"][0]["faces"] and not any(f["detected"] for fr in vrep["frames"]
                                    for f in fr["faces"] or [])

    # The same frames with the default matte: every face marked, nothing reported.
    seq2 = tmp_path / "seq2"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(seq2), "--format", "png8", "--frame-ranges", "0",
                 "--json", str(report)]) == 0
    out = capsys.readouterr()
    rep = json.loads(report.read_text())
    assert rep["faces"] == 1 and rep["faces_unmarked"] == 0 and rep["unmarked"] == []
    assert "without the watermark" not in out.err
    meta = read_provenance(sorted(seq2.glob("*.png"))[0])
    assert meta is not None and "faceplate:unmarked_faces" not in meta["attributes"]

    # The preview labels the cell and names the face.
    sheet = tmp_path / "sheet.png"
    assert main(["preview", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--frames", "1", "--settings", "erode_top=50", "color=rct",
                 "-o", str(sheet)]) == 0
    err = capsys.readouterr().err
    assert "left without the watermark: frame 1, erode_top=50: face 0: mark too weak" in err
    assert "color=rct" not in err

    # The Natron node's message.
    from faceplate.core.colorspace import srgb_to_linear
    from faceplate.io.media import open_source
    from faceplate.ofx.effects import SWAP_ID
    from faceplate.ofx.render import render

    with open_source(video) as src:
        rgb = src.read(1).rgb
    lin = srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))
    rgba = np.ascontiguousarray(np.concatenate([lin, np.ones_like(lin[..., :1])], axis=2))
    res = render(SWAP_ID, rgba, {"model": str(model_dir), "erode_top": 50.0})
    assert res.faces == 1
    assert "left without the watermark: face 0: mark too weak to detect" in res.status, res.status
    assert render(SWAP_ID, rgba, {"model": str(model_dir)}).status == ""
