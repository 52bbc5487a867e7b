"""Patch writer: metadata in the file and the sidecar, both origin conventions, and a re-composite
that lands the patch where it was cut from (sub-pixel)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.convert.writers import WRITERS, PatchConfig, convert_origin, read_patch
from faceplate.convert.writers.images import read_png_itxt
from faceplate.convert.writers.patch import PNG_KEY
from faceplate.core.errors import ConfigError, InputError, RecordError
from faceplate.core.geometry import invert_affine, to_cv2, transform_points
from faceplate.core.types import FrameInfo

W, H = 322, 181  # odd height: a wrong flip (H vs H-1) shows
S = 96
SPOT = np.array([161.37, 48.61])  # sub-pixel position of a bright spot, off the frame's centre
SIGMA = 2.5


def _frame() -> np.ndarray:
    """Float32 H×W×3: a smooth background plus a Gaussian spot centred at SPOT."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5  # pixel centres at +0.5
    spot = np.exp(-((xx - SPOT[0]) ** 2 + (yy - SPOT[1]) ** 2) / (2 * SIGMA**2))
    bg = 0.2 + 0.1 * np.sin(xx / 29.0) * np.cos(yy / 31.0)
    return np.stack([bg, bg * 0.8, spot * 0.9 + 0.05], axis=2).astype(np.float32)


def _matrix() -> np.ndarray:
    """Frame → crop similarity: rotation 17°, scale 1.3, spot off the crop centre, sub-pixel."""
    a, s = np.deg2rad(17.0), 1.3
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    target = np.array([S / 2 + 3.3, S / 2 - 4.7])  # where the spot lands in the crop
    return np.hstack([rot, (target - rot @ SPOT)[:, None]])


def _mask() -> np.ndarray:
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    r = np.hypot(xx - S / 2, yy - S / 2)
    return np.clip((S * 0.45 - r) / 4.0, 0.0, 1.0).astype(np.float32)


def _cut(frame: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(frame, to_cv2(m), (S, S), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _centroid(img: np.ndarray) -> np.ndarray:
    """Intensity centroid in +0.5 pixel-centre coordinates (background removed)."""
    v = np.clip(img - 0.05, 0.0, None).astype(np.float64)
    v[v < 0.02] = 0.0
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]] + 0.5
    return np.array([(v * xx).sum() / v.sum(), (v * yy).sum() / v.sum()])


def _write(tmp: Path, **cfg: object) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    frame, m = _frame(), _matrix()
    crop = _cut(frame, m)
    mask = _mask()
    w = WRITERS.create("patch", PatchConfig(**cfg))  # type: ignore[arg-type]
    with w.open(tmp / "p", width=W, height=H, source=Path("shot.mov")):
        path = w.write_patch(7, crop, mask, m, (W, H), FrameInfo(7, "shot_000007", None, W, H, 7))
    return path, frame, crop, mask


def _composite_top_left(face: np.ndarray, mask: np.ndarray, c2f: np.ndarray) -> np.ndarray:
    """Paste over black with a crop → frame matrix in top-left convention."""
    fw = cv2.warpAffine(face, to_cv2(c2f), (W, H), flags=cv2.INTER_LINEAR)
    aw = cv2.warpAffine(mask, to_cv2(c2f), (W, H), flags=cv2.INTER_LINEAR)
    return (fw * aw[..., None]).astype(np.float32)


def _composite_bottom_left(face: np.ndarray, mask: np.ndarray, c2f_bl: np.ndarray) -> np.ndarray:
    """What a bottom-left compositor (Nuke) does: its image rows run bottom-up, so array row r of
    a flipped image is y ∈ [r, r+1) measured from the bottom; warp there, flip back."""
    face_bl, mask_bl = face[::-1].copy(), mask[::-1].copy()
    fw = cv2.warpAffine(face_bl, to_cv2(c2f_bl), (W, H), flags=cv2.INTER_LINEAR)
    aw = cv2.warpAffine(mask_bl, to_cv2(c2f_bl), (W, H), flags=cv2.INTER_LINEAR)
    return (fw * aw[..., None])[::-1].astype(np.float32)


@pytest.mark.parametrize("fmt", ["png16", "exr", "tiff"])
@pytest.mark.parametrize("origin", ["top-left", "bottom-left"])
def test_recomposite_lands_where_it_was_cut(fmt: str, origin: str, tmp_path: Path) -> None:
    path, frame, crop, mask = _write(tmp_path, format=fmt, origin=origin)
    face, mask_back, f2c, meta = read_patch(path)
    assert f2c is not None and meta["origin"] == origin
    c2f = np.asarray(meta["crop_to_frame"])
    assert np.allclose(c2f, invert_affine(f2c), atol=1e-12)
    tol = 1e-6 if fmt != "png16" else 0.5 / 65535 + 1e-6
    inside = mask_back > 0
    assert np.abs(face[inside] - crop[inside]).max() <= tol
    assert np.abs(mask_back - mask).max() <= tol
    if origin == "top-left":
        assert np.array_equal(f2c, _matrix())
        comp = _composite_top_left(face, mask_back, c2f)
    else:
        # Converting properly gives back our matrix…
        back = convert_origin(f2c, (W, H), (S, S), "bottom-left", "top-left")
        assert np.allclose(back, _matrix(), atol=1e-12)
        # …and a bottom-left compositor using the stored matrix as is puts it in the same place.
        comp = _composite_bottom_left(face, mask_back, c2f)
        ref = _composite_top_left(face, mask_back, invert_affine(back))
        assert np.abs(comp - ref).max() < 0.01  # cv2 samples at 1/32 px: not bit-exact
        # Using the bottom-left matrix as if it were top-left misses by far.
        wrong = _composite_top_left(face, mask_back, c2f)
        assert np.linalg.norm(_centroid(wrong[..., 2]) - SPOT) > 20
    # The spot lands where it was cut from, to a small fraction of a pixel.
    assert np.linalg.norm(_centroid(comp[..., 2]) - SPOT) < 0.03
    # Inside the opaque part of the mask the pasted pixels match the frame (the smooth
    # background channels: two bilinear resamplings blur the sharp spot's peak a little).
    opaque = cv2.warpAffine(mask_back, to_cv2(c2f if origin == "top-left" else
                                              invert_affine(back)), (W, H)) > 0.999
    assert opaque.sum() > 2000
    assert np.abs(comp[opaque][:, :2] - frame[opaque][:, :2]).max() < 0.003


def test_half_pixel_mistake_is_detected(tmp_path: Path) -> None:
    """The centroid check is sharp enough to see a pixel-centre convention slip."""
    path, *_ = _write(tmp_path)
    face, mask, f2c, _ = read_patch(path)
    assert f2c is not None
    c2f = invert_affine(f2c)
    fw = cv2.warpAffine(face, c2f, (W, H))  # forgot to_cv2: integer-centre misuse
    aw = cv2.warpAffine(mask, c2f, (W, H))
    err = np.linalg.norm(_centroid((fw * aw[..., None])[..., 2]) - SPOT)
    assert err > 0.1


def test_metadata_in_file_and_sidecar(tmp_path: Path) -> None:
    path, *_ = _write(tmp_path, format="png8")
    assert path.name == "shot_face0_000007.png"
    embedded = json.loads(read_png_itxt(path, PNG_KEY) or "{}")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert embedded == sidecar
    assert embedded["frame_to_crop"] == _matrix().tolist()  # float64 exact through JSON
    assert embedded["frame_size"] == [W, H] and embedded["patch_size"] == [S, S]
    assert embedded["bit_depth"] == 8 and embedded["alpha"] == "straight"
    assert "0.5" in embedded["pixel_centers"] and embedded["y_axis"] == "down"
    # Without the sidecar the file's own metadata suffices.
    path.with_suffix(".json").unlink()
    assert read_patch(path)[3] == embedded


def test_exr_is_premultiplied_and_mask_file_mode(tmp_path: Path) -> None:
    import OpenImageIO as oiio

    path, _, crop, mask = _write(tmp_path / "a", format="exr")
    inp = oiio.ImageInput.open(str(path))
    raw = np.asarray(inp.read_image(0, 0, 0, 4, oiio.FLOAT))
    inp.close()
    assert np.allclose(raw[..., :3], crop * mask[..., None], atol=1e-7)
    path, _, crop, mask = _write(tmp_path / "b", format="png16", mask="file")
    assert path.with_name(path.stem + "_mask.png").is_file()
    face, mask_back, _, meta = read_patch(path)
    assert meta["alpha"] == "none" and meta["mask_file"] == path.stem + "_mask.png"
    assert np.abs(face - crop).max() <= 0.5 / 65535 + 1e-6  # full face kept without alpha
    assert np.abs(mask_back - mask).max() <= 0.5 / 65535 + 1e-6


def test_convert_origin_is_an_involution_and_flips_points() -> None:
    m = _matrix()
    bl = convert_origin(m, (W, H), (S, S), "top-left", "bottom-left")
    assert np.allclose(convert_origin(bl, (W, H), (S, S), "bottom-left", "top-left"), m)
    p_tl = np.array([[10.25, 20.5], [SPOT[0], SPOT[1]]])
    p_bl = p_tl * [1, -1] + [0, H]
    q_tl = transform_points(p_tl, m)
    q_bl = transform_points(p_bl, bl)
    assert np.allclose(q_bl, q_tl * [1, -1] + [0, S])


def test_empty_frames_and_face_slots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    face = rng.random((S, S, 3), dtype=np.float32)
    w = WRITERS.create("patch", PatchConfig(empty="blank", sidecar=False))
    with w.open(tmp_path / "blank", width=W, height=H):
        w.write_patch(0, face, _mask(), _matrix())
        w.write_patch(0, face, _mask(), _matrix())
        w.write(1, np.zeros((H, W, 3), np.float32))
    names = sorted(p.name for p in (tmp_path / "blank").iterdir())
    assert names == ["frame_face0_000000.png", "frame_face0_000001.png", "frame_face1_000000.png"]
    face_b, mask_b, m_b, meta = read_patch(tmp_path / "blank" / "frame_face0_000001.png")
    assert meta["empty"] and m_b is None and face_b.shape == (S, S, 3) and not mask_b.any()
    w = WRITERS.create("patch", PatchConfig(empty="skip"))
    with w.open(tmp_path / "skip", width=W, height=H):
        w.write(0, np.zeros((H, W, 3), np.float32))
    assert not list((tmp_path / "skip").iterdir())


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="face"):
        PatchConfig(pattern="{stem}_{frame}")
    w = WRITERS.create("patch")
    with w.open(tmp_path / "p", width=W, height=H):
        with pytest.raises(ValueError, match="mask"):
            w.write_patch(0, np.zeros((S, S, 3), np.float32), np.zeros((S, S + 1), np.float32),
                          _matrix())
        with pytest.raises(ValueError, match="frame_size"):
            w.write_patch(0, np.zeros((S, S, 3), np.float32), _mask(), _matrix(), (H, W))
        with pytest.raises(ValueError, match="matrix"):
            w.write_patch(0, np.zeros((S, S, 3), np.float32), _mask(), np.eye(3))
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(RecordError):
        read_patch(plain)
    with pytest.raises(InputError):
        read_patch(tmp_path / "missing.png")
