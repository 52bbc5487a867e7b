"""Contract tests for every sort key (``faceplate.faceset.sort.SORT_KEYS``) on a real faceset."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.core.geometry import MEAN_FACE_68
from faceplate.faceset.sort_keys import (
    SORT_KEYS,
    Group,
    SortFace,
    cluster_labels,
    load_faceset,
    numeric_groups,
)
from faceplate.io.faceset import read_face_meta
from tests import facesets

KEYS = SORT_KEYS.names()


@pytest.fixture(scope="module")
def faceset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return facesets.cached_faceset(tmp_path_factory, identity=True)


@pytest.fixture(scope="module")
def faces(faceset: Path) -> list[SortFace]:
    found, others = load_faceset(faceset)
    assert not others
    assert len(found) >= 12
    return found


def _faces(paths: list[Path]) -> list[SortFace]:
    return [SortFace(p, read_face_meta(p)) for p in paths]


def _names(faces: list[SortFace], order: np.ndarray) -> list[str]:
    return [faces[i].path.stem for i in order]


def test_registry_has_the_documented_keys() -> None:
    assert set(KEYS) == {"identity", "hist", "blur", "blur-fft", "yaw", "pitch", "roll", "size",
                         "brightness", "hue", "distance"}


@pytest.mark.parametrize("name", KEYS)
def test_order_is_a_deterministic_permutation(name: str, faces: list[SortFace]) -> None:
    a = SORT_KEYS.create(name)
    b = SORT_KEYS.create(name)
    va, vb = a.measure_all(faces), b.measure_all(faces)
    assert len(va) == len(faces)
    assert np.all(np.isfinite(va))
    np.testing.assert_array_equal(va, vb)
    order = a.order(va)
    assert sorted(order.tolist()) == list(range(len(faces)))
    np.testing.assert_array_equal(order, b.order(vb))


@pytest.mark.parametrize("name", KEYS)
@pytest.mark.parametrize("bins", [None, 1, 3])
@pytest.mark.parametrize("binning", ["width", "quantile"])
def test_group_puts_every_face_in_exactly_one_bin(name: str, bins: int | None, binning: str,
                                                  faces: list[SortFace]) -> None:
    key = SORT_KEYS.create(name)
    groups = key.group(key.measure_all(faces), bins, binning)  # type: ignore[arg-type]
    assert len(groups) >= 1
    if bins is not None:
        assert len(groups) <= bins
    members = [i for g in groups for i in g.indices]
    assert sorted(members) == list(range(len(faces)))
    assert all(len(g.indices) > 0 for g in groups)
    assert len({g.name for g in groups}) == len(groups)
    for g in groups:
        assert re.fullmatch(r"[A-Za-z0-9_.+-]+", g.name), g.name
        assert g.name.startswith(name + "_")


# ------------------------------------------------------------ each key measures its thing


def _blur(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 2.0)


def _darken(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) * 0.6).astype(np.uint8)


def _shift_hue(degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    def f(rgb: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return f


def _pairs(faceset: Path, tmp: Path, image: Callable[[np.ndarray], np.ndarray], n: int = 4
           ) -> list[tuple[SortFace, SortFace]]:
    srcs = sorted(faceset.glob("*.png"))[:n]
    out = []
    for i, src in enumerate(srcs):
        dst = facesets.write_variant(src, tmp / f"variant_{i}.png", image=image)
        a, b = _faces([src, dst])
        out.append((a, b))
    return out


def _check_pixel_key(name: str, faceset: Path, tmp: Path,
                     image: Callable[[np.ndarray], np.ndarray]) -> None:
    """For each face and its altered copy, the original sorts first."""
    key = SORT_KEYS.create(name)
    for a, b in _pairs(faceset, tmp, image):
        order = key.order(key.measure_all([b, a]))  # altered copy given first
        assert order.tolist() == [1, 0], (name, a.path.name)


def check_blur(faceset: Path, tmp: Path) -> None:
    _check_pixel_key("blur", faceset, tmp, _blur)


def check_blur_fft(faceset: Path, tmp: Path) -> None:
    _check_pixel_key("blur-fft", faceset, tmp, _blur)


def check_brightness(faceset: Path, tmp: Path) -> None:
    _check_pixel_key("brightness", faceset, tmp, _darken)
    key = SORT_KEYS.create("brightness")
    (a, b), = _pairs(faceset, tmp, _darken, n=1)
    va, vb = key.measure_all([a, b])
    assert vb == pytest.approx(va * 0.6, abs=1.5)


def check_hue(faceset: Path, tmp: Path) -> None:
    key = SORT_KEYS.create("hue")
    src = sorted(faceset.glob("obama_*.png"))[0]
    paths = [facesets.write_variant(src, tmp / "magenta.png", image=_shift_hue(-25.0)), src,
             facesets.write_variant(src, tmp / "yellow.png", image=_shift_hue(25.0))]
    faces = _faces(paths)
    v = key.measure_all(faces)
    assert _names(faces, key.order(v)) == ["magenta", "obama_0", "yellow"]
    assert v[2] - v[1] == pytest.approx(25.0, abs=3.0)
    assert -60.0 < v[1] < 60.0  # skin sits near red, away from the ±180 seam


def _posed(faceset: Path, tmp: Path) -> list[SortFace]:
    src = sorted(faceset.glob("obama_*.png"))[0]
    poses = {"a": (30.0, -10.0, 5.0), "b": (-30.0, 20.0, -15.0), "c": (0.0, 0.0, 25.0)}
    return _faces([facesets.write_variant(src, tmp / f"{n}.png", yaw=y, pitch=p, roll=r)
                   for n, (y, p, r) in poses.items()])


def _check_pose(name: str, expected: list[str], faceset: Path, tmp: Path) -> None:
    faces = _posed(faceset, tmp)
    key = SORT_KEYS.create(name)
    assert _names(faces, key.order(key.measure_all(faces))) == expected
    groups = key.group(key.measure_all(faces), 2, "width")
    assert groups[0].name.startswith(f"{name}_")


def check_yaw(faceset: Path, tmp: Path) -> None:
    _check_pose("yaw", ["b", "c", "a"], faceset, tmp)
    # real poses: the woman turning her head in the Pexels clip and obama2 (turned) vs obama
    key = SORT_KEYS.create("yaw")
    faces = _faces([faceset / "obama_0.png", faceset / "obama2_0.png"])
    assert _names(faces, key.order(key.measure_all(faces))) == ["obama2_0", "obama_0"]


def check_pitch(faceset: Path, tmp: Path) -> None:
    _check_pose("pitch", ["a", "c", "b"], faceset, tmp)


def check_roll(faceset: Path, tmp: Path) -> None:
    _check_pose("roll", ["b", "a", "c"], faceset, tmp)


def check_size(faceset: Path, tmp: Path) -> None:
    src = faceset / "obama_0.png"
    lm = read_face_meta(src).record.landmarks
    big = facesets.write_variant(src, tmp / "big.png", landmarks=(lm * 2.0).astype(np.float32))
    small = facesets.write_variant(src, tmp / "small.png",
                                   landmarks=(lm * 0.5).astype(np.float32))
    faces = _faces([small, src, big])
    key = SORT_KEYS.create("size")
    v = key.measure_all(faces)
    assert _names(faces, key.order(v)) == ["big", "obama_0", "small"]
    assert v[2] / v[1] == pytest.approx(2.0, rel=1e-6)
    # the inner face of obama.jpg is roughly its landmark span (jaw excluded)
    span = float(np.ptp(lm[17:, 0]))
    assert 0.7 * span < v[1] < 1.3 * span


def check_distance(faceset: Path, tmp: Path) -> None:
    src = faceset / "obama_0.png"
    lm = read_face_meta(src).record.landmarks
    rng = np.random.default_rng(7)
    noisy = facesets.write_variant(
        src, tmp / "noisy.png", landmarks=(lm + rng.normal(0, 6.0, lm.shape)).astype(np.float32))
    centre = lm.mean(axis=0)
    mean = facesets.write_variant(
        src, tmp / "mean.png",
        landmarks=((MEAN_FACE_68 - 0.5) * 120.0 + centre).astype(np.float32))
    faces = _faces([noisy, src, mean])
    key = SORT_KEYS.create("distance")
    v = key.measure_all(faces)
    assert _names(faces, key.order(v)) == ["mean", "obama_0", "noisy"]
    assert v[2] < 1e-4


def _check_identity(faces: list[SortFace], v: np.ndarray) -> None:
    key = SORT_KEYS.create("identity")
    names = [f.path.stem for f in faces]
    labels = dict(zip(names, _labels(key.group(v, None), len(faces))))
    obama = {labels[n] for n in names if n.startswith("obama")}
    assert len(obama) == 1, labels
    assert labels["biden_0"] not in obama
    man = {labels[n] for n in names if n.startswith("single_face")}
    assert len(man) == 1 and man != obama
    order = _names(faces, key.order(v))
    pos = [i for i, n in enumerate(order) if n.startswith("obama")]
    assert pos == list(range(pos[0], pos[0] + 3)), order  # contiguous
    pos = [i for i, n in enumerate(order) if n.startswith("single_face")]
    assert pos == list(range(pos[0], pos[0] + 4)), order
    assert order[0].startswith("single_face")  # the largest cluster comes first


def _labels(groups: list[Group], n: int) -> list[int]:
    out = [-1] * n
    for k, g in enumerate(groups):
        for i in g.indices:
            out[i] = k
    return out


def check_identity(faceset: Path, tmp: Path) -> None:
    faces, _ = load_faceset(faceset)
    assert all(f.meta.record.identity is not None for f in faces)
    _check_identity(faces, SORT_KEYS.create("identity").measure_all(faces))


def check_hist(faceset: Path, tmp: Path) -> None:
    rng = np.random.default_rng(3)

    def noise(rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.int16) + rng.integers(-2, 3, rgb.shape), 0, 255)

    folder = facesets.copy_faceset(faceset, tmp / "copy")
    facesets.write_variant(folder / "einstein_0.png", folder / "zz_einstein_twin.png",
                           image=noise)
    faces, _ = load_faceset(folder)
    key = SORT_KEYS.create("hist")
    v = key.measure_all(faces)
    order = _names(faces, key.order(v))
    i, j = order.index("einstein_0"), order.index("zz_einstein_twin")
    assert abs(i - j) == 1, order
    labels = _labels(key.group(v, None), len(faces))
    names = [f.path.stem for f in faces]
    assert labels[names.index("einstein_0")] == labels[names.index("zz_einstein_twin")]
    # the grey photograph is nobody else's colour twin
    assert labels.count(labels[names.index("einstein_0")]) == 2
    assert np.linalg.norm(v, axis=1) == pytest.approx(np.full(len(v), 1 / np.sqrt(2)))


CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "blur": check_blur, "blur-fft": check_blur_fft, "brightness": check_brightness,
    "hue": check_hue, "yaw": check_yaw, "pitch": check_pitch, "roll": check_roll,
    "size": check_size, "distance": check_distance, "identity": check_identity,
    "hist": check_hist,
}


@pytest.mark.parametrize("name", KEYS)
def test_key_measures_what_it_claims(name: str, faceset: Path, tmp_path: Path) -> None:
    assert name in CHECKS, f"sort key {name!r} has no behaviour check"
    CHECKS[name](faceset, tmp_path)


def test_identity_computed_from_the_crop_clusters_the_same(faceset: Path) -> None:
    faces, _ = load_faceset(faceset)
    stored = SORT_KEYS.create("identity").measure_all(faces)
    computed = SORT_KEYS.create("identity", SORT_KEYS.config_class("identity")(
        use_stored=False)).measure_all(faces)
    _check_identity(faces, computed)
    # same network, chip cut from the crop instead of the frame: close but not identical
    d = np.linalg.norm(stored - computed, axis=1)
    assert np.all(d < 0.2), d


# ----------------------------------------------------------------- binning helpers


def test_numeric_groups_width_quantile_and_nan() -> None:
    v = np.array([0.0, 1.0, 2.0, 3.0, 100.0, np.nan])
    width = numeric_groups("x", v, 2, "width")
    assert [(g.name, g.indices) for g in width] == [("x_0_50", (0, 1, 2, 3)),
                                                   ("x_50_100", (4,)), ("x_unknown", (5,))]
    quant = numeric_groups("x", v, 2, "quantile")
    assert [g.indices for g in quant] == [(0, 1), (2, 3, 4), (5,)]
    same = numeric_groups("x", np.array([4.0, 4.0, 4.0]), 5, "width")
    assert [g.indices for g in same] == [(0, 1, 2)]
    # two ranges that print the same get distinct names
    close = numeric_groups("x", np.array([0.0, 0.1, 0.2, 0.3]), 3, "width")
    assert len({g.name for g in close}) == len(close)


def test_cluster_labels_orders_clusters_by_size() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.01, (2, 4))
    b = rng.normal(5.0, 0.01, (4, 4))
    labels = cluster_labels(np.vstack([a, b]), threshold=1.0, max_clusters=None)
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]
    assert cluster_labels(np.vstack([a, b]), 1.0, max_clusters=1).tolist() == [0] * 6
    assert cluster_labels(a[:1], 1.0, None).tolist() == [0]


def test_odd_sized_crop_mask_and_scores(faceset: Path, tmp_path: Path) -> None:
    """A non-square-safe path: the hull mask follows (x, y) on a 101×101 crop of an odd face."""
    import dataclasses

    from faceplate.core.geometry import compose_affine
    from faceplate.io.faceset import read_face_png, write_face_png

    rgb, meta = read_face_png(faceset / "obama_0.png")
    s = 101 / meta.size
    small = cv2.resize(rgb, (101, 101), interpolation=cv2.INTER_AREA)
    m = compose_affine(np.array([[s, 0, 0], [0, s, 0]], np.float64), meta.matrix)
    write_face_png(tmp_path / "odd.png", small, dataclasses.replace(meta, matrix=m, size=101))
    face, = _faces([tmp_path / "odd.png"])
    mask = face.mask
    assert mask.shape == (101, 101)
    lm = face.crop_landmarks
    # the chin (point 8) is low in the crop and the nose tip (30) is central
    assert mask[int(lm[30, 1]), int(lm[30, 0])]
    assert lm[8, 1] > 70 and not mask[100, 50] and not mask[2, 50]
    for name in KEYS:
        if name == "identity":
            continue
        key = SORT_KEYS.create(name)
        assert np.all(np.isfinite(key.measure_all([face])))
