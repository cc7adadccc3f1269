"""Who signs a rendition's Content Credentials: a team's certificate chain with its key (a
PEM file, or a command that signs, for keys kept in a KMS or HSM), else a local identity
made on first use.

A local identity is a small certificate authority of its own and a signing certificate
it issued, both made here: C2PA validators accept the signature and call the signer
untrusted, which is the truth about a certificate nobody else vouches for. The key is
written readable by its owner only, and never leaves this module: not in the catalog,
the logs, the page or a ``repr``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import platform
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from catalog import ConfigurationError

# The organisation every local identity's certificates name: how a reader anywhere tells
# a self-made footage signer from a team's certificate.
SELF_MADE_ORGANIZATION = "footage self-made identity"
SELF_MADE_WARNING = "self-made, untrusted outside this installation"
KEY_FILE = "signing-key.pem"
CHAIN_FILE = "signing-chain.pem"
_VALID_DAYS = 3650
# Seconds a signing command may take (a KMS or HSM across a network).
_COMMAND_TIMEOUT_S = 30


@dataclass(frozen=True)
class SigningSettings:
    """Where the signing identity comes from. With ``cert_chain`` set, ``key`` or ``command``
    signs; without it, the local identity kept in ``home`` (made on first use)."""

    home: Path
    cert_chain: Path | None = None
    key: Path | None = None
    # Reads the bytes to sign on stdin, writes the signature (raw or DER) on stdout.
    command: str | None = None
    # PEM certificates whose chains ``footage verify`` calls trusted.
    trust_anchors: Path | None = None


@dataclass(frozen=True)
class Identity:
    """A signer, ready: its certificate chain (leaf first), algorithm and signing function."""

    chain_pem: bytes
    algorithm: str  # a C2paSigningAlg name: ES256, ES384, ES512, PS256, Ed25519
    subject: str
    issuer: str
    self_made: bool
    sign: Callable[[bytes], bytes] = field(repr=False, compare=False)

    def words(self) -> str:
        if self.self_made:
            return f"{self.subject} ({SELF_MADE_WARNING})"
        return f"{self.subject} (issued by {self.issuer})"


def load_identity(settings: SigningSettings) -> Identity:
    """The configured identity, checked now (a render never finds a bad key at its end)."""
    if settings.cert_chain is None:
        if settings.key is not None or settings.command is not None:
            raise ConfigurationError(
                "FOOTAGE_SIGNING_KEY and FOOTAGE_SIGNING_COMMAND need FOOTAGE_SIGNING_CERT: "
                "the certificate chain (PEM, signing certificate first) they sign for"
            )
        return _local_identity(settings.home)
    chain_pem = _read(settings.cert_chain, "FOOTAGE_SIGNING_CERT")
    chain = _certificates(chain_pem, settings.cert_chain)
    if settings.key is not None and settings.command is not None:
        raise ConfigurationError("set FOOTAGE_SIGNING_KEY or FOOTAGE_SIGNING_COMMAND, not both")
    if settings.key is not None:
        key = _private_key(_read(settings.key, "FOOTAGE_SIGNING_KEY"), settings.key)
        if key.public_key().public_bytes(*_SPKI) != chain[0].public_key().public_bytes(*_SPKI):
            raise ConfigurationError(f"{settings.key} is not the key of the first certificate in {settings.cert_chain}")
        sign = _key_signer(key)
    elif settings.command is not None:
        sign = _command_signer(settings.command, chain[0])
        _probe(sign, chain[0], settings.command)
    else:
        raise ConfigurationError(
            "FOOTAGE_SIGNING_CERT needs FOOTAGE_SIGNING_KEY (a PEM private key) or "
            "FOOTAGE_SIGNING_COMMAND (a command that signs stdin)"
        )
    return _identity(chain_pem, chain, sign)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
# PS256, as COSE defines it: RSASSA-PSS with SHA-256 and a salt as long as the hash.
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def trust_anchors(settings: SigningSettings) -> bytes | None:
    return _read(settings.trust_anchors, "FOOTAGE_TRUST_ANCHORS") if settings.trust_anchors else None


def _identity(chain_pem: bytes, chain: list[x509.Certificate], sign: Callable[[bytes], bytes]) -> Identity:
    leaf = chain[0]
    return Identity(
        chain_pem=chain_pem,
        algorithm=_algorithm(leaf),
        subject=_name(leaf.subject),
        issuer=_name(leaf.issuer),
        self_made=_organization(leaf.subject) == SELF_MADE_ORGANIZATION,
        sign=sign,
    )


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc


def _certificates(pem: bytes, path: Path) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM certificate chain: {exc}") from exc
    now = datetime.datetime.now(datetime.UTC)
    if not now < chain[0].not_valid_after_utc:
        expired = chain[0].not_valid_after_utc
        raise ConfigurationError(f"the signing certificate in {path} expired on {expired:%Y-%m-%d}")
    return chain


def _private_key(pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigurationError(f"{path}: C2PA signs with EC, RSA (PSS) or Ed25519 keys, not {type(key).__name__}")
    return key


def _algorithm(certificate: x509.Certificate) -> str:
    public = certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = {256: "ES256", 384: "ES384", 521: "ES512"}.get(public.curve.key_size)
        if algorithm is None:
            raise ConfigurationError(f"C2PA signs with P-256, P-384 or P-521 keys, not {public.curve.name}")
        return algorithm
    if isinstance(public, rsa.RSAPublicKey):
        return "PS256"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519"
    raise ConfigurationError(f"C2PA cannot sign with a {type(public).__name__} certificate")


def _hash_for(certificate: x509.Certificate) -> hashes.HashAlgorithm:
    return {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}.get(
        _algorithm(certificate), hashes.SHA256()
    )


def _raw_ecdsa(signature: bytes, key_size: int) -> bytes:
    """COSE wants ECDSA signatures as r || s; keys and KMSs give DER."""
    r, s = decode_dss_signature(signature)
    width = (key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def _key_signer(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
) -> Callable[[bytes], bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = {256: hashes.SHA256(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA512())
        return lambda data: _raw_ecdsa(key.sign(data, ec.ECDSA(digest)), key.curve.key_size)
    if isinstance(key, rsa.RSAPrivateKey):
        return lambda data: key.sign(data, _PSS, hashes.SHA256())
    return key.sign


def _command_signer(command: str, leaf: x509.Certificate) -> Callable[[bytes], bytes]:
    """Sign by running ``command`` (stdin: the bytes, stdout: the signature); a DER ECDSA
    signature, what KMS and PKCS#11 tools print, becomes the raw form COSE wants."""
    argv = shlex.split(command)
    if not argv:
        raise ConfigurationError("FOOTAGE_SIGNING_COMMAND is empty")
    public = leaf.public_key()
    _hash_for(leaf)  # an unsupported key fails now

    def sign(data: bytes) -> bytes:
        try:
            done = subprocess.run(argv, input=data, capture_output=True, timeout=_COMMAND_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(f"the signing command {argv[0]} could not run: {exc}") from exc
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise ConfigurationError(f"the signing command {argv[0]} failed: {why[0]}")
        signature = done.stdout
        if isinstance(public, ec.EllipticCurvePublicKey) and signature[:1] == b"\x30":
            return _raw_ecdsa(signature, public.curve.key_size)
        return signature

    return sign


def _probe(sign: Callable[[bytes], bytes], leaf: x509.Certificate, command: str) -> None:
    """Sign a few bytes now and check them against the certificate: a command that fails, or
    signs with another key, is found before a render, not at its end."""
    probe = b"footage signing probe"
    signature = sign(probe)
    public = leaf.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            width = (public.curve.key_size + 7) // 8
            r, s = int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
            public.verify(encode_dss_signature(r, s), probe, ec.ECDSA(_hash_for(leaf)))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, probe, _PSS, hashes.SHA256())
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, probe)
    except InvalidSignature as exc:
        raise ConfigurationError(
            f"FOOTAGE_SIGNING_COMMAND ({command}) signs with a key that is not the signing certificate's"
        ) from exc


def _name(name: x509.Name) -> str:
    """A certificate name as people say it: its common name, with its organisation unless
    that is footage's self-made marker (said in words elsewhere)."""
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    organization = _organization(name)
    parts = [str(common[0].value)] if common else []
    if organization and organization not in parts and organization != SELF_MADE_ORGANIZATION:
        parts.append(organization)
    return ", ".join(parts) or name.rfc4514_string()


def _organization(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else None


# ---- the local identity ----


def _local_identity(home: Path) -> Identity:
    key_path, chain_path = home / KEY_FILE, home / CHAIN_FILE
    if not (key_path.is_file() and chain_path.is_file()):
        with _locked(home):
            if not (key_path.is_file() and chain_path.is_file()):
                _make_local_identity(key_path, chain_path)
    key_pem, chain_pem = _read(key_path, "the local signing key"), _read(chain_path, "the local signing chain")
    return _identity(chain_pem, _certificates(chain_pem, chain_path), _key_signer(_private_key(key_pem, key_path)))


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One process makes the identity; another waiting here then reads it."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(home / ".signing.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _make_local_identity(key_path: Path, chain_path: Path) -> None:
    host = platform.node() or "this host"
    now = datetime.datetime.now(datetime.UTC)
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority = _subject(f"footage local authority on {host}")
    key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _certificate(authority, authority, authority_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certificates=True), critical=True)
        .sign(authority_key, hashes.SHA256())
    )
    leaf = (
        _certificate(_subject(f"footage on {host}"), authority, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certificates=False), critical=True)
        # C2PA asks a signing certificate for one of a few purposes; e-mail protection is one.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()), critical=False)
        .sign(authority_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created readable by its owner only: never a moment with wider permissions.
    _write_new(key_path, key_pem, 0o600)
    _write_new(chain_path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)), 0o644)
    # The authority's key is not kept: it signed its one certificate and is never needed again.


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_MADE_ORGANIZATION),
        ]
    )


def _certificate(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # a umask may have taken bits away from what was asked; never added any
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
