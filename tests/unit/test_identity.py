"""Identity embeddings (dlib's 128-d ResNet) and the reference-image face filter, on real faces."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from faceplate.core.errors import ConfigError, InputError
from faceplate.extract.identity import (
    DlibLandmarker,
    IdentityConfig,
    IdentityEncoder,
    ReferenceFilter,
    identity_distance,
    load_rgb,
)
from faceplate.io import samples

PEOPLE = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]


@pytest.fixture(scope="module")
def encoder() -> IdentityEncoder:
    return IdentityEncoder()


@pytest.fixture(scope="module")
def landmarker() -> DlibLandmarker:
    return DlibLandmarker()


@pytest.fixture(scope="module")
def faces(landmarker: DlibLandmarker) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in PEOPLE:
        rgb = load_rgb(samples.path(name))
        found = landmarker(rgb)
        assert len(found) == 1, name
        out[name] = (rgb, found[0])
    return out


@pytest.fixture(scope="module")
def embeddings(encoder: IdentityEncoder, faces) -> dict[str, np.ndarray]:
    return {name: encoder.embed(*faces[name]) for name in PEOPLE}


@pytest.fixture(scope="module")
def no_face_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first frame of the cartoon clip (no human face) as a PNG."""
    with av.open(str(samples.path("no_face.mp4"))) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    path = tmp_path_factory.mktemp("refs") / "cartoon_no_face.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def test_embedding_contract(embeddings) -> None:
    for name, e in embeddings.items():
        assert e.shape == (128,) and e.dtype == np.float32, name
        assert np.all(np.isfinite(e))
        assert 1.0 < float(np.linalg.norm(e)) < 1.8, name  # dlib's vectors: norm ≈ 1.4


def test_same_person_is_close_and_others_far(embeddings) -> None:
    ref = embeddings["obama.jpg"]
    for other in ("obama2.jpg", "obama3.jpg"):
        assert identity_distance(ref, embeddings[other]) < 0.5, other
    assert identity_distance(embeddings["obama2.jpg"], embeddings["obama3.jpg"]) < 0.6
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
        assert identity_distance(embeddings[name], embeddings["biden.jpg"]) > 0.7, name


def test_embedding_is_deterministic_and_input_untouched(encoder, faces, embeddings) -> None:
    rgb, lm = faces["obama.jpg"]
    rgb_before, lm_before = rgb.copy(), lm.copy()
    again = encoder.embed(rgb, lm)
    np.testing.assert_array_equal(again, embeddings["obama.jpg"])
    np.testing.assert_array_equal(rgb, rgb_before)
    np.testing.assert_array_equal(lm, lm_before)


def test_embed_many_matches_single_calls(encoder, landmarker) -> None:
    rgb = load_rgb(samples.path("multi_face.jpg"))
    lms = landmarker(rgb)
    assert len(lms) >= 3
    many = encoder.embed_many(rgb, lms)
    assert many.shape == (len(lms), 128) and many.dtype == np.float32
    for i, lm in enumerate(lms):
        np.testing.assert_allclose(many[i], encoder.embed(rgb, lm), atol=1e-5)
    # different people in one photo get clearly different rows (small group-photo faces come
    # closer than portraits: the nearest pair here is ~0.51, the rest 0.77-0.92)
    d = [identity_distance(many[i], many[j]) for i in range(len(lms)) for j in range(i)]
    assert min(d) > 0.3 and np.median(d) > 0.6
    assert encoder.embed_many(rgb, []).shape == (0, 128)


def test_embed_rejects_bad_inputs(encoder, faces) -> None:
    rgb, lm = faces["obama.jpg"]
    with pytest.raises(ValueError):
        encoder.embed(rgb.astype(np.float32), lm)
    with pytest.raises(ValueError):
        encoder.embed(rgb, lm[:5])
    with pytest.raises(ValueError):
        encoder.embed(rgb[..., 0], lm)


def test_jitter_and_padding_options(faces, embeddings) -> None:
    rgb, lm = faces["obama.jpg"]
    jittered = IdentityEncoder(IdentityConfig(jitter=3)).embed(rgb, lm)
    d = identity_distance(jittered, embeddings["obama.jpg"])
    assert 0.0 < d < 0.2
    padded = IdentityEncoder(IdentityConfig(padding=0.5)).embed(rgb, lm)
    assert 0.0 < identity_distance(padded, embeddings["obama.jpg"]) < 0.6
    with pytest.raises(ConfigError):
        IdentityConfig(jitter=-1)
    with pytest.raises(ConfigError):
        IdentityConfig(padding=2.0)


def test_identity_distance() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=128), rng.normal(size=128)
    assert identity_distance(a, a) == 0.0
    assert identity_distance(a, b) == pytest.approx(identity_distance(b, a))
    assert identity_distance(a, b) == pytest.approx(float(np.sqrt(((a - b) ** 2).sum())))
    with pytest.raises(ValueError):
        identity_distance(a[:64], b)


def test_filter_keeps_the_reference_person(encoder, landmarker, embeddings) -> None:
    flt = ReferenceFilter.from_images([samples.path("obama.jpg")], [], encoder=encoder,
                                      landmarker=landmarker)
    assert flt.filter.shape == (1, 128) and flt.nfilter.shape == (0, 128)
    assert flt.filter_names == ("obama.jpg",)
    assert flt.accept(embeddings["obama2.jpg"])
    assert flt.accept(embeddings["obama3.jpg"])
    assert not flt.accept(embeddings["biden.jpg"])
    d = flt.distances(embeddings["biden.jpg"])
    assert len(d.filter) == 1 and d.nfilter == () and d.filter[0] > 0.6


def test_nfilter_drops_the_reference_person(encoder, landmarker, embeddings) -> None:
    flt = ReferenceFilter.from_images([], [samples.path("biden.jpg")], encoder=encoder,
                                      landmarker=landmarker)
    assert not flt.accept(embeddings["biden.jpg"])
    assert flt.accept(embeddings["obama2.jpg"])


def test_filter_and_nfilter_together(encoder, landmarker, embeddings) -> None:
    flt = ReferenceFilter.from_images([samples.path("obama.jpg")], [samples.path("biden.jpg")],
                                      threshold=0.6, encoder=encoder, landmarker=landmarker)
    assert flt.accept(embeddings["obama3.jpg"])
    assert not flt.accept(embeddings["biden.jpg"])
    # a threshold below every same-person distance keeps nobody
    strict = ReferenceFilter(flt.filter, flt.nfilter, threshold=0.05)
    assert not strict.accept(embeddings["obama2.jpg"])
    # no references at all: everything passes
    assert ReferenceFilter(np.zeros((0, 128)), np.zeros((0, 128))).accept(embeddings["biden.jpg"])
    with pytest.raises(ConfigError):
        ReferenceFilter(flt.filter, flt.nfilter, threshold=0.0)


def test_filter_uses_the_given_landmarker(encoder, landmarker, embeddings) -> None:
    seen: list[tuple[int, int]] = []

    def own(rgb: np.ndarray) -> list[np.ndarray]:
        seen.append(rgb.shape[:2])
        return landmarker(rgb)

    flt = ReferenceFilter.from_images([samples.path("obama2.jpg")], [], encoder=encoder,
                                      landmarker=own)
    assert seen == [(1200, 626)]
    np.testing.assert_allclose(flt.filter[0], embeddings["obama2.jpg"], atol=1e-6)


def test_reference_without_a_face_names_the_file(encoder, landmarker, no_face_png,
                                                 tmp_path) -> None:
    with pytest.raises(InputError) as err:
        ReferenceFilter.from_images([no_face_png], [], encoder=encoder, landmarker=landmarker)
    assert str(no_face_png) in str(err.value) and "no face" in str(err.value)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    with pytest.raises(InputError, match="blank.png: no face"):
        ReferenceFilter.from_images([], [blank], encoder=encoder, landmarker=landmarker)


def test_reference_with_several_faces_names_the_file(encoder, landmarker) -> None:
    path = samples.path("multi_face.jpg")
    with pytest.raises(InputError, match="faces found") as err:
        ReferenceFilter.from_images([path], [], encoder=encoder, landmarker=landmarker)
    assert str(path) in str(err.value)


def test_unreadable_reference_names_the_file(encoder, landmarker, tmp_path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(InputError, match="missing.jpg: reference image not found"):
        ReferenceFilter.from_images([missing], [], encoder=encoder, landmarker=landmarker)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a jpeg")
    with pytest.raises(InputError, match="junk.jpg: cannot read"):
        ReferenceFilter.from_images([junk], [], encoder=encoder, landmarker=landmarker)
