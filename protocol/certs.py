"""Certificates of the emulated licensing hierarchy: the shared vocabulary, and reading them.

Contract:
- The names every PKI module shares: `CertRole`, `CertIdentity`, `CertificateError`, the
  identity extension `OID_TSLIC_IDENTITY` (a msgpack map with exactly the keys "role",
  "version", "temporary", "license_server_id", "name") and `ORGANIZATION`.
- Reading: `cert_from_der` parses a peer's DER, `identity_of` reads what a certificate says
  about its holder, `cert_to_der` encodes; nothing here judges trust (chain.py does).
- A certificate we were given that is malformed raises `CertificateError`
  (UNTRUSTED_CERTIFICATE); no cryptography or msgpack exception escapes a public function.
- The helpers without a leading underscore that are not re-exported by pki.py
  (`untrusted`, `malformed`, `bad_argument`, `strict_parsing`, `as_utc`, `ROLE_VERSIONS`,
  `PARSE_ERRORS`) serve pki.py and chain.py only.
- Public names are re-exported by `tslic.protocol.pki`, the module callers import.
- Sans-IO and pure.
"""

from __future__ import annotations

import enum
import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgpack
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from .codec import Unvalidated
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterator

OID_TSLIC_IDENTITY = x509.ObjectIdentifier("2.25.211714364012419786516432386458720546401.1")
ORGANIZATION = "tslic emulated Terminal Services"
# What cryptography raises on malformed input. It only *warns* about some defects (a
# non-positive serial, a wrongly sized country name); strict_parsing() makes those errors.
PARSE_ERRORS = (
    *(ValueError, TypeError, UnsupportedAlgorithm, Warning),
    *(x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType),
)
_UNPACK_ERRORS = (ValueError, TypeError, msgpack.exceptions.UnpackException)
_IDENTITY_KEYS = frozenset({"role", "version", "temporary", "license_server_id", "name"})


class CertRole(enum.StrEnum):
    """The role of a certificate's holder, as written in the identity extension."""

    CLEARINGHOUSE = "clearinghouse"
    LICENSE_SERVER = "license-server"
    TERMINAL_SERVER = "terminal-server"


# The root carries version 0; servers carry their product generation (WindowsVersion).
ROLE_VERSIONS: dict[str, tuple[int, ...]] = {CertRole.CLEARINGHOUSE: (0,)}
ROLE_VERSIONS |= dict.fromkeys((CertRole.LICENSE_SERVER, CertRole.TERMINAL_SERVER), (2000, 2003))


class CertificateError(RemoteProtocolError):
    """A certificate or chain from a peer is unacceptable (code set per instance)."""

    code = ErrorCode.UNTRUSTED_CERTIFICATE


@dataclass(frozen=True, slots=True, kw_only=True)
class CertIdentity:
    """What a certificate says about its holder (for `validate_chain`, about the leaf)."""

    role: str
    name: str
    version: int
    temporary: bool
    license_server_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key
    not_before: datetime
    not_after: datetime
    serial: int
    issuer_name: str  # CN of the issuer


def untrusted(message: str) -> CertificateError:
    """A CertificateError with code UNTRUSTED_CERTIFICATE."""
    return CertificateError(message, code=ErrorCode.UNTRUSTED_CERTIFICATE)


def malformed(message: str, exc: Exception) -> CertificateError:
    """An UNTRUSTED_CERTIFICATE error for input the parser rejected."""
    # The parser's own words go in `detail`, for logs; the message stays readable.
    detail = {"cause": f"{type(exc).__name__}: {exc}"}
    return CertificateError(message, code=ErrorCode.UNTRUSTED_CERTIFICATE, detail=detail)


def bad_argument(message: str) -> LocalProtocolError:
    """A mistake on our own side (INVALID_FIELD), as opposed to a peer's bad certificate."""
    return LocalProtocolError(message, code=ErrorCode.INVALID_FIELD)


def raw_public_key(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte form of an Ed25519 public key.

    Args:
        key: a public key, or a private key whose public half is wanted.

    Returns:
        The 32 raw public-key bytes (RFC 8032 encoding).
    """
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def key_id(raw_public: bytes) -> str:
    """A short stable name for a public key, for logs and tables.

    Args:
        raw_public: the raw public-key bytes.

    Returns:
        The hex of the first 16 bytes of SHA-256 over them (32 characters).
    """
    return hashlib.sha256(raw_public).digest()[:16].hex()


@contextmanager
def strict_parsing() -> Iterator[None]:
    """Turn cryptography's warnings into errors for the duration of the block."""
    # A peer must not be able to make us print warnings; a warning here means bad input.
    # catch_warnings is process-global, but the block never awaits, so no task interleaves.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def as_utc(value: datetime, what: str) -> datetime:
    """`value` in UTC; a naive datetime is our own mistake (LocalProtocolError)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise bad_argument(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _common_name(name: x509.Name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attributes) != 1 or not isinstance(attributes[0].value, str):
        raise untrusted(f"name {name.rfc4514_string()!r} does not have exactly one CN")
    return attributes[0].value


def _decode_identity(data: bytes, cn: str) -> dict[str, Unvalidated]:
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except _UNPACK_ERRORS as exc:
        raise untrusted(f"certificate {cn!r} has an undecodable identity extension") from exc
    if not isinstance(fields, dict) or set(fields) != _IDENTITY_KEYS:
        raise untrusted(f"certificate {cn!r} has a malformed identity extension")
    role, version, temporary = fields["role"], fields["version"], fields["temporary"]
    # type() rather than isinstance(): msgpack's True must not pass for an int version.
    if (
        not isinstance(role, str)
        or role not in ROLE_VERSIONS
        or type(version) is not int
        or version not in ROLE_VERSIONS[role]
        or type(temporary) is not bool
        or (temporary and role == CertRole.CLEARINGHOUSE)  # only servers are ever temporary
        or type(fields["license_server_id"]) is not str
        or fields["name"] != cn
    ):
        raise untrusted(f"certificate {cn!r} has an invalid identity extension")
    return fields


def _read_identity(cert: x509.Certificate) -> CertIdentity:
    cn, issuer_cn = _common_name(cert.subject), _common_name(cert.issuer)
    try:
        ext = cert.extensions.get_extension_for_oid(OID_TSLIC_IDENTITY).value
    except x509.ExtensionNotFound:
        raise untrusted(f"certificate {cn!r} carries no tslic identity") from None
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise untrusted(f"certificate {cn!r} has a malformed identity extension")
    fields = _decode_identity(ext.value, cn)
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise untrusted(f"certificate {cn!r} does not hold an Ed25519 key")
    return CertIdentity(
        role=CertRole(fields["role"]),
        name=cn,
        version=fields["version"],
        temporary=fields["temporary"],
        license_server_id=fields["license_server_id"],
        public_key=public.public_bytes_raw(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        issuer_name=issuer_cn,
    )


def identity_of(cert: x509.Certificate) -> CertIdentity:
    """Read what a certificate says about its holder, without validating anything else.

    Args:
        cert: a parsed certificate.

    Returns:
        Its identity; `issuer_name` is the issuer's CN.

    Raises:
        CertificateError: (UNTRUSTED_CERTIFICATE) the identity extension is absent or
            malformed, a name lacks a single CN, or the key is not Ed25519.
    """
    # cryptography parses names, extensions and keys lazily, so malformed DER can surface
    # here rather than in cert_from_der (and a caller may have loaded the certificate).
    try:
        with strict_parsing():
            return _read_identity(cert)
    except PARSE_ERRORS as exc:
        raise malformed("certificate has malformed fields", exc) from exc


def cert_to_der(cert: x509.Certificate) -> bytes:
    """Encode a certificate as DER.

    Args:
        cert: the certificate.

    Returns:
        Its DER bytes.
    """
    return cert.public_bytes(Encoding.DER)


def cert_from_der(data: bytes) -> x509.Certificate:
    """Parse a DER certificate received from a peer (not yet validated).

    Args:
        data: the DER bytes.

    Returns:
        The certificate.

    Raises:
        CertificateError: (UNTRUSTED_CERTIFICATE) the bytes are not one DER certificate.
    """
    try:
        with strict_parsing():
            cert = x509.load_der_x509_certificate(bytes(data))
            # Touch the lazily parsed parts so garbage is reported here, at the boundary.
            _ = (cert.subject, cert.issuer, cert.extensions, cert.serial_number)
    except PARSE_ERRORS as exc:
        raise malformed(f"{len(data)} bytes are not a DER X.509 certificate", exc) from exc
    return cert
