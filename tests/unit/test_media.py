"""Media readers: video (PyAV), stills and sequences (OpenCV / OpenImageIO), errors.

Inputs are built in ``tmp_path`` from the cached sample media; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.errors import ConfigError, InputError, UnsupportedFormatError
from faceplate.io import media, samples
from faceplate.io.media import (
    IMAGE_EXTS,
    MIN_FRAME_SIZE,
    VIDEO_EXTS,
    decode_image,
    frame_name_for,
    frame_number_from_name,
    is_image,
    is_video,
    natural_key,
    open_source,
    read_image,
)

W, H = 101, 99  # odd and unequal: catches H/W swaps


# ---------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def still() -> np.ndarray:
    """H×W×3 uint8 RGB face crop from a real photo, 101 wide × 99 high."""
    bgr = cv2.imread(str(samples.path("obama.jpg")), cv2.IMREAD_COLOR)
    assert bgr is not None
    face = bgr[150:700, 200:760]  # roughly the head
    return np.ascontiguousarray(cv2.resize(face, (W, H), interpolation=cv2.INTER_AREA)[..., ::-1])


@pytest.fixture(scope="module")
def video_frames() -> list:
    """Sequential decode of single_face.mp4 through the reader (72 frames)."""
    with open_source(samples.path("single_face.mp4")) as src:
        return list(src)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write RGB(A)/grey uint8 or uint16 with OpenCV (which wants BGR order)."""
    img = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        img = rgb[..., ::-1]
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        img = rgb[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(img))
    return path


def write_oiio(path: Path, arr: np.ndarray, fmt: Any, *, bits: int | None = None,
               channelnames: tuple[str, ...] | None = None) -> Path:
    h, w, c = arr.shape
    spec = oiio.ImageSpec(w, h, c, fmt)
    if bits is not None:
        spec.attribute("oiio:BitsPerSample", bits)
    if channelnames is not None:
        spec.channelnames = channelnames
    write_spec(path, spec, arr)
    return path


def write_spec(path: Path, spec: oiio.ImageSpec, arr: np.ndarray) -> None:
    """Write ``arr`` with OpenImageIO under an explicit ``spec``."""
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(arr)), out.geterror()
    out.close()


def to_linear(rgb8: np.ndarray) -> np.ndarray:
    return srgb_to_linear(rgb8.astype(np.float32) / 255.0)


def max_level_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# ---------------------------------------------------------------------------- names


def test_names_and_extensions() -> None:
    assert is_video("a/clip.MP4") and is_video("x.mov") and not is_video("x.png")
    assert is_image("shot_0001.EXR") and is_image("a.dpx") and not is_image("a.txt")
    assert not (IMAGE_EXTS & VIDEO_EXTS)
    assert frame_name_for("/x/clip.mp4", 7) == "clip_000007"
    assert frame_name_for("/x/shot_0012.exr") == "shot_0012.exr"
    with pytest.raises(ValueError):
        frame_name_for("clip.mov")
    assert frame_number_from_name("shot_0012.exr") == 12
    assert frame_number_from_name("v2_take3_0040.png") == 40
    assert frame_number_from_name("still.png") is None
    names = ["frame10.png", "Frame2.png", "frame1.png", "frame2b.png", "frame02.png"]
    assert sorted(names, key=natural_key)[:2] == ["frame1.png", "Frame2.png"]
    assert sorted(names, key=natural_key)[-1] == "frame10.png"


# ---------------------------------------------------------------------------- stills / folders


def test_image_folder_formats_and_natural_order(tmp_path: Path, still: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    u16 = (still.astype(np.int32) * 257 + rng.integers(-128, 129, still.shape)).clip(0, 65535)
    alpha = rng.integers(0, 256, (H, W, 1), dtype=np.uint8)
    grey = cv2.cvtColor(still, cv2.COLOR_RGB2GRAY)
    write_png(tmp_path / "frame1.png", still)
    write_png(tmp_path / "frame2.png", u16.astype(np.uint16))
    write_png(tmp_path / "frame3.png", np.concatenate([still, alpha], axis=2))
    write_png(tmp_path / "frame4.png", grey)
    assert cv2.imwrite(str(tmp_path / "frame10.jpg"), still[..., ::-1],
                       [cv2.IMWRITE_JPEG_QUALITY, 95])
    (tmp_path / "notes.txt").write_text("not an image")
    write_png(tmp_path / ".hidden.png", still)
    (tmp_path / "sub").mkdir()
    write_png(tmp_path / "sub" / "frame0.png", still)

    with open_source(tmp_path) as src:
        assert src.kind == "sequence"
        assert (src.width, src.height) == (W, H)
        assert len(src) == src.total_frames == 5
        assert src.ignored == [tmp_path / "notes.txt"]
        frames = list(src)
    assert [f.info.name for f in frames] == [
        "frame1.png", "frame2.png", "frame3.png", "frame4.png", "frame10.jpg"]
    assert [f.info.frame_number for f in frames] == [1, 2, 3, 4, 10]
    assert [f.info.index for f in frames] == [0, 1, 2, 3, 4]
    for f in frames:
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        assert (f.info.width, f.info.height) == (W, H)
        assert f.linear is None and f.info.timestamp is None
    np.testing.assert_array_equal(frames[0].rgb, still)
    np.testing.assert_array_equal(frames[1].rgb, still)  # 16-bit rounds back to the 8-bit image
    np.testing.assert_array_equal(frames[2].rgb, still)  # alpha dropped
    np.testing.assert_array_equal(frames[3].rgb, np.repeat(grey[..., None], 3, axis=2))
    assert np.abs(frames[4].rgb.astype(int) - still).mean() < 3.0  # JPEG


def test_stills_that_are_not_a_sequence_are_numbered_by_position(tmp_path: Path,
                                                                  still: np.ndarray) -> None:
    for name in ("take_1.png", "alt_1.png", "portrait.png", "take_2.png"):
        write_png(tmp_path / name, still)
    with open_source(tmp_path) as src:
        frames = list(src)
        assert [f.info.name for f in frames] == ["alt_1.png", "portrait.png", "take_1.png",
                                                 "take_2.png"]
        assert [f.info.frame_number for f in frames] == [0, 1, 2, 3]
        assert [src.index_of(n) for n in (0, 3, 4)] == [0, 3, None]
    (tmp_path / "portrait.png").unlink()
    (tmp_path / "alt_1.png").unlink()
    with open_source(tmp_path) as src:  # now one numbered sequence: its own numbers
        assert [src.number_of(i) for i in range(2)] == [1, 2] and src.index_of(2) == 1


def test_u16_rounding_is_exact() -> None:
    v = np.arange(65536, dtype=np.uint16)
    expected = np.round(v.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
    np.testing.assert_array_equal(media._u16_to_u8(v), expected)


def test_single_image_and_read_image(tmp_path: Path, still: np.ndarray) -> None:
    p = write_png(tmp_path / "plate_0042.png", still)
    with open_source(p, every_n=1) as src:
        assert src.kind == "image" and len(src) == 1
        (f,) = list(src)
        np.testing.assert_array_equal(src.read(0).rgb, f.rgb)
        with pytest.raises(IndexError):
            src.read(1)
    assert f.info.name == "plate_0042.png" and f.info.frame_number == 42
    frame = read_image(p)
    np.testing.assert_array_equal(frame.rgb, still)
    assert frame.info.width == W and frame.info.height == H
    # 32bit.png in the samples is RGBA
    rgba = read_image(samples.path("32bit.png"))
    assert rgba.rgb.ndim == 3 and rgba.rgb.shape[2] == 3


def test_numbered_sequence_patterns(tmp_path: Path, still: np.ndarray) -> None:
    for n in (1, 2, 9, 10, 11, 100):
        write_png(tmp_path / f"shot_{n:04d}.png", np.roll(still, n, axis=1))
    write_png(tmp_path / "other_0005.png", still)
    write_png(tmp_path / "shot_0003.jpg.bak.png", still)  # does not match the pattern
    for pattern in ("shot_####.png", "shot_%04d.png"):
        with open_source(tmp_path / pattern) as src:
            assert src.kind == "sequence" and len(src) == 6
            frames = list(src)
        assert [f.info.frame_number for f in frames] == [1, 2, 9, 10, 11, 100]
        assert [f.info.name for f in frames][-1] == "shot_0100.png"
        np.testing.assert_array_equal(frames[3].rgb, np.roll(still, 10, axis=1))
    with pytest.raises(InputError, match="no files match"):
        open_source(tmp_path / "nope_####.png")


def test_sequence_sampling_skip_and_read(tmp_path: Path, still: np.ndarray) -> None:
    for n in range(12):
        write_png(tmp_path / f"f{n}.png", np.roll(still, n, axis=0))
    with open_source(tmp_path, every_n=3, start=2) as src:
        assert len(src) == 3
        assert [f.info.index for f in src] == [3, 6, 9]
        # skipped files are not even read: corrupt one and it raises no error
        (tmp_path / "f6.png").write_bytes(b"garbage")
        assert [f.info.index for f in src.frames(skip={6})] == [3, 9]
        assert src.errors == []
        assert [f.info.index for f in src.frames(indices=[11, 0, 11])] == [0, 11]
        np.testing.assert_array_equal(src.read(11).rgb, np.roll(still, 11, axis=0))
        with pytest.raises(InputError, match="cannot decode"):
            src.read(6)
        with pytest.raises(IndexError):
            src.read(12)


# ---------------------------------------------------------------------------- float / film formats


@pytest.mark.parametrize("fmt,name", [(oiio.HALF, "half"), (oiio.FLOAT, "float")])
def test_exr_sequence_linear_kept(tmp_path: Path, still: np.ndarray, fmt: Any,
                                  name: str) -> None:
    lin = to_linear(still)
    lin[0, 0] = [4.0, 12.5, 1.5]  # scene-linear highlight above 1
    for n in range(3):
        write_oiio(tmp_path / f"shot_{n + 1:04d}.exr", lin, fmt)
    with open_source(tmp_path) as src:
        frames = list(src)
        assert src.nonfinite_frames == {} and src.errors == []
    assert len(frames) == 3
    expected = lin.astype(np.float16).astype(np.float32) if name == "half" else lin
    for f in frames:
        assert f.linear is not None and f.linear.dtype == np.float32
        assert f.linear.shape == (H, W, 3)
        np.testing.assert_array_equal(f.linear, expected)
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        diff = np.abs(f.rgb.astype(int) - still)
        diff[0, 0] = 0  # the highlight pixel clips to white
        assert diff.max() <= (1 if name == "float" else 2)
        np.testing.assert_array_equal(f.rgb[0, 0], [255, 255, 255])


def test_float_tiff_and_int_tiff(tmp_path: Path, still: np.ndarray) -> None:
    lin = to_linear(still)
    f = read_image(write_oiio(tmp_path / "plate.tif", lin, oiio.FLOAT))
    assert f.linear is not None
    np.testing.assert_array_equal(f.linear, lin)
    assert max_level_diff(f.rgb, still) <= 1
    i16 = read_image(write_oiio(tmp_path / "plate16.tiff", still.astype(np.uint16) * 257,
                                oiio.UINT16))
    assert i16.linear is None
    np.testing.assert_array_equal(i16.rgb, still)
    # straight (unassociated) alpha in an integer TIFF: stored colour comes back unchanged
    rng = np.random.default_rng(11)
    rgba = np.concatenate([still, rng.integers(0, 256, (H, W, 1), dtype=np.uint8)], axis=2)
    p = tmp_path / "rgba8.tif"
    spec = oiio.ImageSpec(W, H, 4, oiio.UINT8)
    spec.attribute("oiio:UnassociatedAlpha", 1)
    write_spec(p, spec, rgba)
    np.testing.assert_array_equal(read_image(p).rgb, still)


def test_dpx_10bit_is_display_referred(tmp_path: Path, still: np.ndarray) -> None:
    p = write_oiio(tmp_path / "plate_0001.dpx", still.astype(np.uint16) * 257, oiio.UINT16,
                   bits=10)
    inp = oiio.ImageInput.open(str(p))
    assert inp is not None
    assert inp.spec().get_int_attribute("oiio:BitsPerSample") == 10
    inp.close()
    f = read_image(p)
    assert f.linear is None and f.rgb.shape == (H, W, 3)
    assert max_level_diff(f.rgb, still) <= 1


def test_exr_rgba_and_grey(tmp_path: Path, still: np.ndarray) -> None:
    lin = to_linear(still)
    alpha = np.linspace(0, 1, W * H, dtype=np.float32).reshape(H, W, 1)
    rgba = np.concatenate([lin, alpha], axis=2)
    f = read_image(write_oiio(tmp_path / "rgba.exr", rgba, oiio.FLOAT))
    assert f.linear is not None and f.linear.shape == (H, W, 4)
    np.testing.assert_array_equal(f.linear, rgba)
    assert max_level_diff(f.rgb, still) <= 1
    grey = lin[..., 1:2].copy()
    g = read_image(write_oiio(tmp_path / "grey.exr", grey, oiio.FLOAT, channelnames=("Y",)))
    assert g.linear is not None and g.linear.shape == (H, W, 3)
    np.testing.assert_array_equal(g.linear[..., 0], grey[..., 0])
    np.testing.assert_array_equal(g.rgb[..., 0], g.rgb[..., 2])
    assert max_level_diff(g.rgb[..., 1], still[..., 1]) <= 1


def test_exr_data_window_placed_in_display_window(tmp_path: Path, still: np.ndarray) -> None:
    lin = to_linear(still)
    p = tmp_path / "crop.exr"
    spec = oiio.ImageSpec(W - 20, H - 10, 3, oiio.FLOAT)
    spec.x, spec.y = 12, 4
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, W, H
    write_spec(p, spec, lin[4:4 + H - 10, 12:12 + W - 20])
    f = read_image(p)
    assert f.linear is not None and f.linear.shape == (H, W, 3)
    np.testing.assert_array_equal(f.linear[4:4 + H - 10, 12:12 + W - 20],
                                  lin[4:4 + H - 10, 12:12 + W - 20])
    assert f.linear[:4].max() == 0 and f.linear[:, :12].max() == 0


def test_nonfinite_exr_counted_not_fatal(tmp_path: Path, still: np.ndarray) -> None:
    lin = to_linear(still)
    lin[10, 10, 0] = np.nan
    lin[20, 30, :] = np.inf
    lin[40, 50, 2] = -np.inf
    write_oiio(tmp_path / "a_0001.exr", to_linear(still), oiio.HALF)
    write_oiio(tmp_path / "a_0002.exr", lin, oiio.HALF)
    with open_source(tmp_path) as src:
        frames = list(src)
        assert src.errors == []
        assert src.nonfinite_frames == {1: 5}
    assert len(frames) == 2
    f = frames[1]
    assert f.linear is not None and np.isnan(f.linear[10, 10, 0])  # original kept untouched
    np.testing.assert_array_equal(f.rgb[20, 30], [255, 255, 255])
    assert decode_image(tmp_path / "a_0002.exr").nonfinite == 5
    with open_source(tmp_path / "a_0002.exr") as single:
        list(single)
        assert single.nonfinite_frames == {0: 5}


# ---------------------------------------------------------------------------- video


def test_video_sequential(video_frames: list) -> None:
    p = samples.path("single_face.mp4")
    with open_source(p) as src:
        assert src.kind == "video"
        assert len(src) == src.total_frames == 72
        assert (src.width, src.height) == (640, 360)
        assert src.fps == pytest.approx(30.0)
    assert len(video_frames) == 72
    ts = [f.info.timestamp for f in video_frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    for i, f in enumerate(video_frames):
        assert f.info.index == i and f.info.frame_number == i + 1  # hosts number from 1
        assert src.number_of(i) == i + 1 and src.index_of(i + 1) == i
        assert f.info.name == f"single_face_{i:06d}"
        assert f.info.timestamp == pytest.approx(i / 30.0, abs=1e-3)
        assert f.rgb.shape == (360, 640, 3) and f.rgb.dtype == np.uint8 and f.linear is None
        assert (f.info.width, f.info.height) == (640, 360)
    assert src.index_of(0) is None and src.index_of(73) is None
    # frames differ (the decoder really advances)
    assert not np.array_equal(video_frames[0].rgb, video_frames[40].rgb)


def test_video_sampling_start_skip(video_frames: list) -> None:
    p = samples.path("single_face.mp4")
    with open_source(p, every_n=5) as src:
        got = list(src)
        assert len(src) == 15
    assert [f.info.index for f in got] == list(range(0, 72, 5))
    for f in got:
        np.testing.assert_array_equal(f.rgb, video_frames[f.info.index].rgb)
        assert f.info == video_frames[f.info.index].info
    with open_source(p, every_n=4, start=10) as src:
        assert [f.info.index for f in src] == list(range(12, 72, 4))
        assert len(src) == len(range(12, 72, 4))
        done = set(range(60))
        rest = list(src.frames(indices=range(72), skip=done))
        assert [f.info.index for f in rest] == list(range(60, 72))
        np.testing.assert_array_equal(rest[0].rgb, video_frames[60].rgb)
        assert [f.info.index for f in src.frames(indices=[40, 3, 40, 100])] == [3, 40]


def test_video_random_read_matches_sequential(video_frames: list) -> None:
    rng = np.random.default_rng(3)
    order = [71, 0, 1, 2, 70, 35, *rng.permutation(72)[:20].tolist(), 5, 6]
    with open_source(samples.path("single_face.mp4")) as src:
        for i in order:
            f = src.read(int(i))
            assert f.info == video_frames[i].info
            np.testing.assert_array_equal(f.rgb, video_frames[i].rgb)
        with pytest.raises(IndexError):
            src.read(72)
        with pytest.raises(IndexError):
            src.read(-1)


def test_video_keyframe_seeking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip with a keyframe every 72 frames: seeks land on keyframes, frames must still match."""
    p = samples.path("WolfgangLanger_Pexels.mp4")
    with open_source(p) as src:
        seq = {f.info.index: f for f in src.frames(indices=range(472))}
        assert len(seq) == 472
        for i in (400, 10, 300, 143, 144, 145, 471, 0, 215, 216, 217):
            f = src.read(i)
            assert f.info == seq[i].info, i
            np.testing.assert_array_equal(f.rgb, seq[i].rgb)
    # long jumps inside frames() seek too (small SEEK_GAP forces it on every gap)
    monkeypatch.setattr(media, "SEEK_GAP", 4)
    with open_source(p) as src:
        got = list(src.frames(indices=[5, 150, 151, 460], skip={151}))
    assert [f.info.index for f in got] == [5, 150, 460]
    for f in got:
        np.testing.assert_array_equal(f.rgb, seq[f.info.index].rgb)


def test_video_container_count_vs_decoded() -> None:
    """no_face.mp4's container says 98 frames but 95 decode; iteration ends at the stream end."""
    with open_source(samples.path("no_face.mp4")) as src:
        frames = list(src)
        assert len(frames) == 95
        assert [f.info.index for f in frames] == list(range(95))
        with pytest.raises(IndexError):
            src.read(96)
        assert src.total_frames == 95  # corrected once the pts index is built
        f = src.read(94)
        np.testing.assert_array_equal(f.rgb, frames[94].rgb)


def test_generated_video_odd_gop(tmp_path: Path, still: np.ndarray) -> None:
    """A small clip we encode ourselves (GOP 7, B-frames): read(i) == sequential frame i."""
    p = tmp_path / "gen.mp4"
    oc = av.open(str(p), "w")
    st = oc.add_stream("libx264", rate=25)
    st.width, st.height, st.pix_fmt = 128, 96, "yuv420p"
    st.codec_context.gop_size = 7
    st.options = {"bf": "2", "crf": "18"}
    base = cv2.resize(still, (128, 96))
    for n in range(40):
        img = np.ascontiguousarray(np.roll(base, 3 * n, axis=1), dtype=np.uint8)
        for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            oc.mux(pkt)
    for pkt in st.encode():
        oc.mux(pkt)
    oc.close()
    with open_source(p) as src:
        assert (src.width, src.height) == (128, 96)
        seq = list(src)
        assert len(seq) == 40
        for i in (39, 3, 20, 21, 0, 13, 14, 27, 6):
            np.testing.assert_array_equal(src.read(i).rgb, seq[i].rgb)
    # the content moves 3 px per frame: frame 10 is frame 0 moved 30 px (order is right)
    assert np.abs(np.roll(seq[0].rgb, 30, axis=1).astype(int) - seq[10].rgb).mean() < 6


# ---------------------------------------------------------------------------- errors


def test_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as e:
        open_source(tmp_path / "missing.mp4")
    assert "missing.mp4" in str(e.value)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(UnsupportedFormatError, match=r"\.png") as e2:
        open_source(txt)
    assert "notes.txt" in str(e2.value)
    with pytest.raises(UnsupportedFormatError):
        decode_image(txt)
    with pytest.raises(ConfigError):
        open_source(samples.path("single_face.mp4"), every_n=0)
    with pytest.raises(ConfigError):
        open_source(samples.path("single_face.mp4"), start=-1)


def test_corrupt_files(tmp_path: Path, still: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(500))
    with pytest.raises(InputError, match="cannot decode") as e:
        open_source(bad)
    assert "bad.png" in str(e.value)
    with pytest.raises(InputError, match="cannot decode"):
        read_image(bad)
    badexr = tmp_path / "bad.exr"
    badexr.write_bytes(rng.bytes(300))
    with pytest.raises(InputError, match="cannot decode"):
        read_image(badexr)
    badvid = tmp_path / "bad.mp4"
    badvid.write_bytes(rng.bytes(2000))
    with pytest.raises(InputError, match="cannot decode") as e3:
        open_source(badvid)
    assert "bad.mp4" in str(e3.value)


def test_folder_with_one_corrupt_file_keeps_going(tmp_path: Path, still: np.ndarray) -> None:
    write_png(tmp_path / "f1.png", still)
    (tmp_path / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_png(tmp_path / "f3.png", still)
    write_png(tmp_path / "f4.png", np.zeros((1, 1, 3), np.uint8))
    with open_source(tmp_path) as src:
        frames = list(src)
        assert [f.info.name for f in frames] == ["f1.png", "f3.png"]
        assert [f.info.index for f in frames] == [0, 2]
        assert len(src.errors) == 2
        assert "f2.png" in str(src.errors[0]) and "cannot decode" in str(src.errors[0])
        assert "f4.png" in str(src.errors[1]) and "too small" in str(src.errors[1])


def test_empty_and_imageless_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images") as e:
        open_source(empty)
    assert "empty" in str(e.value)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    (junk / ".b.png").write_bytes(b"")
    with pytest.raises(InputError, match="1 other files ignored"):
        open_source(junk)


def test_tiny_images_rejected(tmp_path: Path) -> None:
    one = write_png(tmp_path / "one.png", np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(InputError, match=r"too small to contain a face \(1×1; minimum 16×16\)"):
        open_source(one)
    with pytest.raises(InputError, match="too small"):
        read_image(one)
    thin = write_png(tmp_path / "thin.png", np.zeros((MIN_FRAME_SIZE, MIN_FRAME_SIZE - 1, 3),
                                                    np.uint8))
    with pytest.raises(InputError, match=r"15×16"):
        decode_image(thin)
    ok = write_png(tmp_path / "ok.png", np.zeros((MIN_FRAME_SIZE, MIN_FRAME_SIZE, 3), np.uint8))
    assert read_image(ok).rgb.shape == (16, 16, 3)
    tiny_exr = write_oiio(tmp_path / "tiny.exr", np.zeros((4, 5, 3), np.float32), oiio.HALF)
    with pytest.raises(InputError, match=r"5×4"):
        read_image(tiny_exr)
