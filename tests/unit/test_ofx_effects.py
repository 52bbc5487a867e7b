"""The OFX effect definitions, their JSON schema, and render_mask on real frames."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from faceplate.convert.swap import ConvertConfig
from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.errors import ConfigError, InputError
from faceplate.io import samples
from faceplate.ofx.effects import CLI_ONLY, EFFECTS, MASK_ID, SWAP_ID, SWAP_STATUS, effect
from faceplate.ofx.render import render, render_mask
from faceplate.ofx.schema import schema, write_schema

TYPES = {"double", "int", "bool", "choice", "string", "path", "pushbutton"}


def linear_rgba(name: str) -> np.ndarray:
    """A sample photo as H×W×4 float32 scene-linear RGBA (alpha 1), top-down."""
    bgr = cv2.imread(str(samples.path(name)), cv2.IMREAD_COLOR)
    lin = srgb_to_linear(bgr[..., ::-1].astype(np.float32) / np.float32(255.0))
    alpha = np.ones(lin.shape[:2] + (1,), np.float32)
    return np.ascontiguousarray(np.concatenate([lin, alpha], axis=2), dtype=np.float32)


@pytest.fixture(scope="module")
def obama() -> np.ndarray:
    return linear_rgba("obama.jpg")


def test_schema_plugins_and_identity(tmp_path):
    path = write_schema(tmp_path / "Resources" / "faceplate-params.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(schema()))
    ids = [p["identifier"] for p in data["plugins"]]
    assert ids == [MASK_ID, SWAP_ID]
    for p in data["plugins"]:
        assert p["grouping"] == "Faceplate" and len(p["version"]) == 2
        assert [c["name"] for c in p["clips"]] == ["Source", "Mask", "Output"]
        mask_clip = p["clips"][1]
        assert mask_clip["optional"] and mask_clip["is_mask"]
        names = [q["name"] for q in p["params"]]
        assert len(names) == len(set(names))
        assert "mix" in names and "maskInvert" in names
        for q in p["params"]:
            assert q["type"] in TYPES, q
            assert q["label"] and q["hint"] and q["page"]
            if q["type"] == "choice":
                assert q["default"] in q["choices"], q
            if q["min"] is not None and q["type"] in ("double", "int"):
                assert q["min"] <= q["default"] <= q["max"], q
    swap = data["plugins"][1]
    assert swap["status"] == "" and "watermark" in swap["description"]


@pytest.mark.parametrize("eid", list(EFFECTS))
def test_schema_has_every_config_field(eid):
    """Fails when a config field is added without reaching the host's parameter list."""
    e = effect(eid)
    entry = next(p for p in schema()["plugins"] if p["identifier"] == eid)
    by_name = {q["name"]: q for q in entry["params"]}
    shown: dict[type, set[str]] = {}
    for section in e.sections:
        for p in section.params():
            q = by_name.get(section.prefix + p.name)
            assert q is not None, f"{section.config.__name__}.{p.name} missing from {eid}"
            assert q["field"] == p.name and q["config"].endswith(section.config.__qualname__)
            default = p.default if not isinstance(p.default, tuple) else ",".join(p.default)
            assert q["default"] == default
            assert p.name not in shown.get(section.config, set()), f"{p.name} shown twice"
            shown.setdefault(section.config, set()).add(p.name)
    # Every field of every config is on a page, except the converter's whole-file options.
    for cls, names in shown.items():
        hidden = set(CLI_ONLY) if cls is ConvertConfig else set()
        assert names | hidden == {f.name for f in dataclasses.fields(cls)}, cls
    python_owned = {q["name"] for q in entry["params"] if q["owner"] == "python"}
    assert python_owned == {s.prefix + p.name for s, p in e.params()}


def test_mask_choices_come_from_registries():
    from faceplate.convert.blend import BLEND
    from faceplate.convert.color import COLOR
    from faceplate.extract.mask import MASKERS

    plugins = {p["identifier"]: {q["name"]: q for q in p["params"]}
               for p in schema()["plugins"]}
    assert plugins[MASK_ID]["mask"]["choices"] == MASKERS.names()
    assert {"components", "extended"} <= set(plugins[MASK_ID]["mask"]["choices"])
    assert plugins[MASK_ID]["output"]["choices"] == ["alpha", "matte"]
    assert plugins[SWAP_ID]["color"]["choices"] == COLOR.names()
    assert plugins[SWAP_ID]["blend"]["choices"] == BLEND.names()
    assert plugins[SWAP_ID]["model"]["type"] == "path"


def test_render_mask_alpha_on_face(obama):
    out = render_mask(obama, {"mask": "components"})
    assert out.shape == obama.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., :3], obama[..., :3])
    a = out[..., 3]
    assert a.min() >= 0.0 and a.max() <= 1.0
    ys, xs = np.nonzero(a > 0.5)
    cy, cx = ys.mean(), xs.mean()
    # obama.jpg: the face is in the middle of the upper half of the portrait.
    h, w = a.shape
    assert 0.2 * h < cy < 0.7 * h and 0.3 * w < cx < 0.7 * w
    assert a[int(cy), int(cx)] > 0.99
    assert a[:20, :20].max() == 0.0 and a[-20:, -20:].max() == 0.0
    assert 0.01 < (a > 0.5).mean() < 0.5


def test_render_mask_matte_and_erode(obama):
    matte = render_mask(obama, {"output": "matte"})
    np.testing.assert_array_equal(matte[..., 0], matte[..., 3])
    alpha = render_mask(obama, {})
    np.testing.assert_allclose(matte[..., 3], alpha[..., 3])
    eroded = render_mask(obama, {"erode": 10.0})
    assert (eroded[..., 3] > 0.5).sum() < (alpha[..., 3] > 0.5).sum()
    assert render_mask(obama, {"mix": 0.5, "maskInvert": True}).shape == obama.shape


def test_render_mask_no_face_passes_through():
    rng = np.random.default_rng(3)
    frame = rng.random((99, 101, 4), dtype=np.float32) * 0.2
    res = render(MASK_ID, frame, {})
    assert res.faces == 0 and res.status == "no face found"
    np.testing.assert_array_equal(res.image[..., :3], frame[..., :3])
    assert res.image[..., 3].max() == 0.0


def test_render_mask_odd_size(obama):
    h, w = obama.shape[:2]
    crop = np.ascontiguousarray(obama[: h - 1 - (h % 2 == 1), : w - 3])  # odd × odd
    assert crop.shape[0] % 2 == 1 and crop.shape[1] % 2 == 1 and crop.shape[0] != crop.shape[1]
    out = render_mask(crop, {})
    assert out.shape == crop.shape and (out[..., 3] > 0.5).any()


def test_swap_without_model_passes_through(obama):
    res = render(SWAP_ID, obama, {"color": "rct", "post_sharpen": "none"})
    assert res.status == SWAP_STATUS and "no model loaded" in res.status
    np.testing.assert_array_equal(res.image, obama)
    assert res.image is not obama


def test_bad_inputs():
    frame = np.zeros((8, 8, 4), np.float32)
    with pytest.raises(ConfigError, match="unknown parameter"):
        render(MASK_ID, frame, {"nonsense": 1})
    with pytest.raises(ConfigError, match="erode"):
        render(MASK_ID, frame, {"erode": 99.0})
    with pytest.raises(ConfigError, match="unknown effect"):
        render("org.example.Nope", frame, {})
    with pytest.raises(InputError, match="H×W×4 float32"):
        render(MASK_ID, np.zeros((8, 8, 3), np.float32), {})
