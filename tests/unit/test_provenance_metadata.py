"""Provenance metadata: the statement and the IPTC digital source type round-trip through PNG
(8/16-bit), JPEG, EXR, TIFF and MP4/MKV, readable by other readers (Pillow, OpenImageIO, PyAV),
without touching the pixels; and every writer of converted frames adds it."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from PIL import Image

from faceplate.convert.writers import WRITERS, ImagesConfig, MasksConfig, PatchConfig, VideoConfig
from faceplate.convert.writers.images import encode_file, read_png_itxt
from faceplate.convert.writers.patch import EXR_ATTR, PNG_KEY
from faceplate.core.errors import InputError, UnsupportedFormatError
from faceplate.provenance import metadata as md

H, W = 99, 101  # odd sizes catch H/W swaps
URI = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def _rgb(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)


def _check(found: dict | None, fmt: str, **facts: str) -> None:
    assert found is not None
    assert found["format"] == fmt
    assert found["synthetic"] == md.SYNTHETIC_TEXT
    assert found["digital_source_type"] == URI
    assert found["software"] == f"Faceplate {md.TOOL_VERSION}"
    for key, value in facts.items():
        assert found["attributes"][f"faceplate:{key}"] == value


def test_constants() -> None:
    assert md.IPTC_DIGITAL_SOURCE_TYPE == URI
    assert md.KEY_SYNTHETIC == "faceplate:synthetic"
    attrs = md.provenance_attributes({"model_id": "m1", "frame index": 7, "skip": None,
                                      "synthetic": "forged"})
    assert attrs["faceplate:synthetic"] == md.SYNTHETIC_TEXT  # fixed facts cannot be overridden
    assert attrs["faceplate:frame_index"] == "7"
    assert "faceplate:skip" not in attrs


def test_xmp_packet_states_the_iptc_source_type() -> None:
    packet = md.xmp_packet({"model_id": 'a<b&"c'})
    assert URI in packet and "Iptc4xmpExt:DigitalSourceType" in packet
    facts = md.parse_xmp(packet)
    assert facts["Iptc4xmpExt:DigitalSourceType"] == URI
    assert facts["xmp:CreatorTool"] == md.SOFTWARE
    assert facts["faceplate:model_id"] == 'a<b&"c'  # escaped and restored
    assert facts["faceplate:synthetic"] == md.SYNTHETIC_TEXT
    assert md.parse_xmp("<x:xmpmeta>not xml") == {}


@pytest.mark.parametrize("depth", [8, 16])
def test_png_round_trip(depth: int, tmp_path: Path) -> None:
    img = _rgb()
    if depth == 16:
        img = img.astype(np.uint16) * 257 + 3
    ok, buf = cv2.imencode(".png", img)
    assert ok
    marked = md.png_with_provenance(buf.tobytes(), {"model_id": "abc", "frame_index": 4})
    path = tmp_path / "f.png"
    path.write_bytes(marked)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == img.dtype and back.shape == (H, W, 3)
    assert np.array_equal(back, img)  # pixels untouched
    found = md.read_provenance(path)
    _check(found, "png", model_id="abc", frame_index="4")
    assert found is not None and found["xmp"]
    # Another reader sees the XMP chunk and the statement.
    info = Image.open(path).info
    assert URI in info["XML:com.adobe.xmp"]
    assert info["faceplate:synthetic"] == md.SYNTHETIC_TEXT
    # Unmarked PNG: nothing.
    plain = tmp_path / "plain.png"
    plain.write_bytes(buf.tobytes())
    assert md.read_provenance(plain) is None


def test_jpeg_round_trip(tmp_path: Path) -> None:
    img = _rgb(1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    path = tmp_path / "f.jpg"
    path.write_bytes(md.jpeg_with_provenance(buf.tobytes(), {"model_id": "abc"}))
    assert np.array_equal(cv2.imread(str(path)), cv2.imdecode(buf, cv2.IMREAD_COLOR))
    found = md.read_provenance(path)
    _check(found, "jpeg", model_id="abc")
    assert found is not None and found["xmp"]
    info = Image.open(path).info
    assert URI.encode() in info["xmp"]
    assert md.SYNTHETIC_TEXT.encode() in info["comment"]
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(buf.tobytes())
    assert md.read_provenance(plain) is None
    with pytest.raises(ValueError):
        md.jpeg_with_provenance(b"not a jpeg")
    with pytest.raises(ValueError):
        md.png_with_provenance(b"not a png")


@pytest.mark.parametrize("fmt", ["exr-half", "exr-float", "tiff-float"])
def test_float_formats_through_encode_file(fmt: str, tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).random((H, W, 4)).astype(np.float32)
    ext = ".exr" if fmt.startswith("exr") else ".tif"
    path = tmp_path / f"f{ext}"
    encode_file(path, pixels, fmt, provenance={"model_id": "m9"})
    _check(md.read_provenance(path), "exr" if ext == ".exr" else "tiff", model_id="m9")
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    assert (spec.width, spec.height) == (W, H)
    if ext == ".exr":
        assert spec.getattribute("faceplate:digitalSourceType") == URI
    else:
        assert spec.getattribute("Software") == md.SOFTWARE
        assert spec.getattribute("ImageDescription") == md.SYNTHETIC_TEXT


def test_tiff_keeps_caller_description(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    encode_file(path, np.zeros((H, W, 3), np.float32), "tiff-float",
                metadata=("ignored", '{"x": 1}'))
    inp = oiio.ImageInput.open(str(path))
    assert inp.spec().getattribute("ImageDescription") == '{"x": 1}'
    inp.close()
    _check(md.read_provenance(path), "tiff")


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
def test_video_writer_metadata(ext: str, tmp_path: Path) -> None:
    out = tmp_path / f"v{ext}"
    frame = np.random.default_rng(3).random((48, 64, 3)).astype(np.float32)
    with WRITERS.create("video", VideoConfig()).open(out, width=64, height=48, fps=25) as w:
        for i in range(5):
            w.write(i, frame, extra={"provenance": {"model_id": "m-7"}})
    _check(md.read_provenance(out), "video", model_id="m-7")
    with av.open(str(out)) as c:
        meta = {k.lower(): v for k, v in c.metadata.items()}
        assert meta["comment"] == md.SYNTHETIC_TEXT
        assert c.streams.video[0].frames in (0, 5)  # mkv does not store a count
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_video_without_extra_still_marked(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    with WRITERS.create("video", VideoConfig(fragmented=True)).open(
            out, width=64, height=48, fps=25) as w:
        w.write(0, np.zeros((48, 64, 3), np.float32))
    found = md.read_provenance(out)
    _check(found, "video")
    assert found is not None and "faceplate:model_id" not in found["attributes"]


@pytest.mark.parametrize("fmt", ["png8", "png16", "jpeg", "exr-half", "tiff-float"])
def test_images_writer_adds_provenance(fmt: str, tmp_path: Path) -> None:
    frame = np.random.default_rng(4).random((H, W, 3)).astype(np.float32)
    with WRITERS.create("images", ImagesConfig(format=fmt, offset=100)).open(
            tmp_path / "seq", width=W, height=H) as w:
        w.write(0, frame, extra={"provenance": {"model_id": "abc"}})
        w.write(3, frame)
    kind = {"png8": "png", "png16": "png", "jpeg": "jpeg", "exr-half": "exr",
            "tiff-float": "tiff"}[fmt]
    _check(md.read_provenance(w.written[0]), kind, model_id="abc", frame_index="0",
           frame_number="100")
    _check(md.read_provenance(w.written[1]), kind, frame_index="3", frame_number="103")


def test_masks_and_patch_writers_add_provenance(tmp_path: Path) -> None:
    with WRITERS.create("masks", MasksConfig()).open(tmp_path / "m", width=W, height=H) as mw:
        mw.write(2, np.full((H, W), 0.5, np.float32))
    _check(md.read_provenance(mw.written[0]), "png", frame_index="2")
    face = np.random.default_rng(5).random((64, 64, 3)).astype(np.float32)
    mask = np.ones((64, 64), np.float32)
    matrix = np.array([[0.5, 0.0, -10.0], [0.0, 0.5, -5.0]])
    for fmt in ("png16", "exr"):
        with WRITERS.create("patch", PatchConfig(format=fmt, sidecar=False)).open(
                tmp_path / fmt, width=W, height=H) as pw:
            pw.write(1, np.zeros((H, W, 3), np.float32),
                     extra={"faces": [(face, mask, matrix)], "provenance": {"model_id": "z"}})
        path = pw.written[-1]
        _check(md.read_provenance(path), "png" if fmt == "png16" else "exr", model_id="z",
               frame_index="1", face_index="0")
        # The patch's own metadata is still there.
        if fmt == "png16":
            text = read_png_itxt(path, PNG_KEY)
        else:
            inp = oiio.ImageInput.open(str(path))
            text = inp.spec().getattribute(EXR_ATTR)
            inp.close()
        assert json.loads(text or "{}")["format"] == "faceplate.patch"


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        md.read_provenance(tmp_path / "missing.png")
    odd = tmp_path / "f.bmp"
    odd.write_bytes(b"BM")
    with pytest.raises(UnsupportedFormatError):
        md.read_provenance(odd)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError):
        md.read_provenance(bad)


def test_png_text_chunks_tolerates_truncation() -> None:
    ok, buf = cv2.imencode(".png", _rgb())
    data = md.png_with_provenance(buf.tobytes())
    texts = md.png_text_chunks(data[: len(data) // 2])
    assert texts.get("faceplate:synthetic") == md.SYNTHETIC_TEXT  # chunks after IHDR survive
