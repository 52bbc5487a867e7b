"""Provenance metadata: the statement, in every file Faceplate writes, that a face in it was
synthetically replaced.

The facts (:func:`provenance_attributes`) are string key/value pairs named ``faceplate:<name>``:

* ``faceplate:synthetic`` — :data:`SYNTHETIC_TEXT` (always);
* ``faceplate:digitalSourceType`` — the IPTC digital source type :data:`IPTC_DIGITAL_SOURCE_TYPE`
  (``compositeWithTrainedAlgorithmicMedia``: a composite that includes media made by a trained
  model);
* ``faceplate:software`` — ``"Faceplate <version>"``;
* ``faceplate:model_profile`` — the model profile the output was made under (``default`` or
  ``commercial``: :mod:`faceplate.core.profile`), which also names the watermark's landmark fix
  point;
* ``faceplate:<key>`` for each item of the caller's ``extra`` (model id, frame index…), the key
  reduced to ``[A-Za-z0-9_]``.

Where they go, per format:

* **PNG** (8/16-bit): one uncompressed ``iTXt`` chunk per fact, plus the XMP packet
  (:func:`xmp_packet`) in the ``iTXt`` chunk ``XML:com.adobe.xmp`` (the XMP specification's place
  for it), all inserted right after ``IHDR``;
* **JPEG**: an ``APP1`` XMP segment (``http://ns.adobe.com/xap/1.0/``) and a ``COM`` comment
  segment, after ``SOI`` and a leading ``APP0`` (JFIF);
* **EXR**: string header attributes (:func:`exr_attributes`);
* **TIFF** (float): the ``Software`` tag, the ``photoshop:Instructions`` XMP property (the only
  free-text XMP property OpenImageIO writes into TIFF) and ``ImageDescription`` when no other
  text uses it (:func:`tiff_attributes`);
* **MP4/MOV/MKV**: container metadata (:func:`video_metadata`; MP4/MOV need the ``movflags``
  ``+use_metadata_tags`` muxer flag for keys other than the iTunes set).

The XMP packet states the IPTC property ``Iptc4xmpExt:DigitalSourceType``, ``xmp:CreatorTool``,
a ``dc:description`` and every ``faceplate:*`` fact (namespace :data:`FACEPLATE_NS`).

:func:`read_provenance` reads them back from any of these formats. The signed C2PA manifest
(:mod:`faceplate.provenance.c2pa_sign`) is separate and stronger: these plain attributes can be
stripped or forged, the manifest cannot be altered without detection.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from faceplate import __version__
from faceplate.core.errors import InputError, UnsupportedFormatError
from faceplate.core.profile import active_profile

#: Tool name and version written into every file.
TOOL_NAME = "Faceplate"
TOOL_VERSION = __version__
SOFTWARE = f"{TOOL_NAME} {TOOL_VERSION}"

#: The statement itself.
SYNTHETIC_TEXT = "face replaced by Faceplate (trained algorithmic media)"
#: IPTC digital source type: composite including trained algorithmic media.
IPTC_DIGITAL_SOURCE_TYPE = ("http://cv.iptc.org/newscodes/digitalsourcetype/"
                            "compositeWithTrainedAlgorithmicMedia")

#: Prefix of every attribute key.
PREFIX = "faceplate:"
KEY_SYNTHETIC = "faceplate:synthetic"
KEY_SOURCE_TYPE = "faceplate:digitalSourceType"
KEY_SOFTWARE = "faceplate:software"
KEY_PROFILE = "faceplate:model_profile"

#: XML namespaces of the XMP packet.
FACEPLATE_NS = "http://ns.faceplate.invalid/provenance/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
DC_NS = "http://purl.org/dc/elements/1.1/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PHOTOSHOP_NS = "http://ns.adobe.com/photoshop/1.0/"

#: PNG ``iTXt`` keyword and JPEG ``APP1`` header of XMP.
PNG_XMP_KEY = "XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_JPEG_MAX_SEGMENT = 65533  # payload bytes of one JPEG segment (length field counts itself)

PNG_EXTS = frozenset({".png"})
JPEG_EXTS = frozenset({".jpg", ".jpeg"})
EXR_EXTS = frozenset({".exr"})
TIFF_EXTS = frozenset({".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".mkv"})


# --------------------------------------------------------------------------------------------
# The facts


def _clean_key(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(key).removeprefix(PREFIX))
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def provenance_attributes(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every fact as ``{"faceplate:<name>": text}``.

    Args:
        extra: Additional facts (e.g. ``{"model_id": "…", "frame_index": 12}``); values are
            turned into text with ``str``; keys are reduced to ``[A-Za-z0-9_]`` (an XML name and
            a PNG keyword). ``None`` values are left out. They cannot override the four fixed
            facts.

    Returns:
        The fixed facts first, then ``extra`` in its order.
    """
    attrs = {KEY_SYNTHETIC: SYNTHETIC_TEXT, KEY_SOURCE_TYPE: IPTC_DIGITAL_SOURCE_TYPE,
             KEY_SOFTWARE: SOFTWARE, KEY_PROFILE: active_profile().name}
    for key, value in (extra or {}).items():
        if value is None:
            continue
        name = PREFIX + _clean_key(key)
        if name not in attrs:
            attrs[name] = str(value)
    return attrs


def xmp_packet(extra: Mapping[str, Any] | None = None) -> str:
    """The XMP packet (UTF-8 text) carrying the IPTC digital source type and every fact."""
    attrs = provenance_attributes(extra)
    lines = [f"    Iptc4xmpExt:DigitalSourceType={quoteattr(IPTC_DIGITAL_SOURCE_TYPE)}",
             f"    xmp:CreatorTool={quoteattr(SOFTWARE)}"]
    lines += [f"    faceplate:{key[len(PREFIX):]}={quoteattr(value)}"
              for key, value in attrs.items()]
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"\n'
        f'    xmlns:xmp="{XMP_NS}"\n'
        f'    xmlns:dc="{DC_NS}"\n'
        f'    xmlns:faceplate="{FACEPLATE_NS}"\n'
        + "\n".join(lines) + ">\n"
        '   <dc:description><rdf:Alt>'
        f'<rdf:li xml:lang="x-default">{escape(SYNTHETIC_TEXT)}</rdf:li>'
        '</rdf:Alt></dc:description>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>')


def parse_xmp(text: str) -> dict[str, str]:
    """The provenance facts of an XMP packet: ``faceplate:*`` properties plus
    ``Iptc4xmpExt:DigitalSourceType`` (under that key) and ``xmp:CreatorTool``; ``{}`` when the
    packet cannot be parsed."""
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    if start < 0 or end < 0:
        return {}
    try:
        root = ElementTree.fromstring(text[start:end + len("</x:xmpmeta>")])
    except ElementTree.ParseError:
        return {}
    out: dict[str, str] = {}
    prefixes = {FACEPLATE_NS: "faceplate:", IPTC_EXT_NS: "Iptc4xmpExt:", XMP_NS: "xmp:",
                PHOTOSHOP_NS: "photoshop:"}
    for desc in root.iter(f"{{{RDF_NS}}}Description"):
        items = list(desc.attrib.items())
        items += [(child.tag, child.text or "") for child in desc if len(child) == 0]
        for tag, value in items:
            if not tag.startswith("{"):
                continue
            ns, local = tag[1:].split("}", 1)
            if ns in prefixes:
                out[prefixes[ns] + local] = value
    return out


def exr_attributes(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """String header attributes for an OpenEXR file (OpenImageIO ``ImageSpec.attribute``):
    the :func:`provenance_attributes`."""
    return provenance_attributes(extra)


def tiff_attributes(extra: Mapping[str, Any] | None = None,
                    description_free: bool = True) -> dict[str, str]:
    """OpenImageIO attributes for a TIFF: ``Software``, ``IPTC:Instructions`` (written as the
    XMP ``photoshop:Instructions``: the facts as ``key=value`` items joined by ``"; "``) and,
    when ``description_free``, ``ImageDescription`` = the statement."""
    out = {"Software": SOFTWARE,
           "IPTC:Instructions": _key_value_text(provenance_attributes(extra))}
    if description_free:
        out["ImageDescription"] = SYNTHETIC_TEXT
    return out


def video_metadata(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Container metadata for PyAV (``container.metadata.update(...)`` before the first packet):
    ``comment`` and ``description`` (read by every player) plus every ``faceplate:*`` fact.
    MP4/MOV keep the non-iTunes keys only with ``movflags=+use_metadata_tags``; Matroska keeps
    them as tags (it upper-cases the names)."""
    attrs = provenance_attributes(extra)
    out = {"comment": SYNTHETIC_TEXT,
           "description": f"{SYNTHETIC_TEXT}; IPTC digital source type: "
                          f"{IPTC_DIGITAL_SOURCE_TYPE}"}
    out.update(attrs)
    return out


# --------------------------------------------------------------------------------------------
# PNG


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + ctype + body
            + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF))


def _itxt(keyword: str, text: str) -> bytes:
    # keyword NUL, compression flag 0, method 0, empty language NUL, empty translated key NUL
    body = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return _png_chunk(b"iTXt", body)


def png_with_provenance(png_bytes: bytes, extra: Mapping[str, Any] | None = None) -> bytes:
    """A PNG (any bit depth) with the facts as ``iTXt`` chunks and the XMP packet added after
    ``IHDR``; pixels and other chunks unchanged.

    Raises:
        ValueError: ``png_bytes`` is not a PNG starting with ``IHDR``.
    """
    if not png_bytes.startswith(_PNG_SIG) or png_bytes[12:16] != b"IHDR":
        raise ValueError("not a PNG (no signature / IHDR)")
    ihdr_end = 8 + 12 + struct.unpack(">I", png_bytes[8:12])[0]
    chunks = [_itxt(k, v) for k, v in provenance_attributes(extra).items()]
    chunks.append(_itxt(PNG_XMP_KEY, xmp_packet(extra)))
    return png_bytes[:ihdr_end] + b"".join(chunks) + png_bytes[ihdr_end:]


def png_text_chunks(data: bytes) -> dict[str, str]:
    """Every ``tEXt``/``iTXt``/``zTXt`` chunk of PNG bytes as ``{keyword: text}`` (first wins);
    stops at ``IEND`` or at a truncated chunk."""
    out: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length or ctype == b"IEND":
            break
        try:
            if ctype == b"tEXt":
                key, text = body.split(b"\x00", 1)
                out.setdefault(key.decode("latin-1"), text.decode("latin-1"))
            elif ctype == b"zTXt":
                key, rest = body.split(b"\x00", 1)
                out.setdefault(key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1"))
            elif ctype == b"iTXt":
                key, rest = body.split(b"\x00", 1)
                comp = rest[0]
                _lang, _tkey, text = rest[2:].split(b"\x00", 2)
                raw = zlib.decompress(text) if comp else text
                out.setdefault(key.decode("latin-1"), raw.decode("utf-8"))
        except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
            pass  # a malformed text chunk is not ours; keep reading
        pos += 12 + length
    return out


# --------------------------------------------------------------------------------------------
# JPEG


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) > _JPEG_MAX_SEGMENT:
        raise ValueError(f"JPEG segment payload too large ({len(payload)} bytes)")
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of each marker segment before the scan (``SOS``)."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG (no SOI marker)")
    out = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        out.append((marker, pos, pos + 2 + length))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    return out


def jpeg_with_provenance(jpeg_bytes: bytes, extra: Mapping[str, Any] | None = None) -> bytes:
    """A JPEG with an ``APP1`` XMP segment and a ``COM`` segment (each fact as ``key=value``,
    joined by ``"; "``) added after ``SOI`` and a leading ``APP0``; the scan
    data unchanged.

    Raises:
        ValueError: not a JPEG.
    """
    segments = _jpeg_segments(jpeg_bytes)
    insert = 2
    if segments and segments[0][0] == 0xE0:  # keep JFIF APP0 first, as JFIF requires
        insert = segments[0][2]
    attrs = provenance_attributes(extra)
    comment = _key_value_text(attrs).encode("utf-8")
    new = (_segment(0xE1, JPEG_XMP_HEADER + xmp_packet(extra).encode("utf-8"))
           + _segment(0xFE, comment))
    return jpeg_bytes[:insert] + new + jpeg_bytes[insert:]


def jpeg_texts(data: bytes) -> tuple[list[str], list[str]]:
    """(XMP packets, ``COM`` texts) of JPEG bytes (``([], [])`` when malformed)."""
    xmps: list[str] = []
    comments: list[str] = []
    try:
        segments = _jpeg_segments(data)
    except ValueError:
        return xmps, comments
    for marker, start, end in segments:
        payload = data[start + 4:end]
        if marker == 0xE1 and payload.startswith(JPEG_XMP_HEADER):
            xmps.append(payload[len(JPEG_XMP_HEADER):].decode("utf-8", "replace"))
        elif marker == 0xFE:
            comments.append(payload.decode("utf-8", "replace"))
    return xmps, comments


# --------------------------------------------------------------------------------------------
# Reading


def _key_value_text(attrs: Mapping[str, str]) -> str:
    """``key=value`` items joined by ``"; "`` (TIFF XMP turns newlines into spaces)."""
    return "; ".join(f"{k}={v}" for k, v in attrs.items())


def _key_value_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in re.split(r";\s*(?=faceplate:)|\n", text):
        key, sep, value = line.partition("=")
        if sep and key.startswith(PREFIX):
            out.setdefault(key, value)
    return out


def _read_oiio(path: Path) -> dict[str, str]:
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise InputError(f"cannot read the image header ({oiio.geterror().strip()})", path)
    try:
        attribs = {a.name: a.value for a in inp.spec().extra_attribs}
    finally:
        inp.close()
    out = {k: str(v) for k, v in attribs.items() if k.startswith(PREFIX)}
    instructions = attribs.get("IPTC:Instructions")
    if isinstance(instructions, str):
        for k, v in _key_value_lines(instructions).items():
            out.setdefault(k, v)
    return out


def _read_video(path: Path) -> dict[str, str]:
    import av

    try:
        with av.open(str(path), mode="r") as container:
            meta = dict(container.metadata)
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"cannot read the video container ({err})", path) from None
    lower = {k.lower(): k for k in meta}
    out: dict[str, str] = {}
    for low, key in lower.items():
        if low.startswith(PREFIX):
            # Matroska upper-cases tag names: restore the canonical spelling where known.
            canon = {KEY_SYNTHETIC.lower(): KEY_SYNTHETIC, KEY_SOURCE_TYPE.lower():
                     KEY_SOURCE_TYPE, KEY_SOFTWARE.lower(): KEY_SOFTWARE}.get(low, low)
            out[canon] = str(meta[key])
    return out


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """Faceplate's provenance facts in a PNG, JPEG, EXR, TIFF or video file.

    Args:
        path: The file.

    Returns:
        ``None`` when the file carries no ``faceplate:synthetic`` statement, else
        ``{"format": "png"|"jpeg"|"exr"|"tiff"|"video", "synthetic": text,
        "digital_source_type": URI or None, "software": text or None, "attributes":
        {"faceplate:<name>": text, …}, "xmp": whether an XMP packet with the IPTC digital
        source type was found (PNG/JPEG)}``.

    Raises:
        InputError: the file is missing or unreadable.
        UnsupportedFormatError: an extension none of these formats has.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", p)
    ext = p.suffix.lower()
    xmp_facts: dict[str, str] = {}
    attrs: dict[str, str]
    if ext in PNG_EXTS or ext in JPEG_EXTS:
        try:
            data = p.read_bytes()
        except OSError as err:
            raise InputError(f"cannot read the file ({err.strerror or err})", p) from None
        if ext in PNG_EXTS:
            if not data.startswith(_PNG_SIG):
                raise InputError("not a PNG file", p)
            texts = png_text_chunks(data)
            attrs = {k: v for k, v in texts.items() if k.startswith(PREFIX)}
            if PNG_XMP_KEY in texts:
                xmp_facts = parse_xmp(texts[PNG_XMP_KEY])
            fmt = "png"
        else:
            if not data.startswith(b"\xff\xd8"):
                raise InputError("not a JPEG file", p)
            xmps, comments = jpeg_texts(data)
            attrs = {}
            for text in comments:
                for k, v in _key_value_lines(text).items():
                    attrs.setdefault(k, v)
            for text in xmps:
                for k, v in parse_xmp(text).items():
                    xmp_facts.setdefault(k, v)
            fmt = "jpeg"
        for k, v in xmp_facts.items():
            if k.startswith(PREFIX):
                attrs.setdefault(k, v)
    elif ext in EXR_EXTS or ext in TIFF_EXTS:
        attrs = _read_oiio(p)
        fmt = "exr" if ext in EXR_EXTS else "tiff"
    elif ext in VIDEO_EXTS:
        attrs = _read_video(p)
        fmt = "video"
    else:
        raise UnsupportedFormatError(
            "provenance metadata is read from .png, .jpg/.jpeg, .exr, .tif/.tiff, "
            f".mp4/.m4v/.mov/.mkv files, not {ext or '(no extension)'}", p)
    if KEY_SYNTHETIC not in attrs:
        return None
    return {
        "format": fmt,
        "synthetic": attrs[KEY_SYNTHETIC],
        "digital_source_type": (xmp_facts.get("Iptc4xmpExt:DigitalSourceType")
                                or attrs.get(KEY_SOURCE_TYPE)),
        "software": attrs.get(KEY_SOFTWARE),
        "model_profile": attrs.get(KEY_PROFILE),
        "attributes": attrs,
        "xmp": "Iptc4xmpExt:DigitalSourceType" in xmp_facts,
    }


__all__ = [
    "IPTC_DIGITAL_SOURCE_TYPE",
    "KEY_PROFILE",
    "KEY_SOFTWARE",
    "KEY_SOURCE_TYPE",
    "KEY_SYNTHETIC",
    "SOFTWARE",
    "SYNTHETIC_TEXT",
    "TOOL_NAME",
    "TOOL_VERSION",
    "exr_attributes",
    "jpeg_with_provenance",
    "parse_xmp",
    "png_with_provenance",
    "provenance_attributes",
    "read_provenance",
    "tiff_attributes",
    "video_metadata",
    "xmp_packet",
]
