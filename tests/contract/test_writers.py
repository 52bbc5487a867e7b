"""Contract tests over every WRITERS entry: files re-read with the same count, size, frame numbers
and values within each format's precision; errors; crash safety (a SIGKILLed writer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from faceplate.convert.writers import (
    VIDEO_ENCODERS,
    WRITERS,
    ImagesConfig,
    MasksConfig,
    PatchConfig,
    PatchFace,
    VideoConfig,
    read_patch,
)
from faceplate.convert.writers.base import quantize
from faceplate.core.colorspace import linear_to_srgb
from faceplate.core.errors import ConfigError, OutputError
from faceplate.core.types import FrameInfo
from faceplate.io.media import decode_image, open_source

W, H = 322, 180  # odd-looking size: catches H/W swaps (and stays even for 4:2:0 video)
N = 5
FIRST_NUMBER = 1001  # frame numbers differ from indices: names must follow the numbers


def _smooth_frames(n: int, seed: int, lo: float = 0.0, hi: float = 1.0,
                   channels: int = 3) -> list[np.ndarray]:
    """Smooth float32 frames (gradients + waves + a little noise) spanning [lo, hi]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        base = np.stack([xx / W, yy / H, 0.5 + 0.5 * np.sin(xx / 17.0 + yy / 23.0 + i)], axis=2)
        if channels == 4:
            base = np.concatenate([base, (0.5 + 0.5 * np.cos(xx / 31.0))[..., None]], axis=2)
        noisy = base + rng.normal(0.0, 0.01, base.shape)
        out.append((lo + (hi - lo) * np.clip(noisy, 0.0, 1.0)).astype(np.float32))
    return out


def _info(i: int, name: str = "plate") -> FrameInfo:
    return FrameInfo(i, f"{name}_{i:06d}", None, W, H, FIRST_NUMBER + i)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def _make_clip(path: Path, *, n: int = 24, rate: Fraction = Fraction(25), audio: bool = True,
               size: tuple[int, int] = (W, H), acodec: str = "aac", sr: int = 48000,
               start: int = 3) -> None:
    """A small H.264 clip, with a 440 Hz stereo sine track (``acodec``) when ``audio``."""
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=rate)
    v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
    v.options = {"preset": "ultrafast"}
    a = None
    if audio:
        a = c.add_stream(acodec, rate=sr)
        a.layout = "stereo"
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts = i + start  # a start offset: timestamps are not simply index / rate
        c.mux(v.encode(vf))
    c.mux(v.encode(None))
    if a is not None:
        total, s = int(n / rate * sr), 0
        sample_fmt = a.codec_context.format.name
        while s < total:
            k = min(1024, total - s)
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(s, s + k) / sr)).astype(np.float32)
            if sample_fmt == "fltp":
                arr = np.stack([x, x])
            else:  # packed s16 (PCM)
                arr = (np.stack([x, x], axis=1).reshape(1, -1) * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(arr, format=sample_fmt, layout="stereo")
            af.sample_rate, af.pts = sr, s
            c.mux(a.encode(af))
            s += k
        c.mux(a.encode(None))
    c.close()


@pytest.fixture(scope="module")
def clip_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("src") / "talk.mp4"
    _make_clip(p, audio=True)
    return p


@pytest.fixture(scope="module")
def clip_silent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("src") / "silent.mov"
    _make_clip(p, audio=False, rate=Fraction(24000, 1001))
    return p


# --------------------------------------------------------------------------------------------
# One round-trip case per registry entry (and per image format)


def _case_images(fmt: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        float_fmt = fmt.startswith(("exr", "tiff"))
        frames = _smooth_frames(N, 1, *((-0.5, 3.0) if float_fmt else (0.0, 1.0)))
        w = WRITERS.create("images", ImagesConfig(format=fmt))
        with w.open(tmp / "out", width=W, height=H, frame_count_hint=N,
                    source=Path("/plates/shot_010.mov")):
            for i, f in enumerate(frames):
                before = f.copy()
                w.write(i, f, _info(i))
                assert np.array_equal(f, before), "the writer modified its input"
        assert len(w.written) == N and all(p.name.startswith("shot_010_") for p in w.written)
        with open_source(tmp / "out") as src:
            assert (src.total_frames, src.width, src.height) == (N, W, H)
            got = list(src)
            assert not src.errors
        assert [f.info.frame_number for f in got] == [FIRST_NUMBER + i for i in range(N)]
        for i, f in enumerate(frames):
            path = w.written[i]
            if fmt in ("png8", "png16"):
                codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
                scale = 255.0 if fmt == "png8" else 65535.0
                assert codes.dtype == (np.uint8 if fmt == "png8" else np.uint16)
                err = np.abs(codes / scale - np.clip(f, 0, 1)).max()
                assert err <= 0.5 / scale + 1e-6
            elif fmt == "jpeg":
                assert _psnr(got[i].rgb / 255.0, f) > 33.0
            else:
                lin = decode_image(path).linear
                assert lin is not None and lin.dtype == np.float32
                if fmt == "exr-half":
                    tol = np.abs(f) * 2.0**-11 + 2.0**-24
                    assert np.all(np.abs(lin - f) <= tol)
                else:
                    assert np.array_equal(lin, f)  # float EXR/TIFF: exact
    return run


def _case_masks(fmt: str) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        float_fmt = fmt.startswith("exr")
        masks = [f[..., 0] for f in _smooth_frames(N, 2)]
        if float_fmt:
            masks[1] = masks[1] * 2.0 - 0.5  # values as given, outside [0, 1] too
        w = WRITERS.create("masks", MasksConfig(format=fmt))
        with w.open(tmp / "mattes", width=W, height=H):
            for i, m in enumerate(masks):
                w.write(i, m if i % 2 else m[..., None], _info(i))
        with open_source(tmp / "mattes") as src:
            assert (src.total_frames, src.width, src.height) == (N, W, H)
            assert [f.info.frame_number for f in src] == [FIRST_NUMBER + i for i in range(N)]
        for i, m in enumerate(masks):
            path = w.written[i]
            if float_fmt:
                inp = oiio.ImageInput.open(str(path))
                assert inp.spec().nchannels == 1
                back = np.asarray(inp.read_image(0, 0, 0, 1, oiio.FLOAT))[..., 0]
                inp.close()
                tol = 0.0 if fmt == "exr-float" else 2.0**-11
                assert np.all(np.abs(back - m) <= np.abs(m) * tol + 2.0**-24)
            else:
                codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                assert codes.ndim == 2
                scale = 255.0 if fmt == "png8" else 65535.0
                assert np.abs(codes / scale - np.clip(m, 0, 1)).max() <= 0.5 / scale + 1e-6
    return run


def _patch_face(rng: np.random.Generator, x: float, y: float) -> PatchFace:
    s = 64
    face = rng.random((s, s, 3), dtype=np.float32)
    mask = np.clip(rng.random((s, s), dtype=np.float32) * 1.2, 0, 1)
    m = np.array([[1.5, 0.1, -x], [-0.1, 1.5, -y]])
    return PatchFace(face, mask, m)


def _case_patch(tmp: Path) -> None:
    rng = np.random.default_rng(3)
    frames = _smooth_frames(N, 3)
    faces: list[list[PatchFace]] = [[_patch_face(rng, 10.0 * i, 5.0)] for i in range(N)]
    extra_face = _patch_face(rng, 100.0, 50.0)  # two faces in one frame (one as a tuple)
    faces[2].append(extra_face)
    given: list[list[Any]] = [list(f) for f in faces]
    given[2][1] = (extra_face.face, extra_face.mask, extra_face.matrix)
    faces[3] = given[3] = []  # no face: a blank patch by default
    w = WRITERS.create("patch", PatchConfig())
    with w.open(tmp / "patches", width=W, height=H, source=Path("plate.mov")):
        for i, f in enumerate(frames):
            w.write(i, f, _info(i), extra={"faces": given[i]})
    with open_source(tmp / "patches" / "plate_face0_######.png") as src:
        assert src.total_frames == N and (src.width, src.height) == (64, 64)
        assert [f.info.frame_number for f in src] == [FIRST_NUMBER + i for i in range(N)]
    for i in range(N):
        for k, pf in enumerate(faces[i]):
            face, mask, matrix, meta = read_patch(
                tmp / "patches" / f"plate_face{k}_{FIRST_NUMBER + i:06d}.png")
            assert meta["frame_size"] == [W, H] and meta["frame_number"] == FIRST_NUMBER + i
            assert matrix is not None and np.array_equal(matrix, pf.matrix)
            assert np.abs(face - pf.face).max() <= 0.5 / 65535 + 1e-6
            assert np.abs(mask - pf.mask).max() <= 0.5 / 65535 + 1e-6
    _, mask, matrix, meta = read_patch(tmp / "patches" / f"plate_face0_{FIRST_NUMBER + 3:06d}.png")
    assert meta["empty"] and matrix is None and not mask.any()


def _case_video(tmp: Path, clip: Path) -> None:
    frames = _smooth_frames(N * 4, 4)
    w = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with w.open(tmp / "out.mp4", width=W, height=H, source=clip):
        for i, f in enumerate(frames):
            w.write(i, f, _info(i))
    with av.open(str(tmp / "out.mp4")) as c, av.open(str(clip)) as s:
        assert c.streams.video[0].average_rate == s.streams.video[0].average_rate
        assert len(c.streams.audio) == 1
        times = [sorted(float(p.pts * p.time_base) for p in x.demux(video=0) if p.size)
                 for x in (c, s)]
    assert np.allclose(times[0], times[1][:len(frames)], atol=1e-6)  # source timestamps kept
    with open_source(tmp / "out.mp4") as src:
        got = list(src)
        assert (len(got), src.width, src.height) == (len(frames), W, H)
    assert all(_psnr(g.rgb / 255.0, f) > 35.0 for g, f in zip(got, frames, strict=True))


CASES: dict[str, Callable[..., None]] = {
    **{f"images-{fmt}": _case_images(fmt) for fmt in
       ("png8", "png16", "jpeg", "exr-half", "exr-float", "tiff-float")},
    **{f"masks-{fmt}": _case_masks(fmt) for fmt in ("png8", "png16", "exr-half", "exr-float")},
    "patch": _case_patch,
    "video": _case_video,
}


def test_every_writer_has_a_round_trip_case() -> None:
    covered = {name.split("-")[0] for name in CASES}
    assert set(WRITERS.names()) <= covered, set(WRITERS.names()) - covered
    assert len(WRITERS) >= 4


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case: str, tmp_path: Path, clip_audio: Path) -> None:
    if case == "video":
        CASES[case](tmp_path, clip_audio)
    else:
        CASES[case](tmp_path)


# --------------------------------------------------------------------------------------------
# Errors, state


def _default_out(name: str, root: Path) -> Path:
    return root / "out.mp4" if name == "video" else root / "out"


def _frame_for(name: str) -> np.ndarray:
    return np.zeros((H, W) if name == "masks" else (H, W, 3), np.float32)


@pytest.mark.parametrize("name", WRITERS.names())
def test_unwritable_output_is_an_output_error(name: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    out = _default_out(name, blocker)
    with pytest.raises(OutputError) as err:
        WRITERS.create(name).open(out, width=W, height=H, fps=25.0)
    assert str(blocker) in str(err.value)


@pytest.mark.parametrize("name", WRITERS.names())
def test_wrong_frame_size_is_a_value_error_and_close_is_idempotent(name: str,
                                                                  tmp_path: Path) -> None:
    w = WRITERS.create(name)
    w.open(_default_out(name, tmp_path), width=W, height=H, fps=25.0)
    with pytest.raises(ValueError, match="322×180"):
        w.write(0, np.zeros((W, H, 3) if name != "masks" else (W, H), np.float32))
    with pytest.raises(ValueError):
        w.write(0, np.zeros((H, W, 2), np.float32))
    w.write(0, _frame_for(name))
    w.close()
    w.close()
    assert w.written
    with pytest.raises(RuntimeError):
        w.write(1, _frame_for(name))


def test_unknown_codec_lists_the_available_encoders() -> None:
    with pytest.raises(ConfigError) as err:
        VideoConfig(codec="libnothing")
    assert VIDEO_ENCODERS and all(c in str(err.value) for c in VIDEO_ENCODERS)
    assert set(VIDEO_ENCODERS) <= set(av.codecs_available)


def test_video_options_checked_against_the_encoder(tmp_path: Path) -> None:
    w = WRITERS.create("video")
    with pytest.raises(ConfigError, match="even"):
        w.open(tmp_path / "odd.mp4", width=101, height=99, fps=25.0)
    with pytest.raises(ConfigError, match="container"):
        WRITERS.create("video").open(tmp_path / "x.gif", width=W, height=H, fps=25.0)
    with pytest.raises(ConfigError, match="pattern"):
        ImagesConfig(pattern="{stem}")


# --------------------------------------------------------------------------------------------
# Video specifics


def _probe(path: Path) -> tuple[int, Fraction, int, float]:
    """(decoded frames, average rate, audio streams, audio seconds) of a file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = v.average_rate
        n_audio = len(c.streams.audio)
        secs = 0.0
        if n_audio:
            a = c.streams.audio[0]
            secs = sum(float((p.duration or 0) * a.time_base) for p in c.demux(a) if p.size)
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    return n, rate, n_audio, secs


def test_video_keeps_rate_frames_and_copies_audio(tmp_path: Path, clip_audio: Path) -> None:
    n_src = 24
    w = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with w.open(tmp_path / "o.mkv", width=W, height=H, source=clip_audio):
        for i, f in enumerate(_smooth_frames(n_src, 5)):
            w.write(i, f)
    assert w.audio_copied is True
    n, rate, n_audio, secs = _probe(tmp_path / "o.mkv")
    assert (n, rate, n_audio) == (n_src, Fraction(25), 1)
    # The source's audio runs 0…0.96 s, its video 0.12…1.08 s: the overlap is kept.
    assert abs(secs - (n_src - 3) / 25) < 0.05
    with av.open(str(tmp_path / "o.mkv")) as c, av.open(str(clip_audio)) as s:
        assert c.streams.audio[0].codec_context.name == s.streams.audio[0].codec_context.name


def test_video_reencodes_audio_the_container_cannot_hold(tmp_path: Path) -> None:
    src = tmp_path / "ulaw.mov"  # µ-law PCM: fine in MOV, refused by MP4
    _make_clip(src, n=12, acodec="pcm_mulaw", sr=8000)
    w = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with w.open(tmp_path / "o.mp4", width=W, height=H, source=src):
        for i, f in enumerate(_smooth_frames(12, 11)):
            w.write(i, f)
    assert w.audio_copied is False
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]
    assert _probe(tmp_path / "o.mp4")[0] == 12


def test_video_reencodes_audio_to_aac_and_keeps_ntsc_rate(tmp_path: Path,
                                                         clip_audio: Path,
                                                         clip_silent: Path) -> None:
    w = WRITERS.create("video", VideoConfig(preset="ultrafast", audio="aac"))
    with w.open(tmp_path / "aac.mp4", width=W, height=H, source=clip_audio):
        for i, f in enumerate(_smooth_frames(12, 6)):
            w.write(i, f)
    assert w.audio_copied is False
    n, _, n_audio, secs = _probe(tmp_path / "aac.mp4")
    assert (n, n_audio) == (12, 1) and secs > 0.4
    # A silent source: no audio stream; its NTSC rate is kept exactly.
    w = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with w.open(tmp_path / "silent.mp4", width=W, height=H, source=clip_silent):
        for i, f in enumerate(_smooth_frames(10, 7)):
            w.write(i, f)
    n, rate, n_audio, _ = _probe(tmp_path / "silent.mp4")
    assert (n, rate, n_audio) == (10, Fraction(24000, 1001), 0)
    # No source: the rate comes from fps (23.976 → 24000/1001); no audio.
    w = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with w.open(tmp_path / "fps.mp4", width=W, height=H, fps=23.976):
        for i, f in enumerate(_smooth_frames(7, 8)):
            w.write(i, f)
    assert _probe(tmp_path / "fps.mp4")[:3] == (7, Fraction(24000, 1001), 0)


def test_video_linear_input_ten_bit_and_444(tmp_path: Path) -> None:
    lin = np.clip(_smooth_frames(3, 9)[0], 0, 1) ** 2.2
    for fmt in ("yuv444p", "yuv420p10le"):
        w = WRITERS.create("video", VideoConfig(preset="ultrafast", pix_fmt=fmt,
                                                input_space="linear"))
        with w.open(tmp_path / f"{fmt}.mp4", width=W, height=H, fps=25.0):
            for i in range(3):
                w.write(i, lin)
        with open_source(tmp_path / f"{fmt}.mp4") as src:
            got = list(src)
        assert len(got) == 3
        assert _psnr(got[1].rgb / 255.0, linear_to_srgb(lin)) > 35.0


def test_video_finalises_on_exception_and_leaves_nothing_without_frames(tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    writer = WRITERS.create("video", VideoConfig(preset="ultrafast"))
    with pytest.raises(KeyError), writer.open(out, width=W, height=H, fps=25.0) as w:
        for i, f in enumerate(_smooth_frames(4, 10)):
            w.write(i, f)
        raise KeyError("converter failed")
    assert _probe(out)[0] == 4 and not out.with_name("broken.partial.mp4").exists()
    empty = tmp_path / "empty.mp4"
    WRITERS.create("video").open(empty, width=W, height=H, fps=25.0).close()
    assert not empty.exists() and not empty.with_name("empty.partial.mp4").exists()


# --------------------------------------------------------------------------------------------
# Crash safety: SIGKILL mid-sequence


_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from faceplate.convert.writers import WRITERS
    name, cfg_kw, out = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
    cls = WRITERS.config_class(name)
    w = WRITERS.create(name, cls(**cfg_kw))
    h, wd = 180, 322
    w.open(out, width=wd, height=h, fps=25.0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    for i in range(100000):
        f = np.stack([xx / wd, yy / h, np.full_like(xx, (i % 50) / 50)], 2)
        w.write(i, f + rng.normal(0, 0.01, f.shape).astype(np.float32))
        print(i, flush=True)
""")


def _run_and_kill(name: str, cfg: dict[str, Any], out: Path, after: int) -> int:
    """Start a writer in a child process, SIGKILL it once ``after`` frames are done."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, name, repr(cfg), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = -1
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    try:
        while done + 1 < after and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            done = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert done + 1 >= after, "the child writer did not get going"
    return done + 1


@pytest.mark.parametrize("fmt", ["png16", "exr-half"])
def test_killed_sequence_writer_leaves_only_valid_files(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / "seq"
    done = _run_and_kill("images", {"format": fmt}, out, after=6)
    with open_source(out) as src:
        frames = list(src)
        assert not src.errors  # every file under a final name decodes
    numbers = [f.info.frame_number for f in frames]
    assert len(numbers) >= done and numbers == list(range(len(numbers)))


def test_killed_video_writer_leaves_a_partial_file_only(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    cfg = {"preset": "ultrafast", "fragmented": True, "keyint": 5}
    done = _run_and_kill("video", cfg, out, after=30)
    partial = out.with_name("v.partial.mp4")
    assert not out.exists() and partial.exists()
    with av.open(str(partial)) as c:  # fragmented: readable up to the last fragment
        n = sum(1 for _ in c.decode(video=0))
    assert 5 <= n <= done + 5


def test_quantize_rounds_to_nearest_and_handles_non_finite() -> None:
    x = np.array([[-1.0, 0.0, 0.5 / 255 - 1e-4, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf]],
                 np.float32)
    assert quantize(x, 8).tolist() == [[0, 0, 0, 128, 255, 255, 0, 255, 0]]
    v = np.linspace(0, 1, 100001, dtype=np.float32)[None]
    assert np.abs(quantize(v, 16) / 65535.0 - v).max() <= 0.5 / 65535 + 1e-7


def test_video_takes_uint8_codes_exactly_as_their_float_equivalent(tmp_path: Path) -> None:
    """The uint8 fast path (8-bit footage in, 8-bit video out) encodes the same pictures."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:96, 0:128]
    base = np.stack([xs * 2, ys * 2, (xs + ys)], axis=-1).astype(np.float64)
    frames = [np.clip(base + rng.normal(0, 3, base.shape) + 10 * k, 0, 255).astype(np.uint8)
              for k in range(4)]
    decoded = {}
    for kind in ("u8", "f32"):
        out = tmp_path / f"{kind}.mp4"
        with WRITERS.create("video", VideoConfig(crf=0, preset="ultrafast")) as w:
            w.open(out, width=128, height=96, fps=24)
            for i, f in enumerate(frames):
                w.write(i, f if kind == "u8" else f.astype(np.float32) / 255.0)
        with av.open(str(out)) as c:
            decoded[kind] = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    assert len(decoded["u8"]) == len(decoded["f32"]) == 4
    for a, b in zip(decoded["u8"], decoded["f32"]):
        np.testing.assert_array_equal(a, b)
    # and the picture is the input (up to 4:2:0 chroma subsampling and BT.709 limited range)
    assert np.abs(decoded["u8"][0].astype(int) - frames[0].astype(int)).mean() < 3


@pytest.mark.parametrize("codec", VIDEO_ENCODERS)
def test_video_encoder_threads_are_applied(codec: str, tmp_path: Path) -> None:
    """``encoder_threads`` 1 encodes in the writer's own thread (x264: no encoder thread at
    all; x265: one worker beside its frame thread), as convert runs it when its swap jobs fill
    the cores; 4 starts the encoder's pool; both give the same lossless pictures."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (128, 192, 3), np.uint8) for _ in range(6)]
    decoded = {}
    started = {}
    for threads in (1, 4):
        out = tmp_path / f"t{threads}.mkv"
        opts: dict[str, Any] = {"crf": 0} if codec == "libx264" else {"pix_fmt": "yuv444p"}
        cfg = VideoConfig(codec=codec, preset="ultrafast", encoder_threads=threads, **opts)
        before = len(os.listdir("/proc/self/task"))
        with WRITERS.create("video", cfg) as w:
            w.open(out, width=192, height=128, fps=24)
            for i, f in enumerate(frames):
                w.write(i, f)
            started[threads] = len(os.listdir("/proc/self/task")) - before
        with av.open(str(out)) as c:
            decoded[threads] = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    assert started[1] == (0 if codec == "libx264" else 2) and started[4] > started[1], started
    assert len(decoded[1]) == len(decoded[4]) == len(frames)
    if codec == "libx264":  # lossless: the pictures themselves
        for a, b in zip(decoded[1], decoded[4], strict=True):
            np.testing.assert_array_equal(a, b)


def test_convert_resolves_automatic_encoder_threads() -> None:
    """Convert gives the encoder one thread when its swap jobs already have a core each, and
    leaves it to the encoder (0) when cores are left over; an explicit count is kept."""
    from faceplate.convert.run import encoder_threads

    auto = VideoConfig(preset="ultrafast")
    assert encoder_threads(auto, 2, 2).encoder_threads == 1
    assert encoder_threads(auto, 2, 3).encoder_threads == 1
    assert encoder_threads(auto, 1, 1).encoder_threads == 1
    assert encoder_threads(auto, 2, 16).encoder_threads == 0
    assert encoder_threads(auto, 1, 2).encoder_threads == 0
    assert encoder_threads(auto.replace(encoder_threads=3), 2, 2).encoder_threads == 3
    assert encoder_threads(auto, 2, 2).preset == "ultrafast"
