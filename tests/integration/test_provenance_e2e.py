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
