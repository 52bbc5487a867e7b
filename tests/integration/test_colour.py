"""Colour management end to end (issue 16, point 8): plates in ACEScg and ARRI LogC3 are read
into the working space (linear Rec.709), extracted and converted, and written back in their own
space (or another), through OpenColorIO's built-in ACES studio config or ``$OCIO``.

The plates are synthetic: real frames of single_face.mp4 made scene-linear, then encoded into
each space with OpenColorIO, written as float EXR without any colour metadata (so only
``--colorspace`` can say what they are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from faceplate.cli.main import main
from faceplate.core.colorspace import linear_to_display_u8, srgb_to_linear
from faceplate.core.errors import ConfigError
from faceplate.io import colormanage as cm
from faceplate.io import samples
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore
from tests.convert_model import tiny_model

FRAMES = (10, 22)
SPACES = ("ACEScg", "ARRI LogC3 (EI800)")


def write_exr(path: Path, rgb: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, oiio.FLOAT))
    assert out.write_image(np.ascontiguousarray(rgb, np.float32))
    out.close()


def read(path: Path) -> np.ndarray:
    return np.asarray(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT), np.float32)[..., :3]


@pytest.fixture(scope="module")
def linear() -> list[np.ndarray]:
    """The frames in the working space (linear Rec.709), H×W×3 float32."""
    with open_source(samples.path("single_face.mp4")) as src:
        return [srgb_to_linear(src.read(i).rgb.astype(np.float32) / np.float32(255.0))
                for i in FRAMES]


@pytest.fixture(scope="module")
def plates(linear: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Path]:
    """Space → folder holding shot_0001.exr, shot_0002.exr encoded in that space."""
    out = {}
    for space in SPACES:
        folder = tmp_path_factory.mktemp(space.split()[0].lower())
        for k, lin in enumerate(linear):
            write_exr(folder / f"shot_{k + 1:04d}.exr", cm.from_working(lin, space))
        out[space] = folder
    return out


@pytest.mark.parametrize("space", SPACES)
def test_frames_are_read_into_the_working_space(plates: dict[str, Path],
                                                linear: list[np.ndarray], space: str) -> None:
    with open_source(plates[space] / "shot_####.exr", colorspace=space) as src:
        assert src.colorspace == cm.resolve(space) and src.converts
        frames = list(src)
    for frame, want in zip(frames, linear, strict=True):
        assert frame.linear is not None
        np.testing.assert_allclose(frame.linear, want, rtol=2e-3, atol=2e-5)
        shown, _ = linear_to_display_u8(want)
        assert np.abs(frame.rgb.astype(int) - shown).max() <= 1
    with open_source(plates[space] / "shot_####.exr") as src:  # no --colorspace: as stored
        assert not src.converts and src.colorspace == cm.WORKING
        raw = next(iter(src))
    assert raw.linear is not None and np.abs(raw.linear - linear[0]).max() > 0.01


@pytest.mark.parametrize("space", SPACES)
def test_convert_writes_the_plate_back_in_its_own_space(
        plates: dict[str, Path], space: str, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Outside the swapped face the output is the input, in the input's space (OCIO's
    round trip: within 1e-4 relative); the face changed; the store says what it read."""
    model = tiny_model(tmp_path_factory)
    plate = plates[space] / "shot_####.exr"
    store = tmp_path / "shot.fpstore"
    assert main(["extract", str(plate), "-o", str(tmp_path / "faces"), "--alignments",
                 str(store), "--colorspace", space]) == 0
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.get_meta("colorspace") == cm.resolve(space)
        assert st.face_count() == len(FRAMES)  # the face is found in the converted frames
        boxes = [f.bbox for f in st.iter_faces()]
    out = tmp_path / "out"
    assert main(["convert", "--model", str(model), "--input", str(plate), "--alignments",
                 str(store), "--output", str(out), "--format", "exr-float", "--colorspace",
                 space]) == 0
    written = sorted(out.glob("*.exr"))
    assert len(written) == len(FRAMES)
    for k, path in enumerate(written):
        src, got = read(plates[space] / f"shot_{k + 1:04d}.exr"), read(path)
        x, y, w, h = (int(round(v)) for v in boxes[k].as_tuple())
        outside = np.ones(src.shape[:2], bool)
        outside[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2] = False
        err = np.abs(got - src)[outside]
        assert float((err / (1.0 + np.abs(src[outside]))).max()) < 1e-4
        assert np.abs(got - src)[~outside].max() > 0.02  # the face was swapped
    if space == "ACEScg":  # another output space: ACES2065-1
        out2 = tmp_path / "out_ap0"
        assert main(["convert", "--model", str(model), "--input", str(plate), "--alignments",
                     str(store), "--output", str(out2), "--format", "exr-float",
                     "--colorspace", space, "--output-colorspace", "ACES2065-1"]) == 0
        src = read(plates[space] / "shot_0001.exr")
        want = cm.convert(src, cm.resolve("ACEScg"), cm.resolve("ACES2065-1"))
        got = read(sorted(out2.glob("*.exr"))[0])
        assert np.abs(got - want)[:40].max() < 1e-4 * (1 + np.abs(want[:40]).max())


def test_an_unknown_colour_space_is_a_clear_error(plates: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="'ACEScq' is not in the OpenColorIO config"):
        open_source(plates["ACEScg"] / "shot_####.exr", colorspace="ACEScq")


def test_the_ocio_environment_variable_names_the_config(
        plates: dict[str, Path], linear: list[np.ndarray], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """$OCIO: a studio's own config, here with a space 'double' (twice the linear values)."""
    cfg = tmp_path / "config.ocio"
    cfg.write_text(
        "ocio_profile_version: 2\n"
        "roles: {default: lin, scene_linear: lin, data: raw}\n"
        "file_rules:\n  - !<Rule> {name: Default, colorspace: lin}\n"
        "displays:\n  sRGB:\n    - !<View> {name: Standard, colorspace: srgb}\n"
        "colorspaces:\n"
        "  - !<ColorSpace> {name: lin, aliases: [lin_rec709_scene]}\n"
        "  - !<ColorSpace>\n    name: srgb\n    aliases: [srgb_rec709_scene]\n"
        "    from_scene_reference: !<ExponentWithLinearTransform> "
        "{gamma: 2.4, offset: 0.055, direction: inverse}\n"
        "  - !<ColorSpace>\n    name: double\n    from_scene_reference: !<MatrixTransform> "
        "{matrix: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]}\n"
        "  - !<ColorSpace> {name: raw, isdata: true}\n")
    plate = tmp_path / "double"
    plate.mkdir()
    write_exr(plate / "shot_0001.exr", linear[0] * 2.0)
    monkeypatch.setenv("OCIO", str(cfg))
    with open_source(plate / "shot_####.exr", colorspace="double") as src:
        frame = next(iter(src))
    assert frame.linear is not None
    np.testing.assert_allclose(frame.linear, linear[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="ACEScg"):  # the built-in config is not in use
        cm.resolve("ACEScg")
