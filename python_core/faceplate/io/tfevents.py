"""Read TensorBoard event files (``events.out.tfevents.*``) without TensorFlow or protobuf.

A file is a sequence of records, each::

    uint64 length (little-endian) | uint32 masked CRC-32C of the 8 length bytes
    | length bytes of data        | uint32 masked CRC-32C of the data

and each record's data is a serialised ``tensorflow.Event`` protobuf, of which this reader
decodes ``wall_time`` (field 1, double: seconds since the Unix epoch), ``step`` (field 2,
int64) and the scalars of ``summary`` (field 5): each ``Summary.Value`` (field 1) with its
``tag`` (1) and either ``simple_value`` (2, float32) or a one-element float ``tensor`` (8:
``float_val`` 5 or ``tensor_content`` 4 with dtype 1 = DT_FLOAT). Everything else (file
version, graphs, images, text) is skipped by its wire type.

Used by ``benchmarks/train.py`` to read the per-iteration timestamps that another trainer
(Faceswap) writes to its TensorBoard log; Faceplate's own logs read back the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from faceplate.core.errors import InputError

_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected


def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CRC32C_POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` as an unsigned 32-bit int."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC that TFRecord files store: rotate right by 15, add 0xA282EAD8."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


@dataclass(frozen=True)
class Event:
    """One decoded event: ``wall_time`` (float seconds since the epoch), ``step`` (int) and
    its scalars (tag → float; empty for non-scalar events such as the file-version header)."""

    wall_time: float
    step: int
    scalars: dict[str, float] = field(default_factory=dict)


class _BadEventError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _BadEventError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _BadEventError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(field number, wire type, int value, bytes value) of one protobuf message: the int for
    varint and fixed wire types (fixed ones as raw little-endian bits), the bytes for
    length-delimited ones (the other one is 0 / empty)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value = 0
        data = b""
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _BadEventError(f"field {num}: truncated 64-bit value")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise _BadEventError(f"field {num}: length {n} runs past the message")
            data = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _BadEventError(f"field {num}: truncated 32-bit value")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise _BadEventError(f"field {num}: unsupported wire type {wire}")
        yield num, wire, value, data


def _f32(bits: int) -> float:
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])


def _tensor_scalar(buf: bytes) -> float | None:
    dtype = 0
    content = b""
    floats: list[float] = []
    for num, wire, v, raw in _fields(buf):
        if num == 1 and wire == 0:
            dtype = v
        elif num == 4 and wire == 2:
            content = raw
        elif num == 5 and wire == 5:
            floats.append(_f32(v))
        elif num == 5 and wire == 2:
            floats += [float(x) for x in struct.unpack(f"<{len(raw) // 4}f", raw)]
    if floats:
        return floats[0]
    if dtype == 1 and len(content) == 4:
        return float(struct.unpack("<f", content)[0])
    return None


def _summary(buf: bytes) -> dict[str, float]:
    out: dict[str, float] = {}
    for num, wire, _v, msg in _fields(buf):
        if num != 1 or wire != 2:
            continue
        tag, value = "", None
        for vn, vw, vv, vraw in _fields(msg):
            if vn == 1 and vw == 2:
                tag = vraw.decode("utf-8", "replace")
            elif vn == 2 and vw == 5:
                value = _f32(vv)
            elif vn == 8 and vw == 2:
                value = _tensor_scalar(vraw)
        if tag and value is not None:
            out[tag] = value
    return out


def decode_event(data: bytes) -> Event:
    """Decode one record's data (a serialised Event); raises ValueError when malformed."""
    wall_time, step = 0.0, 0
    scalars: dict[str, float] = {}
    for num, wire, v, raw in _fields(data):
        if num == 1 and wire == 1:
            wall_time = struct.unpack("<d", v.to_bytes(8, "little"))[0]
        elif num == 2 and wire == 0:
            step = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 5 and wire == 2:
            scalars.update(_summary(raw))
    return Event(wall_time=float(wall_time), step=step, scalars=scalars)


def read_events(path: str | Path) -> list[Event]:
    """Every event of one event file, in file order.

    Raises:
        InputError: naming the file and the record when a record is truncated, a CRC does
            not match, or an Event does not decode. A file still being written may end in a
            partial record: that is an error here too (read logs after the writer closed).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the event file ({err.strerror or err})", p) from None
    events: list[Event] = []
    pos = 0
    while pos < len(raw):
        n = len(events)
        if pos + 12 > len(raw):
            raise InputError(f"record {n} at byte {pos}: truncated header", p)
        head = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        if head_crc != masked_crc32c(head):
            raise InputError(f"record {n} at byte {pos}: length CRC mismatch (not a "
                             "TensorBoard event file, or corrupt)", p)
        start, end = pos + 12, pos + 12 + length
        if end + 4 > len(raw):
            raise InputError(f"record {n} at byte {pos}: truncated ({length} bytes of data "
                             f"announced, {max(0, len(raw) - start)} present)", p)
        data = raw[start:end]
        (data_crc,) = struct.unpack("<I", raw[end:end + 4])
        if data_crc != masked_crc32c(data):
            raise InputError(f"record {n} at byte {pos}: data CRC mismatch (corrupt)", p)
        try:
            events.append(decode_event(data))
        except ValueError as err:
            raise InputError(f"record {n} at byte {pos}: bad Event ({err})", p) from None
        pos = end + 4
    return events


def step_times(events: list[Event], tag: str | None = None) -> list[tuple[int, float]]:
    """``(step, wall_time)`` of each step's first scalar event (of ``tag`` if given), sorted by
    step; events without scalars (headers, graphs, text) are ignored."""
    first: dict[int, float] = {}
    for ev in events:
        if not ev.scalars or (tag is not None and tag not in ev.scalars):
            continue
        if ev.step not in first or ev.wall_time < first[ev.step]:
            first[ev.step] = ev.wall_time
    return sorted(first.items())
