"""The video writer hands swscale its frames without copying them when it can, and the
Y'CbCr it encodes is bit for bit what ``av.VideoFrame.from_ndarray`` gave."""

from __future__ import annotations

import av
import numpy as np
import pytest

from faceplate.convert.writers.video import _packed_frame


def _yuv(vf: av.VideoFrame, pix_fmt: str) -> list[np.ndarray]:
    out = vf.reformat(format=pix_fmt, dst_colorspace="itu709", dst_color_range="MPEG")
    # The rows' useful bytes only (the padding after each row is not written).
    return [np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[
        :, :p.width * (2 if pix_fmt.endswith("10le") else 1)] for p in out.planes]


@pytest.mark.parametrize(("h", "w", "fmt", "pix_fmt"), [
    (1080, 1920, "rgb24", "yuv420p"), (360, 640, "rgb24", "yuv444p"),
    (99, 101, "rgb24", "yuv444p"), (100, 98, "rgb24", "yuv420p"),
    (64, 96, "rgb48le", "yuv420p10le"), (64, 96, "rgb48le", "yuv422p10le")])
def test_packed_frame_converts_as_from_ndarray(h: int, w: int, fmt: str, pix_fmt: str) -> None:
    """(16-bit RGB at some sizes, e.g. 62×98 or 62×112 to 4:2:2 10-bit, is not a case: there
    swscale's own output varies from one ``from_ndarray`` conversion of the same array to the
    next, about one in ten, so no comparison of two conversions can hold.)"""
    rng = np.random.default_rng(h * w)
    dtype = np.uint16 if fmt == "rgb48le" else np.uint8
    rgba = rng.integers(0, np.iinfo(dtype).max + 1, (h, w, 4), dtype=dtype)
    for rgb in (np.ascontiguousarray(rgba[..., :3]), rgba[..., :3]):  # packed, and a view
        want = _yuv(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt), pix_fmt)
        got = _yuv(_packed_frame(rgb, fmt), pix_fmt)  # type: ignore[arg-type]
        assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_packed_frame_views_the_array_when_rows_need_no_padding() -> None:
    """No copy at 1920 wide (the buffer is the array's); a copy at 98 wide."""
    rgb = np.zeros((4, 1920, 3), np.uint8)
    vf = _packed_frame(rgb, "rgb24")
    rgb[0, 0] = 200
    assert vf.to_ndarray()[0, 0, 0] == 200
    odd = np.zeros((4, 98, 3), np.uint8)
    vf = _packed_frame(odd, "rgb24")
    odd[0, 0] = 200
    assert vf.to_ndarray()[0, 0, 0] == 0
