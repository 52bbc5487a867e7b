"""`faceplate verify` end to end: exit codes 0/1/2 and the JSON report, on files our writers
wrote and signed, an unsigned sample photo, a missing path, a corrupt file, a folder and a
video; and a watermarked face found with no metadata at all."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.convert.writers import WRITERS, ImagesConfig, VideoConfig
from faceplate.core.errors import ConfigError
from faceplate.io import samples
from faceplate.provenance import c2pa_sign as cs
from faceplate.provenance.verify import VerifyConfig, verify

H, W = 99, 101


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def _signed_frames(tmp: Path, n: int = 2) -> list[Path]:
    frame = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    with WRITERS.create("images", ImagesConfig(format="png8")).open(
            tmp / "seq", width=W, height=H) as w:
        for i in range(n):
            w.write(i, frame, extra={"provenance": {"model_id": "m-1"}})
    assert cs.sign_outputs([tmp / "seq"], "m-1") == []
    return list(w.written)


def test_signed_png_exit_0_and_json(tmp_path: Path, ident_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    png = _signed_frames(tmp_path, 1)[0]
    report = tmp_path / "r" / "report.json"
    code, out = _run(["verify", str(png), "--json", str(report)], capsys)
    assert code == 0, out
    assert "Trusted" in out and "FOUND" in out
    data = json.loads(report.read_text())
    assert data["format"] == "faceplate.verify" and data["kind"] == "image"
    s = data["summary"]
    assert s["found"] and s["files_with_manifest"] == 1 and s["faceplate_manifests"] == 1
    assert s["files_with_metadata"] == 1 and s["manifest_states"] == {"Trusted": 1}
    f = data["files"][0]
    assert f["manifest"]["model_id"] == "m-1"
    assert f["metadata"]["synthetic"].startswith("face replaced")
    assert len(data["frames"]) == 1 and data["frames"][0]["faces"] == []  # noise: no face


def test_unsigned_photo_exit_1(tmp_path: Path, ident_dir: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    code, out = _run(["verify", str(samples.path("obama.jpg")), "--json", str(report)],
                     capsys)
    assert code == 1, out
    data = json.loads(report.read_text())
    s = data["summary"]
    assert not s["found"] and s["faces"] == 1 and s["faces_watermarked"] == 0
    assert data["files"][0]["manifest"] is None and data["files"][0]["metadata"] is None


def test_missing_and_corrupt_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["verify", str(tmp_path / "missing.png")], capsys)
    assert code == 2 and "not found" in out
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, out = _run(["verify", str(bad)], capsys)
    assert code == 2, out
    code, out = _run(["verify", str(tmp_path / "x.txt")], capsys)
    assert code == 2


def test_folder_and_tampered(tmp_path: Path, ident_dir: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    pngs = _signed_frames(tmp_path, 3)
    data = bytearray(pngs[1].read_bytes())
    i = data.rfind(b"IDAT")
    data[i + 30] ^= 0xFF
    pngs[1].write_bytes(bytes(data))
    report = tmp_path / "r.json"
    code, out = _run(["verify", str(pngs[0].parent), "--json", str(report), "--every", "2"],
                     capsys)
    assert code == 0, out
    r = json.loads(report.read_text())
    assert r["kind"] == "folder" and r["total_frames"] == 3
    assert [f["index"] for f in r["frames"]] == [0, 2]  # every 2nd file checked for the mark
    states = [f["manifest"]["validation_state"] for f in r["files"]]
    assert states == ["Trusted", "Invalid", "Trusted"]
    assert "Invalid" in out


def test_video_frames_and_quiet(tmp_path: Path, ident_dir: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.mp4"
    rng = np.random.default_rng(1)
    with WRITERS.create("video", VideoConfig()).open(clip, width=64, height=48, fps=25) as w:
        for i in range(20):
            w.write(i, rng.random((48, 64, 3)).astype(np.float32))
    cs.sign_file(clip, model_id="m-v")
    report = tmp_path / "r.json"
    code, out = _run(["verify", str(clip), "--frames", "4", "--quiet", "--json", str(report)],
                     capsys)
    assert code == 0
    assert out.strip().startswith("summary:") and len(out.strip().splitlines()) == 1
    r = json.loads(report.read_text())
    assert r["kind"] == "video" and [f["index"] for f in r["frames"]] == [0, 6, 13, 19]
    assert r["files"][0]["manifest"]["model_id"] == "m-v"


def test_frames_and_every_are_exclusive() -> None:
    with pytest.raises(ConfigError):
        VerifyConfig(frames=3, every=2)


def test_watermark_alone_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wm = pytest.importorskip("faceplate.provenance.watermark",
                             reason="the watermark module is built by another helper")
    rgb = cv2.cvtColor(cv2.imread(str(samples.path("obama.jpg"))), cv2.COLOR_BGR2RGB)
    lms = wm.frame_landmarks(rgb)
    assert len(lms) == 1
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the whole frame is the "crop"
    marked = wm.embed_face(rgb.astype(np.float32) / 255.0, wm.canon_to_crop(lms[0], identity),
                           "ab12" + "0" * 60)
    path = tmp_path / "marked.png"  # written by OpenCV: no metadata, no manifest
    u8 = (np.clip(marked, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    assert cv2.imwrite(str(path), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
    rep = verify(path)
    assert rep.files[0].metadata is None and rep.files[0].manifest is None
    assert rep.found and rep.summary()["faces_watermarked"] == 1
    code, out = _run(["verify", str(path)], capsys)
    assert code == 0 and "watermark in 1/1 frames" in out


def test_video_verdict_pools_a_face_along_its_track(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # A sequence whose middle frame lost its mark (here: the unmarked plate): judged alone it
    # is not marked; with the video verdict its track (the same face in the two frames on each
    # side) carries it. An unmarked sequence stays unmarked either way.
    from faceplate.provenance import watermark as wm

    rgb = cv2.cvtColor(cv2.imread(str(samples.path("obama.jpg"))), cv2.COLOR_BGR2RGB)
    (lm,) = wm.frame_landmarks(rgb)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    marked = wm.embed_face(rgb.astype(np.float32) / 255.0, wm.canon_to_crop(lm, identity),
                           "ab12" + "0" * 60)
    u8 = (np.clip(marked, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    seq, plain = tmp_path / "seq", tmp_path / "plain"
    seq.mkdir()
    plain.mkdir()
    for i in range(5):
        img = rgb if i == 2 else u8
        assert cv2.imwrite(str(seq / f"f{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        assert cv2.imwrite(str(plain / f"f{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    alone = verify(seq, VerifyConfig(track=0))
    assert [fr.watermarked for fr in alone.frames] == [True, True, False, True, True]
    pooled = verify(seq)
    assert all(fr.watermarked for fr in pooled.frames)
    (mid,) = pooled.frames[2].faces or []
    assert mid.by_track and mid.score < wm.SCORE_THRESHOLD
    assert mid.track_score is not None and mid.track_score >= wm.SCORE_THRESHOLD
    assert mid.payload is None  # the id comes from the face's own bits only
    assert not any(f.by_track for fr in pooled.frames for f in fr.faces or [] if fr.index != 2)
    code, out = _run(["verify", str(seq)], capsys)
    assert code == 0 and "by its track" in out and "watermark in 5/5 frames" in out
    unmarked = verify(plain)
    assert not unmarked.found and not any(fr.watermarked for fr in unmarked.frames)
    assert all(f.track_score is not None and f.track_score < wm.SCORE_THRESHOLD
               for fr in unmarked.frames for f in fr.faces or [])
