"""Aligned-face PNGs that carry their own record (a faceset).

Each face file is an ordinary 8-bit RGB PNG (:func:`encode_png_rgb8`) plus one ``iTXt`` chunk,
keyword ``"faceplate"``, inserted before ``IEND``. Its text is zlib-compressed UTF-8 JSON::

    {"version": RECORD_VERSION, "record": record_to_dict(rec, thumbnail=False),
     "matrix": [[a, b, c], [d, e, f]],    # frame → crop pixels, 2×3 float64
     "size": int, "centering": "face" | "whole_face" | "head",
     "source": {"store": str, "source": str, "frame_width": int, "frame_height": int,
                "is_video": bool, ...},
     "digest": sha256 hex of the canonical JSON (sort_keys, no spaces) of all the other keys}

So faces can be sorted, renamed and moved between folders without losing the link to their
frame. Reading the metadata parses chunk headers only (pixels are never decoded), checks the
chunk CRC, the digest and the record (:func:`faceplate.core.records.validate_record`). The digest
detects corruption and casual edits; it is not a signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from isal import isal_zlib

from faceplate.core.errors import (
    FaceplateError,
    InputError,
    RecordError,
    SchemaVersionError,
    UnsupportedFormatError,
)
from faceplate.core.geometry import (
    compose_affine,
    crop_matrix,
    invert_affine,
    matrix_scale,
    to_cv2,
    transform_points,
)
from faceplate.core.records import RECORD_VERSION, record_from_dict, record_to_dict
from faceplate.core.types import CENTERINGS, Centering, FaceRecord
from faceplate.io.paths import write_bytes_atomic

FACE_CHUNK_KEY = "faceplate"

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
#: Largest chunk body we read into memory (our metadata is a few kB to a few hundred kB).
_MAX_META_CHUNK = 32 << 20
#: Largest inflated metadata text.
_MAX_META_TEXT = 64 << 20
#: Largest face side accepted.
_MAX_SIZE = 8192
_PAYLOAD_KEYS = frozenset({"version", "record", "matrix", "size", "centering", "source",
                           "digest"})
_SOURCE_TYPES: dict[str, type | tuple[type, ...]] = {
    "store": str, "source": str, "frame_width": int, "frame_height": int, "is_video": bool,
}


@dataclass(frozen=True, eq=False)
class FaceMeta:
    """What a face PNG carries besides its pixels.

    Attributes:
        record: The face record (frame pixels, x right, y down, pixel centres at +0.5).
        matrix: 2×3 float64 frame → crop pixels matrix the face was warped with.
        size: Side of the square crop in pixels (equals the PNG's width and height).
        centering: The crop's centering.
        source: ``{"store": alignments store path, "source": input media path,
            "frame_width": int, "frame_height": int, "is_video": bool}`` (extra JSON keys kept).
    """

    record: FaceRecord
    matrix: np.ndarray
    size: int
    centering: Centering
    source: dict[str, Any]


def face_filename(rec: FaceRecord) -> str:
    """``<frame stem>_<face_index>.png`` (e.g. ``clip_000012_0.png``)."""
    return f"{rec.key}.png"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _check_source(src: Any) -> dict[str, Any]:
    if not isinstance(src, dict):
        raise ValueError(f"source: expected an object, got {type(src).__name__}")
    for k, t in _SOURCE_TYPES.items():
        if k not in src:
            raise ValueError(f"source: missing key {k!r}")
        v = src[k]
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            raise ValueError(f"source.{k}: expected {t.__name__}, "  # type: ignore[union-attr]
                             f"got {type(v).__name__}")
    for k in ("frame_width", "frame_height"):
        if src[k] < 1:
            raise ValueError(f"source.{k}: must be >= 1, got {src[k]}")
    return src


def _check_geometry(matrix: Any, size: Any, centering: Any) -> np.ndarray:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
            or not 1 <= size <= _MAX_SIZE:
        raise ValueError(f"size: expected an integer in [1, {_MAX_SIZE}], got {size!r}")
    if centering not in CENTERINGS:
        raise ValueError(f"centering: unknown {centering!r}, expected one of "
                         f"{', '.join(CENTERINGS)}")
    if isinstance(matrix, list):
        ok = len(matrix) == 2 and all(
            isinstance(r, list) and len(r) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
            for r in matrix)
        if not ok:
            raise ValueError("matrix: expected [[a, b, c], [d, e, f]] numbers")
    m = np.asarray(matrix, dtype=np.float64) if isinstance(matrix, (list, np.ndarray)) else None
    if m is None or m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise ValueError("matrix: expected a finite 2×3 frame → crop matrix")
    return m


def _payload(meta: FaceMeta) -> bytes:
    """The chunk's JSON text (with its digest) for ``meta``."""
    try:
        m = _check_geometry(meta.matrix, meta.size, meta.centering)
        src = _check_source(meta.source)
    except ValueError as err:
        raise ValueError(f"FaceMeta: {err}") from None
    body: dict[str, Any] = {
        "version": RECORD_VERSION,
        "record": record_to_dict(meta.record, masks=True, thumbnail=False),
        "matrix": m.tolist(), "size": int(meta.size), "centering": meta.centering,
        "source": src,
    }
    try:
        canon = _canonical(body)
    except (TypeError, ValueError) as err:
        raise ValueError(f"FaceMeta.source: not JSON ({err})") from None
    body["digest"] = hashlib.sha256(canon).hexdigest()
    return _canonical(body)


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + ctype + data
            + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF))


def encode_face_png(image: np.ndarray, meta: FaceMeta, compress_level: int = 1) -> bytes:
    """Encode an aligned face with its metadata chunk.

    Args:
        image: size×size×3 ``uint8`` RGB crop (``size == meta.size``).
        meta: What to embed.
        compress_level: 0–9 for the pixels (see :func:`encode_png_rgb8`: 0 stored, 1–3 ISA-L,
            4–9 zlib).

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: Wrong image shape/dtype, or ``meta`` does not describe this image.
        RecordError: ``meta.record`` is invalid.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        got = (image.shape, image.dtype) if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"image: expected H×W×3 uint8 RGB, got {got}")
    if image.shape[:2] != (meta.size, meta.size):
        raise ValueError(f"image: expected {meta.size}×{meta.size} (meta.size), "
                         f"got {image.shape[1]}×{image.shape[0]}")
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level: expected 0..9, got {compress_level}")
    chunk = _meta_chunk(meta)  # validates meta before any work
    return encode_png_rgb8(image, compress_level) + chunk + _IEND


def encode_png_rgb8(image: np.ndarray, compress_level: int = 1) -> bytes:
    """The signature, ``IHDR`` and ``IDAT`` of a PNG of ``image`` (no ``IEND``: callers append
    their chunks, then ``IEND``).

    Every row carries PNG's fixed "Up" filter (the difference to the row above, modulo 256):
    on photographic crops nearly the size libpng's adaptive choice gives, at a fraction of its
    cost. The filtered rows are deflated by ISA-L (``isal``) at ``compress_level`` 1–3, about
    4× faster than zlib at level 1 for a slightly smaller file; level 0 stores them
    uncompressed (no filter) and 4–9 use zlib at that level. Lossless at every level.

    Args:
        image: H×W×3 ``uint8`` RGB, any strides.
        compress_level: 0–9.

    Returns:
        The PNG's bytes up to (not including) ``IEND``.
    """
    h, w = image.shape[:2]
    rows = np.ascontiguousarray(image).reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), np.uint8)
    if compress_level == 0:
        raw[:, 0] = 0  # filter type None
        raw[:, 1:] = rows
        data = zlib.compress(raw.data, 0)
    else:
        raw[:, 0] = 2  # filter type Up: the first row's "above" is zeros
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
        data = (isal_zlib.compress(raw.data, compress_level) if compress_level <= 3
                else zlib.compress(raw.data, compress_level))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return _PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)


def write_face_png(path: Path, image: np.ndarray, meta: FaceMeta,
                   compress_level: int = 1) -> None:
    """Encode and write a face atomically (temporary file in the same folder + ``os.replace``).

    Raises:
        OutputError: The file cannot be written (no partial file is left behind).
        ValueError / RecordError: As :func:`encode_face_png`.
    """
    write_bytes_atomic(Path(path), encode_face_png(image, meta, compress_level))


def _meta_chunk(meta: FaceMeta) -> bytes:
    # iTXt: keyword NUL, compression flag 1, method 0 (zlib), language NUL, translated NUL, text
    itxt = FACE_CHUNK_KEY.encode("latin-1") + b"\x00\x01\x00\x00\x00" + zlib.compress(
        _payload(meta), 6)
    return _chunk(b"iTXt", itxt)


def update_face_meta(path: Path, meta: FaceMeta) -> None:
    """Replace a face PNG's record with ``meta``, leaving its pixels' bytes untouched (the file
    is rewritten atomically; e.g. to add a mask computed after extraction).

    Raises:
        InputError / RecordError: As :func:`read_face_meta` (the file must be a valid face).
        ValueError: ``meta`` describes another size than the image.
        OutputError: The file cannot be written.
    """
    path = Path(path)
    old = read_face_meta(path)
    if meta.size != old.size:
        raise ValueError(f"meta.size {meta.size} differs from the image's {old.size}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path) from None
    out = bytearray(data[:8])
    pos = 8
    key = FACE_CHUNK_KEY.encode() + b"\x00"
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        ctype = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if ctype == b"iTXt" and data[pos + 8:pos + 8 + len(key)] == key:
            out += _meta_chunk(meta)
        else:
            out += data[pos:end]
        pos = end
    write_bytes_atomic(path, bytes(out))


# --------------------------------------------------------------------------- reading

def _read_exact(fh: IO[bytes], n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise RecordError(f"truncated PNG ({what})", path)
    return data


def _scan_chunks(fh: IO[bytes], path: Path, file_size: int) -> tuple[int, int, bytes]:
    """Walk the chunk list; return (width, height, faceplate iTXt body). Bounded by file size."""
    if fh.read(8) != _PNG_SIG:
        raise UnsupportedFormatError("not a PNG file", path)
    width = height = -1
    found: bytes | None = None
    pos = 8
    first = True
    while True:
        head = _read_exact(fh, 8, path, f"chunk header at byte {pos}")
        length, ctype = struct.unpack(">I", head[:4])[0], head[4:]
        if length > 0x7FFFFFFF or pos + 12 + length > file_size:
            raise RecordError(f"corrupt or truncated PNG: chunk {ctype!r} at byte {pos} claims "
                              f"{length} bytes", path)
        if first and ctype != b"IHDR":
            raise RecordError("corrupt PNG: first chunk is not IHDR", path)
        wanted = ctype == b"IHDR" or (ctype == b"iTXt" and length <= _MAX_META_CHUNK)
        if wanted:
            body = _read_exact(fh, length, path, f"{ctype.decode('latin-1')} chunk")
            crc = struct.unpack(">I", _read_exact(fh, 4, path, "chunk CRC"))[0]
            is_ours = ctype == b"IHDR" or body.startswith(FACE_CHUNK_KEY.encode() + b"\x00")
            if is_ours and crc != zlib.crc32(ctype + body) & 0xFFFFFFFF:
                raise RecordError(f"{ctype.decode('latin-1')} chunk CRC mismatch "
                                  "(file corrupt or edited)", path)
            if ctype == b"IHDR":
                if length != 13:
                    raise RecordError("corrupt PNG: IHDR is not 13 bytes", path)
                width, height = struct.unpack(">II", body[:8])
            elif is_ours:
                if found is not None:
                    raise RecordError("more than one Faceplate chunk", path)
                found = body
        else:
            if ctype == b"iTXt" and length > _MAX_META_CHUNK:
                raise RecordError(f"iTXt chunk of {length} bytes is larger than allowed", path)
            fh.seek(length + 4, os.SEEK_CUR)
        first = False
        pos += 12 + length
        if ctype == b"IEND":
            break
    if found is None:
        raise RecordError(f"no {FACE_CHUNK_KEY!r} metadata chunk (not a Faceplate face)", path)
    return width, height, found


def _parse_itxt(body: bytes, path: Path) -> bytes:
    key = FACE_CHUNK_KEY.encode() + b"\x00"
    rest = body[len(key):]
    if len(rest) < 2:
        raise RecordError("truncated Faceplate chunk", path)
    comp_flag, method = rest[0], rest[1]
    rest = rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) != 3:
        raise RecordError("malformed iTXt chunk (language/translated keyword)", path)
    text = parts[2]
    if comp_flag == 0:
        return text
    if comp_flag != 1 or method != 0:
        raise RecordError(f"unknown iTXt compression {comp_flag}/{method}", path)
    d = zlib.decompressobj()
    try:
        out = d.decompress(text, _MAX_META_TEXT)
    except zlib.error as err:
        raise RecordError(f"corrupt compressed metadata ({err})", path) from None
    if d.unconsumed_tail or not d.eof:
        raise RecordError("metadata does not inflate completely (truncated or too large)", path)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _meta_from_text(text: bytes, path: Path) -> FaceMeta:
    try:
        doc = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"metadata is not valid JSON ({err})", path) from None
    if not isinstance(doc, dict):
        raise RecordError("metadata is not a JSON object", path)
    ver = doc.get("version")
    if isinstance(ver, int) and not isinstance(ver, bool) and ver > RECORD_VERSION:
        raise SchemaVersionError(f"face metadata version {ver} is newer than this Faceplate "
                                 f"reads ({RECORD_VERSION}); upgrade Faceplate", path)
    keys = set(doc)
    if keys != _PAYLOAD_KEYS:
        missing = sorted(_PAYLOAD_KEYS - keys)
        extra = sorted(keys - _PAYLOAD_KEYS)
        raise RecordError(f"metadata keys wrong (missing {missing}, unknown {extra})", path)
    if ver != RECORD_VERSION:
        raise RecordError(f"version: expected {RECORD_VERSION}, got {ver!r}", path)
    digest = doc.pop("digest")
    try:
        canon = _canonical(doc)
    except ValueError as err:
        raise RecordError(f"metadata not canonical JSON ({err})", path) from None
    if not isinstance(digest, str) or hashlib.sha256(canon).hexdigest() != digest:
        raise RecordError("metadata digest mismatch (file corrupt or edited)", path)
    try:
        matrix = _check_geometry(doc["matrix"], doc["size"], doc["centering"])
        source = _check_source(doc["source"])
    except ValueError as err:
        raise RecordError(str(err), path) from None
    record = record_from_dict(doc["record"], str(path))
    return FaceMeta(record=record, matrix=matrix, size=int(doc["size"]),
                    centering=doc["centering"], source=source)


def read_face_meta(path: Path) -> FaceMeta:
    """Read a face PNG's metadata without decoding its pixels.

    Raises:
        InputError: Missing or unreadable file.
        UnsupportedFormatError: Not a PNG.
        RecordError: Truncated/corrupt PNG, no Faceplate chunk, CRC or digest mismatch, invalid
            record, or PNG size different from the metadata's size.
        SchemaVersionError: Written by a newer Faceplate.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            width, height, body = _scan_chunks(fh, path, size)
    except FileNotFoundError:
        raise InputError("face image not found", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a face image", path) from None
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path) from None
    meta = _meta_from_text(_parse_itxt(body, path), path)
    if (width, height) != (meta.size, meta.size):
        raise RecordError(f"image is {width}×{height} but its metadata says "
                          f"{meta.size}×{meta.size}", path)
    return meta


def read_face_png(path: Path) -> tuple[np.ndarray, FaceMeta]:
    """Read a face PNG.

    Returns:
        (size×size×3 ``uint8`` RGB image, its metadata).

    Raises:
        As :func:`read_face_meta`; RecordError also when the pixels do not decode.
    """
    path = Path(path)
    meta = read_face_meta(path)
    return decode_face_pixels(path, meta), meta


def decode_face_pixels(path: Path, meta: FaceMeta) -> np.ndarray:
    """The pixels of a face PNG whose metadata has been read: size×size×3 ``uint8`` RGB.

    Raises:
        InputError: The file cannot be read.
        RecordError: The pixels do not decode, or not to the size the metadata says.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path) from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (meta.size, meta.size):
        raise RecordError("pixel data does not decode (file corrupt)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def recut_face(path: Path, meta: FaceMeta, size: int, centering: Centering,
               coverage: float = 1.0, pad: int = 0
               ) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Decode a face PNG and warp it into another crop of the same face, with a border (the
    training cache's layout: the swap and mask trainers' crops, the mask evaluation's).

    Args:
        path: The face PNG.
        meta: Its metadata (``meta.matrix``: frame → stored crop).
        size: Crop side, px.
        centering: Crop centering.
        coverage: Fraction of the centering's frame the crop keeps.
        pad: Border in pixels on every side (the result is C×C, C = size + 2·pad, with the
            crop at ``[pad:pad+size, pad:pad+size]``).

    Returns:
        ``(image, matrix, outside, upscaled)``: C×C×3 ``uint8`` RGB (pixels the stored crop lacks
        are edge-replicated), the 2×3 frame → cache matrix, whether the crop proper reaches
        outside the stored crop, and whether the stored face is smaller than the crop needs.

    Raises:
        FaceplateError: The pixels do not decode.
    """
    rgb = decode_face_pixels(path, meta)
    c = size + 2 * pad
    t_train = crop_matrix(meta.record.landmarks, size, centering, coverage)
    t_cache = t_train.copy()
    t_cache[:, 2] += pad
    m = compose_affine(t_cache, invert_affine(meta.matrix))   # stored crop → cache
    scale = matrix_scale(m)
    if scale < 0.5:   # big downscale: pre-shrink with area averaging to avoid aliasing
        f = min(1.0, 2.0 * scale)
        side = max(1, int(round(meta.size * f)))
        rgb = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
        k = side / meta.size
        m = compose_affine(m, np.array([[1.0 / k, 0.0, 0.0], [0.0, 1.0 / k, 0.0]]))
    image = cv2.warpAffine(rgb, to_cv2(m), (c, c), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    # Does the training crop proper (not the pad) reach outside the stored crop?
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], float)
    in_stored = transform_points(corners, compose_affine(meta.matrix, invert_affine(t_train)))
    outside = bool(np.any(in_stored < -1.0) or np.any(in_stored > meta.size + 1.0))
    return image, t_cache, outside, scale > 1.05


def scan_faceset(folder: Path) -> tuple[list[tuple[Path, FaceMeta]], list[tuple[Path, str]]]:
    """Read every ``*.png`` in ``folder`` (sorted by name, not recursive).

    Returns:
        (good: [(path, meta)], bad: [(path, why)]) — files that are not valid Faceplate faces
        land in ``bad`` with the error text.

    Raises:
        InputError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("faceset folder not found", folder)
    good: list[tuple[Path, FaceMeta]] = []
    bad: list[tuple[Path, str]] = []
    for p in _pngs(folder):
        try:
            good.append((p, read_face_meta(p)))
        except FaceplateError as err:
            bad.append((p, str(err)))
    return good, bad


def iter_faceset(folder: Path) -> Iterator[tuple[Path, FaceMeta]]:
    """Yield ``(path, meta)`` for each valid face PNG in ``folder``, sorted by name.

    Files without valid Faceplate metadata are skipped silently; use :func:`scan_faceset` to
    get them reported.

    Raises:
        InputError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("faceset folder not found", folder)
    for p in _pngs(folder):
        try:
            yield p, read_face_meta(p)
        except FaceplateError:
            continue


def _pngs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() == ".png" and p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.name)
