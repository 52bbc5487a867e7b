"""Face records as JSON-safe dicts: round trips and every rejection path."""

from __future__ import annotations

import base64
import copy
import json
import zlib
from dataclasses import replace

import cv2
import numpy as np
import pytest

from faceplate.core.errors import RecordError, SchemaVersionError
from faceplate.core.geometry import MEAN_FACE_68, crop_matrix
from faceplate.core.records import (
    RECORD_VERSION,
    decode_mask,
    encode_mask,
    record_from_dict,
    record_to_dict,
    validate_record,
)
from faceplate.core.types import BBox, FaceRecord, StoredMask


def make_record(rng: np.random.Generator, frame_index: int = 3, face_index: int = 1,
                frame_name: str = "clip_000003", *, full: bool = True) -> FaceRecord:
    """A plausible face: mean-face landmarks scaled/shifted with noise, masks, identity, JPEG."""
    scale = rng.uniform(80, 200)
    lm = (MEAN_FACE_68 * scale + rng.uniform(50, 300, 2)
          + rng.normal(0, 1.0, (68, 2))).astype(np.float32)
    masks = {}
    ident = None
    thumb = None
    if full:
        for name, size in (("components", 128), ("extended", 64)):
            m = np.zeros((size, size), np.uint8)
            cv2.ellipse(m, (size // 2, size // 2), (size // 3, size // 2 - 4), 0, 0, 360, 255, -1)
            masks[name] = StoredMask(name=name, data=encode_mask(m), size=size,
                                     affine=crop_matrix(lm, size, "face"), centering="face")
        v = rng.normal(0, 1, 128).astype(np.float32)
        ident = v / np.linalg.norm(v)
        img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        thumb = cv2.imencode(".jpg", img)[1].tobytes()
    return FaceRecord(
        frame_index=frame_index, frame_name=frame_name, face_index=face_index,
        bbox=BBox.from_points(lm), landmarks=lm, score=float(rng.uniform(0.5, 1.0)),
        yaw=float(rng.uniform(-40, 40)), pitch=float(rng.uniform(-20, 20)),
        roll=float(rng.uniform(-10, 10)), detector="blazeface", aligner="dlib", masks=masks,
        identity=ident, thumbnail=thumb, timestamp=0.125 if full else None,
    )


def assert_same(a: FaceRecord, b: FaceRecord, *, thumbnail: bool = True) -> None:
    assert (a.frame_index, a.frame_name, a.face_index) == (b.frame_index, b.frame_name,
                                                           b.face_index)
    assert a.bbox == b.bbox
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert b.landmarks.dtype == np.float32 and b.landmarks.shape == (68, 2)
    assert (a.score, a.yaw, a.pitch, a.roll) == (b.score, b.yaw, b.pitch, b.roll)
    assert (a.detector, a.aligner, a.timestamp) == (b.detector, b.aligner, b.timestamp)
    assert a.masks.keys() == b.masks.keys()
    for k in a.masks:
        ma, mb = a.masks[k], b.masks[k]
        assert (ma.name, ma.size, ma.centering, ma.data) == (mb.name, mb.size, mb.centering,
                                                             mb.data)
        np.testing.assert_array_equal(ma.affine, mb.affine)
        np.testing.assert_array_equal(decode_mask(ma), decode_mask(mb))
    if a.identity is None:
        assert b.identity is None
    else:
        assert b.identity is not None and b.identity.dtype == np.float32
        np.testing.assert_array_equal(a.identity, b.identity)
    if thumbnail:
        assert a.thumbnail == b.thumbnail


@pytest.fixture
def rec() -> FaceRecord:
    return make_record(np.random.default_rng(7))


def test_round_trip_full_through_json_text(rec: FaceRecord) -> None:
    d = record_to_dict(rec)
    text = json.dumps(d, allow_nan=False)  # JSON-safe: no arrays, no bytes
    back = record_from_dict(json.loads(text), "x.json")
    assert_same(rec, back)
    assert d["version"] == RECORD_VERSION
    assert record_to_dict(back) == d


def test_round_trip_with_none_fields() -> None:
    r = make_record(np.random.default_rng(1), full=False)
    d = record_to_dict(r)
    assert d["identity"] is None and d["thumbnail"] is None and d["timestamp"] is None
    assert d["masks"] == {}
    assert_same(r, record_from_dict(d))


def test_without_masks_and_thumbnail(rec: FaceRecord) -> None:
    d = record_to_dict(rec, masks=False, thumbnail=False)
    assert d["masks"] == {} and d["thumbnail"] is None
    back = record_from_dict(d)
    assert back.masks == {} and back.thumbnail is None
    np.testing.assert_array_equal(back.identity, rec.identity)


def test_mask_codec_round_trip_odd_size() -> None:
    rng = np.random.default_rng(3)
    m = (rng.random((101, 101)) > 0.5).astype(np.uint8) * 255
    data = encode_mask(m)
    out = decode_mask(StoredMask("x", data, 101, np.eye(2, 3), "head"))
    np.testing.assert_array_equal(out, m)
    assert out.dtype == np.uint8 and out.flags.writeable
    with pytest.raises(ValueError, match="square"):
        encode_mask(np.zeros((101, 99), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_mask(np.zeros((8, 8), np.float32))


def test_decode_mask_rejects_size_mismatch_and_bombs() -> None:
    m = np.full((64, 64), 255, np.uint8)
    with pytest.raises(RecordError, match=r"masks\.a\.data.*32×32"):
        decode_mask(StoredMask("a", encode_mask(m), 32, np.eye(2, 3), "face"))
    with pytest.raises(RecordError, match=r"data"):
        decode_mask(StoredMask("a", encode_mask(m), 65, np.eye(2, 3), "face"))
    # a zip bomb: 1 GB of zeros declared as a 16×16 mask; only 256 bytes are inflated
    bomb = zlib.compressobj(9)
    data = b"".join(bomb.compress(b"\0" * (1 << 20)) for _ in range(64)) + bomb.flush()
    with pytest.raises(RecordError, match="16×16"):
        decode_mask(StoredMask("a", data, 16, np.eye(2, 3), "face"))
    with pytest.raises(RecordError, match="zlib"):
        decode_mask(StoredMask("a", b"not zlib at all", 16, np.eye(2, 3), "face"), "s.fpstore")


def _mutations(d: dict) -> list[tuple[str, object, str]]:
    """(path, new value, expected message fragment); path "-k" deletes key k."""
    mask = next(iter(d["masks"]))
    return [
        ("-landmarks", None, "missing key.*landmarks"),
        ("-score", None, "missing key.*score"),
        ("bogus", 1, "unknown key.*bogus"),
        ("frame_index", "3", "frame_index.*integer"),
        ("frame_index", True, "frame_index.*integer"),
        ("frame_index", -1, "frame_index.*>= 0"),
        ("face_index", 1.0, "face_index.*integer"),
        ("frame_name", "../../etc/passwd", "frame_name.*plain file name"),
        ("frame_name", "", "frame_name"),
        ("frame_name", 5, "frame_name.*string"),
        ("bbox", [1, 2, 3], "bbox.*list of 4"),
        ("bbox", [1, 2, 3, "4"], r"bbox\[3\].*number"),
        ("bbox", [1, 2, -3, 4], "bbox.w.*>="),
        ("bbox", [1, 2, 1e400, 4], "bbox.*NaN or Inf"),
        ("landmarks", d["landmarks"][:67], "landmarks.*list of 68"),
        ("landmarks", [[1.0, 2.0, 3.0]] * 68, r"landmarks\[0\].*list of 2"),
        ("landmarks", [[float("nan"), 1.0]] + d["landmarks"][1:], "landmarks.*NaN"),
        ("landmarks", [[1e39, 1.0]] + d["landmarks"][1:], "landmarks.*(Inf|overflow)"),
        ("landmarks", [[True, 1.0]] + d["landmarks"][1:], r"landmarks\[0\]\[0\].*number"),
        ("score", 1.5, "score.*\\[0.0, 1.0\\]"),
        ("score", -0.1, "score"),
        ("score", float("nan"), "score.*finite"),
        ("score", None, "score.*number"),
        ("yaw", 400.0, "yaw"),
        ("detector", 3, "detector.*string"),
        ("masks", [], "masks.*object"),
        (f"masks.{mask}.centering", "legacy", "unknown centering 'legacy'"),
        (f"masks.{mask}.size", 64, f"masks.{mask}.data.*64"),
        (f"masks.{mask}.size", 100000, f"masks.{mask}.size.*<="),
        (f"masks.{mask}.data", "!!!notbase64", "base64"),
        (f"masks.{mask}.affine", [[1, 0, 0]], "affine.*list of 2"),
        (f"masks.{mask}.affine", [[1, 0, float("inf")], [0, 1, 0]], "affine.*NaN or Inf"),
        (f"-masks.{mask}.affine", None, "missing key.*affine"),
        ("identity", [0.1] * 127, "identity.*list of 128"),
        ("identity", [float("nan")] * 128, "identity.*NaN"),
        ("identity", "abc", "identity.*list"),
        ("thumbnail", base64.b64encode(b"GIF89a....").decode(), "thumbnail.*JPEG or PNG"),
        ("thumbnail", 12, "thumbnail.*string"),
        ("timestamp", "0.1", "timestamp.*number"),
        ("version", 0, "version.*>= 1"),
        ("version", "1", "version.*integer"),
    ]


def _apply(d: dict, path: str, value: object) -> dict:
    d = copy.deepcopy(d)
    delete = path.startswith("-")
    keys = path.lstrip("-").split(".")
    tgt = d
    for k in keys[:-1]:
        tgt = tgt[k]
    if delete:
        del tgt[keys[-1]]
    else:
        tgt[keys[-1]] = value
    return d


def test_every_rejection_names_source_and_field(rec: FaceRecord) -> None:
    good = record_to_dict(rec)
    for path, value, pattern in _mutations(good):
        bad = _apply(good, path, value)
        with pytest.raises(RecordError, match=pattern) as info:
            record_from_dict(bad, "faces/a.png")
        assert str(info.value).startswith("faces/a.png: "), (path, str(info.value))
        assert info.value.path == "faces/a.png"
    record_from_dict(good)  # the original still passes


def test_rejects_non_dict_and_newer_version(rec: FaceRecord) -> None:
    for bad in (None, [], "x", 3):
        with pytest.raises(RecordError, match="object"):
            record_from_dict(bad, "r.json")
    d = record_to_dict(rec)
    d["version"] = RECORD_VERSION + 1
    with pytest.raises(SchemaVersionError, match=r"^r\.json: record version 2 is newer"):
        record_from_dict(d, "r.json")
    del d["version"]
    record_from_dict(d)  # the version key is optional


def test_mask_key_must_match_mask_name(rec: FaceRecord) -> None:
    name = next(iter(rec.masks))
    masks = {"other": rec.masks[name]}
    with pytest.raises(RecordError, match="key and mask name differ"):
        validate_record(replace(rec, masks=masks), "s", "frame 3 face 1")


def test_validate_record_direct(rec: FaceRecord) -> None:
    assert validate_record(rec) is rec
    bad_lm = rec.landmarks.copy()
    bad_lm[10, 1] = np.nan
    with pytest.raises(RecordError, match=r"^st\.fpstore: frame 3 face 1: landmarks.*NaN"):
        validate_record(replace(rec, landmarks=bad_lm), "st.fpstore", "frame 3 face 1")
    with pytest.raises(RecordError, match="shape 68×2"):
        validate_record(replace(rec, landmarks=rec.landmarks[:5]))
    with pytest.raises(RecordError, match="identity.*shape 128"):
        validate_record(replace(rec, identity=np.zeros(64, np.float32)))
    with pytest.raises(RecordError, match="score"):
        validate_record(replace(rec, score=np.float32(2.0)))
    # NumPy scalars are accepted where numbers are expected
    validate_record(replace(rec, score=np.float32(0.5), frame_index=np.int64(3)))
    # writing an invalid record is refused too
    with pytest.raises(RecordError, match="landmarks"):
        record_to_dict(replace(rec, landmarks=bad_lm))


def test_no_code_execution_types_only_json(rec: FaceRecord) -> None:
    d = record_to_dict(rec)

    def walk(x: object) -> None:
        assert isinstance(x, (dict, list, str, int, float, type(None))), type(x)
        if isinstance(x, dict):
            for k, v in x.items():
                assert isinstance(k, str)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(d)
