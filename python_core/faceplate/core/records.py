"""Face records as plain data: the one validator, JSON-safe dicts and stored masks.

Everything that reads a :class:`~faceplate.core.types.FaceRecord` from outside the process (a
store row, a PNG chunk, a JSON file) goes through :func:`validate_record`, so a tampered or
corrupt record is refused the same way wherever it comes from. Nothing here can execute code:
records are JSON values, arrays travel as lists of numbers, bytes as base64 text.

Conventions (types.py): points and boxes are (x, y) frame pixels, x right, y down, pixel centres
at +0.5; affine matrices are 2×3 float64 frame → mask pixels.

Record dict layout (:data:`RECORD_VERSION` 1)::

    {"version": 1, "frame_index": int, "frame_name": str, "face_index": int,
     "bbox": [x, y, w, h], "landmarks": [[x, y] × 68], "score": float,
     "yaw": float, "pitch": float, "roll": float, "detector": str, "aligner": str,
     "masks": {name: {"size": int, "centering": str, "affine": [[a, b, c], [d, e, f]],
                      "data": base64 zlib bytes}},
     "identity": [128 floats] | null, "thumbnail": base64 JPEG/PNG | null,
     "timestamp": float | null}
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from numbers import Integral, Real
from typing import Any

import numpy as np

from faceplate.core.errors import RecordError, SchemaVersionError
from faceplate.core.types import CENTERINGS, BBox, FaceRecord, StoredMask

#: Version of the record layout written by :func:`record_to_dict` (and faceset PNG chunks).
RECORD_VERSION: int = 1

#: Largest stored-mask side accepted (bounds decompression to 16 MiB).
MAX_MASK_SIZE = 4096
#: Largest thumbnail accepted, in bytes.
MAX_THUMBNAIL_BYTES = 1 << 20
#: Length of an identity embedding (dlib ResNet).
IDENTITY_DIM = 128
#: Longest frame name accepted.
MAX_NAME_LEN = 1024

_RECORD_KEYS = frozenset({
    "frame_index", "frame_name", "face_index", "bbox", "landmarks", "score", "yaw", "pitch",
    "roll", "detector", "aligner", "masks", "identity", "thumbnail", "timestamp",
})
_MASK_KEYS = frozenset({"size", "centering", "affine", "data"})
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


class _FieldError(Exception):
    """Internal: a field failed; carries the field path so callers can name it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


# --------------------------------------------------------------------------- scalar checks

def _is_int(v: object) -> bool:
    return isinstance(v, Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: object) -> bool:
    return isinstance(v, Real) and not isinstance(v, (bool, np.bool_))


def _int(v: object, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if not _is_int(v):
        raise _FieldError(field, f"expected an integer, got {type(v).__name__}")
    i = int(v)  # type: ignore[call-overload]
    if minimum is not None and i < minimum:
        raise _FieldError(field, f"must be >= {minimum}, got {i}")
    if maximum is not None and i > maximum:
        raise _FieldError(field, f"must be <= {maximum}, got {i}")
    return i


def _float(v: object, field: str, lo: float | None = None, hi: float | None = None) -> float:
    if not _is_real(v):
        raise _FieldError(field, f"expected a number, got {type(v).__name__}")
    f = float(v)  # type: ignore[arg-type]
    if not math.isfinite(f):
        raise _FieldError(field, f"must be finite, got {f}")
    if lo is not None and hi is not None and not lo <= f <= hi:
        raise _FieldError(field, f"must be in [{lo}, {hi}], got {f}")
    if lo is not None and f < lo:
        raise _FieldError(field, f"must be >= {lo}, got {f}")
    if hi is not None and f > hi:
        raise _FieldError(field, f"must be <= {hi}, got {f}")
    return f


def _str(v: object, field: str) -> str:
    if not isinstance(v, str):
        raise _FieldError(field, f"expected a string, got {type(v).__name__}")
    return v


def check_frame_name(name: object, field: str = "frame_name") -> str:
    """Check a frame name is usable as a store key and a file-name stem, and return it.

    Raises:
        ValueError: Empty, too long, or containing a path separator or NUL.
    """
    try:
        return _frame_name(name, field)
    except _FieldError as err:
        raise ValueError(str(err)) from None


def _frame_name(v: object, field: str) -> str:
    s = _str(v, field)
    if not s or len(s) > MAX_NAME_LEN:
        raise _FieldError(field, f"must be 1..{MAX_NAME_LEN} characters, got {len(s)}")
    if any(c in s for c in "/\\\x00") or s in (".", ".."):
        raise _FieldError(field, f"must be a plain file name, got {s!r}")
    return s


def _array(v: object, field: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A finite float array of exactly ``shape`` from an ndarray (any real dtype)."""
    if not isinstance(v, np.ndarray):
        raise _FieldError(field, f"expected a NumPy array, got {type(v).__name__}")
    if v.shape != shape:
        want = "×".join(map(str, shape))
        raise _FieldError(field, f"expected shape {want}, got {v.shape}")
    if v.dtype.kind not in "fiu":
        raise _FieldError(field, f"expected a real dtype, got {v.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out: np.ndarray = v.astype(dtype, copy=False)
    if not np.all(np.isfinite(out)):
        raise _FieldError(field, "contains NaN or Inf (or overflows " + np.dtype(dtype).name + ")")
    return out


def _number_list(v: object, field: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A JSON nested list of numbers of exactly ``shape`` → array.

    Every element must be exactly ``int`` or ``float`` (what ``json`` produces; never ``bool``).
    """
    def walk(x: object, depth: int, where: str) -> list[Any]:
        if not isinstance(x, list) or len(x) != shape[depth]:
            got = f"length {len(x)}" if isinstance(x, list) else type(x).__name__
            raise _FieldError(where, f"expected a list of {shape[depth]}, got {got}")
        if depth == len(shape) - 1:
            for i, e in enumerate(x):
                if type(e) is not float and type(e) is not int:  # exact JSON types: no bool
                    raise _FieldError(f"{where}[{i}]", f"expected a number, got {type(e).__name__}")
            return x
        return [walk(e, depth + 1, f"{where}[{i}]") for i, e in enumerate(x)]

    arr = np.asarray(walk(v, 0, field), dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out: np.ndarray = arr.astype(dtype)
    if not np.all(np.isfinite(out)):
        raise _FieldError(field, f"contains NaN or Inf (or overflows {np.dtype(dtype).name})")
    return out


def _b64(v: object, field: str) -> bytes:
    s = _str(v, field)
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise _FieldError(field, f"not valid base64 ({err})") from None


def _keys(d: object, field: str, required: frozenset[str],
          optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _FieldError(field or "record", f"expected an object, got {type(d).__name__}")
    missing = sorted(required - d.keys())
    if missing:
        raise _FieldError(field or "record", f"missing key(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in d.keys() - required - optional)
    if unknown:
        raise _FieldError(field or "record", f"unknown key(s) {', '.join(unknown)}")
    return d


# --------------------------------------------------------------------------- masks

def encode_mask(mask: np.ndarray) -> bytes:
    """Compress a mask for :class:`StoredMask`.

    Args:
        mask: size×size ``uint8`` (0 outside, 255 inside), in the mask's crop space.

    Returns:
        ``zlib`` bytes of the row-major mask.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2 \
            or mask.shape[0] != mask.shape[1] or not 1 <= mask.shape[0] <= MAX_MASK_SIZE:
        got = (mask.shape, mask.dtype) if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask: expected a square size×size uint8 array, got {got}")
    return zlib.compress(np.ascontiguousarray(mask).tobytes(), 6)


def _inflate_mask(data: object, size: int, field: str) -> np.ndarray:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _FieldError(field, f"expected bytes, got {type(data).__name__}")
    want = size * size
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(data), want)  # bounded: never more than size² bytes
    except zlib.error as err:
        raise _FieldError(field, f"corrupt zlib data ({err})") from None
    if len(raw) != want or d.unconsumed_tail or not d.eof or d.unused_data:
        raise _FieldError(field, f"does not hold exactly {size}×{size} bytes "
                              f"(declared size {size} does not match the data)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(size, size).copy()


def decode_mask(sm: StoredMask, source: str | None = None) -> np.ndarray:
    """Decompress a stored mask.

    Args:
        sm: The stored mask.
        source: File the mask came from, for the error message.

    Returns:
        ``sm.size``×``sm.size`` ``uint8`` mask (0 outside, 255 inside), in the mask space that
        ``sm.affine`` maps frame pixels to.

    Raises:
        RecordError: The data is not zlib, or does not decompress to exactly size² bytes.
    """
    try:
        size = _int(sm.size, f"masks.{sm.name}.size", 1, MAX_MASK_SIZE)
        return _inflate_mask(sm.data, size, f"masks.{sm.name}.data")
    except _FieldError as err:
        raise RecordError(str(err), source) from None


# --------------------------------------------------------------------------- the validator

def _validate(rec: FaceRecord) -> None:
    if not isinstance(rec, FaceRecord):
        raise _FieldError("record", f"expected a FaceRecord, got {type(rec).__name__}")
    _int(rec.frame_index, "frame_index", 0)
    _frame_name(rec.frame_name, "frame_name")
    _int(rec.face_index, "face_index", 0)
    if not isinstance(rec.bbox, BBox):
        raise _FieldError("bbox", f"expected a BBox, got {type(rec.bbox).__name__}")
    for k in ("x", "y"):
        _float(getattr(rec.bbox, k), f"bbox.{k}")
    for k in ("w", "h"):
        _float(getattr(rec.bbox, k), f"bbox.{k}", 0.0)
    _array(rec.landmarks, "landmarks", (68, 2), np.float32)
    _float(rec.score, "score", 0.0, 1.0)
    for k in ("yaw", "pitch", "roll"):
        _float(getattr(rec, k), k, -180.0, 180.0)
    _str(rec.detector, "detector")
    _str(rec.aligner, "aligner")
    if not isinstance(rec.masks, dict):
        raise _FieldError("masks", f"expected a dict, got {type(rec.masks).__name__}")
    for key, sm in rec.masks.items():
        field = f"masks.{key}"
        if not isinstance(sm, StoredMask):
            raise _FieldError(field, f"expected a StoredMask, got {type(sm).__name__}")
        if not isinstance(key, str) or not key or sm.name != key:
            raise _FieldError(field, f"key and mask name differ ({key!r} vs {sm.name!r})")
        size = _int(sm.size, f"{field}.size", 1, MAX_MASK_SIZE)
        if sm.centering not in CENTERINGS:
            raise _FieldError(f"{field}.centering", f"unknown centering {sm.centering!r}, "
                                                 f"expected one of {', '.join(CENTERINGS)}")
        _array(sm.affine, f"{field}.affine", (2, 3), np.float64)
        _inflate_mask(sm.data, size, f"{field}.data")
    if rec.identity is not None:
        _array(rec.identity, "identity", (IDENTITY_DIM,), np.float32)
    if rec.thumbnail is not None:
        t = rec.thumbnail
        if not isinstance(t, bytes):
            raise _FieldError("thumbnail", f"expected bytes, got {type(t).__name__}")
        if len(t) > MAX_THUMBNAIL_BYTES or not t.startswith(_IMAGE_MAGIC):
            raise _FieldError("thumbnail", f"expected a JPEG or PNG of at most "
                                        f"{MAX_THUMBNAIL_BYTES} bytes ({len(t)} bytes)")
    if rec.timestamp is not None:
        _float(rec.timestamp, "timestamp")


def validate_record(rec: FaceRecord, source: str | None = None, where: str = "") -> FaceRecord:
    """The one record validator: check every field of ``rec`` and return it unchanged.

    Checks: indices are non-negative integers; the frame name is a plain file name; the box is
    4 finite numbers with w, h >= 0; landmarks are a finite 68×2 array (finite as float32);
    score in [0, 1]; yaw/pitch/roll finite in [-180, 180]; every mask has a known centering, a
    finite 2×3 affine and data that inflates to exactly size×size bytes (bounded); identity is
    None or 128 finite floats; thumbnail is None or a JPEG/PNG of at most 1 MiB.

    Args:
        rec: The record.
        source: The file it came from (store, PNG, JSON), named in the error.
        where: Location inside that file (e.g. ``"frame 12 face 0"``), prefixed to the problem.

    Raises:
        RecordError: ``"<source>: <where>: <field>: <problem>"``.
    """
    try:
        _validate(rec)
    except _FieldError as err:
        raise RecordError(f"{where}: {err}" if where else str(err), source) from None
    return rec


# --------------------------------------------------------------------------- dict conversion

def _b64s(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def record_to_dict(rec: FaceRecord, *, masks: bool = True,
                   thumbnail: bool = True) -> dict[str, Any]:
    """A JSON-safe dict of ``rec`` (see the module docstring for the layout).

    Arrays become nested lists of Python floats (landmarks keep their float32 values exactly),
    bytes become base64 strings. ``masks=False`` writes ``{}``, ``thumbnail=False`` writes null.

    Raises:
        RecordError: ``rec`` is invalid (NaN, wrong shapes...): nothing invalid is ever written.
    """
    validate_record(rec)
    out: dict[str, Any] = {
        "version": RECORD_VERSION,
        "frame_index": int(rec.frame_index),
        "frame_name": rec.frame_name,
        "face_index": int(rec.face_index),
        "bbox": [float(v) for v in rec.bbox.as_tuple()],
        "landmarks": np.asarray(rec.landmarks, dtype=np.float32).astype(np.float64).tolist(),
        "score": float(rec.score),
        "yaw": float(rec.yaw),
        "pitch": float(rec.pitch),
        "roll": float(rec.roll),
        "detector": rec.detector,
        "aligner": rec.aligner,
        "masks": {},
        "identity": None if rec.identity is None
        else np.asarray(rec.identity, dtype=np.float32).astype(np.float64).tolist(),
        "thumbnail": _b64s(rec.thumbnail) if thumbnail and rec.thumbnail is not None else None,
        "timestamp": None if rec.timestamp is None else float(rec.timestamp),
    }
    if masks:
        out["masks"] = {
            name: {"size": int(sm.size), "centering": sm.centering,
                   "affine": np.asarray(sm.affine, dtype=np.float64).tolist(),
                   "data": _b64s(bytes(sm.data))}
            for name, sm in rec.masks.items()
        }
    return out


def _from_dict(d: Any) -> FaceRecord:
    d = _keys(d, "", _RECORD_KEYS, frozenset({"version"}))
    if "version" in d:
        v = _int(d["version"], "version", 1)
        if v > RECORD_VERSION:
            raise SchemaVersionError(f"record version {v} is newer than this Faceplate "
                                     f"understands ({RECORD_VERSION}); upgrade Faceplate")
    bbox = _number_list(d["bbox"], "bbox", (4,), np.float64)
    masks_in = d["masks"]
    if not isinstance(masks_in, dict):
        raise _FieldError("masks", f"expected an object, got {type(masks_in).__name__}")
    masks: dict[str, StoredMask] = {}
    for name, m in masks_in.items():
        field = f"masks.{name}"
        m = _keys(m, field, _MASK_KEYS)
        masks[name] = StoredMask(
            name=name, data=_b64(m["data"], f"{field}.data"),
            size=_int(m["size"], f"{field}.size", 1, MAX_MASK_SIZE),
            affine=_number_list(m["affine"], f"{field}.affine", (2, 3), np.float64),
            centering=_str(m["centering"], f"{field}.centering"),  # type: ignore[arg-type]
        )
    ident = d["identity"]
    thumb = d["thumbnail"]
    ts = d["timestamp"]
    rec = FaceRecord(
        frame_index=_int(d["frame_index"], "frame_index", 0),
        frame_name=_frame_name(d["frame_name"], "frame_name"),
        face_index=_int(d["face_index"], "face_index", 0),
        bbox=BBox(*(float(v) for v in bbox)),
        landmarks=_number_list(d["landmarks"], "landmarks", (68, 2), np.float32),
        score=_float(d["score"], "score", 0.0, 1.0),
        yaw=_float(d["yaw"], "yaw"), pitch=_float(d["pitch"], "pitch"),
        roll=_float(d["roll"], "roll"),
        detector=_str(d["detector"], "detector"), aligner=_str(d["aligner"], "aligner"),
        masks=masks,
        identity=None if ident is None
        else _number_list(ident, "identity", (IDENTITY_DIM,), np.float32),
        thumbnail=None if thumb is None else _b64(thumb, "thumbnail"),
        timestamp=None if ts is None else _float(ts, "timestamp"),
    )
    _validate(rec)
    return rec


def record_from_dict(d: Any, source: str | None = None) -> FaceRecord:
    """Build a :class:`FaceRecord` from a dict made by :func:`record_to_dict` (strict).

    Every key must be present (``"version"`` may be omitted) and no unknown key is accepted;
    each value is type-checked (numbers are ``int``/``float``, never ``bool`` or strings),
    then the record goes through :func:`validate_record`.

    Args:
        d: The parsed JSON value.
        source: The file it came from, named in errors.

    Raises:
        RecordError: Anything malformed, naming ``source`` and the field.
        SchemaVersionError: ``d["version"]`` is newer than :data:`RECORD_VERSION`.
    """
    try:
        return _from_dict(d)
    except _FieldError as err:
        raise RecordError(str(err), source) from None
    except SchemaVersionError as err:
        raise SchemaVersionError(err.problem, source) from None
