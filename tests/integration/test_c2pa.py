"""C2PA manifests on real outputs of our writers, validated by the c2pa reader.

Validation states with the locally generated identity (c2pa-python 0.38.1, c2pa-rs 0.91.3):

* read with this machine's root CA as a trust anchor: ``"Trusted"`` (signature, content hashes
  and the chain to the anchor all check out);
* read without it (any other machine): ``"Valid"`` — signature and hashes are fine, the only
  failure code is ``signingCredential.untrusted`` (the root is in no public trust list);
* after a change to the file's content: ``"Invalid"`` with a hash mismatch code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading
from pathlib import Path

import av
import c2pa
import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from faceplate.convert.writers import WRITERS, ImagesConfig, VideoConfig
from faceplate.core.errors import ConfigError, InputError, UnsupportedFormatError
from faceplate.provenance import c2pa_sign as cs
from faceplate.provenance.metadata import IPTC_DIGITAL_SOURCE_TYPE, read_provenance

H, W = 99, 101


def _frames(tmp: Path, fmt: str, n: int = 2) -> list[Path]:
    frame = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    with WRITERS.create("images", ImagesConfig(format=fmt)).open(
            tmp / fmt, width=W, height=H) as w:
        for i in range(n):
            w.write(i, frame, extra={"provenance": {"model_id": "m-1"}})
    return list(w.written)


def _video(tmp: Path, n: int = 12) -> Path:
    out = tmp / "clip.mp4"
    rng = np.random.default_rng(1)
    with WRITERS.create("video", VideoConfig()).open(out, width=64, height=48, fps=25) as w:
        for i in range(n):
            w.write(i, rng.random((48, 64, 3)).astype(np.float32),
                    extra={"provenance": {"model_id": "m-1"}})
    return out


def _reader_state(path: Path, anchors: bytes = b"") -> tuple[str, list[str]]:
    """Straight from the c2pa reader, not through our summary."""
    settings = {"trust": {"user_anchors": anchors.decode()}} if anchors else {}
    with c2pa.Context.from_dict(settings) as ctx, c2pa.Reader(path, context=ctx) as r:
        data = json.loads(r.json())
    codes = [s["code"] for s in data["validation_results"]["activeManifest"]["failure"]]
    return data["validation_state"], codes


def test_identity_generated_once_and_reused(ident_dir: Path) -> None:
    a = cs.ensure_signing_identity()
    key = ident_dir / cs.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = {p.name: p.stat().st_mtime_ns for p in ident_dir.iterdir()}
    b = cs.ensure_signing_identity()
    assert a.fingerprint == b.fingerprint and a.key_pem == b.key_pem
    assert {p.name: p.stat().st_mtime_ns for p in ident_dir.iterdir()} == before
    assert a.alg == "es256" and not a.user_supplied
    certs = x509.load_pem_x509_certificates(a.chain_pem)
    assert len(certs) == 2
    leaf, root = certs
    assert leaf.issuer == root.subject != leaf.subject  # not self-signed
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert a.anchors_pem == (ident_dir / cs.ROOT_FILE).read_bytes()
    # No leftover temporary files.
    assert not [p for p in ident_dir.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_first_use_agrees(ident_dir: Path) -> None:
    prints: list[str] = []

    def go() -> None:
        prints.append(cs.ensure_signing_identity().fingerprint)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(prints) == 4 and len(set(prints)) == 1


@pytest.mark.parametrize("fmt", ["png8", "png16", "jpeg"])
def test_signed_image_validates(fmt: str, tmp_path: Path, ident_dir: Path) -> None:
    path = _frames(tmp_path, fmt, 1)[0]
    cs.sign_file(path, model_id="m-1", assertions={"frame_index": 0})
    ident = cs.ensure_signing_identity()
    assert _reader_state(path, ident.anchors_pem) == ("Trusted", [])
    assert _reader_state(path) == ("Valid", ["signingCredential.untrusted"])
    m = cs.read_manifest(path)
    assert m is not None
    assert m["validation_state"] == "Trusted" and m["failures"] == [] and m["ours"]
    assert m["digital_source_type"] == IPTC_DIGITAL_SOURCE_TYPE
    assert m["actions"][0]["action"] == "c2pa.created"
    assert m["model_id"] == "m-1"
    assert m["assertions"][cs.ASSERTION_LABEL]["frame_index"] == 0
    other = cs.read_manifest(path, anchors_pem=b"")
    assert other is not None and other["validation_state"] == "Valid" and other["untrusted"]
    # The plain metadata survives signing.
    assert read_provenance(path) is not None
    assert not list(path.parent.glob(".*"))  # no temporary file left beside it


def test_signed_mp4_from_video_writer(tmp_path: Path, ident_dir: Path) -> None:
    clip = _video(tmp_path)
    cs.sign_file(clip, model_id="m-1")
    state, codes = _reader_state(clip, cs.ensure_signing_identity().anchors_pem)
    assert (state, codes) == ("Trusted", [])
    m = cs.read_manifest(clip)
    assert m is not None and m["ours"] and m["validation_state"] == "Trusted"
    with av.open(str(clip)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12  # still a playable video
    found = read_provenance(clip)
    assert found is not None and found["attributes"]["faceplate:model_id"] == "m-1"


def _flip_byte(path: Path, marker: bytes, offset: int) -> None:
    data = bytearray(path.read_bytes())
    i = data.rfind(marker)
    assert i > 0
    data[i + offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_files_fail_validation(tmp_path: Path, ident_dir: Path) -> None:
    png = _frames(tmp_path, "png8", 1)[0]
    cs.sign_file(png, model_id="m-1")
    _flip_byte(png, b"IDAT", 40)
    m = cs.read_manifest(png)
    assert m is not None and m["validation_state"] == "Invalid"
    assert any("mismatch" in c for c in m["failures"])
    clip = _video(tmp_path)
    cs.sign_file(clip, model_id="m-1")
    _flip_byte(clip, b"mdat", 200)
    m = cs.read_manifest(clip)
    assert m is not None and m["validation_state"] == "Invalid" and m["failures"]


def _user_chain(tmp: Path) -> tuple[Path, Path, bytes]:
    """A P-384 CA and signing certificate made here, as a user would bring."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Studio test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Studio signer")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))
    pem = serialization.Encoding.PEM
    key_path, cert_path = tmp / "user.key", tmp / "user-chain.pem"
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    return key_path, cert_path, ca.public_bytes(pem)


def test_user_supplied_key(tmp_path: Path, ident_dir: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    key_path, cert_path, root = _user_chain(tmp_path)
    monkeypatch.setenv(cs.ENV_KEY, str(key_path))
    with pytest.raises(ConfigError):  # only one of the two
        cs.ensure_signing_identity()
    monkeypatch.setenv(cs.ENV_CERT, str(cert_path))
    ident = cs.ensure_signing_identity()
    assert ident.user_supplied and ident.alg == "es384" and ident.anchors_pem == root
    assert not ident_dir.exists()  # nothing generated
    png = _frames(tmp_path, "png8", 1)[0]
    cs.sign_file(png, model_id="m-2")
    assert _reader_state(png, root) == ("Trusted", [])
    m = cs.read_manifest(png)  # the user's root is taken from FACEPLATE_C2PA_CERT
    assert m is not None and m["validation_state"] == "Trusted" and "Studio signer" in m["signer"]
    # A certificate that is not the key's.
    _, other_cert, _ = _user_chain(tmp_path / "..")
    monkeypatch.setenv(cs.ENV_CERT, str(other_cert))
    with pytest.raises(ConfigError):
        cs.ensure_signing_identity()


def test_unsupported_and_missing(tmp_path: Path, ident_dir: Path) -> None:
    exr = _frames(tmp_path, "exr-half", 1)[0]
    with pytest.raises(UnsupportedFormatError):
        cs.sign_file(exr, model_id="m")
    with pytest.raises(InputError):
        cs.sign_file(tmp_path / "nope.png", model_id="m")
    with pytest.raises(InputError):
        cs.read_manifest(tmp_path / "nope.png")


def test_sign_outputs(tmp_path: Path, ident_dir: Path) -> None:
    pngs = _frames(tmp_path, "png16", 3)
    folder = pngs[0].parent
    foreign = folder / "notes.png"  # a user's file in the output folder: left alone
    assert cv2.imwrite(str(foreign), np.zeros((16, 16, 3), np.uint8))
    exrs = _frames(tmp_path, "exr-half", 2)
    clip = _video(tmp_path, 4)
    ms: list[float] = []
    warnings = cs.sign_outputs([folder, exrs[0].parent, clip], "m-3", timings=ms)
    assert len(ms) == 4  # three frames and the video
    assert any(".exr" in w and "2" in w for w in warnings)
    for i, p in enumerate(pngs):
        m = cs.read_manifest(p)
        assert m is not None and m["ours"] and m["validation_state"] == "Trusted"
        assert m["assertions"][cs.ASSERTION_LABEL]["frame_index"] == i
    assert cs.read_manifest(foreign) is None
    m = cs.read_manifest(clip)
    assert m is not None and m["model_id"] == "m-3"
    print(f"sign_outputs: {np.mean(ms[:3]):.1f} ms per {W}x{H} PNG frame")


@pytest.mark.slow
def test_signing_time_per_hd_frame(tmp_path: Path, ident_dir: Path) -> None:
    """Signing cost of a 1920×1080 16-bit PNG frame (reported, not asserted on time)."""
    frame = np.random.default_rng(9).random((1080, 1920, 3)).astype(np.float32)
    with WRITERS.create("images", ImagesConfig(format="png16")).open(
            tmp_path / "hd", width=1920, height=1080) as w:
        for i in range(3):
            w.write(i, frame)
    ms: list[float] = []
    assert cs.sign_outputs([tmp_path / "hd"], "m", timings=ms) == []
    assert len(ms) == 3
    size = os.path.getsize(w.written[0]) / 1e6
    print(f"signing a {size:.1f} MB 1080p png16 frame: {np.median(ms):.0f} ms")
