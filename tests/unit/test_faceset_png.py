"""Aligned-face PNGs carrying their record: round trips, tamper detection, atomic writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.core.errors import (
    InputError,
    OutputError,
    RecordError,
    SchemaVersionError,
    UnsupportedFormatError,
)
from faceplate.core.geometry import MEAN_FACE_68, crop_matrix
from faceplate.core.records import decode_mask, encode_mask
from faceplate.core.types import BBox, FaceRecord, StoredMask
from faceplate.io.faceset import (
    FACE_CHUNK_KEY,
    FaceMeta,
    encode_face_png,
    encode_png_rgb8,
    face_filename,
    iter_faceset,
    read_face_meta,
    read_face_png,
    scan_faceset,
    write_face_png,
)

SIZE = 96


def make_meta(rng: np.random.Generator, frame_index: int = 12, face_index: int = 0,
              size: int = SIZE) -> FaceMeta:
    lm = (MEAN_FACE_68 * rng.uniform(60, 120) + rng.uniform(100, 300, 2)
          + rng.normal(0, 0.7, (68, 2))).astype(np.float32)
    m = np.zeros((64, 64), np.uint8)
    cv2.ellipse(m, (32, 34), (20, 28), 0, 0, 360, 255, -1)
    rec = FaceRecord(
        frame_index=frame_index, frame_name=f"clip_{frame_index:06d}.png",
        face_index=face_index, bbox=BBox.from_points(lm), landmarks=lm, score=0.93,
        yaw=12.5, pitch=-3.0, roll=1.25, detector="blazeface", aligner="dlib",
        masks={"components": StoredMask("components", encode_mask(m), 64,
                                        crop_matrix(lm, 64, "whole_face"), "whole_face")},
        identity=rng.normal(0, 0.1, 128).astype(np.float32), thumbnail=None, timestamp=0.5,
    )
    return FaceMeta(record=rec, matrix=crop_matrix(lm, size, "face"), size=size,
                    centering="face",
                    source={"store": "/shots/clip.fpstore", "source": "/shots/clip.mp4",
                            "frame_width": 641, "frame_height": 359, "is_video": True})


def face_image(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    img[: size // 2, :, 0] = 250  # asymmetric colours catch RGB/BGR swaps
    img[:, : size // 3, 2] = 5
    return img


def chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of every chunk."""
    out, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        out.append((pos, data[pos + 4:pos + 8], length))
        pos += 12 + length
    return out


def ours(data: bytes) -> tuple[int, int]:
    """(offset, length) of the faceplate iTXt chunk."""
    for pos, t, n in chunks(data):
        if t == b"iTXt" and data[pos + 8:pos + 8 + len(FACE_CHUNK_KEY) + 1] == \
                FACE_CHUNK_KEY.encode() + b"\0":
            return pos, n
    raise AssertionError("no faceplate chunk")


def rewrite_payload(data: bytes, edit: object, *, fix_digest: bool = False) -> bytes:
    """Re-encode the chunk after ``edit(doc)`` with a correct CRC (digest left stale)."""
    pos, n = ours(data)
    body = data[pos + 8:pos + 8 + n]
    head = len(FACE_CHUNK_KEY) + 5
    doc = json.loads(zlib.decompress(body[head:]))
    edit(doc)  # type: ignore[operator]
    if fix_digest:
        d = {k: v for k, v in doc.items() if k != "digest"}
        doc["digest"] = hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":"))
                                       .encode()).hexdigest()
    new_body = body[:head] + zlib.compress(json.dumps(doc).encode())
    chunk = struct.pack(">I", len(new_body)) + b"iTXt" + new_body + struct.pack(
        ">I", zlib.crc32(b"iTXt" + new_body))
    return data[:pos] + chunk + data[pos + 12 + n:]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(21)


def test_filename() -> None:
    meta = make_meta(np.random.default_rng(0), 12, 3)
    assert face_filename(meta.record) == "clip_000012_3.png"
    rec = replace(meta.record, frame_name="clip_000012")
    assert face_filename(rec) == "clip_000012_3.png"


@pytest.mark.parametrize("level", [0, 1, 3, 6])
def test_round_trip(tmp_path: Path, rng: np.random.Generator, level: int) -> None:
    meta = make_meta(rng)
    img = face_image(rng)
    p = tmp_path / face_filename(meta.record)
    write_face_png(p, img, meta, compress_level=level)
    assert [q.name for q in tmp_path.iterdir()] == [p.name]  # no temp file left
    # an ordinary PNG: OpenCV/Pillow read the pixels; the chunk sits just before IEND
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(bgr[..., ::-1], img)
    types = [t for _, t, _ in chunks(p.read_bytes())]
    assert types[0] == b"IHDR" and types[-2:] == [b"iTXt", b"IEND"]

    got = read_face_meta(p)
    image, meta2 = read_face_png(p)
    np.testing.assert_array_equal(image, img)
    for m in (got, meta2):
        assert m.size == SIZE and m.centering == "face" and m.source == meta.source
        np.testing.assert_array_equal(m.matrix, meta.matrix)
        r, r0 = m.record, meta.record
        assert (r.frame_index, r.frame_name, r.face_index, r.bbox, r.score, r.yaw, r.timestamp) \
            == (r0.frame_index, r0.frame_name, r0.face_index, r0.bbox, r0.score, r0.yaw,
                r0.timestamp)
        np.testing.assert_array_equal(r.landmarks, r0.landmarks)
        np.testing.assert_array_equal(r.identity, r0.identity)
        np.testing.assert_array_equal(decode_mask(r.masks["components"]),
                                      decode_mask(r0.masks["components"]))
        assert r.masks["components"].centering == "whole_face"


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4, 9])
@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (13, 1), (7, 101), (64, 63)])
def test_png_pixels_are_lossless_for_other_decoders(rng: np.random.Generator,
                                                     level: int, shape: tuple[int, int]) -> None:
    # noise (row differences wrap modulo 256), flat runs and a strided view (not contiguous)
    h, w = shape
    img = rng.integers(0, 256, (h, 2 * w, 3), dtype=np.uint8)[:, ::2]
    img[: h // 2, : w // 2] = (255, 0, 7)
    data = encode_png_rgb8(img, level) + struct.pack(">I", 0) + b"IEND" + struct.pack(
        ">I", zlib.crc32(b"IEND"))
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgr[..., ::-1], img)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.verify()  # chunk CRCs
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), img)


def test_odd_size_and_encode_checks(rng: np.random.Generator) -> None:
    meta = make_meta(rng, size=101)
    data = encode_face_png(face_image(rng, 101), meta)
    assert struct.unpack(">II", data[16:24]) == (101, 101)
    with pytest.raises(ValueError, match="101×101"):
        encode_face_png(face_image(rng, 96), meta)
    with pytest.raises(ValueError, match="uint8"):
        encode_face_png(face_image(rng, 101).astype(np.float32), meta)
    with pytest.raises(ValueError, match="source: missing key"):
        encode_face_png(face_image(rng, 101), replace(meta, source={"store": "x"}))
    with pytest.raises(ValueError, match="centering"):
        encode_face_png(face_image(rng, 101), replace(meta, centering="legacy"))  # type: ignore
    with pytest.raises(ValueError, match="matrix"):
        encode_face_png(face_image(rng, 101), replace(meta, matrix=np.full((2, 3), np.nan)))
    lm = meta.record.landmarks.copy()
    lm[0, 0] = np.nan
    with pytest.raises(RecordError, match="landmarks"):
        encode_face_png(face_image(rng, 101), replace(meta, record=replace(meta.record,
                                                                           landmarks=lm)))


def _write(tmp_path: Path, rng: np.random.Generator, name: str = "f_0.png") -> Path:
    p = tmp_path / name
    write_face_png(p, face_image(rng), make_meta(rng))
    return p


def test_flipped_byte_in_chunk(tmp_path: Path, rng: np.random.Generator) -> None:
    p = _write(tmp_path, rng)
    data = p.read_bytes()
    pos, n = ours(data)
    for off in (pos + 8 + len(FACE_CHUNK_KEY) + 8, pos + 8 + n // 2, pos + 8 + n - 1):
        bad = bytearray(data)
        bad[off] ^= 0x04
        q = tmp_path / "bad.png"
        q.write_bytes(bytes(bad))
        with pytest.raises(RecordError, match=r"bad\.png: .*CRC mismatch"):
            read_face_meta(q)
    bad = bytearray(data)  # flipped byte in the keyword: the chunk is no longer ours
    bad[pos + 9] ^= 0x01
    q.write_bytes(bytes(bad))
    with pytest.raises(RecordError, match="no 'faceplate' metadata chunk"):
        read_face_meta(q)


def test_tampered_value_fails_digest(tmp_path: Path, rng: np.random.Generator) -> None:
    p = _write(tmp_path, rng)
    data = p.read_bytes()
    edits = [
        lambda d: d["record"].update(score=0.5),
        lambda d: d["record"]["landmarks"][30].__setitem__(0, 1.0),
        lambda d: d.update(matrix=[[1, 0, 0], [0, 1, 0]]),
        lambda d: d["source"].update(source="/elsewhere.mp4"),
        lambda d: d.update(digest="0" * 64),
    ]
    for edit in edits:
        q = tmp_path / "t.png"
        q.write_bytes(rewrite_payload(data, edit))
        with pytest.raises(RecordError, match=r"t\.png: metadata digest mismatch"):
            read_face_meta(q)


def test_invalid_values_with_valid_digest(tmp_path: Path, rng: np.random.Generator) -> None:
    """Digest-consistent but invalid content is still refused by the record validator."""
    p = _write(tmp_path, rng)
    data = p.read_bytes()
    cases = [
        (lambda d: d["record"]["landmarks"].pop(), "landmarks.*list of 68"),
        (lambda d: d["record"].update(score=2.0), "score"),
        (lambda d: d["record"]["masks"]["components"].update(size=32), "data.*32×32"),
        (lambda d: d.update(size=128), "96×96 but its metadata says 128×128"),
        (lambda d: d.update(centering="legacy"), "centering"),
        (lambda d: d["source"].pop("is_video"), "source.*is_video"),
        (lambda d: d.update(extra=1), "unknown.*extra"),
        (lambda d: d.update(version=0), "version"),
    ]
    for edit, pattern in cases:
        q = tmp_path / "v.png"
        q.write_bytes(rewrite_payload(data, edit, fix_digest=True))
        with pytest.raises(RecordError, match=rf"v\.png: .*{pattern}"):
            read_face_meta(q)
    q.write_bytes(rewrite_payload(data, lambda d: d.update(version=2), fix_digest=True))
    with pytest.raises(SchemaVersionError, match=r"v\.png: .*newer"):
        read_face_meta(q)
    # NaN smuggled as a JSON constant
    q.write_bytes(rewrite_payload(data, lambda d: d["record"].update(score=float("nan")),
                                  fix_digest=False))
    with pytest.raises(RecordError, match="NaN"):
        read_face_meta(q)


def test_truncated_and_malformed_files(tmp_path: Path, rng: np.random.Generator) -> None:
    p = _write(tmp_path, rng)
    data = p.read_bytes()
    q = tmp_path / "cut.png"
    for cut in (10, 30, len(data) // 2, len(data) - 20, len(data) - 1):
        q.write_bytes(data[:cut])
        with pytest.raises(RecordError, match=r"cut\.png: .*(truncated|corrupt)"):
            read_face_meta(q)
    # absurd chunk length (2 GiB) right after IHDR: refused at once, never read
    pos = chunks(data)[1][0]
    bad = bytearray(data)
    bad[pos:pos + 4] = struct.pack(">I", 0x7FFFFFF0)
    q.write_bytes(bytes(bad))
    with pytest.raises(RecordError, match="claims"):
        read_face_meta(q)
    q.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(UnsupportedFormatError, match="not a PNG"):
        read_face_meta(q)
    with pytest.raises(InputError, match="not found"):
        read_face_meta(tmp_path / "missing.png")
    # a plain PNG without our chunk
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), face_image(rng))
    with pytest.raises(RecordError, match="no 'faceplate' metadata chunk"):
        read_face_meta(plain)
    # two faceplate chunks
    pos, n = ours(data)
    chunk = data[pos:pos + 12 + n]
    q.write_bytes(data[:pos] + chunk + chunk + data[pos + 12 + n:])
    with pytest.raises(RecordError, match="more than one"):
        read_face_meta(q)


def test_corrupt_pixels_detected_on_full_read(tmp_path: Path, rng: np.random.Generator) -> None:
    p = _write(tmp_path, rng)
    data = bytearray(p.read_bytes())
    idat = next(pos for pos, t, _ in chunks(bytes(data)) if t == b"IDAT")
    data[idat + 20] ^= 0xFF
    q = tmp_path / "px.png"
    q.write_bytes(bytes(data))
    read_face_meta(q)  # metadata alone is still fine (pixels are not decoded)
    with pytest.raises(RecordError, match=r"px\.png: pixel data"):
        read_face_png(q)


def test_scan_and_iter_faceset(tmp_path: Path, rng: np.random.Generator) -> None:
    names = ["b_0.png", "a_1.png", "a_0.png"]
    for n in names:
        _write(tmp_path, rng, n)
    cv2.imwrite(str(tmp_path / "plain.png"), face_image(rng))
    (tmp_path / "junk.png").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("ignored")
    good, bad = scan_faceset(tmp_path)
    assert [p.name for p, _ in good] == sorted(names)
    assert sorted(p.name for p, _ in bad) == ["junk.png", "plain.png"]
    assert all(str(p) in why for p, why in bad)
    assert [p.name for p, _ in iter_faceset(tmp_path)] == sorted(names)
    with pytest.raises(InputError):
        scan_faceset(tmp_path / "nowhere")
    with pytest.raises(InputError):
        list(iter_faceset(tmp_path / "nowhere"))


def test_atomic_write_failures_leave_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    meta, img = make_meta(rng), face_image(rng)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"file/f\.png: cannot write"):
        write_face_png(blocker / "f.png", img, meta)
    # the target is a folder: the rename fails after the temp file was written
    target = tmp_path / "dir.png"
    target.mkdir()
    with pytest.raises(OutputError, match=r"dir\.png: cannot write"):
        write_face_png(target, img, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png", "file"]
    assert list(target.iterdir()) == []
    # a bad image fails before any file is created
    with pytest.raises(ValueError):
        write_face_png(tmp_path / "x.png", img[:5], meta)
    assert not (tmp_path / "x.png").exists()
    # overwriting keeps the old file until the new one is complete
    p = tmp_path / "ok.png"
    write_face_png(p, img, meta)
    meta2 = replace(meta, record=replace(meta.record, score=0.5))
    write_face_png(p, img, meta2)
    assert read_face_meta(p).record.score == 0.5


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_into_read_only_dir(tmp_path: Path, rng: np.random.Generator) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"ro/f\.png"):
            write_face_png(ro / "f.png", face_image(rng), make_meta(rng))
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs")
def test_write_into_read_only_filesystem(rng: np.random.Generator) -> None:
    """sysfs refuses new files even for root: the error names the path, nothing is left."""
    target = Path("/sys/kernel/faceplate_test_face.png")
    with pytest.raises(OutputError, match=r"/sys/kernel/faceplate_test_face\.png: cannot write"):
        write_face_png(target, face_image(rng), make_meta(rng))
    assert not target.exists()
    assert not [p for p in Path("/sys/kernel").iterdir() if "faceplate" in p.name]
