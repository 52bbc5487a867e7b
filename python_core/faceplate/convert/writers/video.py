"""Video writer (``video``): H.264 / H.265 through PyAV, audio copied from the source.

Encoders: exactly those of ``libx264`` and ``libx265`` that this PyAV build lists in
``av.codecs_available`` (:data:`VIDEO_ENCODERS`); CRF rate control with an x264/x265 preset; pixel
formats 4:2:0 / 4:2:2 / 4:4:4, 8- or 10-bit, where the encoder supports them. Containers:
``.mp4``, ``.m4v``, ``.mov``, ``.mkv``.

Pixels: float frames (display sRGB, or scene-linear when ``input_space="linear"``: converted with
:func:`~faceplate.core.colorspace.linear_to_srgb`) are clipped to [0, 1], rounded to 8-bit codes
(16-bit codes for 10-bit pixel formats) and converted to Y'CbCr with the BT.709 matrix, limited
range; the stream is tagged BT.709 (primaries, transfer and matrix), so players and
:func:`faceplate.io.media.open_source` decode the same colours.

Timing: given a source video, the output takes its video stream's exact ``average_rate`` and
``time_base``, and frame ``index`` gets the presentation timestamp of the source's frame ``index``
(frames past the source's end continue at the average rate), so cuts and variable-rate footage keep
their timing and the copied audio stays in sync. Without a source video the rate is ``fps`` (NTSC
rates such as 23.976 become 24000/1001) and frame ``index`` is at ``index / rate``. Indices must
increase; gaps leave gaps in time. One written frame is one encoded frame: the frame count is kept.

Audio (``audio="copy"``, the default): the source's first audio stream is remuxed packet by packet
without re-encoding when the output container can hold its codec (``container.supported_codecs``),
else it is decoded and re-encoded to AAC (``audio_bitrate`` kbit/s); ``"aac"`` always re-encodes,
``"none"`` drops it. Only the audio that overlaps the written frames' time span is kept (a frame
range keeps its own stretch of sound). Audio packets are interleaved with the video as it is
written.

Provenance (always, no option turns it off): the container carries the statement that a face was
synthetically replaced (:func:`faceplate.provenance.metadata.video_metadata`: ``comment``,
``description`` and ``faceplate:*`` keys, MP4/MOV written with ``movflags=+use_metadata_tags`` so
the custom keys are kept), plus whatever the first :meth:`~VideoWriter.write` passes as
``extra["provenance"]`` (e.g. ``{"model_id": ...}``). The signed C2PA manifest is added after the
file is finished (:func:`faceplate.provenance.c2pa_sign.sign_outputs`).

Crash behaviour: the video is written to ``<stem>.partial<ext>`` next to the output and moved onto
the output name by :meth:`VideoWriter.close`, so a file under the output name is always a finished,
valid container. ``close`` runs on leaving a ``with`` block even when an exception ends it (the
frames written so far become a valid, shorter video), is idempotent, and always releases the
files. If the process is killed (SIGKILL, power loss) before ``close``, only the ``.partial`` file
remains: a plain MP4/MOV is then unreadable (its index, the ``moov`` atom, is written at close);
with ``fragmented=True`` (MP4/MOV) or with ``.mkv``, it is readable up to the last fragment /
cluster written. Closing without having written any frame leaves no file.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from faceplate.convert.writers.base import (
    WRITERS,
    FrameWriter,
    InputSpace,
    as_float32,
    prepare_folder,
    quantize,
    to_display,
)
from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, OutputError
from faceplate.core.types import FrameInfo
from faceplate.io.media import is_video
from faceplate.provenance.metadata import video_metadata

#: H.264/H.265 encoders present in this PyAV build, in order of preference.
VIDEO_ENCODERS: tuple[str, ...] = tuple(
    c for c in ("libx264", "libx265") if c in av.codecs_available)
#: Output containers the video writer accepts (lower-case extensions).
VIDEO_CONTAINERS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv")
#: Pixel formats offered (each checked against the chosen encoder).
PIX_FMTS: tuple[str, ...] = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le",
                             "yuv444p10le")

Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow"]
AudioMode = Literal["copy", "aac", "none"]

_BT709 = 1  # AVCOL_PRI_BT709 = AVCOL_TRC_BT709 = AVCOL_SPC_BT709
_RANGE_MPEG = 1  # AVCOL_RANGE_MPEG (limited / "tv" range)


def encoder_pix_fmts(codec: str) -> tuple[str, ...]:
    """The pixel formats of :data:`PIX_FMTS` that encoder ``codec`` accepts."""
    formats = {f.name for f in (av.Codec(codec, "w").video_formats or ())}
    return tuple(p for p in PIX_FMTS if p in formats)


def rate_from_fps(fps: float) -> Fraction:
    """A frame rate as an exact fraction: NTSC rates (23.976, 29.97, 59.94…) → n·1000/1001."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 5e-3:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class VideoConfig(Config):
    """Options of the ``video`` writer."""

    codec: str = option(VIDEO_ENCODERS[0] if VIDEO_ENCODERS else "libx264",
                        "Video encoder (those this PyAV build has).", choices=VIDEO_ENCODERS)
    crf: int = option(18, "Constant rate factor: lower is better quality (0 = lossless 8-bit "
                      "x264; 18 is visually lossless).", minimum=0, maximum=51)
    preset: Preset = option("medium", "Encoder speed / compression trade-off.")
    pix_fmt: str = option("yuv420p", "Pixel format: chroma subsampling and bit depth.",
                          choices=PIX_FMTS)
    keyint: int = option(0, "Maximum frames between keyframes (0: the encoder's default).",
                         minimum=0, maximum=10000)
    audio: AudioMode = option("copy", "Audio from the source: copy (re-encode to AAC when the "
                              "container cannot hold it), aac, or none.")
    audio_bitrate: int = option(192, "AAC bit rate in kbit/s when audio is re-encoded.",
                                minimum=32, maximum=512)
    fragmented: bool = option(False, "MP4/MOV: write fragments so a killed run leaves a "
                              "readable partial file.")
    encoder_threads: int = option(
        0, "Encoder threads (0: automatic; convert uses 1 when its swap jobs already have a "
        "core each, else the encoder's own count).", minimum=0, maximum=64)
    input_space: InputSpace = option(
        "srgb", "Colour space of the frames given: display 'srgb' in [0, 1] or scene 'linear'.")

    def __post_init__(self) -> None:
        if self.codec not in VIDEO_ENCODERS:
            have = ", ".join(VIDEO_ENCODERS) or "none"
            raise ConfigError(f"codec: {self.codec!r} is not available; H.264/H.265 encoders in "
                              f"this PyAV build (av.codecs_available): {have}")
        super().__post_init__()
        allowed = encoder_pix_fmts(self.codec)
        if self.pix_fmt not in allowed:
            raise ConfigError(f"pix_fmt: {self.codec} cannot encode {self.pix_fmt}; choose one "
                              f"of: {', '.join(allowed)}")


@dataclass
class _SourceTiming:
    rate: Fraction
    time_base: Fraction
    pts: list[int]


def _probe_source(path: Path) -> tuple[_SourceTiming | None, bool]:
    """(timing of the first video stream, whether there is an audio stream) of a video file."""
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError):
        return None, False
    try:
        has_audio = bool(container.streams.audio)
        if not container.streams.video:
            return None, has_audio
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        tb = stream.time_base
        if not rate or not tb:
            return None, has_audio
        pts: list[int] = []
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0 or pkt.is_discard:
                    continue
                if pkt.pts is None:
                    pts = []
                    break
                pts.append(int(pkt.pts))
        except av.error.FFmpegError:
            pts = []
        pts.sort()
        if len(set(pts)) != len(pts):
            pts = []
        return _SourceTiming(Fraction(rate), Fraction(tb), pts), has_audio
    finally:
        container.close()


def _can_remux(stream: Any, out: Any) -> bool:
    """Whether ``out``'s container format accepts ``stream``'s packets as they are: the codec is
    listed for the format and a header with it can be written (tried on a scratch container
    in memory, since some listed codecs are refused, e.g. Vorbis in MP4)."""
    if stream.codec_context.name not in out.supported_codecs:
        return False
    try:
        with av.open(io.BytesIO(), mode="w", format=out.format.name) as scratch:
            scratch.add_stream_from_template(stream)
            scratch.start_encoding()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


class _AudioPump:
    """Feeds the source's audio into the output, in time order, up to a given time."""

    def __init__(self, source: Path, out: Any, mode: AudioMode, bitrate_kbps: int) -> None:
        self.input = av.open(str(source), mode="r")
        self.in_stream = self.input.streams.audio[0]
        self.copy = mode == "copy" and _can_remux(self.in_stream, out)
        self.out = out
        if self.copy:
            self.out_stream = out.add_stream_from_template(self.in_stream)
        else:
            cc = self.in_stream.codec_context
            self.out_stream = out.add_stream("aac", rate=cc.sample_rate)
            self.out_stream.layout = cc.layout
            self.out_stream.bit_rate = int(bitrate_kbps) * 1000
        self.tb = Fraction(self.in_stream.time_base
                           or Fraction(1, self.in_stream.codec_context.sample_rate or 48000))
        self._packets: Iterator[Any] = iter(self.input.demux(self.in_stream))
        self._pending: Any = None
        self.t0: float | None = None
        self.done = False

    def _next(self) -> Any:
        if self._pending is not None:
            pkt, self._pending = self._pending, None
            return pkt
        if self.done:
            return None
        for pkt in self._packets:
            if pkt.size == 0 or pkt.pts is None:
                continue
            return pkt
        self.done = True
        return None

    def pump(self, until: float) -> None:
        """Mux every source packet that starts before ``until`` seconds (and ends after the
        first video frame's time ``t0``)."""
        while True:
            pkt = self._next()
            if pkt is None:
                return
            start = float(pkt.pts * self.tb)
            if start >= until:
                self._pending = pkt
                return
            end = start + float((pkt.duration or 0) * self.tb)
            if self.t0 is not None and end <= self.t0 and pkt.duration:
                continue
            if self.copy:
                pkt.stream = self.out_stream
                self.out.mux(pkt)
            else:
                for frame in pkt.decode():
                    frame.pts = None
                    self.out.mux(self.out_stream.encode(frame))

    def finish(self, until: float) -> None:
        self.pump(until)
        if not self.copy:
            self.out.mux(self.out_stream.encode(None))

    def close(self) -> None:
        self.input.close()


#: Frame widths whose packed RGB rows need no padding in FFmpeg's own frame buffers (it pads
#: each row to a multiple of 16 pixels).
_ROW_PIXELS = 16


def _packed_frame(rgb: np.ndarray, fmt: Literal["rgb24", "rgb48le"]) -> Any:
    """An ``av.VideoFrame`` holding H×W×3 packed RGB (``uint8`` for ``rgb24``, ``uint16`` for
    ``rgb48le``), for swscale to convert.

    When W is a multiple of :data:`_ROW_PIXELS` the frame is a view of the (C-contiguous)
    array itself: its rows are laid out exactly as in the buffer ``from_ndarray`` would fill,
    so swscale reads the same bytes in the same layout and the Y'CbCr is bit for bit the same
    (``tests/unit/test_video_writer.py``), without ``from_ndarray``'s two copies of the frame
    (one to ``bytes``, one into the buffer). Other widths are copied with ``from_ndarray``: with
    padded rows swscale takes other code paths, whose output differs.
    """
    arr = np.ascontiguousarray(rgb)
    if arr.shape[1] % _ROW_PIXELS == 0:
        return av.VideoFrame.from_numpy_buffer(arr, format=fmt)
    return av.VideoFrame.from_ndarray(arr, format=fmt)


@WRITERS.register("video", config=VideoConfig)
class VideoWriter(FrameWriter):
    """Video file: H.264/H.265 (CRF, preset, 4:2:0/4:4:4, 8/10-bit), source rate and audio kept."""

    strictly_increasing = True
    takes_uint8 = True

    def __init__(self, cfg: VideoConfig) -> None:
        super().__init__(cfg)
        self.cfg: VideoConfig = cfg
        self.partial: Path | None = None
        self.rate = Fraction(25)
        self.time_base = Fraction(1, 25)
        self.audio_copied: bool | None = None  #: True remuxed, False re-encoded, None no audio
        self._container: Any = None
        self._stream: Any = None
        self._timing: _SourceTiming | None = None
        self._audio: _AudioPump | None = None
        self._step = 1
        self._last_end = 0.0
        self._ten_bit = cfg.pix_fmt.endswith("10le")

    # -- open --------------------------------------------------------------------------------

    def _open(self) -> None:
        assert self.path is not None
        out = self.path
        if out.suffix.lower() not in VIDEO_CONTAINERS:
            raise ConfigError(f"unsupported video container {out.suffix or '(no extension)'!r}; "
                              f"choose one of: {', '.join(VIDEO_CONTAINERS)}", out)
        if out.is_dir():
            raise OutputError("output is a folder, not a video file name", out)
        fmt = self.cfg.pix_fmt
        if fmt.startswith(("yuv420", "yuv422")) and self.width % 2:
            raise ConfigError(f"{fmt} needs an even width, got {self.width}; use yuv444p", out)
        if fmt.startswith("yuv420") and self.height % 2:
            raise ConfigError(f"{fmt} needs an even height, got {self.height}; use yuv444p", out)
        prepare_folder(out.parent)
        has_audio = False
        if self.source is not None and is_video(self.source) and self.source.is_file():
            self._timing, has_audio = _probe_source(self.source)
        if self._timing is not None:
            self.rate, self.time_base = self._timing.rate, self._timing.time_base
        elif self.fps is not None:
            self.rate = rate_from_fps(self.fps)
            self.time_base = 1 / self.rate
        else:
            raise ValueError("the video writer needs fps or a source video for the frame rate")
        self._step = max(1, round(1 / (self.rate * self.time_base)))
        self.partial = out.with_name(f"{out.stem}.partial{out.suffix}")
        options: dict[str, str] = {}
        if out.suffix.lower() in (".mp4", ".m4v", ".mov"):
            # use_metadata_tags: keep the provenance keys (not only the iTunes set) in the file
            options["movflags"] = "+use_metadata_tags"
            if self.cfg.fragmented:
                options["movflags"] += "+frag_keyframe+empty_moov+default_base_moof"
                options["flush_packets"] = "1"  # hand each fragment to the OS as it is finished
        try:
            with contextlib.suppress(FileNotFoundError):
                self.partial.unlink()
            self._container = av.open(str(self.partial), mode="w", options=options)
        except (av.error.FFmpegError, OSError) as err:
            raise OutputError(f"cannot create the video file ({err})", self.partial) from None
        try:
            self._container.metadata.update(video_metadata())
            self._add_video_stream()
            if has_audio and self.cfg.audio != "none":
                assert self.source is not None
                self._audio = _AudioPump(self.source, self._container, self.cfg.audio,
                                         self.cfg.audio_bitrate)
                self.audio_copied = self._audio.copy
        except Exception:
            self._abort()
            raise

    def _add_video_stream(self) -> None:
        stream = self._container.add_stream(self.cfg.codec, rate=self.rate)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.cfg.pix_fmt
        stream.time_base = self.time_base
        cc = stream.codec_context
        cc.time_base = self.time_base
        cc.color_primaries = _BT709
        cc.color_trc = _BT709
        cc.colorspace = _BT709
        cc.color_range = _RANGE_MPEG
        if self.cfg.keyint:
            cc.gop_size = self.cfg.keyint
        opts = {"crf": str(self.cfg.crf), "preset": self.cfg.preset}
        if self.cfg.codec == "libx265":
            opts["x265-params"] = "log-level=error"
            if self.cfg.encoder_threads:  # x265 keeps a frame thread beside its pool
                n = self.cfg.encoder_threads
                opts["x265-params"] += f":pools={n}" + (":frame-threads=1" if n == 1 else "")
        elif self.cfg.encoder_threads:
            opts["x264-params"] = f"threads={self.cfg.encoder_threads}"
        stream.options = opts
        self._stream = stream

    # -- write -------------------------------------------------------------------------------

    def pts_for(self, index: int) -> int:
        """Presentation timestamp (in :attr:`time_base` units) of output frame ``index``."""
        pts = self._timing.pts if self._timing is not None else []
        if pts and index < len(pts):
            return pts[index]
        if pts:
            return pts[-1] + (index - len(pts) + 1) * self._step
        return index * self._step

    def _to_video_frame(self, frame: np.ndarray) -> Any:
        if frame.dtype == np.uint8:  # display-sRGB codes (see takes_uint8): use them as they are
            if self._ten_bit or self.cfg.input_space != "srgb":
                frame = as_float32(frame)
            else:
                return _packed_frame(frame[..., :3], "rgb24").reformat(
                    format=self.cfg.pix_fmt, dst_colorspace="itu709", dst_color_range="MPEG")
        rgb = to_display(frame[..., :3], self.cfg.input_space)
        vf = (_packed_frame(quantize(rgb, 16), "rgb48le") if self._ten_bit
              else _packed_frame(quantize(rgb, 8), "rgb24"))
        return vf.reformat(format=self.cfg.pix_fmt, dst_colorspace="itu709",
                           dst_color_range="MPEG")

    def _write(self, index: int, frame: np.ndarray, info: FrameInfo | None,
               extra: dict[str, Any]) -> None:
        if self.frames_written == 0 and extra.get("provenance"):
            # The header (with the metadata) is written with the first packet: still in time.
            self._container.metadata.update(video_metadata(extra["provenance"]))
        vf = self._to_video_frame(frame)
        pts = self.pts_for(index)
        vf.pts = pts
        vf.time_base = self.time_base
        t = float(pts * self.time_base)
        try:
            if self._audio is not None:
                if self._audio.t0 is None:
                    self._audio.t0 = t
                self._audio.pump(t)  # audio up to this frame; the rest at close
            self._container.mux(self._stream.encode(vf))
        except (av.error.FFmpegError, OSError) as err:
            raise OutputError(f"cannot write video frame {index} ({err})", self.partial) from None
        self._last_end = t + float(self._step * self.time_base)

    # -- close -------------------------------------------------------------------------------

    def _abort(self) -> None:
        """Release everything without finalising (open failed)."""
        with contextlib.suppress(Exception):
            if self._audio is not None:
                self._audio.close()
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        if self.partial is not None:
            with contextlib.suppress(OSError):
                self.partial.unlink()
        self._container = self._audio = None

    def _close(self) -> None:
        assert self.path is not None and self.partial is not None
        if self.frames_written == 0:
            self._abort()
            return
        error: BaseException | None = None
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(self._last_end)
        except (av.error.FFmpegError, OSError) as err:
            error = err
        finally:
            with contextlib.suppress(Exception):
                if self._audio is not None:
                    self._audio.close()
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as err:
                error = error or err
            self._container = self._audio = None
        if error is not None:
            raise OutputError(f"cannot finish the video ({error}); the frames written so far "
                              "are in the partial file", self.partial)
        try:
            os.replace(self.partial, self.path)
        except OSError as err:
            raise OutputError(f"cannot move the finished video into place "
                              f"({err.strerror or err})", self.path) from None
        self.written.append(self.path)
