"""Model profiles (faceplate.core.profile; issue 16, point 7): the registry's contract, the
refusal of excluded models, the CLI's --profile / --version and the metadata facts."""

from __future__ import annotations

import dataclasses
import importlib
import os

import pytest

from faceplate.cli.main import main
from faceplate.core.errors import ConfigError
from faceplate.core.profile import (
    MODELS,
    PROFILE_ENV,
    PROFILES,
    ProfileError,
    active_profile,
    configured,
    require_model,
)
from faceplate.provenance.watermark import FIX_POINTS
from faceplate.provenance.watermark.landmarks import Dlib68FixPoint, Mesh68FixPoint

#: The model each fix point runs (a MODELS key).
FIX_POINT_MODEL = {"dlib68": "dlib68", "mesh68": "face_mesh"}


@pytest.fixture()
def commercial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "commercial")


def _config_class(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_is_consistent(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prof = PROFILES[name]
    assert prof.name == name and prof.summary
    # Fix points: known, the embedder's among the verifier's, and allowed by the profile.
    assert set(FIX_POINT_MODEL) == set(FIX_POINTS.names())
    assert prof.mark_landmarks in prof.verify_landmarks
    for fp in prof.verify_landmarks:
        FIX_POINTS.entry(fp)
        assert prof.allows(FIX_POINT_MODEL[fp]), (name, fp)
    # Every default it changes names a real field and gives a valid config.
    monkeypatch.setenv(PROFILE_ENV, name)
    for qualified, values in prof.defaults:
        cls = _config_class(qualified)
        fields = {f.name for f in dataclasses.fields(cls)}
        assert {k for k, _ in values} <= fields, (qualified, values)
        cfg = configured(cls)
        for k, v in values:
            assert getattr(cfg, k) == v


def test_the_default_profile_runs_everything_and_verifies_both_fix_points() -> None:
    prof = PROFILES["default"]
    assert all(prof.allows(m) for m in MODELS)
    assert set(prof.verify_landmarks) == set(FIX_POINTS.names())  # marks of every profile


def test_commercial_runs_only_permissive_models(commercial: None) -> None:
    prof = active_profile()
    assert prof.name == "commercial" and prof.permissive_only
    allowed = {m for m in MODELS if prof.allows(m)}
    assert allowed == {"blazeface", "face_mesh"}
    from faceplate.extract.detect import DETECTORS
    from faceplate.extract.pipeline import ExtractConfig

    ex = configured(ExtractConfig)
    assert ex.aligner == "mesh68"
    chain = DETECTORS.default_config("chain")
    assert chain.recall == "none" and chain.verifier == "presence"
    assert chain.fast == "blazeface"


@pytest.mark.parametrize("model", ["dlib68", "dlib5", "dlib_hog", "dlib_mmod", "dlib_resnet",
                                   "centerface"])
def test_commercial_refuses_each_excluded_model_by_name(commercial: None, model: str) -> None:
    with pytest.raises(ProfileError) as err:
        require_model(model)
    info = MODELS[model]
    msg = str(err.value)
    assert "commercial" in msg and info.name in msg and info.data_terms in msg
    if info.file:
        assert info.file in msg


def test_the_loaders_refuse_before_opening(commercial: None) -> None:
    from faceplate.extract import dlib_models
    from faceplate.extract.detect.centerface import model_path
    from faceplate.extract.ert import shape_model
    from faceplate.extract.identity.embed import IdentityEncoder

    for load in (lambda: shape_model(68), dlib_models.shape_predictor_68,
                 dlib_models.hog_detector, dlib_models.mmod_detector, model_path,
                 IdentityEncoder, lambda: Dlib68FixPoint(FIX_POINTS.default_config("dlib68"))):
        with pytest.raises(ProfileError):
            load()
    assert isinstance(FIX_POINTS.create("mesh68"), Mesh68FixPoint)


def test_a_bad_profile_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PROFILE_ENV, "cheap")
    with pytest.raises(ConfigError, match=f"{PROFILE_ENV}: unknown profile 'cheap'"):
        active_profile()
    code = main(["verify", "nowhere.png"])
    assert code == 2
    assert "unknown profile 'cheap'" in capsys.readouterr().err


def test_version_shows_the_profile(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "model profile: default" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--profile", "commercial", "--version"])
    assert "model profile: commercial" in capsys.readouterr().out
    monkeypatch.setenv(PROFILE_ENV, "commercial")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "model profile: commercial" in capsys.readouterr().out


def test_profile_flag_holds_for_the_command_only(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    # The identity-needing commands refuse under commercial, naming the model and its terms.
    code = main(["extract", "--profile", "commercial", "nowhere.mp4", "--identity",
                 "--no-write-faces"])
    err = capsys.readouterr().err
    assert code == 2
    assert "dlib_face_recognition_resnet_model_v1.dat" in err and "research datasets" in err
    assert PROFILE_ENV not in os.environ  # restored after the command


def test_metadata_facts_name_the_profile(commercial: None) -> None:
    from faceplate.provenance.c2pa_sign import manifest_definition
    from faceplate.provenance.metadata import KEY_PROFILE, provenance_attributes

    assert provenance_attributes()[KEY_PROFILE] == "commercial"
    facts = manifest_definition("x.png", "abcd")["assertions"][1]["data"]
    assert facts["model_profile"] == "commercial"


def test_the_natron_node_follows_the_environment(commercial: None) -> None:
    """The node's worker inherits the host's environment: FACEPLATE_PROFILE=commercial makes
    its per-frame detection BlazeFace-only and refuses the dlib68 aligner, naming it."""
    from faceplate.ofx.render import RenderSession

    ses = RenderSession()
    with pytest.raises(ProfileError, match="shape_predictor_68_face_landmarks.dat"):
        ses.extractor("chain", "dlib68", ())
    ex = ses.extractor("chain", "mesh68", ())
    assert ex.detector.cfg.recall == "none" and ex.detector.cfg.verifier == "presence"


def test_trained_model_manifest_names_the_profile(commercial: None) -> None:
    """The manifest's training block (``io.model_files.training_stats``, what the swap and the
    mask trainers write) records the profile the model was trained under."""
    from faceplate.io.model_files import training_stats

    assert training_stats(1, 8, 8, {"loss": 0.5})["model_profile"] == "commercial"


@pytest.mark.parametrize("size", [(1920, 1080), (1281, 719), (383, 1000), (640, 360)])
def test_blazeface_tiles_cover_the_frame(size: tuple[int, int]) -> None:
    """The commercial chain's optional recall detector: its tiles cover every pixel, stay in
    the frame, and a frame under two BlazeFace inputs is one tile."""
    import numpy as np

    from faceplate.extract.detect import DETECTORS

    det = DETECTORS.create("blazeface_tiles")
    w, h = size
    tiles = det.tiles(w, h)
    covered = np.zeros((h, w), bool)
    for x0, y0, side in tiles:
        assert x0 >= 0 and y0 >= 0
        if len(tiles) > 1:
            assert x0 + side <= w and y0 + side <= h
        covered[y0:y0 + side, x0:x0 + side] = True
    assert covered.all()
    assert (len(tiles) == 1) == (min(w, h) < 384)
