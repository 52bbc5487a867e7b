"""Signed C2PA manifests (Content Credentials) on the files Faceplate writes, through the
``c2pa-python`` package.

What a manifest states (:func:`sign_file`): a ``c2pa.actions`` assertion with one
``c2pa.created`` action whose ``digitalSourceType`` is the IPTC
``compositeWithTrainedAlgorithmicMedia`` URI (a composite including media made by a trained
model), ``softwareAgent`` Faceplate and its version, and a custom ``org.faceplate.provenance``
assertion (the statement, the model id and any extra facts). The action is ``created``, not
``edited``: C2PA requires the first action of a manifest to be ``created`` or ``opened``, and
``opened`` needs the source footage as a parent ingredient, which Faceplate does not embed.
No thumbnail is embedded; no timestamp authority is contacted (signing works offline; the
signature time is then not independently attested).

Formats: ``.jpg``/``.jpeg``, ``.png``, ``.tif``/``.tiff``, ``.mp4``/``.m4v``/``.mov``
(:data:`SIGNABLE_EXTS`); EXR and Matroska have no C2PA binding and only carry the metadata of
:mod:`faceplate.provenance.metadata`.

Signing identity (:func:`ensure_signing_identity`):

* **User-supplied**: ``FACEPLATE_C2PA_KEY`` (a PEM private key: EC P-256/P-384/P-521, RSA or
  Ed25519) and ``FACEPLATE_C2PA_CERT`` (the PEM certificate chain, signing certificate first).
  C2PA validators require the signing certificate to be issued by a CA (not self-signed), to
  have the ``digitalSignature`` key usage and an extended key usage such as
  ``emailProtection``, ``documentSigning`` or C2PA claim signing, and not ``anyExtendedKeyUsage``.
* **Generated locally on first use** (otherwise): in ``$FACEPLATE_C2PA_DIR``, else
  ``$XDG_CONFIG_HOME/faceplate/c2pa`` (``~/.config/faceplate/c2pa``): a local root CA
  ("Faceplate local root CA", its private key discarded once the leaf is issued) and an ES256
  (P-256) signing certificate with the usages above. Files: ``signer.key`` (mode 0600),
  ``signer-chain.pem`` (leaf + root) and ``root-ca.pem``. Generation holds a lock file and writes
  each file through a temporary file and a rename, so concurrent first runs agree on one
  identity and a killed run leaves none half-written. It is reused until it is within a day of
  expiring (validity 10 years).

Validation of such files by a C2PA reader (:func:`read_manifest`): the signature and the content
hashes check out, but a generated root is in nobody's trust list, so a reader reports the state
``"Valid"`` with the failure code ``signingCredential.untrusted``; with this machine's root added
as a trust anchor (``read_manifest`` does so when it finds one) the state is ``"Trusted"``. A file
changed after signing reads ``"Invalid"`` (e.g. ``assertion.dataHash.mismatch``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceplate.core.errors import ConfigError, InputError, OutputError, UnsupportedFormatError
from faceplate.core.profile import active_profile
from faceplate.provenance.metadata import (
    IPTC_DIGITAL_SOURCE_TYPE,
    SYNTHETIC_TEXT,
    TOOL_NAME,
    TOOL_VERSION,
    read_provenance,
)

#: Extensions a C2PA manifest is embedded in.
SIGNABLE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".mp4", ".m4v", ".mov"})
VIDEO_SIGNABLE = frozenset({".mp4", ".m4v", ".mov"})
#: Label of Faceplate's own assertion.
ASSERTION_LABEL = "org.faceplate.provenance"
#: Environment variables.
ENV_DIR = "FACEPLATE_C2PA_DIR"
ENV_KEY = "FACEPLATE_C2PA_KEY"
ENV_CERT = "FACEPLATE_C2PA_CERT"

KEY_FILE = "signer.key"
CHAIN_FILE = "signer-chain.pem"
ROOT_FILE = "root-ca.pem"
_LOCK_FILE = ".lock"
_VALID_DAYS = 3650
_UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class Identity:
    """A signing key and its certificate chain.

    Attributes:
        key_pem: The private key, PEM.
        chain_pem: The certificate chain, PEM, signing certificate first.
        alg: C2PA signing algorithm name (``"es256"``, ``"ps256"``, ``"ed25519"``…).
        key_path: Where the key was read from.
        cert_path: Where the chain was read from.
        anchors_pem: Root certificate(s) to trust when reading files signed with this identity
            (the local root CA; a user chain's self-signed last certificate; else empty).
        user_supplied: True for ``FACEPLATE_C2PA_KEY``/``CERT``, False for the generated one.
        fingerprint: SHA-256 of the signing certificate (DER), hex.
    """

    key_pem: bytes
    chain_pem: bytes
    alg: str
    key_path: Path
    cert_path: Path
    anchors_pem: bytes = b""
    user_supplied: bool = False
    fingerprint: str = field(default="")


def default_identity_dir() -> Path:
    """``$FACEPLATE_C2PA_DIR``, else ``$XDG_CONFIG_HOME/faceplate/c2pa`` (default
    ``~/.config/faceplate/c2pa``)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "faceplate" / "c2pa"


# --------------------------------------------------------------------------------------------
# Identity


def _alg_for_key(key: Any, path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in algs:
            raise ConfigError(f"EC curve {key.curve.name} is not one C2PA signs with "
                              "(P-256, P-384, P-521)", path)
        return algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ConfigError(f"unsupported private key type {type(key).__name__}", path)


def _identity_from_files(key_path: Path, cert_path: Path, user_supplied: bool,
                         root_path: Path | None = None) -> Identity:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        key_pem = key_path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the C2PA signing key ({err.strerror or err})",
                         key_path) from None
    try:
        chain_pem = cert_path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the C2PA certificate chain ({err.strerror or err})",
                         cert_path) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"not an unencrypted PEM private key ({err})", key_path) from None
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as err:
        raise ConfigError(f"not a PEM certificate chain ({err})", cert_path) from None
    leaf = certs[0]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if leaf.public_key().public_bytes(enc, pub) != key.public_key().public_bytes(enc, pub):
        raise ConfigError(f"the first certificate of {cert_path} does not belong to this key",
                          key_path)
    anchors = b""
    if root_path is not None and root_path.is_file():
        anchors = root_path.read_bytes()
    elif len(certs) > 1 and certs[-1].issuer == certs[-1].subject:
        anchors = certs[-1].public_bytes(serialization.Encoding.PEM)
    return Identity(key_pem=key_pem, chain_pem=chain_pem, alg=_alg_for_key(key, key_path),
                    key_path=key_path, cert_path=cert_path, anchors_pem=anchors,
                    user_supplied=user_supplied,
                    fingerprint=leaf.fingerprint(hashes.SHA256()).hex())


def _generate(folder: Path) -> None:
    """Create a local root CA and an ES256 signing certificate in ``folder`` (the lock held)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=_VALID_DAYS)
    host = os.uname().nodename or "localhost"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Faceplate local root CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Faceplate (local, untrusted)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, host[:64]),
    ])
    no_usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True,
                                       crl_sign=True, **no_usage), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Faceplate local signer"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Faceplate (local, untrusted)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, host[:64]),
    ])
    c2pa_claim_signing = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
    leaf = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                         crl_sign=False, **no_usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                  c2pa_claim_signing]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomic(folder / KEY_FILE, key_pem, 0o600)
    _write_atomic(folder / ROOT_FILE, ca.public_bytes(pem), 0o644)
    # The chain last: its presence means the identity is complete.
    _write_atomic(folder / CHAIN_FILE, leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _usable(folder: Path) -> bool:
    from cryptography import x509

    key, chain = folder / KEY_FILE, folder / CHAIN_FILE
    if not (key.is_file() and chain.is_file()):
        return False
    try:
        leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    except (ValueError, OSError, IndexError):
        return False
    left = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return left > dt.timedelta(days=1)


def ensure_signing_identity(dir: str | os.PathLike[str] | None = None) -> Identity:
    """The identity to sign with: the user's (``FACEPLATE_C2PA_KEY`` + ``FACEPLATE_C2PA_CERT``),
    else the local one in ``dir`` (default :func:`default_identity_dir`), generated on first use.

    Raises:
        ConfigError: only one of the two variables is set, the key is not a supported
            unencrypted PEM key, or the certificate does not match it.
        InputError: a given file cannot be read.
        OutputError: the identity folder cannot be created or written.
    """
    key_env, cert_env = os.environ.get(ENV_KEY), os.environ.get(ENV_CERT)
    if key_env or cert_env:
        if not (key_env and cert_env):
            raise ConfigError(f"set both {ENV_KEY} (PEM private key) and {ENV_CERT} (PEM "
                              "certificate chain), or neither to use the local identity")
        return _identity_from_files(Path(key_env).expanduser(), Path(cert_env).expanduser(),
                                    user_supplied=True)
    folder = Path(dir).expanduser() if dir is not None else default_identity_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _usable(folder):
            with _locked(folder):
                if not _usable(folder):  # another process may have made it meanwhile
                    _generate(folder)
    except OSError as err:
        raise OutputError(f"cannot create the local C2PA signing identity "
                          f"({err.strerror or err})", folder) from None
    return _identity_from_files(folder / KEY_FILE, folder / CHAIN_FILE, user_supplied=False,
                                root_path=folder / ROOT_FILE)


# --------------------------------------------------------------------------------------------
# Signing


def manifest_definition(title: str, model_id: str,
                        assertions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest JSON Faceplate signs (see the module docstring)."""
    facts: dict[str, Any] = {"statement": SYNTHETIC_TEXT,
                             "digital_source_type": IPTC_DIGITAL_SOURCE_TYPE,
                             "tool": TOOL_NAME, "tool_version": TOOL_VERSION,
                             "model_id": str(model_id),
                             "model_profile": active_profile().name}
    facts.update(assertions or {})
    return {
        "claim_generator_info": [{"name": TOOL_NAME, "version": TOOL_VERSION}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": IPTC_DIGITAL_SOURCE_TYPE,
                "softwareAgent": {"name": TOOL_NAME, "version": TOOL_VERSION},
                "description": SYNTHETIC_TEXT,
            }]}},
            {"label": ASSERTION_LABEL, "data": facts},
        ],
    }


def _check_signable(p: Path) -> None:
    if p.suffix.lower() not in SIGNABLE_EXTS:
        raise UnsupportedFormatError(
            f"C2PA manifests are embedded in {', '.join(sorted(SIGNABLE_EXTS))} files, not "
            f"{p.suffix or '(no extension)'}", p)


class _Signing:
    """A c2pa Context (settings: no thumbnail) and the signer info of one identity."""

    def __init__(self, identity: Identity) -> None:
        import c2pa

        self.c2pa = c2pa
        self.identity = identity
        self.settings = {"builder": {"thumbnail": {"enabled": False}}}
        self.info = c2pa.C2paSignerInfo(identity.alg, identity.chain_pem, identity.key_pem,
                                        None)  # no timestamp authority: works offline

    def sign(self, path: Path, manifest: dict[str, Any]) -> None:
        c2pa = self.c2pa
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.c2pa{path.suffix}")
        try:
            ctx = c2pa.Context.from_dict(self.settings)
            with ctx, c2pa.Signer.from_info(self.info) as signer, \
                    c2pa.Builder(manifest, context=ctx) as builder:
                builder.sign_file(path, tmp, signer)
            os.replace(tmp, path)
        except c2pa.C2paError as err:
            raise OutputError(f"C2PA signing failed ({err})", path) from None
        except OSError as err:
            raise OutputError(f"cannot write the signed file ({err.strerror or err})",
                              path) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def sign_file(path: str | os.PathLike[str], *, model_id: str,
              assertions: Mapping[str, Any] | None = None,
              identity: Identity | None = None) -> None:
    """Embed a signed C2PA manifest in ``path``, in place (written beside it, then renamed).

    Args:
        path: A ``.jpg``/``.jpeg``/``.png``/``.tif``/``.tiff``/``.mp4``/``.m4v``/``.mov``
            file. An existing manifest is replaced.
        model_id: The model that made the face (stored in ``org.faceplate.provenance``).
        assertions: Extra JSON-serialisable facts for ``org.faceplate.provenance`` (e.g.
            ``{"frame_index": 3}``).
        identity: Default: :func:`ensure_signing_identity`.

    Raises:
        InputError: no such file. UnsupportedFormatError: a format C2PA cannot hold.
        OutputError: signing or writing failed. ConfigError: a bad user-supplied identity.
    """
    p = Path(path)
    _check_signable(p)
    if not p.is_file():
        raise InputError("no such file", p)
    ident = identity or ensure_signing_identity()
    _Signing(ident).sign(p, manifest_definition(p.name, model_id, assertions))


def _expand(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, bool]]:
    """(file, given explicitly) for each path; folders give their visible files."""
    for item in paths:
        p = Path(item)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if child.is_file() and not child.name.startswith("."):
                    yield child, False
        else:
            yield p, True


def sign_outputs(paths: Iterable[str | os.PathLike[str]], model_id: str, *,
                 identity: Identity | None = None,
                 timings: list[float] | None = None,
                 video_facts: Mapping[str, Any] | None = None) -> list[str]:
    """Sign every output Faceplate wrote: video files, and each PNG/JPEG/TIFF frame of image
    sequences.

    Args:
        paths: Output files and/or folders. A file is signed when its format allows; in a
            folder, only the image files that carry Faceplate's provenance metadata are signed
            (a user's other files there are left alone), sidecars and hidden files skipped.
        model_id: The model id (in every manifest).
        identity: Default: :func:`ensure_signing_identity`.
        timings: When given, each file's signing time in milliseconds is appended.
        video_facts: Facts about the whole run added to a video's manifest (e.g. the faces left
            without the watermark; a video's container metadata is written before its frames).

    Returns:
        Warnings (one line each): formats without a C2PA binding (EXR, MKV: metadata only),
        counted per extension, and files that could not be signed.

    Raises:
        ConfigError, InputError, OutputError: the signing identity cannot be had (nothing is
        signed then).
    """
    ident = identity or ensure_signing_identity()
    signing = _Signing(ident)
    unsupported: dict[str, int] = {}
    failed: list[str] = []
    for p, explicit in _expand(paths):
        ext = p.suffix.lower()
        if ext == ".json":
            continue
        if ext not in SIGNABLE_EXTS:
            if explicit or ext in (".exr", ".mkv"):
                unsupported[ext or "(none)"] = unsupported.get(ext or "(none)", 0) + 1
            continue
        if not p.is_file():
            failed.append(f"{p}: no such file")
            continue
        facts: dict[str, Any] = dict(video_facts or {}) if ext in VIDEO_SIGNABLE else {}
        if ext not in VIDEO_SIGNABLE:
            try:
                found = read_provenance(p)
            except InputError:
                found = None
            if found is None and not explicit:
                continue  # not a file Faceplate wrote
            index = (found or {}).get("attributes", {}).get("faceplate:frame_index")
            if index is not None and str(index).isdigit():
                facts["frame_index"] = int(index)
        t = time.perf_counter()
        try:
            signing.sign(p, manifest_definition(p.name, model_id, facts))
        except OutputError as err:
            failed.append(str(err))
        if timings is not None:
            timings.append((time.perf_counter() - t) * 1000.0)
    warnings = [f"C2PA: {n} {ext} file(s) cannot hold a C2PA manifest; they carry the "
                "provenance metadata only" for ext, n in sorted(unsupported.items())]
    if failed:
        warnings.append(f"C2PA: {len(failed)} file(s) could not be signed; first: {failed[0]}")
    return warnings


# --------------------------------------------------------------------------------------------
# Reading


def _local_anchors() -> bytes:
    """Trust anchors known on this machine: the generated root (never generated here) and a
    user chain's self-signed root."""
    out = b""
    root = default_identity_dir() / ROOT_FILE
    if root.is_file():
        with contextlib.suppress(OSError):
            out += root.read_bytes()
    cert_env = os.environ.get(ENV_CERT)
    if cert_env:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        with contextlib.suppress(OSError, ValueError):
            certs = x509.load_pem_x509_certificates(Path(cert_env).expanduser().read_bytes())
            if len(certs) > 1 and certs[-1].issuer == certs[-1].subject:
                out += certs[-1].public_bytes(serialization.Encoding.PEM)
    return out


def read_manifest(path: str | os.PathLike[str], *,
                  anchors_pem: bytes | None = None) -> dict[str, Any] | None:
    """The active C2PA manifest of a file and its validation.

    Args:
        path: Any file the c2pa reader understands (JPEG, PNG, TIFF, MP4/MOV, …).
        anchors_pem: Extra trust anchors (PEM); default: this machine's local root CA and a
            user-supplied chain's root (:data:`ENV_CERT`), if any.

    Returns:
        ``None`` when the file has no manifest, else ``{"label", "title", "claim_generator"
        ("name version"), "signer" (issuer / common name), "validation_state" ("Trusted":
        signature and hashes valid and the signer chains to a trust anchor; "Valid": valid but
        the signer is not trusted here; "Invalid": the file or manifest was altered or is
        malformed), "failures" (failure codes other than ``signingCredential.untrusted``),
        "untrusted" (that code was reported), "ours" (made by Faceplate: its claim generator
        and ``org.faceplate.provenance`` assertion), "digital_source_type", "actions",
        "model_id", "assertions" ({label: data})}``. A manifest that cannot be parsed at all
        gives ``{"validation_state": "Invalid", "error": text, "ours": False, ...}``.

    Raises:
        InputError: no such file. UnsupportedFormatError: a format the reader does not know.
    """
    import c2pa

    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", p)
    ext = p.suffix.lower().lstrip(".")
    if ext not in c2pa.Reader.get_supported_mime_types():
        raise UnsupportedFormatError(f"the C2PA reader does not read .{ext} files", p)
    anchors = _local_anchors() if anchors_pem is None else anchors_pem
    settings: dict[str, Any] = {}
    if anchors:
        settings["trust"] = {"user_anchors": anchors.decode("ascii")}
    try:
        with c2pa.Context.from_dict(settings) as ctx:
            reader = c2pa.Reader.try_create(p, context=ctx)
            if reader is None:
                return None
            with reader:
                data = json.loads(reader.json())
    except c2pa.C2paError as err:
        return {"label": None, "title": None, "claim_generator": None, "signer": None,
                "validation_state": "Invalid", "failures": [type(err).__name__],
                "untrusted": False, "ours": False, "digital_source_type": None, "actions": [],
                "model_id": None, "assertions": {}, "error": str(err)}
    return _summarise(data)


def _summarise(data: dict[str, Any]) -> dict[str, Any]:
    label = data.get("active_manifest")
    manifest = (data.get("manifests") or {}).get(label) or {}
    results = data.get("validation_results") or {}
    active = results.get("activeManifest") or {}
    codes = [s.get("code", "") for s in active.get("failure") or []]
    if not active:  # older layout: a flat validation_status list
        codes = [s.get("code", "") for s in data.get("validation_status") or []]
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions") or []}
    actions: list[dict[str, Any]] = []
    for key, value in assertions.items():
        if key and key.startswith("c2pa.actions") and isinstance(value, dict):
            actions += value.get("actions") or []
    source_type = next((a.get("digitalSourceType") for a in actions
                        if a.get("digitalSourceType")), None)
    gen = (manifest.get("claim_generator_info") or [{}])[0]
    ours = gen.get("name") == TOOL_NAME and ASSERTION_LABEL in assertions
    own = assertions.get(ASSERTION_LABEL) or {}
    sig = manifest.get("signature_info") or {}
    return {
        "label": label,
        "title": manifest.get("title"),
        "claim_generator": f"{gen.get('name', '?')} {gen.get('version', '')}".strip(),
        "signer": " / ".join(x for x in (sig.get("issuer"), sig.get("common_name")) if x),
        "validation_state": data.get("validation_state")
        or ("Invalid" if [c for c in codes if c != _UNTRUSTED] else "Valid"),
        "failures": [c for c in codes if c != _UNTRUSTED],
        "untrusted": _UNTRUSTED in codes,
        "ours": bool(ours),
        "digital_source_type": source_type,
        "actions": actions,
        "model_id": own.get("model_id") if isinstance(own, dict) else None,
        "assertions": assertions,
    }


__all__ = [
    "ASSERTION_LABEL",
    "ENV_CERT",
    "ENV_DIR",
    "ENV_KEY",
    "SIGNABLE_EXTS",
    "Identity",
    "default_identity_dir",
    "ensure_signing_identity",
    "manifest_definition",
    "read_manifest",
    "sign_file",
    "sign_outputs",
]
